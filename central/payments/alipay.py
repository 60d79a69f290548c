"""Alipay (OpenAPI gateway, ``gateway.do``) as a ``PaymentChannel``: QR and payment-code payments, query,
close, cancel, refund, refund query, notifications and the daily bill.

The protocol is implemented directly on ``cryptography`` rather than through an SDK so that the exact bytes
that are signed and verified are visible here, and the sandbox shares the same primitives:

* a request is a form-encoded ``POST gateway.do`` whose parameters are the common ones (app_id, method,
  format=JSON, charset=utf-8, sign_type=RSA2, timestamp in China time, version=1.0, notify_url) plus
  ``biz_content`` (the JSON business parameters); ``sign`` is RSA2 (SHA256withRSA, PKCS#1 v1.5) with the
  application key over ``canonical_string``: the non-empty parameters except ``sign``, sorted by key, joined
  as ``k=v`` with ``&``, values raw (not URL-encoded), UTF-8;
* a response is ``{"alipay_trade_xxx_response": {...}, "sign": "..."}`` and the signature covers the *raw
  JSON text* of the ``..._response`` value exactly as it appears in the body, verified with the Alipay key;
* an asynchronous notification is a form POST signed like a request, except that ``sign_type`` is excluded
  from the signed string too; the merchant acknowledges by answering the plain text ``success``.

Amounts are integer fen inside the program and yuan strings ("12.50") on the wire; the conversions are exact.
"""
from __future__ import annotations

import base64
import csv
import io
import json
import logging
import re
import zipfile
from collections.abc import Mapping
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from central.payments.alipay_keys import AlipayKeys, load_private_key, load_public_key
from central.payments.channel import (BillLine, ChannelError, ChannelUnavailable, PaymentChannel,
                                      SignatureError, TradeState)

#: China Standard Time has no daylight saving; Alipay timestamps are local China time without an offset.
CHINA_TZ = timezone(timedelta(hours=8), "CST")
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
SIGN_TYPE = "RSA2"
CHARSET = "utf-8"
VERSION = "1.0"
#: What a merchant's notify endpoint must answer (plain text) for Alipay to stop redelivering.
NOTIFY_ACK = "success"

# Gateway result codes (公共错误码).
CODE_SUCCESS = "10000"
CODE_USER_PAYING = "10003"  # alipay.trade.pay only: waiting for the payer to confirm on the phone
CODE_UNAVAILABLE = "20000"
CODE_BUSINESS_FAILED = "40004"
#: Business answers that are still "unknown outcome" in Alipay's own guidance: query (or cancel) again.
_UNKNOWN_SUB_CODES = frozenset({"ACQ.SYSTEM_ERROR", "aop.ACQ.SYSTEM_ERROR", "isp.unknow-error"})

_STATES = {"WAIT_BUYER_PAY": "NOTPAY", "TRADE_SUCCESS": "SUCCESS", "TRADE_FINISHED": "SUCCESS",
           "TRADE_CLOSED": "CLOSED"}
_YUAN = re.compile(r"^(0|[1-9][0-9]{0,9})(\.[0-9]{1,2})?$")
_OUT_TRADE_NO = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_AUTH_CODE = re.compile(r"^[0-9]{16,24}$")
_JSON_WS = re.compile(r"[ \t\n\r]*")
_LOG = logging.getLogger(__name__)


# --- protocol primitives (shared with the sandbox) ------------------------------------------------------------

def canonical_string(params: Mapping[str, str], exclude: tuple[str, ...] = ("sign",)) -> str:
    """The string RSA2 signs: non-empty parameters except ``exclude``, sorted by key, ``k=v`` joined by ``&``.

    Requests exclude ``sign``; notifications exclude ``sign`` and ``sign_type``. Values are the decoded
    parameter values, not their URL encoding.
    """
    return "&".join(f"{key}={params[key]}" for key in sorted(params)
                    if key not in exclude and params[key] not in (None, ""))


def rsa2_sign(private_key: rsa.RSAPrivateKey, message: bytes) -> str:
    """SHA256withRSA (PKCS#1 v1.5), base64: deterministic, so a fixed key and message give a fixed signature."""
    return base64.b64encode(private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode("ascii")


def rsa2_verify(public_key: rsa.RSAPublicKey, message: bytes, signature_b64: str) -> bool:
    try:
        signature = base64.b64decode(signature_b64, validate=True)
        public_key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def sign_params(private_key: rsa.RSAPrivateKey, params: Mapping[str, str],
                exclude: tuple[str, ...] = ("sign",)) -> str:
    return rsa2_sign(private_key, canonical_string(params, exclude).encode(CHARSET))


def verify_params(public_key: rsa.RSAPublicKey, params: Mapping[str, str],
                  exclude: tuple[str, ...] = ("sign",)) -> bool:
    signature = params.get("sign")
    if not signature:
        return False
    return rsa2_verify(public_key, canonical_string(params, exclude).encode(CHARSET), signature)


def china_timestamp(moment: datetime | None = None) -> str:
    """``yyyy-MM-dd HH:mm:ss`` in China time; naive datetimes are refused as ambiguous."""
    if moment is None:
        moment = datetime.now(CHINA_TZ)
    elif moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("times sent to Alipay must be timezone-aware")
    return moment.astimezone(CHINA_TZ).strftime(TIMESTAMP_FORMAT)


def parse_china_timestamp(text: str) -> datetime:
    return datetime.strptime(text, TIMESTAMP_FORMAT).replace(tzinfo=CHINA_TZ)


def fen_to_yuan(fen: int) -> str:
    """Integer fen as the wire's yuan string: 1250 -> "12.50" (always two decimals, no float ever involved)."""
    if not isinstance(fen, int) or isinstance(fen, bool) or fen < 0:
        raise ValueError("amounts must be non-negative integer fen")
    return f"{fen // 100}.{fen % 100:02d}"


def yuan_to_fen(yuan: str) -> int:
    """A wire yuan string as integer fen, exactly; anything that is not a whole number of fen is refused."""
    if not isinstance(yuan, str) or not _YUAN.match(yuan):
        raise ValueError(f"not a yuan amount: {yuan!r}")
    try:
        fen = Decimal(yuan) * 100
    except InvalidOperation:
        raise ValueError(f"not a yuan amount: {yuan!r}") from None
    if fen != fen.to_integral_value():
        raise ValueError(f"not a whole number of fen: {yuan!r}")
    return int(fen)


def response_key(method: str) -> str:
    """``alipay.trade.precreate`` answers under ``alipay_trade_precreate_response``."""
    return method.replace(".", "_") + "_response"


def json_members(text: str) -> dict[str, tuple[str, Any]]:
    """The top-level members of a JSON object, each with its value's exact source text.

    The response signature covers the raw text of one member, so it must be cut from the body as sent, never
    re-serialised. Duplicate keys are refused: a second copy of the signed member could otherwise be the one
    a JSON parser hands to the code that acts on it.
    """
    decoder = json.JSONDecoder()
    index = _JSON_WS.match(text, 0).end()  # type: ignore[union-attr]
    if text[index:index + 1] != "{":
        raise ValueError("not a JSON object")
    index = _JSON_WS.match(text, index + 1).end()  # type: ignore[union-attr]
    members: dict[str, tuple[str, Any]] = {}
    if text[index:index + 1] == "}":
        index += 1
    else:
        while True:
            if text[index:index + 1] != '"':
                raise ValueError("expected a member name")
            key, index = json.decoder.scanstring(text, index + 1)  # type: ignore[attr-defined]
            index = _JSON_WS.match(text, index).end()  # type: ignore[union-attr]
            if text[index:index + 1] != ":":
                raise ValueError("expected ':'")
            start = _JSON_WS.match(text, index + 1).end()  # type: ignore[union-attr]
            value, end = decoder.raw_decode(text, start)
            if key in members:
                raise ValueError(f"duplicate member {key!r}")
            members[key] = (text[start:end], value)
            index = _JSON_WS.match(text, end).end()  # type: ignore[union-attr]
            separator = text[index:index + 1]
            index += 1
            if separator == "}":
                break
            if separator != ",":
                raise ValueError("expected ',' or '}'")
            index = _JSON_WS.match(text, index).end()  # type: ignore[union-attr]
    if text[index:].strip(" \t\n\r"):
        raise ValueError("trailing data after the JSON object")
    return members


def signed_response_body(private_key: rsa.RSAPrivateKey, key: str, payload: Mapping[str, Any],
                         *, sign: bool = True) -> bytes:
    """A gateway answer as Alipay writes it: the payload's JSON text, then the signature over that text."""
    content = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    text = "{" + json.dumps(key) + ":" + content
    if sign:
        text += ',"sign":' + json.dumps(rsa2_sign(private_key, content.encode(CHARSET)))
    return (text + "}").encode(CHARSET)


def parse_form(body: bytes) -> dict[str, str]:
    """A UTF-8 form body as a dict; a repeated key is refused because which copy was signed is ambiguous."""
    pairs = parse_qsl(body.decode("ascii"), keep_blank_values=True, strict_parsing=bool(body),
                      encoding=CHARSET, errors="strict")
    params: dict[str, str] = {}
    for key, value in pairs:
        if key in params:
            raise ValueError(f"parameter {key!r} repeated")
        params[key] = value
    return params


def request_params(app_id: str, private_key: rsa.RSAPrivateKey, method: str, biz_content: Mapping[str, Any],
                   *, notify_url: str | None = None, timestamp: str | None = None) -> dict[str, str]:
    """The complete signed parameter set of one gateway call."""
    params = {"app_id": app_id, "method": method, "format": "JSON", "charset": CHARSET, "sign_type": SIGN_TYPE,
              "timestamp": timestamp or china_timestamp(), "version": VERSION,
              "biz_content": json.dumps(biz_content, ensure_ascii=False, separators=(",", ":"))}
    if notify_url:
        params["notify_url"] = notify_url
    params["sign"] = sign_params(private_key, params)
    return params


# --- the channel ----------------------------------------------------------------------------------------------

class AlipayChannel(PaymentChannel):
    """An Alipay OpenAPI merchant client (public-key mode). Pure: it keeps no trade state of its own, except a
    memo of refunds it started, so ``query_refund`` can name the trade Alipay requires."""

    def __init__(self, gateway_url: str, app_id: str, app_private_key_pem: bytes | str,
                 alipay_public_key_pem: bytes | str, *, seller_id: str | None = None,
                 notify_url: str | None = None, timeout: float = 5.0,
                 logger: logging.Logger | None = None):
        """``gateway_url`` is the full gateway address (``https://openapi.alipay.com/gateway.do`` or a sandbox's
        ``…/gateway.do``); ``notify_url`` is used for payment-code trades, which have no per-call one."""
        self.gateway_url = gateway_url
        self.app_id = app_id
        self.seller_id = seller_id or None
        self.notify_url = notify_url
        self._app_key = load_private_key(app_private_key_pem)
        self._alipay_key = load_public_key(alipay_public_key_pem)
        self._log = logger or _LOG
        self._refund_trades: dict[str, str] = {}
        self._http = httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, 3.0)),
                                  headers={"User-Agent": "hospital-kiosk-central alipay-openapi"})

    @classmethod
    def from_keys(cls, gateway_url: str, keys: AlipayKeys, **options: Any) -> AlipayChannel:
        """A channel for the key set's app, trusting its Alipay public key; ``options`` go to ``__init__``."""
        options.setdefault("seller_id", keys.seller_id)
        return cls(gateway_url, keys.app_id, keys.app_private_key, keys.alipay_public_key, **options)

    def __repr__(self) -> str:
        return f"AlipayChannel(gateway_url={self.gateway_url!r}, app_id={self.app_id!r})"

    def shutdown(self) -> None:
        """Release the connection pool (named so it cannot be confused with closing a trade)."""
        self._http.close()

    def __enter__(self) -> AlipayChannel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # -- PaymentChannel ----------------------------------------------------------------------------------------

    def create_native(self, out_trade_no: str, description: str, amount_fen: int, notify_url: str,
                      time_expire: datetime) -> str:
        """alipay.trade.precreate. Alipay creates the trade only when the code is scanned, so until then
        ``query`` answers "trade not exist" (NOTPAY) and ``close`` falls back to cancel."""
        _check_out_trade_no(out_trade_no)
        _check_subject(description)
        biz = {"out_trade_no": out_trade_no, "total_amount": _positive_yuan("amount_fen", amount_fen),
               "subject": description, "product_code": "FACE_TO_FACE_PAYMENT",
               "time_expire": china_timestamp(time_expire)}
        answer = self._call("alipay.trade.precreate", biz, notify_url=notify_url)
        self._check_echo(answer, out_trade_no)
        qr_code = answer.get("qr_code")
        if not isinstance(qr_code, str) or not qr_code:
            raise ChannelUnavailable("alipay.trade.precreate: answer has no qr_code")
        return qr_code

    def pay_by_code(self, out_trade_no: str, description: str, amount_fen: int, auth_code: str) -> TradeState:
        """alipay.trade.pay with scene=bar_code; code 10003 is "USERPAYING" (confirm on the phone)."""
        _check_out_trade_no(out_trade_no)
        _check_subject(description)
        if not isinstance(auth_code, str) or not _AUTH_CODE.match(auth_code):
            raise ValueError("auth_code must be the 16..24 digits of the payment code")
        biz = {"out_trade_no": out_trade_no, "scene": "bar_code", "auth_code": auth_code,
               "product_code": "FACE_TO_FACE_PAYMENT", "subject": description,
               "total_amount": _positive_yuan("amount_fen", amount_fen)}
        answer = self._call("alipay.trade.pay", biz, notify_url=self.notify_url, user_paying_ok=True)
        self._check_echo(answer, out_trade_no)
        if answer.get("code") == CODE_USER_PAYING:
            return TradeState(out_trade_no, "USERPAYING", _str_or_none(answer.get("trade_no")),
                              amount_fen, None)
        return self._paid_state(answer, out_trade_no, answer.get("gmt_payment"))

    def query(self, out_trade_no: str) -> TradeState:
        _check_out_trade_no(out_trade_no)
        try:
            answer = self._call("alipay.trade.query", {"out_trade_no": out_trade_no})
        except ChannelError as exc:
            if exc.code == "ACQ.TRADE_NOT_EXIST":
                # A precreated trade nobody scanned yet, or one whose creation never reached Alipay: unpaid.
                return TradeState(out_trade_no, "NOTPAY", None, None, None)
            raise
        self._check_echo(answer, out_trade_no)
        status = answer.get("trade_status")
        state = _STATES.get(str(status))
        if state is None:
            raise ChannelUnavailable(f"alipay.trade.query: unknown trade_status {status!r}")
        if state == "CLOSED" and answer.get("send_pay_date"):
            # Alipay closes a paid trade once it is fully refunded: the money did arrive, then went back.
            state = "REFUND"
        if state in ("SUCCESS", "REFUND"):
            return self._paid_state(answer, out_trade_no, answer.get("send_pay_date"), state=state)
        return TradeState(out_trade_no, state, _str_or_none(answer.get("trade_no")),
                          _amount_or_none(answer.get("total_amount")), None)

    def close(self, out_trade_no: str) -> None:
        """alipay.trade.close; for a QR code nobody scanned (Alipay knows no trade yet) it cancels instead,
        which is what makes the code unpayable."""
        _check_out_trade_no(out_trade_no)
        try:
            self._call("alipay.trade.close", {"out_trade_no": out_trade_no})
        except ChannelError as exc:
            if exc.code != "ACQ.TRADE_NOT_EXIST":
                raise
            self.reverse(out_trade_no)

    def reverse(self, out_trade_no: str) -> None:
        """alipay.trade.cancel: closes an unpaid trade, refunds a paid one. ``retry_flag=Y`` means Alipay
        itself does not know the outcome yet, which is ``ChannelUnavailable`` (call again)."""
        _check_out_trade_no(out_trade_no)
        answer = self._call("alipay.trade.cancel", {"out_trade_no": out_trade_no})
        if answer.get("retry_flag") == "Y":
            raise ChannelUnavailable("alipay.trade.cancel: Alipay asks to retry")

    def refund(self, out_trade_no: str, out_refund_no: str, refund_fen: int, total_fen: int,
               reason: str) -> str:
        """alipay.trade.refund with out_request_no = out_refund_no. "SUCCESS" when money moved (fund_change=Y);
        a repeated request answers fund_change=N, which Alipay says to settle with a refund query."""
        _check_out_trade_no(out_trade_no)
        _check_out_trade_no(out_refund_no, "out_refund_no")
        refund_yuan = _positive_yuan("refund_fen", refund_fen)
        _positive_yuan("total_fen", total_fen)
        if refund_fen > total_fen:
            raise ValueError("refund_fen exceeds total_fen")
        biz: dict[str, Any] = {"out_trade_no": out_trade_no, "refund_amount": refund_yuan,
                               "out_request_no": out_refund_no}
        if reason:
            biz["refund_reason"] = reason[:256]
        self._refund_trades[out_refund_no] = out_trade_no
        answer = self._call("alipay.trade.refund", biz)
        self._check_echo(answer, out_trade_no)
        if answer.get("fund_change") == "Y":
            return "SUCCESS"
        return self.query_refund(out_refund_no, out_trade_no=out_trade_no)

    def query_refund(self, out_refund_no: str, *, out_trade_no: str | None = None) -> str:
        """alipay.trade.fastpay.refund.query: "SUCCESS" when refund_status is REFUND_SUCCESS, else
        "PROCESSING" (Alipay: not received or not done yet; repeating the refund with the same number is safe).

        Alipay needs the trade number as well as the refund number; it is taken from ``out_trade_no`` or from
        the refunds this instance started.
        """
        _check_out_trade_no(out_refund_no, "out_refund_no")
        out_trade_no = out_trade_no or self._refund_trades.get(out_refund_no)
        if not out_trade_no:
            raise ValueError("Alipay refund queries need the trade's out_trade_no as well")
        answer = self._call("alipay.trade.fastpay.refund.query",
                            {"out_trade_no": out_trade_no, "out_request_no": out_refund_no,
                             "query_options": ["gmt_refund_pay"]})
        return "SUCCESS" if answer.get("refund_status") == "REFUND_SUCCESS" else "PROCESSING"

    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> TradeState:
        """Verify and decode an asynchronous notification (form body, ``headers`` unused by Alipay).

        Anything not proven to come from Alipay for this app raises ``SignatureError``: a bad or missing
        signature, a sign_type other than RSA2, another app_id or seller. A refunded trade (refund_fee > 0)
        yields "REFUND" with the trade's total; the route must answer the plain text ``success``.
        """
        try:
            params = parse_form(body)
        except (UnicodeDecodeError, ValueError):
            self._log.warning("Alipay notification refused: body is not a form")
            raise SignatureError("notification is not a well-formed form body") from None
        if params.get("sign_type") != SIGN_TYPE:
            self._log.warning("Alipay notification refused: sign_type is not RSA2")
            raise SignatureError("notification sign_type must be RSA2")
        if not verify_params(self._alipay_key, params, exclude=("sign", "sign_type")):
            self._log.warning("Alipay notification %s refused: signature does not verify",
                              params.get("notify_id", "-"))
            raise SignatureError("notification signature does not verify with the Alipay public key")
        if params.get("app_id") != self.app_id:
            self._log.warning("Alipay notification %s refused: for another app", params.get("notify_id", "-"))
            raise SignatureError("notification is for another app_id")
        if self.seller_id and params.get("seller_id") not in (None, "", self.seller_id):
            raise SignatureError("notification is for another seller")
        out_trade_no = params.get("out_trade_no")
        state = _STATES.get(str(params.get("trade_status")))
        if not out_trade_no or state is None:
            raise ChannelError("INVALID_NOTIFICATION", f"unhandled trade_status {params.get('trade_status')!r}")
        refund_fee = params.get("refund_fee")
        try:
            refunded = bool(refund_fee) and yuan_to_fen(refund_fee) > 0  # type: ignore[arg-type]
        except ValueError:
            raise ChannelError("INVALID_NOTIFICATION", "malformed refund_fee") from None
        if refunded:
            return TradeState(out_trade_no, "REFUND", _str_or_none(params.get("trade_no")),
                              _amount_or_none(params.get("total_amount")), None)
        if state == "SUCCESS":
            try:
                return self._paid_state(params, out_trade_no, params.get("gmt_payment"))
            except ChannelUnavailable as exc:
                raise ChannelError("INVALID_NOTIFICATION", str(exc)) from None
        return TradeState(out_trade_no, state, _str_or_none(params.get("trade_no")),
                          _amount_or_none(params.get("total_amount")), None)

    def download_bill(self, bill_date: date) -> list[BillLine]:
        """alipay.data.dataservice.bill.downloadurl.query (bill_type=trade), then fetch and parse the file."""
        answer = self._call("alipay.data.dataservice.bill.downloadurl.query",
                            {"bill_type": "trade", "bill_date": bill_date.isoformat()})
        url = answer.get("bill_download_url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ChannelUnavailable("bill download: answer has no usable bill_download_url")
        try:
            response = self._http.get(url)
        except httpx.HTTPError as exc:
            raise ChannelUnavailable(f"bill download: {type(exc).__name__}") from None
        if response.status_code != 200:
            raise ChannelUnavailable(f"bill download: HTTP {response.status_code}")
        return parse_trade_bill(response.content, response.headers.get("content-type", ""))

    # -- plumbing ----------------------------------------------------------------------------------------------

    def _paid_state(self, trade: Mapping[str, Any], out_trade_no: str, success_time: Any,
                    state: str = "SUCCESS") -> TradeState:
        """A paid trade must name its transaction and amount, or it cannot be matched and acted on."""
        transaction_id = _str_or_none(trade.get("trade_no"))
        amount = _amount_or_none(trade.get("total_amount"))
        if not transaction_id or amount is None:
            raise ChannelUnavailable("paid trade without trade_no or total_amount")
        return TradeState(out_trade_no, state, transaction_id, amount, _str_or_none(success_time))

    @staticmethod
    def _check_echo(answer: Mapping[str, Any], out_trade_no: str) -> None:
        echoed = answer.get("out_trade_no")
        if echoed not in (None, "", out_trade_no):
            raise ChannelUnavailable("Alipay answered for another trade")

    def _call(self, method: str, biz: Mapping[str, Any], *, notify_url: str | None = None,
              user_paying_ok: bool = False) -> dict[str, Any]:
        """One gateway call; returns the verified ``…_response`` object of a successful answer."""
        params = request_params(self.app_id, self._app_key, method, biz, notify_url=notify_url)
        try:
            response = self._http.post(self.gateway_url, data=params, headers={
                "Content-Type": f"application/x-www-form-urlencoded;charset={CHARSET}"})
        except httpx.HTTPError as exc:
            self._log.warning("Alipay %s: no answer (%s)", method, type(exc).__name__)
            raise ChannelUnavailable(f"{method}: {type(exc).__name__}") from None
        if response.status_code != 200:
            self._log.warning("Alipay %s: HTTP %d", method, response.status_code)
            raise ChannelUnavailable(f"{method}: HTTP {response.status_code}")
        answer = self._verified(method, response.content)
        code = str(answer.get("code", ""))
        sub_code = str(answer.get("sub_code") or "")
        if code == CODE_SUCCESS or (code == CODE_USER_PAYING and user_paying_ok):
            return answer
        if code == CODE_UNAVAILABLE or sub_code in _UNKNOWN_SUB_CODES or not code.startswith("4"):
            self._log.warning("Alipay %s: outcome unknown (%s %s)", method, code, sub_code or "-")
            raise ChannelUnavailable(f"{method}: {code} {sub_code}".strip())
        self._log.info("Alipay %s: refused (%s %s)", method, code, sub_code or "-")
        raise ChannelError(sub_code or code, str(answer.get("sub_msg") or answer.get("msg") or "refused"))

    def _verified(self, method: str, content: bytes) -> dict[str, Any]:
        """The answer's payload once its signature proves Alipay wrote exactly that text.

        A signature that does not verify is ``SignatureError``; an answer with no signature at all (gateway
        errors before the app is known) or one that cannot be read is ``ChannelUnavailable``: unproven either
        way, so nothing in it is acted on.
        """
        try:
            members = json_members(content.decode(CHARSET))
        except (UnicodeDecodeError, ValueError):
            self._log.warning("Alipay %s: answer is not a JSON object", method)
            raise ChannelUnavailable(f"{method}: unreadable answer") from None
        key = response_key(method)
        member = members.get(key) or members.get("error_response")
        if member is None or not isinstance(member[1], dict):
            raise ChannelUnavailable(f"{method}: answer lacks {key}")
        raw, payload = member
        sign = members.get("sign", (None, None))[1]
        if not sign:
            self._log.warning("Alipay %s: unsigned answer (%s %s) not trusted", method, payload.get("code"),
                              payload.get("sub_code") or "-")
            raise ChannelUnavailable(f"{method}: unsigned answer {payload.get('code')}")
        if not isinstance(sign, str) or not rsa2_verify(self._alipay_key, raw.encode(CHARSET), sign):
            self._log.warning("Alipay %s: answer refused, signature does not verify", method)
            raise SignatureError(f"{method}: answer signature does not verify with the Alipay public key")
        return payload


# --- the daily bill -------------------------------------------------------------------------------------------

#: Column names of the "业务明细" (transaction detail) file of a trade bill.
BILL_COLUMNS = ("支付宝交易号", "商户订单号", "业务类型", "商品名称", "创建时间", "完成时间", "门店编号", "门店名称",
                "操作员", "终端号", "对方账户", "订单金额（元）", "商家实收（元）", "支付宝红包（元）", "集分宝（元）",
                "支付宝优惠（元）", "商家优惠（元）", "券核销金额（元）", "券名称", "商家红包消费金额（元）",
                "卡消费金额（元）", "退款批次号/请求号", "服务费（元）", "分润（元）", "备注")


def parse_trade_bill(content: bytes, content_type: str = "") -> list[BillLine]:
    """BillLines from a trade bill: the CSV itself, or the zip Alipay serves with the detail CSV inside.

    Alipay writes these files in GBK; '#' lines are titles and footers. A refund row carries a negative
    amount and the refund request number; ``BillLine`` keeps amounts positive and says the direction in kind.
    """
    if content[:2] == b"PK":
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            names = [n for n in archive.namelist() if n.lower().endswith(".csv")]
            detail = [n for n in names if "汇总" not in n] or names
            if not detail:
                raise ChannelError("INVALID_BILL", "bill archive holds no CSV")
            content = archive.read(detail[0])
    charset = "utf-8" if "utf-8" in content_type.lower() else "gb18030"
    text = content.decode(charset).lstrip("\ufeff")
    rows = [row for row in csv.reader(io.StringIO(text))
            if row and not row[0].lstrip().startswith("#")]
    if not rows:
        return []
    header = [cell.strip() for cell in rows[0]]
    try:
        col = {name: header.index(name) for name in ("支付宝交易号", "商户订单号", "业务类型", "完成时间",
                                                      "订单金额（元）", "退款批次号/请求号")}
    except ValueError:
        raise ChannelError("INVALID_BILL", "bill header lacks expected columns") from None
    lines: list[BillLine] = []
    for row in rows[1:]:
        cells = [cell.strip().strip("\t") for cell in row]
        if len(cells) < len(header):
            continue
        kind = {"交易": "PAY", "退款": "REFUND"}.get(cells[col["业务类型"]])
        if kind is None:
            continue
        amount = cells[col["订单金额（元）"]].lstrip("-")
        try:
            amount_fen = yuan_to_fen(amount)
        except ValueError:
            raise ChannelError("INVALID_BILL", f"malformed amount in bill: {amount!r}") from None
        lines.append(BillLine(out_trade_no=cells[col["商户订单号"]], transaction_id=cells[col["支付宝交易号"]],
                              kind=kind, amount_fen=amount_fen, time=cells[col["完成时间"]],
                              out_refund_no=(cells[col["退款批次号/请求号"]] or None) if kind == "REFUND" else None))
    return lines


# --- small checks ---------------------------------------------------------------------------------------------

def _positive_yuan(name: str, fen: int) -> str:
    if not isinstance(fen, int) or isinstance(fen, bool) or fen <= 0:
        raise ValueError(f"{name} must be a positive integer number of fen")
    return fen_to_yuan(fen)


def _amount_or_none(value: Any) -> int | None:
    try:
        return yuan_to_fen(value) if value not in (None, "") else None
    except ValueError:
        return None


def _str_or_none(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _check_out_trade_no(value: str, name: str = "out_trade_no") -> None:
    if not isinstance(value, str) or not _OUT_TRADE_NO.match(value):
        raise ValueError(f"{name} must be 1..64 letters, digits or underscores")


def _check_subject(subject: str) -> None:
    if not isinstance(subject, str) or not subject or len(subject) > 256 or any(c in subject for c in "/=&"):
        raise ValueError("description must be 1..256 characters without / = &")
