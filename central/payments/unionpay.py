"""Bank-card payments (UnionPay debit and credit cards) through an acquirer, as a ``PaymentChannel``.

**The wire protocol here is the project's own stand-in.** Real acquirers speak ISO 8583 over TCP with
site-specific field maps and MAC schemes (or UnionPay's 全渠道 gateway), fixed in the contract a hospital signs
with its acquiring bank; a site replaces this module's transport with that. What this module defines —
"KIOSK-ACQ/1" — is JSON over HTTP, modelled on ISO 8583 semantics so that the money-safety rules carry over
unchanged:

* one POST per message to ``{base_url}/acq/v1/{message}``; each message names its ISO 8583 type (``mti``):
  ``sale`` 0200 (→0210), ``reversal`` 0400 (→0410), ``refund`` 0220 (→0230, CUPS 退货), ``sign_on`` 0800
  (→0810, working-key download). ``query`` has no ISO counterpart at a terminal (acquirers answer it from their
  switch log); it is sent as message ``query`` without an ``mti``;
* the fields every message carries: ``protocol``, ``message``, ``mti``, ``stan`` (system trace audit number,
  field 11, six digits, new for every message), ``transmission_time`` (field 7, ``YYYYMMDDhhmmss`` China
  time; the acquirer refuses messages more than five minutes off), ``terminal_id`` (41), ``merchant_id`` (42)
  and ``order_id`` (the merchant's ``out_trade_no``, the key every later message refers to, like 全渠道's
  orderId). A sale adds ``pan`` (2), ``expiry`` (14, ``YYMM``), ``amount_fen`` (4, an integer number of fen),
  ``pin_block`` (52, hex, the ISO 9564 format-0 block encrypted under the terminal's PIN working key) with
  ``pin_algorithm`` (``sm4`` or ``3des``), and optionally ``track2`` (35) and ``icc_data`` (55, hex TLV);
* every request and every answer is MAC'd (field 64/128 in ISO 8583): header ``X-Acq-Mac: <ALG>:<hex>`` where
  ALG is ``HMAC-SM3`` or ``HMAC-SHA256`` over the exact body bytes, under a MAC key shared with the acquirer by
  configuration. The acquirer accepts only its configured algorithm, so a MAC cannot be downgraded;
* answers echo ``message``, ``stan``, ``terminal_id`` and ``order_id`` (so an answer cannot be paired with
  another request) and carry ``response_code`` (field 39): ``00`` approved, ``05`` do not honour, ``12``
  invalid transaction, ``13`` invalid amount, ``14`` invalid card number, ``25`` original not found, ``41``
  lost card, ``51`` insufficient funds, ``54`` expired card, ``55`` wrong PIN, ``75`` PIN tries exceeded,
  ``91`` issuer unavailable, ``94`` duplicate transmission, ``96`` system malfunction, ``98`` no answer from
  the issuer, ``99`` PIN block format error, ``A0`` MAC verification failed, ``A7`` security processing
  failure (no working key). A sale's answer also carries ``rrn`` (37) and ``auth_code`` (38).

Money safety, as in ISO 8583: a sale whose answer never came (timeout, broken connection, ``98``/``96``, an
answer whose MAC does not verify) has an unknown outcome, and the terminal must send a *reversal* for it
("冲正", reversal on timeout) — repeatedly, until one is answered. The acquirer makes reversals idempotent on
``order_id`` and remembers a reversal that arrived before its sale, refusing the late sale. The PAN is never
logged unmasked; PINs never exist here at all (only encrypted blocks from the PIN pad).
"""
from __future__ import annotations

import copy
import hmac as std_hmac
import itertools
import json
import logging
import re
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac

from central.payments.channel import ChannelError, ChannelUnavailable, PaymentChannel, SignatureError, TradeState
from drivers.pcsc.cards import mask_pan

PROTOCOL = "KIOSK-ACQ/1"
MAC_HEADER = "X-Acq-Mac"
MAC_ALGORITHMS: dict[str, type[hashes.HashAlgorithm]] = {"HMAC-SM3": hashes.SM3, "HMAC-SHA256": hashes.SHA256}
#: Messages further than this from the acquirer's clock are refused, which bounds replays of a captured one.
MAX_CLOCK_SKEW_SECONDS = 300
CHINA_TZ = timezone(timedelta(hours=8), "CST")
PIN_ALGORITHMS = ("sm4", "3des")

#: Message name -> (request MTI, answer MTI); ``query`` has none (see the module docstring).
MTI: dict[str, tuple[str, str] | None] = {
    "sale": ("0200", "0210"), "reversal": ("0400", "0410"), "refund": ("0220", "0230"),
    "sign_on": ("0800", "0810"), "query": None,
}
#: Processing codes (field 3) as CUPS uses them: purchase, refund (退货), reversal of a purchase.
PROCESSING_CODE = {"sale": "000000", "refund": "200000", "reversal": "000000", "sign_on": "000000"}

RESPONSE_MESSAGES = {
    "00": "承兑或交易成功 / approved", "05": "不予承兑 / do not honour", "12": "无效交易 / invalid transaction",
    "13": "无效金额 / invalid amount", "14": "无效卡号 / invalid card number",
    "25": "找不到原始交易 / original transaction not found", "41": "挂失卡 / lost card",
    "51": "余额不足 / insufficient funds", "54": "过期的卡 / expired card", "55": "密码错 / wrong PIN",
    "75": "密码错误次数超限 / PIN tries exceeded", "91": "发卡方不能操作 / issuer unavailable",
    "94": "重复交易 / duplicate transmission", "96": "系统异常 / system malfunction",
    "98": "交换中心收不到发卡方应答 / no answer from the issuer", "99": "PIN格式错 / PIN block format error",
    "A0": "MAC校验错 / MAC verification failed", "A7": "安全处理失败 / security processing failure",
}
#: Codes that say the acquirer does not know what happened: treat like a timeout and reverse.
UNKNOWN_OUTCOME_CODES = frozenset({"96", "98"})

_ORDER_ID = re.compile(r"^[A-Za-z0-9_\-]{6,40}$")
_HEX = re.compile(r"^[0-9A-Fa-f]+$")

log = logging.getLogger(__name__)


# --- protocol primitives (shared with the sandbox) ------------------------------------------------------------

def compute_mac(algorithm: str, key: bytes, body: bytes) -> str:
    """The message MAC: HMAC-SM3 (国密) or HMAC-SHA256 over the exact body bytes, as lowercase hex."""
    try:
        digest = MAC_ALGORITHMS[algorithm]
    except KeyError:
        raise ValueError(f"unknown MAC algorithm {algorithm!r}; use one of {sorted(MAC_ALGORITHMS)}") from None
    mac = crypto_hmac.HMAC(key, digest())
    mac.update(body)
    return mac.finalize().hex()


def mac_header(algorithm: str, key: bytes, body: bytes) -> str:
    return f"{algorithm}:{compute_mac(algorithm, key, body)}"


def verify_mac_header(algorithm: str, key: bytes, body: bytes, header: str | None) -> bool:
    """True only for a header in ``algorithm`` (no other) whose MAC matches; compared in constant time."""
    if not header:
        return False
    claimed_algorithm, _, claimed = header.strip().partition(":")
    if claimed_algorithm != algorithm:
        return False
    return std_hmac.compare_digest(claimed.lower(), compute_mac(algorithm, key, body))


def encode_body(document: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON: the bytes that are MAC'd are exactly the bytes that are sent."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")


def transmission_time(moment: datetime | None = None) -> str:
    return (moment or datetime.now(CHINA_TZ)).astimezone(CHINA_TZ).strftime("%Y%m%d%H%M%S")


def parse_transmission_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=CHINA_TZ)


def response_message(code: str) -> str:
    return RESPONSE_MESSAGES.get(code, f"响应码 {code} / response code {code}")


def mask_fields(document: Mapping[str, Any]) -> dict[str, Any]:
    """A copy safe to log or show: PAN masked, PIN block, track and ICC data withheld."""
    safe = dict(document)
    if isinstance(safe.get("pan"), str):
        safe["pan"] = mask_pan(safe["pan"])
    for name in ("pin_block", "track2", "icc_data"):
        if safe.get(name):
            safe[name] = "<withheld>"
    return safe


@dataclass(frozen=True)
class WorkingKey:
    """A PIN working key as the acquirer issues it: encrypted under the PIN pad's master key, with its check
    value, ready for ``drivers.pinpad`` ``load_working_key(encrypted_key, check_value)``. It is safe to pass
    through the kiosk: only the pad (holding the master key) can open it."""

    terminal_id: str
    algorithm: str  # "sm4" | "3des"
    encrypted_key: bytes = field(repr=False)
    check_value: bytes

    def to_dict(self) -> dict[str, str]:
        return {"terminal_id": self.terminal_id, "algorithm": self.algorithm,
                "encrypted_key": self.encrypted_key.hex().upper(), "check_value": self.check_value.hex().upper()}


# --- the channel ----------------------------------------------------------------------------------------------

class BankCardChannel(PaymentChannel):
    """A terminal-side client of the acquirer (KIOSK-ACQ/1, see the module docstring).

    It holds no trade state: the acquirer is the authority, so any number of instances may run and a restart
    loses nothing. One channel serves every kiosk of a hospital; each kiosk is its own acquirer terminal
    (``terminal_id``) with its own PIN working key, so card methods take the terminal as an argument and fall
    back to ``default_terminal_id``.

    Callers must follow the reversal rule: when ``charge_card`` raises ``ChannelUnavailable`` or
    ``SignatureError`` the sale's outcome is unknown, and ``reverse`` must be sent (and repeated until it
    returns) before the patient is told anything but "not charged yet".
    """

    def __init__(self, base_url: str, merchant_id: str, mac_key: bytes, *, default_terminal_id: str | None = None,
                 mac_algorithm: str = "HMAC-SM3", timeout: float = 10.0,
                 transport: httpx.BaseTransport | None = None, logger: logging.Logger | None = None):
        if mac_algorithm not in MAC_ALGORITHMS:
            raise ValueError(f"unknown MAC algorithm {mac_algorithm!r}; use one of {sorted(MAC_ALGORITHMS)}")
        if len(mac_key) < 16:
            raise ValueError("the MAC key must be at least 16 bytes")
        self.base_url = base_url.rstrip("/")
        self.merchant_id = merchant_id
        self.default_terminal_id = default_terminal_id
        self.mac_algorithm = mac_algorithm
        self._mac_key = mac_key
        self._log = logger or log
        self._http = httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, 3.0)), transport=transport)
        # STANs only need to be unique per terminal within the day; a random start keeps two processes apart.
        self._stan = itertools.count(secrets.randbelow(900_000) + 1)
        self._stan_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"BankCardChannel({self.base_url!r}, merchant_id={self.merchant_id!r}, mac={self.mac_algorithm})"

    def shutdown(self) -> None:
        self._http.close()

    def for_terminal(self, terminal_id: str) -> BankCardChannel:
        """This channel speaking as one terminal (sharing the connection pool and trace numbers), for code that
        calls the generic `PaymentChannel` verbs on a trade that terminal made."""
        bound = copy.copy(self)
        bound.default_terminal_id = terminal_id
        return bound

    def __enter__(self) -> BankCardChannel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # --- working keys -------------------------------------------------------------------------------------

    def sign_on(self, terminal_id: str | None = None, algorithm: str = "sm4") -> WorkingKey:
        """签到: fetch a fresh PIN working key for one terminal, encrypted under its PIN pad's master key.

        The kiosk loads it into the pad (``load_working_key``); the pad refuses it unless the check value
        matches, so a key meant for another pad fails there rather than as a wrong PIN at the bank.
        """
        if algorithm not in PIN_ALGORITHMS:
            raise ValueError(f"PIN algorithm must be one of {PIN_ALGORITHMS}")
        terminal = self._terminal(terminal_id)
        answer = self._send("sign_on", terminal, None, {"pin_algorithm": algorithm})
        code = answer["response_code"]
        if code != "00":
            raise ChannelError(code, str(answer.get("response_message") or response_message(code)))
        try:
            key = WorkingKey(terminal, str(answer["pin_algorithm"]), bytes.fromhex(str(answer["pin_key"])),
                             bytes.fromhex(str(answer["pin_key_kcv"])))
        except (KeyError, ValueError):
            raise ChannelError("INVALID_RESPONSE", "sign-on answer lacks a well-formed PIN key") from None
        if key.algorithm != algorithm:
            raise ChannelError("INVALID_RESPONSE", "sign-on answered with another algorithm")
        self._log.info("terminal %s signed on: new %s PIN working key", terminal, algorithm)
        return key

    # --- card verbs ---------------------------------------------------------------------------------------

    def charge_card(self, out_trade_no: str, amount_fen: int, pan: str, expiry: str, pin_block: bytes | str,
                    algorithm: str, *, terminal_id: str | None = None, track2: str | None = None,
                    icc_data: bytes | None = None) -> TradeState:
        """A card sale (0200). Returns the approved trade; raises ``ChannelError`` (its code is the response
        code, e.g. "55" wrong PIN, "51" insufficient funds) for a decline, ``ChannelUnavailable`` or
        ``SignatureError`` when the outcome is unknown — then ``reverse`` must follow.

        ``expiry`` is ``YYMM`` (ISO 8583 field 14); ``pin_block`` is the PIN pad's encrypted block (bytes or
        hex) and ``algorithm`` its cipher (``PinResult.algorithm``).
        """
        _check_order_id(out_trade_no)
        _check_fen("amount_fen", amount_fen)
        if not pan.isascii() or not pan.isdigit() or not 12 <= len(pan) <= 19:
            raise ValueError("the PAN is 12-19 digits")
        if not (len(expiry) == 4 and expiry.isascii() and expiry.isdigit() and 1 <= int(expiry[2:]) <= 12):
            raise ValueError("expiry is YYMM")
        if algorithm not in PIN_ALGORITHMS:
            raise ValueError(f"PIN algorithm must be one of {PIN_ALGORITHMS}")
        block = pin_block.hex() if isinstance(pin_block, bytes) else pin_block
        if not _HEX.match(block) or len(block) not in (16, 32):
            raise ValueError("the PIN block is 8 or 16 bytes")
        fields: dict[str, Any] = {"pan": pan, "expiry": expiry, "amount_fen": amount_fen,
                                  "pin_block": block.upper(), "pin_algorithm": algorithm,
                                  "processing_code": PROCESSING_CODE["sale"], "currency": "156"}
        if track2:
            fields["track2"] = track2
        if icc_data:
            fields["icc_data"] = icc_data.hex().upper()
        terminal = self._terminal(terminal_id)
        answer = self._send("sale", terminal, out_trade_no, fields)
        code = answer["response_code"]
        self._log.info("card sale %s on %s: card %s, %d fen -> %s", out_trade_no, terminal, mask_pan(pan),
                       amount_fen, code)
        if code in UNKNOWN_OUTCOME_CODES:
            raise ChannelUnavailable(f"card sale {out_trade_no}: acquirer answered {code}, outcome unknown")
        if code != "00":
            raise ChannelError(code, str(answer.get("response_message") or response_message(code)))
        if answer.get("amount_fen") != amount_fen or not answer.get("rrn"):
            raise ChannelError("INVALID_RESPONSE", "approval without matching amount or reference number")
        return TradeState(out_trade_no, "SUCCESS", str(answer["rrn"]), amount_fen,
                          _rfc3339(str(answer.get("approved_time") or answer.get("transmission_time") or "")))

    def reverse(self, out_trade_no: str, terminal_id: str | None = None) -> None:
        """冲正 (0400): undo a sale whatever became of it — it may never have arrived, been declined, or been
        approved without our hearing. Idempotent: repeat it until it returns (``ChannelUnavailable`` means
        "send it again later"). The acquirer remembers a reversal that overtook its sale and refuses the sale.
        """
        _check_order_id(out_trade_no)
        terminal = self._terminal(terminal_id)
        answer = self._send("reversal", terminal, out_trade_no,
                            {"original_mti": "0200", "reason_code": "98",
                             "processing_code": PROCESSING_CODE["reversal"]})
        code = answer["response_code"]
        self._log.info("reversal %s on %s -> %s", out_trade_no, terminal, code)
        if code in ("00", "25"):  # reversed, or nothing there to reverse: either way no money moved
            return
        if code in UNKNOWN_OUTCOME_CODES:
            raise ChannelUnavailable(f"reversal {out_trade_no}: acquirer answered {code}, send it again")
        raise ChannelError(code, str(answer.get("response_message") or response_message(code)))

    def query(self, out_trade_no: str, terminal_id: str | None = None) -> TradeState:
        """The acquirer's record of a sale. A sale it never saw is ``ChannelError("ORDER_NOT_EXIST")``."""
        _check_order_id(out_trade_no)
        answer = self._send("query", self._terminal(terminal_id), out_trade_no, {})
        code = answer["response_code"]
        if code == "25":
            raise ChannelError("ORDER_NOT_EXIST", response_message("25"))
        if code != "00":
            raise ChannelError(code, str(answer.get("response_message") or response_message(code)))
        state = {"APPROVED": "SUCCESS", "DECLINED": "PAYERROR", "REVERSED": "CLOSED",
                 "REFUNDED": "REFUND"}.get(str(answer.get("trade_state")))
        if state is None:
            raise ChannelError("INVALID_RESPONSE", f"unknown trade state {answer.get('trade_state')!r}")
        amount = answer.get("amount_fen")
        return TradeState(out_trade_no, state, answer.get("rrn") if state in ("SUCCESS", "REFUND") else None,
                          amount if isinstance(amount, int) else None,
                          _rfc3339(str(answer.get("approved_time") or "")) if state in ("SUCCESS", "REFUND")
                          else None)

    def close(self, out_trade_no: str, terminal_id: str | None = None) -> None:
        """Make sure a sale can no longer take money: reverse it unless it was approved (then "ORDERPAID",
        as the order logic expects; an approved sale is given back with ``refund``)."""
        try:
            state: TradeState | None = self.query(out_trade_no, terminal_id)
        except ChannelError as exc:
            if exc.code != "ORDER_NOT_EXIST":
                raise
            state = None
        if state is not None and state.paid:
            raise ChannelError("ORDERPAID", "the card sale was approved; refund it instead")
        if state is not None and state.state == "CLOSED":
            return
        self.reverse(out_trade_no, terminal_id)

    def refund(self, out_trade_no: str, out_refund_no: str, refund_fen: int, total_fen: int,
               reason: str, terminal_id: str | None = None) -> str:
        """退货 (0220): give back part or all of an approved sale; idempotent on ``out_refund_no``."""
        _check_order_id(out_trade_no)
        _check_order_id(out_refund_no)
        _check_fen("refund_fen", refund_fen)
        _check_fen("total_fen", total_fen)
        answer = self._send("refund", self._terminal(terminal_id), out_trade_no,
                            {"refund_no": out_refund_no, "amount_fen": refund_fen, "original_amount_fen": total_fen,
                             "reason": reason[:80], "processing_code": PROCESSING_CODE["refund"]})
        code = answer["response_code"]
        self._log.info("card refund %s of %s: %d fen -> %s", out_refund_no, out_trade_no, refund_fen, code)
        if code in UNKNOWN_OUTCOME_CODES:
            raise ChannelUnavailable(f"refund {out_refund_no}: acquirer answered {code}, ask again")
        if code != "00":
            raise ChannelError(code, str(answer.get("response_message") or response_message(code)))
        return "SUCCESS"

    def query_refund(self, out_refund_no: str, out_trade_no: str | None = None,
                     terminal_id: str | None = None) -> str:
        """A refund's status; the acquirer files refunds under their sale, so pass ``out_trade_no`` if known."""
        _check_order_id(out_refund_no)
        answer = self._send("query", self._terminal(terminal_id), out_trade_no, {"refund_no": out_refund_no})
        code = answer["response_code"]
        if code == "25":
            raise ChannelError("RESOURCE_NOT_EXISTS", response_message("25"))
        if code != "00":
            raise ChannelError(code, str(answer.get("response_message") or response_message(code)))
        return str(answer.get("refund_status") or "SUCCESS")

    # --- what cards do not have ---------------------------------------------------------------------------

    def create_native(self, out_trade_no: str, description: str, amount_fen: int, notify_url: str,
                      time_expire: datetime) -> str:
        raise NotImplementedError("bank cards are charged at the kiosk (charge_card), not through a QR code")

    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> TradeState:
        raise NotImplementedError("the acquirer answers synchronously; there are no card notifications")

    # --- transport ----------------------------------------------------------------------------------------

    def _terminal(self, terminal_id: str | None) -> str:
        terminal = terminal_id or self.default_terminal_id
        if not terminal:
            raise ValueError("no terminal_id given and no default_terminal_id configured")
        return terminal

    def _next_stan(self) -> str:
        with self._stan_lock:
            return f"{next(self._stan) % 1_000_000 or 1:06d}"

    def _send(self, message: str, terminal_id: str, order_id: str | None, fields: Mapping[str, Any]
              ) -> dict[str, Any]:
        """Send one MAC'd message and return the verified answer (whose ``response_code`` may be anything)."""
        mti = MTI[message]
        document: dict[str, Any] = {"protocol": PROTOCOL, "message": message, "stan": self._next_stan(),
                                    "transmission_time": transmission_time(), "terminal_id": terminal_id,
                                    "merchant_id": self.merchant_id, **fields}
        if mti is not None:
            document["mti"] = mti[0]
        if order_id is not None:
            document["order_id"] = order_id
        body = encode_body(document)
        what = f"{message} {order_id or ''}".strip()
        try:
            response = self._http.post(f"{self.base_url}/acq/v1/{message}", content=body,
                                       headers={"Content-Type": "application/json",
                                                MAC_HEADER: mac_header(self.mac_algorithm, self._mac_key, body)})
        except httpx.HTTPError as exc:
            self._log.warning("acquirer: no answer to %s (%s)", what, type(exc).__name__)
            raise ChannelUnavailable(f"{what}: no answer from the acquirer ({type(exc).__name__})") from None
        if response.status_code >= 500:
            raise ChannelUnavailable(f"{what}: acquirer HTTP {response.status_code}")
        if not verify_mac_header(self.mac_algorithm, self._mac_key, response.content,
                                 response.headers.get(MAC_HEADER)):
            self._log.warning("acquirer: answer to %s has no valid MAC (HTTP %d)", what, response.status_code)
            raise SignatureError(f"{what}: the acquirer's answer does not carry a valid MAC")
        try:
            answer = json.loads(response.content)
        except ValueError:
            raise SignatureError(f"{what}: MAC'd answer is not JSON") from None
        if not isinstance(answer, dict) or not isinstance(answer.get("response_code"), str):
            raise SignatureError(f"{what}: MAC'd answer has no response code")
        # An answer to another message (a late one for an earlier STAN) must not decide this one.
        expected = {"message": message, "stan": document["stan"], "terminal_id": terminal_id}
        if order_id is not None:
            expected["order_id"] = order_id
        if mti is not None:
            expected["mti"] = mti[1]
        if answer.get("response_code") != "A0":  # a MAC refusal cannot trust what it echoes
            for name, value in expected.items():
                if answer.get(name) != value:
                    raise SignatureError(f"{what}: the answer is for another message ({name} differs)")
        return answer


def _rfc3339(text: str) -> str | None:
    try:
        return parse_transmission_time(text).isoformat(timespec="seconds")
    except ValueError:
        return None


def _check_order_id(value: str) -> None:
    if not isinstance(value, str) or not _ORDER_ID.match(value):
        raise ValueError("order and refund numbers are 6-40 letters, digits, '_' or '-'")


def _check_fen(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive integer number of fen")
