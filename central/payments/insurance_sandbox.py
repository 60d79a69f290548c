"""A local medical-insurance platform for the project's KIOSK-MI/1 protocol (see ``insurance``).

It checks each call's app id, signature and clock, keeps demo insured persons (e-voucher codes and
social-security card numbers, personal-account balances, the annual deductible each has used) and applies
the demo split rules of ``insurance.split_bill``. Settlements move the deductible and the account balance;
reversals and refunds move them back, exactly once, however often they are repeated.

``/simulate/...`` routes (unsigned; they stand for the network and the operator) inject faults: a delay, an
answer dropped after processing (a real client timeout), a refusal with a chosen error code, the whole
platform down (HTTP 503), a corrupted answer signature; and they show a person's and a settlement's state.
All state is in memory.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from central.payments.sandbox_faults import DEFAULT_DROP_HOLD_SECONDS, set_link_faults, take_drop, withhold
from central.payments.insurance import (APP_ID_HEADER, CERT_E_VOUCHER, CERT_SOCIAL_SECURITY_CARD, ERROR_CODES,
                                        INF_TIME_FORMAT, INSUTYPE_NAMES, MAX_CLOCK_SKEW_SECONDS, PROTOCOL,
                                        SIGNATURE_HEADER, BillItem, Split, mask_code, split_bill)
from central.payments.unionpay import CHINA_TZ, MAC_ALGORITHMS, mac_header, verify_mac_header

log = logging.getLogger(__name__)

DEMO_HOSPITAL_CODE = "H44030500001"
DEMO_APP_ID = "kiosk-demo"
BUSINESS_INFNOS = ("1101", "2206", "2207", "2208", "2209", "5203")


@dataclass
class DemoPerson:
    """One insured person as the platform knows them."""

    psn_no: str
    name: str = field(repr=False)
    id_number: str = field(repr=False)
    insutype: str
    e_voucher: str = field(repr=False)
    card_number: str
    account_balance_fen: int
    deductible_annual_fen: int
    deductible_used_fen: int = 0
    status: str = "active"  # "active" | "suspended" (→2001)
    voucher_expired: bool = False

    @property
    def account_allowed(self) -> bool:
        return self.insutype == "310"  # residents have no personal account

    @property
    def deductible_remaining_fen(self) -> int:
        return max(0, self.deductible_annual_fen - self.deductible_used_fen)


def demo_persons() -> list[DemoPerson]:
    """The demo insured. 张三's card number and ID are the virtual social-security card's (vcard.py)."""
    return [
        DemoPerson("44030019490001", "张三", "11010519491231002X", "310", "ecXk3v9Q2mWJ7TzL0pRb5NfY8uHsAe1D",
                   "A12345678", 50_000, 20_000),
        DemoPerson("44030019900002", "李四", "110101199003074477", "390", "rsT7vQ1mZ9kL3xW5bN8cH2jF6dG4pY0a",
                   "B87654321", 0, 10_000),
        DemoPerson("44030019900003", "王五", "110101199003074258", "310", "emP2wX7nB4vC9zL1kJ6hG3fD8sA5qR0t",
                   "C11223344", 1_000, 20_000, deductible_used_fen=20_000),
        DemoPerson("44030019900004", "赵六", "110101199003075515", "310", "suS9pE4nD2eD7xQ1wE3rT5yU8iO6pA0s",
                   "D55667788", 10_000, 20_000, status="suspended"),
        DemoPerson("44030019900005", "钱七", "110101199003076091", "390", "exP1rEdV0uChEr5c0dE9xY2zW4vU6tS8",
                   "E99887766", 0, 10_000, voucher_expired=True),
    ]


class _Refused(Exception):
    def __init__(self, code: str, message: str | None = None):
        super().__init__(code)
        self.code, self.message = code, message or ERROR_CODES.get(code, "refused")


@dataclass
class _PreSettlement:
    presettle_id: str
    psn_no: str
    bill_no: str
    items: list[BillItem]
    split: Split


@dataclass
class _Settlement:
    settle_serial: str
    psn_no: str = ""
    presettle_id: str = ""
    setl_id: str = ""
    state: str = "REVERSED"  # "SETTLED" | "REVERSED" | "REFUNDED"
    items: list[BillItem] = field(default_factory=list)
    split: Split = field(default_factory=lambda: Split(0, 0, 0, 0, 0, 0, 0))
    original_split: Split | None = None
    deductible_remaining_before: int = 0
    balance_before: int = 0
    settle_time: str | None = None
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    reversal_messages: int = 0
    reversals_applied: int = 0
    reversed_before_settle: bool = False

    def view(self) -> dict[str, Any]:
        return {"settle_serial": self.settle_serial, "setl_id": self.setl_id, "psn_no": self.psn_no,
                "state": self.state, "split": self.split.to_dict(), "settle_time": self.settle_time,
                "item_ids": [item.item_id for item in self.items]}


@dataclass
class Controls:
    delay_seconds: float = 0.0
    drop_next: dict[str, int] = field(default_factory=dict)  # infno -> answers to withhold after processing
    refuse_next: dict[str, list[str]] = field(default_factory=dict)  # infno -> error codes to answer with
    platform_down: bool = False
    corrupt_signature_next: int = 0
    drop_hold_seconds: float = DEFAULT_DROP_HOLD_SECONDS


class Platform:
    """The platform's state and rules, independent of HTTP."""

    def __init__(self, hospital_code: str = DEMO_HOSPITAL_CODE, persons: list[DemoPerson] | None = None):
        self.hospital_code = hospital_code
        self.persons = {p.psn_no: p for p in (persons if persons is not None else demo_persons())}
        self.presettles: dict[str, _PreSettlement] = {}
        self.settlements: dict[str, _Settlement] = {}
        self.refund_index: dict[str, str] = {}  # refund_serial -> settle_serial
        self.controls = Controls()
        self.lock = threading.RLock()

    def handle(self, infno: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        with self.lock:
            handler = {"1101": self._identify, "2206": self._presettle, "2207": self._settle,
                       "2208": self._reverse, "2209": self._refund, "5203": self._query}[infno]
            return handler(payload)

    def _person(self, psn_no: object) -> DemoPerson:
        person = self.persons.get(str(psn_no))
        if person is None:
            raise _Refused("1001")
        if person.status != "active":
            raise _Refused("2001")
        return person

    def _identify(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        cert_type, cert_no = payload.get("mdtrt_cert_type"), payload.get("mdtrt_cert_no")
        if cert_type == CERT_E_VOUCHER:
            matches = [p for p in self.persons.values() if secrets.compare_digest(p.e_voucher, str(cert_no))]
        elif cert_type == CERT_SOCIAL_SECURITY_CARD:
            matches = [p for p in self.persons.values() if p.card_number == cert_no]
        else:
            raise _Refused("9002", "mdtrt_cert_type must be 01 or 03")
        if not matches:
            raise _Refused("1001")
        person = matches[0]
        if cert_type == CERT_E_VOUCHER and person.voucher_expired:
            raise _Refused("1002")
        if person.status != "active":
            raise _Refused("2001")
        return {"psn_no": person.psn_no, "psn_name": person.name, "certno": person.id_number,
                "insutype": person.insutype, "insutype_name": INSUTYPE_NAMES[person.insutype],
                "balc_fen": person.account_balance_fen if person.account_allowed else 0,
                "deductible_remaining_fen": person.deductible_remaining_fen}

    def _split_for(self, person: DemoPerson, items: list[BillItem]) -> Split:
        return split_bill(items, insutype=person.insutype, deductible_remaining_fen=person.deductible_remaining_fen,
                          account_balance_fen=person.account_balance_fen, account_allowed=person.account_allowed)

    def _presettle(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        person = self._person(payload.get("psn_no"))
        bill_no = payload.get("bill_no")
        raw_items = payload.get("items")
        if not isinstance(bill_no, str) or not bill_no or not isinstance(raw_items, list) or not raw_items:
            raise _Refused("9002", "bill_no and items are required")
        try:
            items = [BillItem.from_dict(item) for item in raw_items]
        except (KeyError, TypeError, ValueError) as exc:
            raise _Refused("9002", f"bad item: {exc}") from None
        if len({item.item_id for item in items}) != len(items):
            raise _Refused("9002", "duplicate item_id")
        split = self._split_for(person, items)
        # Same bill, same items, same split: the same pre-settlement (a repeated call after a timeout).
        for known in self.presettles.values():
            if (known.bill_no, known.psn_no, known.items, known.split) == (bill_no, person.psn_no, items, split):
                return {"presettle_id": known.presettle_id, "bill_no": bill_no, "split": split.to_dict()}
        presettle_id = "PS" + secrets.token_hex(10).upper()
        self.presettles[presettle_id] = _PreSettlement(presettle_id, person.psn_no, bill_no, items, split)
        return {"presettle_id": presettle_id, "bill_no": bill_no, "split": split.to_dict()}

    def _settle(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        serial, presettle_id = payload.get("settle_serial"), payload.get("presettle_id")
        if not isinstance(serial, str) or not serial or not isinstance(presettle_id, str):
            raise _Refused("9002", "settle_serial and presettle_id are required")
        existing = self.settlements.get(serial)
        if existing is not None:
            if existing.reversed_before_settle or existing.state == "REVERSED":
                raise _Refused("3003")
            if existing.presettle_id != presettle_id:
                raise _Refused("3002")
            return self._view(existing)  # the same settlement again: idempotent on our serial
        pre = self.presettles.get(presettle_id)
        if pre is None:
            raise _Refused("3001")
        person = self._person(pre.psn_no)
        split = self._split_for(person, pre.items)
        if split != pre.split:
            raise _Refused("3004")  # another settlement used the deductible or the account meanwhile
        record = _Settlement(serial, person.psn_no, presettle_id, "SE" + secrets.token_hex(10).upper(), "SETTLED",
                             list(pre.items), split, split, person.deductible_remaining_fen,
                             person.account_balance_fen, datetime.now(CHINA_TZ).isoformat(timespec="seconds"))
        person.deductible_used_fen += split.deductible_fen
        person.account_balance_fen -= split.account_fen
        self.settlements[serial] = record
        log.info("insurance sandbox: %s settled as %s (fund %d, account %d, self-pay %d)", serial,
                 record.setl_id, split.fund_fen, split.account_fen, split.self_pay_fen)
        return self._view(record)

    def _reverse(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        serial = payload.get("settle_serial")
        if not isinstance(serial, str) or not serial:
            raise _Refused("9002", "settle_serial is required")
        record = self.settlements.get(serial)
        if record is None:
            # The reversal overtook its settlement, or the settlement never arrived: remember, refuse it later.
            record = _Settlement(serial, reversed_before_settle=True)
            self.settlements[serial] = record
        record.reversal_messages += 1
        if record.state in ("SETTLED", "REFUNDED"):
            person = self.persons[record.psn_no]
            person.deductible_used_fen -= record.split.deductible_fen
            person.account_balance_fen += record.split.account_fen
            record.state = "REVERSED"
            record.reversals_applied += 1
            log.info("insurance sandbox: %s reversed", serial)
        return {"settle_serial": serial, "state": record.state}

    def _refund(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        refund_serial, serial = payload.get("refund_serial"), payload.get("settle_serial")
        item_ids = payload.get("item_ids")
        if not isinstance(refund_serial, str) or not isinstance(serial, str):
            raise _Refused("9002", "refund_serial and settle_serial are required")
        known = self.refund_index.get(refund_serial)
        if known is not None:
            previous = self.settlements[known].refunds[refund_serial]
            if known != serial or (item_ids != "ALL" and sorted(item_ids or []) != sorted(previous["item_ids"])):
                raise _Refused("3002")
            return dict(previous)
        record = self.settlements.get(serial)
        if record is None or record.reversed_before_settle:
            raise _Refused("3005")
        if record.state == "REVERSED":
            raise _Refused("3003")
        current = {item.item_id: item for item in record.items}
        if item_ids == "ALL":
            item_ids = list(current)
        if not isinstance(item_ids, list) or not item_ids or any(i not in current for i in item_ids) \
                or len(set(item_ids)) != len(item_ids):
            raise _Refused("4001")
        remaining = [item for item in record.items if item.item_id not in set(item_ids)]
        person = self.persons[record.psn_no]
        # As the national flow does (撤销 then re-settle the rest): the remaining items are split again under
        # the conditions of the original settlement, and the differences go back.
        new = split_bill(remaining, insutype=person.insutype,
                         deductible_remaining_fen=record.deductible_remaining_before,
                         account_balance_fen=record.balance_before, account_allowed=person.account_allowed)
        old = record.split
        result = {"refund_serial": refund_serial, "setl_id": record.setl_id, "settle_serial": serial,
                  "item_ids": list(item_ids), "fund_fen": old.fund_fen - new.fund_fen,
                  "account_fen": old.account_fen - new.account_fen,
                  "self_pay_fen": old.self_pay_fen - new.self_pay_fen, "split": new.to_dict()}
        person.deductible_used_fen -= old.deductible_fen - new.deductible_fen
        person.account_balance_fen += old.account_fen - new.account_fen
        record.items, record.split, record.state = remaining, new, "REFUNDED"
        record.refunds[refund_serial] = result
        self.refund_index[refund_serial] = serial
        return dict(result)

    def _query(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        record = self.settlements.get(str(payload.get("settle_serial")))
        if record is None or record.reversed_before_settle:
            raise _Refused("3005")
        return self._view(record)

    @staticmethod
    def _view(record: _Settlement) -> dict[str, Any]:
        return record.view()


def create_sandbox_app(app_secret: bytes, *, app_id: str = DEMO_APP_ID, sign_algorithm: str = "HMAC-SM3",
                       platform: Platform | None = None) -> FastAPI:
    """The platform sandbox for one hospital (``platform.hospital_code``) and one app. ``app.state.platform``
    is its ``Platform``, for tests that look inside."""
    if sign_algorithm not in MAC_ALGORITHMS:
        raise ValueError(f"unknown signing algorithm {sign_algorithm!r}")
    plat = platform or Platform()
    app = FastAPI(title="KIOSK-MI/1 medical-insurance sandbox", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.platform = plat

    def signed(document: Mapping[str, Any]) -> Response:
        body = json.dumps(document, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")
        secret = app_secret
        with plat.lock:
            if plat.controls.corrupt_signature_next > 0:
                plat.controls.corrupt_signature_next -= 1
                secret = os.urandom(len(app_secret))
        return Response(body, media_type="application/json",
                        headers={SIGNATURE_HEADER: mac_header(sign_algorithm, secret, body)})

    def answer(msgid: object, output: Mapping[str, Any] | None = None, refused: _Refused | None = None) -> Response:
        document: dict[str, Any] = {"protocol": PROTOCOL, "inf_refmsgid": msgid,
                                    "inf_time": datetime.now(CHINA_TZ).strftime(INF_TIME_FORMAT)}
        if refused is None:
            document.update(infcode="0", err_code="", err_msg="", output=dict(output or {}))
        else:
            document.update(infcode="-1", err_code=refused.code, err_msg=refused.message, output=None)
        return signed(document)

    @app.post("/mi/v1/{infno}")
    async def platform_call(infno: str, request: Request) -> Response:
        body = await request.body()
        controls = plat.controls
        if controls.delay_seconds > 0:
            await asyncio.sleep(controls.delay_seconds)
        if plat.controls.platform_down:
            return PlainTextResponse("医保平台维护中 / platform under maintenance", status_code=503)
        if request.headers.get(APP_ID_HEADER) != app_id or not verify_mac_header(
                sign_algorithm, app_secret, body, request.headers.get(SIGNATURE_HEADER)):
            log.warning("insurance sandbox: %s refused, signature does not verify", infno)
            return answer(None, refused=_Refused("9001"))
        try:
            document = json.loads(body)
            if not isinstance(document, dict) or not isinstance(document.get("input"), dict):
                raise ValueError("no input object")
        except ValueError as exc:
            return answer(None, refused=_Refused("9002", str(exc)))
        msgid = document.get("msgid")
        problem = _envelope_problem(document, infno, plat.hospital_code)
        if problem:
            return answer(msgid, refused=_Refused("9002", problem))
        with plat.lock:
            codes = plat.controls.refuse_next.get(infno)
            forced = codes.pop(0) if codes else None
        try:
            if forced:
                raise _Refused(forced)
            output: dict[str, Any] | None = plat.handle(infno, document["input"])
            refused = None
        except _Refused as exc:
            output, refused = None, exc
        with plat.lock:
            hold = take_drop(plat.controls, infno)
        if hold is not None:
            log.info("insurance sandbox: withholding the answer to %s %s", infno, msgid)
            return await withhold(request, hold)
        return answer(msgid, output, refused)

    # --- test controls (unsigned) ------------------------------------------------------------------------

    @app.post("/simulate/control")
    async def simulate_control(request: Request) -> Response:
        """``{"delay_seconds": 1, "drop_next": {"2207": 1}, "refuse_next": {"2206": ["2001"]},
        "platform_down": true, "corrupt_signature_next": 1, "drop_hold_seconds": 5}``; omitted fields stay."""
        try:
            params = json.loads(await request.body() or b"{}")
            with plat.lock:
                c = plat.controls
                set_link_faults(c, params, BUSINESS_INFNOS)
                if "platform_down" in params:
                    c.platform_down = bool(params["platform_down"])
                if "corrupt_signature_next" in params:
                    c.corrupt_signature_next = int(params["corrupt_signature_next"])
                for infno, codes in dict(params.get("refuse_next") or {}).items():
                    if infno not in BUSINESS_INFNOS:
                        raise ValueError(f"unknown infno {infno}")
                    c.refuse_next.setdefault(infno, []).extend([codes] if isinstance(codes, str) else
                                                               [str(x) for x in codes])
                view = _controls_view(c)
        except (ValueError, TypeError, AttributeError) as exc:
            return JSONResponse({"code": "PARAM_ERROR", "message": str(exc)}, 400)
        return JSONResponse(view)

    @app.post("/simulate/reset")
    async def simulate_reset() -> Response:
        with plat.lock:
            plat.controls = Controls()
            return JSONResponse(_controls_view(plat.controls))

    @app.get("/simulate/persons/{psn_no}")
    async def simulate_person(psn_no: str) -> Response:
        with plat.lock:
            person = plat.persons.get(psn_no)
            if person is None:
                return JSONResponse({"code": "NOT_FOUND", "message": "no such person"}, 404)
            return JSONResponse({"psn_no": person.psn_no, "insutype": person.insutype,
                                 "card_number": mask_code(person.card_number),
                                 "account_balance_fen": person.account_balance_fen,
                                 "deductible_used_fen": person.deductible_used_fen,
                                 "deductible_remaining_fen": person.deductible_remaining_fen,
                                 "status": person.status})

    @app.get("/simulate/settlements/{settle_serial}")
    async def simulate_settlement(settle_serial: str) -> Response:
        with plat.lock:
            record = plat.settlements.get(settle_serial)
            if record is None:
                return JSONResponse({"code": "NOT_FOUND", "message": "no such settlement"}, 404)
            view = record.view()
            view.update(reversal_messages=record.reversal_messages, reversals_applied=record.reversals_applied,
                        reversed_before_settle=record.reversed_before_settle,
                        refunds=list(record.refunds.values()))
            return JSONResponse(view)

    return app


def _controls_view(c: Controls) -> dict[str, Any]:
    return {"delay_seconds": c.delay_seconds, "drop_next": dict(c.drop_next),
            "refuse_next": {k: list(v) for k, v in c.refuse_next.items()}, "platform_down": c.platform_down,
            "corrupt_signature_next": c.corrupt_signature_next, "drop_hold_seconds": c.drop_hold_seconds}


def _envelope_problem(document: Mapping[str, Any], infno: str, hospital_code: str) -> str | None:
    if infno not in BUSINESS_INFNOS or document.get("infno") != infno:
        return "infno does not match the path"
    if document.get("protocol") != PROTOCOL:
        return f"protocol must be {PROTOCOL}"
    if document.get("fixmedins_code") != hospital_code:
        return "unknown fixmedins_code"
    if not isinstance(document.get("msgid"), str) or not document["msgid"]:
        return "msgid is required"
    try:
        sent = datetime.strptime(str(document.get("inf_time")), INF_TIME_FORMAT).replace(tzinfo=CHINA_TZ)
    except ValueError:
        return "inf_time must be YYYY-MM-DD HH:MM:SS"
    if abs(time.time() - sent.timestamp()) > MAX_CLOCK_SKEW_SECONDS:
        return "inf_time outside the allowed window"
    return None
