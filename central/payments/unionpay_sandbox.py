"""A local acquirer (and card issuer) for the project's KIOSK-ACQ/1 protocol (see ``unionpay``).

It plays the parts a real acquirer's host and its host security module play: it checks each message's MAC,
clock and fields; issues PIN working keys encrypted under each terminal's PIN-pad master key; decrypts a
sale's PIN block with the terminal's working key, parses the ISO 9564 format-0 block with the PAN and
compares the PIN with its demo card table — so a PIN exists in clear only in the pad and here, as in
production it exists only in the pad and the bank's HSM. Reversals are idempotent and remembered before their
sale; refunds are idempotent on their refund number.

``/simulate/...`` routes (unsigned; they stand for the network and the test operator) inject faults: a delay
before processing, an answer dropped after processing (the client times out: the "reversal on timeout" case),
a decline with a chosen response code, a corrupted answer MAC; and they show a trade's record with its
reversal count. All state is in memory.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from central.payments.sandbox_faults import DEFAULT_DROP_HOLD_SECONDS, set_link_faults, take_drop, withhold
from central.payments.unionpay import (CHINA_TZ, MAC_ALGORITHMS, MAC_HEADER, MAX_CLOCK_SKEW_SECONDS, MTI,
                                       PIN_ALGORITHMS, PROTOCOL, WorkingKey, encode_body, mac_header,
                                       mask_fields, parse_transmission_time, response_message,
                                       transmission_time, verify_mac_header)
from drivers.pcsc.cards import luhn_valid, mask_pan
from drivers.pinpad.crypto import Algorithm, decrypt, encrypt, kcv
from drivers.pinpad.pinblock import PinBlockError, parse_format0
from drivers.pinpad.simulator import DEMO_MASTER_KEYS

log = logging.getLogger(__name__)

DEMO_MERCHANT_ID = "898440379930001"
MAX_PIN_TRIES = 3
#: How long a dropped answer is withheld at most; the client's own timeout is what ends it normally.


@dataclass
class DemoCard:
    """An issuer's record of one card: its PIN (which only this sandbox "HSM" knows) and its balance."""

    pan: str = field(repr=False)
    pin: str = field(repr=False)
    expiry: str  # YYMM
    balance_fen: int
    status: str = "active"  # "active" | "blocked" (→05) | "lost" (→41)
    wrong_pin_tries: int = 0

    def __repr__(self) -> str:
        return f"DemoCard({mask_pan(self.pan)}, expiry={self.expiry}, balance={self.balance_fen}, {self.status})"


def demo_cards() -> dict[str, DemoCard]:
    """The demo issuer's cards. The first is the virtual smart card's (``drivers/pcsc/vcard.py``) PAN."""
    cards = [
        DemoCard("6222021234567890128", "123456", "3012", 10_000_000),  # vcard's default UnionPay debit card
        DemoCard("6230606601007726888", "924613", "2912", 5_000_000),  # the PIN-pad tests' card
        DemoCard("6217000010001234569", "111111", "3106", 1_000),  # ten yuan: "51" for most bills
        DemoCard("6228480000000000018", "888888", "2808", 5_000_000, status="blocked"),  # "05"
        DemoCard("6210810000000000017", "246810", "2001", 5_000_000),  # expired in January 2020: "54"
    ]
    return {card.pan: card for card in cards}


@dataclass
class _Trade:
    order_id: str
    terminal_id: str
    state: str  # "APPROVED" | "DECLINED" | "REVERSED" | "REFUNDED"
    pan: str = field(default="", repr=False)
    amount_fen: int = 0
    response_code: str = ""
    stan: str = ""
    rrn: str | None = None
    auth_code: str | None = None
    approved_time: str | None = None
    refunded_fen: int = 0
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    reversal_messages: int = 0
    reversals_applied: int = 0  # reversals that actually gave money back: at most one
    reversed_before_sale: bool = False
    last_answer: dict[str, Any] = field(default_factory=dict)

    def view(self) -> dict[str, Any]:
        return {"order_id": self.order_id, "terminal_id": self.terminal_id, "trade_state": self.state,
                "pan": mask_pan(self.pan) if self.pan else None, "amount_fen": self.amount_fen,
                "response_code": self.response_code, "rrn": self.rrn, "approved_time": self.approved_time,
                "refunded_fen": self.refunded_fen, "refunds": list(self.refunds.values()),
                "reversal_messages": self.reversal_messages, "reversals_applied": self.reversals_applied,
                "reversed_before_sale": self.reversed_before_sale}


@dataclass
class Controls:
    """Faults to inject; counters are "the next n messages of this kind"."""

    delay_seconds: float = 0.0  # before processing every message
    drop_next: dict[str, int] = field(default_factory=dict)  # message -> answers to withhold after processing
    decline_next: list[str] = field(default_factory=list)  # response codes for the next sales, in order
    corrupt_mac_next: int = 0  # answers to send with a wrong MAC
    drop_hold_seconds: float = DEFAULT_DROP_HOLD_SECONDS


class Acquirer:
    """The acquirer's and issuer's state and rules, independent of HTTP so tests can also call it directly."""

    def __init__(self, merchant_id: str = DEMO_MERCHANT_ID, *, cards: Mapping[str, DemoCard] | None = None,
                 master_keys: Mapping[str, Mapping[Algorithm, bytes]] | None = None,
                 default_master_keys: Mapping[Algorithm, bytes] | None = DEMO_MASTER_KEYS):
        self.merchant_id = merchant_id
        self.cards: dict[str, DemoCard] = dict(cards) if cards is not None else demo_cards()
        # Each terminal's PIN pad master keys, as the key-injection room recorded them; terminals not listed
        # use the default (every simulated pad carries the demo master keys).
        self._master_keys = {tid: dict(keys) for tid, keys in (master_keys or {}).items()}
        self._default_master_keys = dict(default_master_keys) if default_master_keys else None
        self._working: dict[tuple[str, Algorithm], bytes] = {}
        self.trades: dict[str, _Trade] = {}
        self.refund_index: dict[str, str] = {}  # refund_no -> order_id
        self.controls = Controls()
        self.messages: deque[dict[str, Any]] = deque(maxlen=1000)  # masked copies of the latest, for tests
        self.lock = threading.RLock()

    # --- key management -----------------------------------------------------------------------------------

    def issue_working_keys(self, terminal_id: str, algorithm: Algorithm | str = Algorithm.SM4) -> WorkingKey:
        """A fresh PIN working key for ``terminal_id``, encrypted under its pad's master key, plus the KCV.

        The previous key of that terminal and algorithm stops working at once, as after a real sign-on.
        """
        alg = Algorithm(algorithm)
        master = self._master_keys.get(terminal_id, self._default_master_keys or {}).get(alg)
        if master is None:
            raise KeyError(f"no {alg.value} master key recorded for terminal {terminal_id}")
        key = os.urandom(16)
        with self.lock:
            self._working[(terminal_id, alg)] = key
        return WorkingKey(terminal_id, alg.value, encrypt(alg, master, key), kcv(alg, key))

    # --- messages -----------------------------------------------------------------------------------------

    def handle(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Process one authenticated message and return the answer fields (without the echo)."""
        message = str(request.get("message"))
        with self.lock:
            self.messages.append(mask_fields(request))
            if message == "sale":
                return self._sale(request)
            if message == "reversal":
                return self._reversal(request)
            if message == "refund":
                return self._refund(request)
            if message == "query":
                return self._query(request)
            if message == "sign_on":
                return self._sign_on(request)
        return {"response_code": "12"}

    def _sign_on(self, request: Mapping[str, Any]) -> dict[str, Any]:
        algorithm = request.get("pin_algorithm", "sm4")
        if algorithm not in PIN_ALGORITHMS:
            return {"response_code": "12"}
        try:
            key = self.issue_working_keys(str(request["terminal_id"]), str(algorithm))
        except KeyError:
            return {"response_code": "A7"}
        return {"response_code": "00", "pin_algorithm": key.algorithm, "pin_key": key.encrypted_key.hex().upper(),
                "pin_key_kcv": key.check_value.hex().upper()}

    def _sale(self, request: Mapping[str, Any]) -> dict[str, Any]:
        order_id = request.get("order_id")
        pan, expiry, amount = request.get("pan"), request.get("expiry"), request.get("amount_fen")
        block, algorithm = request.get("pin_block"), request.get("pin_algorithm")
        if not isinstance(order_id, str) or not order_id or not isinstance(pan, str) or not isinstance(expiry, str):
            return {"response_code": "12"}
        if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
            return {"response_code": "13"}
        terminal_id, stan = str(request["terminal_id"]), str(request["stan"])
        existing = self.trades.get(order_id)
        if existing is not None:
            if existing.stan == stan and existing.terminal_id == terminal_id and existing.last_answer:
                return dict(existing.last_answer)  # a retransmission: the same answer, nothing done twice
            if existing.state in ("APPROVED", "REFUNDED") and existing.pan == pan and existing.amount_fen == amount:
                return dict(existing.last_answer)  # paid already: never charge one order twice
            if existing.state != "DECLINED":
                # Reversed (possibly before this late sale arrived) or a different sale under the same number.
                return {"response_code": "94"}
        trade = _Trade(order_id, terminal_id, "DECLINED", pan=pan, amount_fen=amount, stan=stan)
        self.trades[order_id] = trade
        code = self._authorise(terminal_id, pan, expiry, amount, block, algorithm)
        trade.response_code = code
        answer: dict[str, Any] = {"response_code": code, "amount_fen": amount}
        if code == "00":
            trade.state = "APPROVED"
            trade.rrn = f"{secrets.randbelow(10 ** 12):012d}"
            trade.auth_code = f"{secrets.randbelow(10 ** 6):06d}"
            trade.approved_time = transmission_time()
            answer.update(rrn=trade.rrn, auth_code=trade.auth_code, approved_time=trade.approved_time,
                          settlement_date=trade.approved_time[4:8])
        trade.last_answer = answer
        log.info("acquirer sandbox: sale %s card %s %d fen -> %s", order_id, mask_pan(pan), amount, code)
        return dict(answer)

    def _authorise(self, terminal_id: str, pan: str, expiry: str, amount: int, block: object,
                   algorithm: object) -> str:
        """The issuer's decision for one sale; only the PIN check needs the terminal's working key."""
        if self.controls.decline_next:
            return self.controls.decline_next.pop(0)
        card = self.cards.get(pan)
        if card is None or not luhn_valid(pan):
            return "14"
        if card.status == "lost":
            return "41"
        if card.status == "blocked":
            return "05"
        if _expired(card.expiry):
            return "54"
        if card.expiry != expiry:  # the card's data does not match the issuer's record
            return "05"
        if card.wrong_pin_tries >= MAX_PIN_TRIES:
            return "75"
        if algorithm not in PIN_ALGORITHMS or not isinstance(block, str):
            return "99"
        alg = Algorithm(algorithm)
        key = self._working.get((terminal_id, alg))
        if key is None:
            return "A7"
        try:
            clear = decrypt(alg, key, bytes.fromhex(block))
            pin = parse_format0(clear, pan)
        except (ValueError, PinBlockError):
            # A block that does not decode is what a wrong key (or a PIN for another card) gives.
            return "99"
        if not secrets.compare_digest(pin, card.pin):
            card.wrong_pin_tries += 1
            return "75" if card.wrong_pin_tries >= MAX_PIN_TRIES else "55"
        card.wrong_pin_tries = 0
        if card.balance_fen < amount:
            return "51"
        card.balance_fen -= amount
        return "00"

    def _reversal(self, request: Mapping[str, Any]) -> dict[str, Any]:
        order_id = request.get("order_id")
        if not isinstance(order_id, str) or not order_id:
            return {"response_code": "12"}
        trade = self.trades.get(order_id)
        if trade is None:
            # The reversal overtook its sale (or the sale never arrived): remember it so the sale is refused.
            trade = _Trade(order_id, str(request["terminal_id"]), "REVERSED", reversed_before_sale=True)
            self.trades[order_id] = trade
        trade.reversal_messages += 1
        if trade.state == "REFUNDED":
            return {"response_code": "12"}  # money already went back by refund; a reversal would double it
        if trade.state == "APPROVED":
            card = self.cards.get(trade.pan)
            if card is not None:
                card.balance_fen += trade.amount_fen
            trade.reversals_applied += 1
            log.info("acquirer sandbox: sale %s reversed, %d fen released", order_id, trade.amount_fen)
        trade.state = "REVERSED"
        return {"response_code": "00", "amount_fen": trade.amount_fen}

    def _refund(self, request: Mapping[str, Any]) -> dict[str, Any]:
        order_id, refund_no = request.get("order_id"), request.get("refund_no")
        amount, original = request.get("amount_fen"), request.get("original_amount_fen")
        if not isinstance(order_id, str) or not isinstance(refund_no, str) or not refund_no:
            return {"response_code": "12"}
        if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
            return {"response_code": "13"}
        trade = self.trades.get(order_id)
        if trade is None:
            return {"response_code": "25"}
        known = self.refund_index.get(refund_no)
        if known is not None:
            previous = self.trades[known].refunds[refund_no]
            if known != order_id or previous["amount_fen"] != amount:
                return {"response_code": "94"}
            return {"response_code": "00", "amount_fen": amount, "refund_no": refund_no}
        if trade.state not in ("APPROVED", "REFUNDED"):
            return {"response_code": "12"}
        if original != trade.amount_fen or trade.refunded_fen + amount > trade.amount_fen:
            return {"response_code": "13"}
        card = self.cards.get(trade.pan)
        if card is not None:
            card.balance_fen += amount
        trade.refunded_fen += amount
        trade.state = "REFUNDED"
        trade.refunds[refund_no] = {"refund_no": refund_no, "amount_fen": amount, "status": "SUCCESS",
                                    "time": transmission_time()}
        self.refund_index[refund_no] = order_id
        return {"response_code": "00", "amount_fen": amount, "refund_no": refund_no}

    def _query(self, request: Mapping[str, Any]) -> dict[str, Any]:
        refund_no = request.get("refund_no")
        if isinstance(refund_no, str) and refund_no:
            known = self.refund_index.get(refund_no)
            if known is None:
                return {"response_code": "25"}
            return {"response_code": "00", "refund_status": self.trades[known].refunds[refund_no]["status"]}
        trade = self.trades.get(str(request.get("order_id")))
        if trade is None:
            return {"response_code": "25"}
        return {"response_code": "00", "trade_state": trade.state, "original_response_code": trade.response_code,
                "amount_fen": trade.amount_fen, "rrn": trade.rrn, "approved_time": trade.approved_time,
                "refunded_fen": trade.refunded_fen}


def _expired(expiry: str, today: date | None = None) -> bool:
    today = today or datetime.now(CHINA_TZ).date()
    return (2000 + int(expiry[:2]), int(expiry[2:])) < (today.year, today.month)


def create_sandbox_app(mac_key: bytes, *, mac_algorithm: str = "HMAC-SM3", acquirer: Acquirer | None = None,
                       merchant_id: str = DEMO_MERCHANT_ID) -> FastAPI:
    """The acquirer sandbox for one merchant. ``app.state.acquirer`` is its ``Acquirer`` (cards, trades,
    controls), for tests that prefer to look inside rather than go through ``/simulate``."""
    if mac_algorithm not in MAC_ALGORITHMS:
        raise ValueError(f"unknown MAC algorithm {mac_algorithm!r}")
    acq = acquirer or Acquirer(merchant_id)
    app = FastAPI(title="KIOSK-ACQ/1 acquirer sandbox", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.acquirer = acq

    def answer(request_fields: Mapping[str, Any], result: Mapping[str, Any], *, status: int = 200) -> Response:
        message = str(request_fields.get("message", ""))
        document: dict[str, Any] = {"protocol": PROTOCOL, "transmission_time": transmission_time(),
                                    "merchant_id": acq.merchant_id}
        for name in ("message", "stan", "terminal_id", "order_id"):
            if name in request_fields:
                document[name] = request_fields[name]
        mti = MTI.get(message)
        if mti is not None:
            document["mti"] = mti[1]
        document.update(result)
        document.setdefault("response_message", response_message(str(document["response_code"])))
        body = encode_body(document)
        key = mac_key
        with acq.lock:
            if acq.controls.corrupt_mac_next > 0:
                acq.controls.corrupt_mac_next -= 1
                key = os.urandom(len(mac_key))
        return Response(body, status_code=status, media_type="application/json",
                        headers={MAC_HEADER: mac_header(mac_algorithm, key, body)})

    @app.post("/acq/v1/{message}")
    async def acquirer_message(message: str, request: Request) -> Response:
        body = await request.body()
        delay = acq.controls.delay_seconds
        if delay > 0:
            await asyncio.sleep(delay)
        if not verify_mac_header(mac_algorithm, mac_key, body, request.headers.get(MAC_HEADER)):
            log.warning("acquirer sandbox: %s refused, MAC does not verify", message)
            return answer({}, {"response_code": "A0"})
        try:
            fields = json.loads(body)
        except ValueError:
            return answer({}, {"response_code": "12", "response_message": "报文不是合法的JSON"})
        if not isinstance(fields, dict):
            return answer({}, {"response_code": "12", "response_message": "报文必须是JSON对象"})
        problem = _envelope_problem(fields, message, acq.merchant_id)
        if problem:
            log.warning("acquirer sandbox: %s refused: %s", message, problem)
            return answer(fields, {"response_code": "12", "response_message": problem})
        result = acq.handle(fields)
        with acq.lock:
            hold = take_drop(acq.controls, message)
        if hold is not None:  # processed, but the answer is lost on the way back
            log.info("acquirer sandbox: withholding the answer to %s %s", message, fields.get("order_id"))
            return await withhold(request, hold)
        return answer(fields, result)

    # --- test controls (unsigned: they stand for the network and the operator) -----------------------------

    @app.post("/simulate/control")
    async def simulate_control(request: Request) -> Response:
        """Set faults: ``{"delay_seconds": 1.5, "drop_next": {"sale": 1}, "decline_next": ["51"],
        "corrupt_mac_next": 1, "drop_hold_seconds": 5}``; fields left out are unchanged."""
        try:
            params = json.loads(await request.body() or b"{}")
            with acq.lock:
                c = acq.controls
                set_link_faults(c, params, MTI)
                if "decline_next" in params:
                    codes = params["decline_next"]
                    c.decline_next.extend([codes] if isinstance(codes, str) else [str(x) for x in codes])
                if "corrupt_mac_next" in params:
                    c.corrupt_mac_next = int(params["corrupt_mac_next"])
                view = _controls_view(c)
        except (ValueError, TypeError, AttributeError) as exc:
            return JSONResponse({"code": "PARAM_ERROR", "message": str(exc)}, 400)
        return JSONResponse(view)

    @app.post("/simulate/reset")
    async def simulate_reset() -> Response:
        with acq.lock:
            acq.controls = Controls()
        return JSONResponse(_controls_view(acq.controls))

    @app.get("/simulate/trades/{order_id}")
    async def simulate_trade(order_id: str) -> Response:
        with acq.lock:
            trade = acq.trades.get(order_id)
            if trade is None:
                return JSONResponse({"code": "NOT_FOUND", "message": "no such trade"}, 404)
            return JSONResponse(trade.view())

    @app.get("/simulate/cards/{pan}")
    async def simulate_card(pan: str) -> Response:
        with acq.lock:
            card = acq.cards.get(pan)
            if card is None:
                return JSONResponse({"code": "NOT_FOUND", "message": "no such card"}, 404)
            return JSONResponse({"pan": mask_pan(card.pan), "balance_fen": card.balance_fen,
                                 "status": card.status, "wrong_pin_tries": card.wrong_pin_tries})

    @app.post("/simulate/working-keys/{terminal_id}")
    async def simulate_working_keys(terminal_id: str, algorithm: str = "sm4") -> Response:
        """The acquirer-side key issue, without a signed sign-on (for kiosks set up by hand)."""
        try:
            return JSONResponse(acq.issue_working_keys(terminal_id, algorithm).to_dict())
        except (KeyError, ValueError) as exc:
            return JSONResponse({"code": "PARAM_ERROR", "message": str(exc)}, 400)

    return app


def _controls_view(c: Controls) -> dict[str, Any]:
    return {"delay_seconds": c.delay_seconds, "drop_next": dict(c.drop_next), "decline_next": list(c.decline_next),
            "corrupt_mac_next": c.corrupt_mac_next, "drop_hold_seconds": c.drop_hold_seconds}


def _envelope_problem(fields: Mapping[str, Any], message: str, merchant_id: str) -> str | None:
    if fields.get("protocol") != PROTOCOL:
        return f"protocol must be {PROTOCOL}"
    if fields.get("message") != message or message not in MTI:
        return "message does not match the path"
    mti = MTI[message]
    if mti is not None and fields.get("mti") != mti[0]:
        return f"mti must be {mti[0]} for {message}"
    if fields.get("merchant_id") != merchant_id:
        return "unknown merchant_id"
    if not isinstance(fields.get("terminal_id"), str) or not fields["terminal_id"]:
        return "terminal_id is required"
    stan = fields.get("stan")
    if not isinstance(stan, str) or len(stan) != 6 or not stan.isdigit():
        return "stan must be six digits"
    try:
        sent = parse_transmission_time(str(fields.get("transmission_time")))
    except ValueError:
        return "transmission_time must be YYYYMMDDhhmmss"
    if abs(time.time() - sent.timestamp()) > MAX_CLOCK_SKEW_SECONDS:
        return "transmission_time outside the allowed window"
    return None
