"""A local stand-in for the Alipay OpenAPI gateway, strict enough that code passing here passes there.

It checks what the real gateway checks (the app's RSA2 signature over the exact parameters, app_id, sign_type,
charset, timestamp, the business parameters and their consistency with earlier requests), signs every answer
with the sandbox "Alipay" key so the channel's verification runs for real, and delivers signed asynchronous
notifications (form POSTs) to the trade's notify_url until the merchant answers ``success``.

``/simulate/...`` stands for the payer's phone and for the network, as plain unsigned HTTP endpoints:

* ``POST /simulate/pay {"qr_code"}``: scan and pay a precreated QR code;
* ``POST /simulate/next_code {"result": "userpaying"|"refuse"|"success"}``: how the next payment-code charge
  answers; ``POST /simulate/confirm {"out_trade_no", "result": "success"|"fail"}`` ends a "user paying" one;
* ``POST /simulate/fault {"kind": "http500"|"drop"|"hang"|"delay", "seconds", "method", "count"}``: the next
  gateway call(s) answer 500 without processing, are processed but the connection is cut, or are processed and
  answered late (``hang`` = until the client gives up);
* ``POST /simulate/notify/repeat {"out_trade_no"}`` re-sends the last notification; ``POST /simulate/notify/drop
  {"count"}`` loses the next notifications (-1: all until reset with 0);
* ``GET /simulate/trades/{out_trade_no}``: the sandbox's view, with delivery records.

Routes are relative (``/gateway.do``) so the server can mount the app under a prefix. Requests are
form-urlencoded (common parameters may also come in the query string, as the official SDKs send them). Two liberties: the
current day's bill can be downloaded (tests reconcile at once; Alipay serves T+1), and bills are plain CSV
rather than a zip (the channel reads both).
"""
from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
import re
import secrets
import string
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from central.payments.alipay import (BILL_COLUMNS, CHARSET, CHINA_TZ, CODE_BUSINESS_FAILED, CODE_SUCCESS,
                                     CODE_USER_PAYING, NOTIFY_ACK, SIGN_TYPE, VERSION,
                                     fen_to_yuan, parse_china_timestamp, parse_form, response_key,
                                     sign_params, signed_response_body, verify_params, yuan_to_fen)
from central.payments.alipay_keys import AlipayKeys, load_private_key, load_public_key

log = logging.getLogger(__name__)

QR_PREFIX = "https://qr.alipay.com/bax"
#: Seconds between delivery attempts; Alipay backs off over 25 hours, a sandbox over seconds.
DEFAULT_NOTIFY_RETRY_DELAYS: tuple[float, ...] = (0.2, 0.5, 1.0, 2.0, 4.0)
#: The sandbox refuses requests whose timestamp is further than this from its clock.
MAX_CLOCK_SKEW_SECONDS = 900
DEFAULT_EXPIRY_SECONDS = 2 * 3600
MAX_AMOUNT_FEN = 100_000_000_00

_OUT_NO = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_AUTH_CODE = re.compile(r"^(2[5-9]|30)[0-9]{14,22}$")
_ALNUM = string.ascii_letters + string.digits

_METHOD_MSG = {"40001": "Missing Required Arguments", "40002": "Invalid Arguments", "40004": "Business Failed",
               "20000": "Service Currently Unavailable"}


class _Refused(Exception):
    """A gateway answer other than 10000. ``error_response`` puts it under that member instead of the method's
    (what the gateway does when it cannot tell which app or method is meant); ``signed=False`` leaves the
    signature out, as it must when the app, and so the key to sign for it, is unknown."""

    def __init__(self, code: str, sub_code: str, sub_msg: str, *, error_response: bool = False,
                 signed: bool = True, extra: Mapping[str, Any] | None = None):
        super().__init__(sub_msg)
        self.code, self.sub_code, self.sub_msg = code, sub_code, sub_msg
        self.error_response, self.signed, self.extra = error_response, signed, dict(extra or {})


def _business(sub_code: str, sub_msg: str, **extra: Any) -> _Refused:
    return _Refused(CODE_BUSINESS_FAILED, sub_code, sub_msg, extra=extra)


@dataclass
class _Refund:
    out_request_no: str
    amount: int
    reason: str
    gmt_refund: str


@dataclass
class _Trade:
    out_trade_no: str
    subject: str
    total: int
    notify_url: str | None
    kind: str  # "precreate" | "bar_code"
    request: dict[str, Any]
    expires_at: float
    gmt_create: str
    qr_code: str | None = None
    exists: bool = False  # Alipay creates a precreated trade only when it is scanned
    status: str = "WAIT_BUYER_PAY"
    trade_no: str | None = None
    gmt_payment: str | None = None
    buyer_logon_id: str = "159****5620"
    buyer_id: str = "2088102122524333"
    refunded: int = 0
    refunds: dict[str, _Refund] = field(default_factory=dict)
    notifications: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Fault:
    kind: str
    seconds: float
    method: str | None
    count: int


def _now() -> str:
    return datetime.now(CHINA_TZ).strftime("%Y-%m-%d %H:%M:%S")


def notification_body(keys: AlipayKeys, fields: Mapping[str, str], *,
                      alipay_private_key: bytes | None = None) -> bytes:
    """The form body Alipay POSTs for ``fields`` (trade fields), with the common fields and the signature.

    ``alipay_private_key`` exists for fault injection: a notification signed by anyone else must be refused.
    Tests tamper with the returned body (or re-sign altered fields) to check the merchant's verification.
    """
    params = {"notify_time": _now(), "notify_type": "trade_status_sync",
              "notify_id": secrets.token_hex(16), "app_id": keys.app_id, "charset": CHARSET, "version": VERSION,
              "sign_type": SIGN_TYPE, "seller_id": keys.seller_id, "auth_app_id": keys.app_id}
    params.update(fields)
    key = load_private_key(alipay_private_key or keys.alipay_private_key, "Alipay")
    params["sign"] = sign_params(key, params, exclude=("sign", "sign_type"))
    return urlencode(params, encoding=CHARSET).encode("ascii")


class _CutConnection(Response):
    """An answer that starts and never finishes: the server drops the connection, as a broken network would."""

    def __init__(self) -> None:
        super().__init__(status_code=200)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json;charset=utf-8"), (b"content-length", b"4096")]})
        await send({"type": "http.response.body", "body": b'{"alipay_trade', "more_body": True})


def create_sandbox_app(keys: AlipayKeys, *,
                       notify_client_factory: Callable[[], httpx.Client] | None = None,
                       notify_retry_delays: Sequence[float] = DEFAULT_NOTIFY_RETRY_DELAYS) -> FastAPI:
    """The sandbox gateway for one app; ``notify_client_factory`` supplies the client notifications use."""
    if not keys.alipay_private_key:
        raise ValueError("the sandbox needs the Alipay private key (ensure_alipay_sandbox_keys writes one)")
    alipay_key = load_private_key(keys.alipay_private_key, "Alipay")
    app_public_key = load_public_key(keys.app_public_key, "application")
    client_factory = notify_client_factory or (lambda: httpx.Client(timeout=5.0))
    lock = threading.Lock()
    trades: dict[str, _Trade] = {}
    by_qr: dict[str, str] = {}
    cancelled_unknown: set[str] = set()  # cancelled before Alipay ever saw them: never payable
    faults: deque[_Fault] = deque()
    code_modes: deque[str] = deque()
    bills: dict[str, tuple[date, float]] = {}
    drop = {"count": 0}

    app = FastAPI(title="Alipay OpenAPI sandbox", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.trades = trades

    # -- notifications -----------------------------------------------------------------------------------------

    def deliver(notify_url: str, body: bytes, record: dict[str, Any]) -> None:
        """Deliver until acknowledged, as Alipay does: only HTTP 200 with the text "success" counts."""
        delays = [0.0, *notify_retry_delays]
        for delay in delays:
            time.sleep(delay)
            try:
                with client_factory() as client:
                    answer = client.post(notify_url, content=body, headers={
                        "Content-Type": f"application/x-www-form-urlencoded; charset={CHARSET}"})
                acknowledged = answer.status_code == 200 and answer.text.strip() == NOTIFY_ACK
                outcome = f"HTTP {answer.status_code}"
            except httpx.HTTPError as exc:
                acknowledged, outcome = False, type(exc).__name__
            with lock:
                record["attempts"] += 1
                record["last_outcome"] = outcome
                record["delivered"] = record["delivered"] or acknowledged
            if acknowledged:
                return
            log.info("sandbox notification to %s not acknowledged (%s)", urlsplit(notify_url).netloc, outcome)
        log.warning("sandbox gave up a notification to %s after %d attempts", urlsplit(notify_url).netloc,
                    len(delays))

    def send_notification(trade: _Trade, record: dict[str, Any]) -> None:
        """Start delivering ``record`` unless notifications are being dropped (caller holds the lock)."""
        if drop["count"] != 0:
            drop["count"] -= 1 if drop["count"] > 0 else 0
            record["dropped"] = True
            return
        threading.Thread(target=deliver, args=(str(trade.notify_url), record["body"], record),
                         name=f"alipay-sandbox-notify-{trade.out_trade_no}", daemon=True).start()

    def notify(trade: _Trade, event: str, extra: Mapping[str, str] | None = None) -> None:
        if not trade.notify_url:
            return
        fields = {"trade_no": str(trade.trade_no), "out_trade_no": trade.out_trade_no,
                  "trade_status": trade.status, "total_amount": fen_to_yuan(trade.total),
                  "receipt_amount": fen_to_yuan(trade.total), "buyer_pay_amount": fen_to_yuan(trade.total),
                  "invoice_amount": fen_to_yuan(trade.total), "subject": trade.subject,
                  "gmt_create": trade.gmt_create, "buyer_id": trade.buyer_id,
                  "buyer_logon_id": trade.buyer_logon_id,
                  "fund_bill_list": json.dumps([{"amount": fen_to_yuan(trade.total),
                                                 "fundChannel": "ALIPAYACCOUNT"}], separators=(",", ":"))}
        if trade.gmt_payment:
            fields["gmt_payment"] = trade.gmt_payment
        fields.update(extra or {})
        record = {"event": event, "attempts": 0, "delivered": False, "dropped": False, "last_outcome": None,
                  "body": notification_body(keys, fields)}
        trade.notifications.append(record)
        send_notification(trade, record)

    # -- trade helpers -----------------------------------------------------------------------------------------

    def new_trade_no() -> str:
        return time.strftime("%Y%m%d") + "22001" + f"{secrets.randbelow(10**15):015d}"

    def mark_paid(trade: _Trade) -> None:
        trade.exists = True
        trade.status = "TRADE_SUCCESS"
        trade.trade_no = trade.trade_no or new_trade_no()
        trade.gmt_payment = _now()
        notify(trade, "paid")

    def view(trade: _Trade) -> dict[str, Any]:
        answer: dict[str, Any] = {"trade_no": trade.trade_no, "out_trade_no": trade.out_trade_no,
                                  "buyer_logon_id": trade.buyer_logon_id, "trade_status": trade.status,
                                  "total_amount": fen_to_yuan(trade.total)}
        if trade.gmt_payment:
            answer.update(buyer_pay_amount=fen_to_yuan(trade.total), receipt_amount=fen_to_yuan(trade.total),
                          send_pay_date=trade.gmt_payment, buyer_user_id=trade.buyer_id)
        return answer

    def existing(out_trade_no: str) -> _Trade:
        trade = trades.get(out_trade_no)
        if trade is None or not trade.exists:
            raise _business("ACQ.TRADE_NOT_EXIST", "交易不存在")
        return trade

    def expire_if_due(trade: _Trade) -> None:
        if trade.status == "WAIT_BUYER_PAY" and time.time() >= trade.expires_at:
            trade.status = "TRADE_CLOSED"

    # -- parameter checks --------------------------------------------------------------------------------------

    def out_no(biz: Mapping[str, Any], name: str) -> str:
        value = biz.get(name)
        if not isinstance(value, str) or not value:
            raise _Refused("40002", "isv.invalid-parameter", f"缺少参数{name}")
        if len(value) > 64 or not _OUT_NO.match(value):
            raise _business("ACQ.INVALID_PARAMETER", f"参数无效: {name}长度不能超过64位，且只能包含字母、数字、下划线")
        return value

    def amount(biz: Mapping[str, Any], name: str) -> int:
        value = biz.get(name)
        try:
            fen = yuan_to_fen(value)  # type: ignore[arg-type]
        except ValueError:
            raise _business("ACQ.INVALID_PARAMETER", f"参数无效: {name}格式错误，单位为元，精确到小数点后两位") from None
        if not 1 <= fen <= MAX_AMOUNT_FEN:
            raise _business("ACQ.TOTAL_FEE_EXCEED", f"{name}必须在0.01到100000000之间")
        return fen

    def subject_of(biz: Mapping[str, Any]) -> str:
        subject = biz.get("subject")
        if not isinstance(subject, str) or not subject or len(subject) > 256:
            raise _business("ACQ.INVALID_PARAMETER", "参数无效: subject必填，长度不超过256")
        return subject

    def expiry_of(biz: Mapping[str, Any]) -> float:
        text = biz.get("time_expire")
        if text is None:
            return time.time() + DEFAULT_EXPIRY_SECONDS
        try:
            moment = parse_china_timestamp(str(text)).timestamp()
        except ValueError:
            raise _business("ACQ.INVALID_PARAMETER", "参数无效: time_expire格式为yyyy-MM-dd HH:mm:ss") from None
        if moment <= time.time():
            raise _business("ACQ.INVALID_PARAMETER", "参数无效: time_expire已过期")
        return moment

    # -- the gateway methods -----------------------------------------------------------------------------------

    def precreate(biz: dict[str, Any], params: Mapping[str, str], base: str) -> dict[str, Any]:
        out_trade_no = out_no(biz, "out_trade_no")
        total, subject, expires_at = amount(biz, "total_amount"), subject_of(biz), expiry_of(biz)
        comparable = {"kind": "precreate", "total": total, "subject": subject}
        if out_trade_no in cancelled_unknown:
            raise _business("ACQ.TRADE_HAS_CLOSE", "交易已关闭")
        trade = trades.get(out_trade_no)
        if trade is not None:
            expire_if_due(trade)
            if trade.request != comparable:
                raise _business("ACQ.CONTEXT_INCONSISTENT", "交易信息被篡改")
            if trade.status in ("TRADE_SUCCESS", "TRADE_FINISHED"):
                raise _business("ACQ.TRADE_HAS_SUCCESS", "交易已被支付")
            if trade.status == "TRADE_CLOSED":
                raise _business("ACQ.TRADE_HAS_CLOSE", "交易已关闭")
            return {"out_trade_no": out_trade_no, "qr_code": trade.qr_code}
        qr_code = QR_PREFIX + "".join(secrets.choice(_ALNUM) for _ in range(22))
        trades[out_trade_no] = _Trade(out_trade_no=out_trade_no, subject=subject, total=total,
                                      notify_url=params.get("notify_url") or None, kind="precreate",
                                      request=comparable, expires_at=expires_at, gmt_create=_now(),
                                      qr_code=qr_code)
        by_qr[qr_code] = out_trade_no
        return {"out_trade_no": out_trade_no, "qr_code": qr_code}

    def pay(biz: dict[str, Any], params: Mapping[str, str], base: str) -> dict[str, Any]:
        out_trade_no = out_no(biz, "out_trade_no")
        if biz.get("scene") not in ("bar_code", "security_code"):
            raise _business("ACQ.INVALID_PARAMETER", "参数无效: scene只支持bar_code")
        auth_code = biz.get("auth_code")
        total, subject = amount(biz, "total_amount"), subject_of(biz)
        if not isinstance(auth_code, str) or not _AUTH_CODE.match(auth_code):
            raise _business("ACQ.PAYMENT_AUTH_CODE_INVALID", "付款码无效，请重新扫码")
        comparable = {"kind": "bar_code", "total": total, "subject": subject, "auth_code": auth_code}
        if out_trade_no in cancelled_unknown:
            raise _business("ACQ.TRADE_HAS_CLOSE", "交易已关闭")
        trade = trades.get(out_trade_no)
        if trade is not None:  # the merchant retried after an unknown outcome: same trade, current answer
            if trade.request != comparable:
                raise _business("ACQ.CONTEXT_INCONSISTENT", "交易信息被篡改")
            if trade.status == "TRADE_CLOSED":
                raise _business("ACQ.TRADE_HAS_CLOSE", "交易已关闭")
            answer = view(trade)
            if trade.status == "WAIT_BUYER_PAY":
                raise _Refused(CODE_USER_PAYING, "", "等待用户付款", extra=answer)
            answer["gmt_payment"] = trade.gmt_payment
            return answer
        mode = code_modes.popleft() if code_modes else "success"
        if mode == "refuse":
            raise _business("ACQ.BUYER_BALANCE_NOT_ENOUGH", "买家余额不足")
        trade = _Trade(out_trade_no=out_trade_no, subject=subject, total=total,
                       notify_url=params.get("notify_url") or None, kind="bar_code", request=comparable,
                       expires_at=time.time() + DEFAULT_EXPIRY_SECONDS, gmt_create=_now(), exists=True,
                       trade_no=new_trade_no())
        trades[out_trade_no] = trade
        if mode == "userpaying":
            raise _Refused(CODE_USER_PAYING, "", "等待用户付款", extra=view(trade))
        mark_paid(trade)
        answer = view(trade)
        answer["gmt_payment"] = trade.gmt_payment
        return answer

    def query(biz: dict[str, Any], params: Mapping[str, str], base: str) -> dict[str, Any]:
        trade = existing(out_no(biz, "out_trade_no"))
        expire_if_due(trade)
        return view(trade)

    def close(biz: dict[str, Any], params: Mapping[str, str], base: str) -> dict[str, Any]:
        trade = existing(out_no(biz, "out_trade_no"))
        expire_if_due(trade)
        if trade.status in ("TRADE_SUCCESS", "TRADE_FINISHED"):
            raise _business("ACQ.TRADE_STATUS_ERROR", "交易状态不合法")
        trade.status = "TRADE_CLOSED"
        return {"trade_no": trade.trade_no, "out_trade_no": trade.out_trade_no}

    def cancel(biz: dict[str, Any], params: Mapping[str, str], base: str) -> dict[str, Any]:
        out_trade_no = out_no(biz, "out_trade_no")
        trade = trades.get(out_trade_no)
        if trade is None:
            cancelled_unknown.add(out_trade_no)
            return {"out_trade_no": out_trade_no, "retry_flag": "N", "action": "close"}
        action = "refund" if trade.refunded else "close"
        if trade.status == "TRADE_SUCCESS":
            remaining = trade.total - trade.refunded
            if remaining > 0:
                record_refund(trade, out_trade_no, remaining, "撤销")
            action = "refund"
        elif trade.status == "WAIT_BUYER_PAY":
            trade.status, trade.exists = "TRADE_CLOSED", True
        return {"trade_no": trade.trade_no, "out_trade_no": out_trade_no, "retry_flag": "N", "action": action}

    def record_refund(trade: _Trade, out_request_no: str, refund_fen: int, reason: str) -> _Refund:
        refund = _Refund(out_request_no=out_request_no, amount=refund_fen, reason=reason, gmt_refund=_now())
        trade.refunds[out_request_no] = refund
        trade.refunded += refund_fen
        if trade.refunded >= trade.total:
            trade.status = "TRADE_CLOSED"
        notify(trade, "refund", {"refund_fee": fen_to_yuan(trade.refunded), "gmt_refund": refund.gmt_refund,
                                 "out_biz_no": out_request_no})
        return refund

    def refund(biz: dict[str, Any], params: Mapping[str, str], base: str) -> dict[str, Any]:
        out_trade_no = out_no(biz, "out_trade_no")
        refund_fen = amount(biz, "refund_amount")
        out_request_no = out_no(biz, "out_request_no") if biz.get("out_request_no") else out_trade_no
        trade = existing(out_trade_no)
        answer = {"trade_no": trade.trade_no, "out_trade_no": out_trade_no,
                  "buyer_logon_id": trade.buyer_logon_id}
        previous = trade.refunds.get(out_request_no)
        if previous is not None:
            if previous.amount != refund_fen:
                raise _business("ACQ.CONTEXT_INCONSISTENT", "退款请求号对应的退款金额与原请求不一致")
            return dict(answer, fund_change="N", refund_fee=fen_to_yuan(trade.refunded),
                        gmt_refund_pay=previous.gmt_refund)
        if trade.gmt_payment is None:
            raise _business("ACQ.TRADE_STATUS_ERROR", "交易状态不合法")
        if trade.refunded + refund_fen > trade.total:
            raise _business("ACQ.REFUND_AMT_NOT_EQUAL_TOTAL", "退款金额超限")
        record = record_refund(trade, out_request_no, refund_fen, str(biz.get("refund_reason") or ""))
        return dict(answer, fund_change="Y", refund_fee=fen_to_yuan(trade.refunded),
                    gmt_refund_pay=record.gmt_refund)

    def refund_query(biz: dict[str, Any], params: Mapping[str, str], base: str) -> dict[str, Any]:
        trade = existing(out_no(biz, "out_trade_no"))
        out_request_no = out_no(biz, "out_request_no")
        record = trade.refunds.get(out_request_no)
        if record is None:  # Alipay answers success with no refund fields: not received, or not done
            return {"out_trade_no": trade.out_trade_no, "out_request_no": out_request_no}
        answer = {"trade_no": trade.trade_no, "out_trade_no": trade.out_trade_no,
                  "out_request_no": out_request_no, "total_amount": fen_to_yuan(trade.total),
                  "refund_amount": fen_to_yuan(record.amount), "refund_status": "REFUND_SUCCESS"}
        if "gmt_refund_pay" in (biz.get("query_options") or []):
            answer["gmt_refund_pay"] = record.gmt_refund
        return answer

    def bill_url(biz: dict[str, Any], params: Mapping[str, str], base: str) -> dict[str, Any]:
        if biz.get("bill_type") != "trade":
            raise _business("isp.bill_type_not_support", "账单类型不支持")
        try:
            day = date.fromisoformat(str(biz.get("bill_date")))
        except ValueError:
            raise _business("isv.invalid-bill-date", "账单日期格式为yyyy-MM-dd") from None
        if day > datetime.now(CHINA_TZ).date():
            raise _business("isp.bill_not_exist", "账单不存在")
        token = secrets.token_urlsafe(18)
        bills[token] = (day, time.time() + 300)
        return {"bill_download_url": f"{base}/bills/{token}.csv"}

    methods: dict[str, Callable[[dict[str, Any], Mapping[str, str], str], dict[str, Any]]] = {
        "alipay.trade.precreate": precreate, "alipay.trade.pay": pay, "alipay.trade.query": query,
        "alipay.trade.close": close, "alipay.trade.cancel": cancel, "alipay.trade.refund": refund,
        "alipay.trade.fastpay.refund.query": refund_query,
        "alipay.data.dataservice.bill.downloadurl.query": bill_url,
    }

    # -- the gateway -------------------------------------------------------------------------------------------

    def authenticate(params: Mapping[str, str]) -> None:
        """The common-parameter and signature checks, in the order the gateway reports them."""
        if not params.get("app_id"):
            raise _Refused("40001", "isv.missing-app-id", "缺少AppID参数", error_response=True, signed=False)
        if params["app_id"] != keys.app_id:
            raise _Refused("40002", "isv.invalid-app-id", "无效的AppID参数", error_response=True, signed=False)
        if not params.get("method"):
            raise _Refused("40001", "isv.missing-method", "缺少方法名参数", error_response=True)
        if params["method"] not in methods:
            raise _Refused("40002", "isv.invalid-method", "不存在的方法名", error_response=True)
        if not params.get("sign"):
            raise _Refused("40001", "isv.missing-signature", "缺少签名参数")
        if not params.get("sign_type"):
            raise _Refused("40001", "isv.missing-signature-type", "缺少签名类型参数")
        if params["sign_type"] != SIGN_TYPE:
            raise _Refused("40002", "isv.invalid-signature-type", "无效的签名类型参数")
        if str(params.get("charset", "")).lower() != CHARSET:
            raise _Refused("40002", "isv.invalid-charset", "字符集错误: 沙箱只支持utf-8")
        if str(params.get("format", "JSON")).upper() != "JSON":
            raise _Refused("40002", "isv.invalid-format", "无效的数据格式")
        if params.get("version") != VERSION:
            raise _Refused("40002", "isv.invalid-parameter", "version必须为1.0")
        if not params.get("timestamp"):
            raise _Refused("40001", "isv.missing-timestamp", "缺少时间戳参数")
        try:
            sent = parse_china_timestamp(params["timestamp"]).timestamp()
        except ValueError:
            raise _Refused("40002", "isv.invalid-timestamp", "非法的时间戳参数") from None
        if abs(time.time() - sent) > MAX_CLOCK_SKEW_SECONDS:
            raise _Refused("40002", "isv.invalid-timestamp", "非法的时间戳参数: 与网关时间相差过大")
        if not verify_params(app_public_key, params):
            log.warning("sandbox refused %s: signature does not verify with the app public key", params["method"])
            raise _Refused("40002", "isv.invalid-signature",
                           "验签出错，建议检查签名字符串或签名私钥与应用公钥是否匹配")

    def answer_for(params: dict[str, str], base: str) -> bytes:
        method = params.get("method") or ""
        try:
            authenticate(params)
            try:
                biz = json.loads(params.get("biz_content") or "")
            except ValueError:
                raise _Refused("40002", "isv.invalid-parameter", "biz_content不是合法的JSON") from None
            if not isinstance(biz, dict):
                raise _Refused("40002", "isv.invalid-parameter", "biz_content必须是JSON对象")
            with lock:
                payload = {"code": CODE_SUCCESS, "msg": "Success", **methods[method](biz, params, base)}
            key, signed = response_key(method), True
        except _Refused as refused:
            payload = {"code": refused.code, "msg": _METHOD_MSG.get(refused.code, "Waiting Payment")}
            if refused.sub_code:
                payload.update(sub_code=refused.sub_code, sub_msg=refused.sub_msg)
            payload.update(refused.extra)
            key = "error_response" if refused.error_response else response_key(method)
            signed = refused.signed
        return signed_response_body(alipay_key, key, payload, sign=signed)

    async def wait(seconds: float, request: Request) -> None:
        """Sleep, but stop once the client has given up, so a hung answer never outlives the test."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if await request.is_disconnected():
                return
            await asyncio.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

    def take_fault(method: str | None) -> _Fault | None:
        with lock:
            for fault in faults:
                if fault.method in (None, method):
                    fault.count -= 1
                    if fault.count <= 0:
                        faults.remove(fault)
                    return fault
        return None

    @app.post("/gateway.do")
    async def gateway(request: Request) -> Response:
        body = await request.body()
        try:
            params = parse_form(body) if body else {}
            for key, value in request.query_params.multi_items():  # SDKs put common parameters in the query
                if key in params and params[key] != value:
                    raise ValueError(f"parameter {key!r} given twice")
                params[key] = value
        except (UnicodeDecodeError, ValueError):
            return Response(signed_response_body(alipay_key, "error_response", {
                "code": "40002", "msg": "Invalid Arguments", "sub_code": "isv.invalid-parameter",
                "sub_msg": "请求参数不是合法的表单编码"}, sign=False), media_type="application/json;charset=utf-8")
        fault = take_fault(params.get("method"))
        if fault is not None and fault.kind == "http500":
            return Response("<html><body>500 Internal Server Error</body></html>", status_code=500,
                            media_type="text/html")
        # Where this app is reachable, mount prefix included, for the bill links it hands out.
        base = str(request.url.replace(query=""))
        base = base[:-len("/gateway.do")] if base.endswith("/gateway.do") else base.rstrip("/")
        content = answer_for(params, base)
        if fault is not None:
            if fault.kind == "drop":
                return _CutConnection()
            await wait(fault.seconds, request)
        return Response(content, media_type="application/json;charset=utf-8")

    @app.get("/bills/{token}.csv")
    async def bill_file(token: str) -> Response:
        with lock:
            entry = bills.get(token)
            if entry is None or entry[1] < time.time():
                return Response("bill link expired", status_code=404, media_type="text/plain")
            content = bill_csv(entry[0])
        return Response(content.encode("gb18030"), media_type="text/csv; charset=GBK")

    def bill_csv(day: date) -> str:
        """The detail file of a trade bill for ``day`` (caller holds the lock)."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        out.write("#支付宝业务明细查询\r\n")
        out.write(f"#账号：[{keys.seller_id}0156]\r\n")
        out.write(f"#起始日期：[{day.isoformat()} 00:00:00]   终止日期：[{day.isoformat()} 23:59:59]\r\n")
        out.write("#-----------------------------------------业务明细列表----------------------------------------\r\n")
        writer.writerow(BILL_COLUMNS)
        rows = 0
        blank = [""] * len(BILL_COLUMNS)

        def row(trade: _Trade, kind: str, when: str, fen: int, request_no: str) -> list[str]:
            cells = list(blank)
            cells[0], cells[1] = f"{trade.trade_no}\t", f"{trade.out_trade_no}\t"
            cells[2], cells[3], cells[4], cells[5] = kind, trade.subject, trade.gmt_create, when
            cells[10] = trade.buyer_logon_id
            cells[11] = cells[12] = ("-" if kind == "退款" else "") + fen_to_yuan(fen)
            cells[21] = f"{request_no}\t" if request_no else ""
            cells[22] = cells[23] = "0.00"
            return cells

        for trade in trades.values():
            if trade.gmt_payment and trade.gmt_payment.startswith(day.isoformat()):
                writer.writerow(row(trade, "交易", trade.gmt_payment, trade.total, ""))
                rows += 1
            for record in trade.refunds.values():
                if record.gmt_refund.startswith(day.isoformat()):
                    writer.writerow(row(trade, "退款", record.gmt_refund, record.amount, record.out_request_no))
                    rows += 1
        out.write("#-----------------------------------------业务明细列表结束------------------------------------\r\n")
        out.write(f"#交易合计：{rows}笔\r\n")
        out.write(f"#导出时间：[{_now()}]\r\n")
        return out.getvalue()

    # -- the payer's phone and the network (unsigned test controls) ------------------------------------------

    async def json_body(request: Request) -> dict[str, Any]:
        try:
            document = json.loads(await request.body() or b"{}")
        except ValueError:
            document = None
        if not isinstance(document, dict):
            raise ValueError("body must be a JSON object")
        return document

    def problem(status: int, code: str, message: str) -> JSONResponse:
        return JSONResponse({"code": code, "message": message}, status_code=status)

    @app.post("/simulate/pay")
    async def simulate_pay(request: Request) -> Response:
        try:
            qr_code = str((await json_body(request))["qr_code"])
        except (ValueError, KeyError):
            return problem(400, "PARAM_ERROR", 'body must be {"qr_code": …}')
        with lock:
            trade = trades.get(by_qr.get(qr_code, ""))
            if trade is None:
                return problem(404, "NOT_FOUND", "no trade has this qr_code")
            expire_if_due(trade)
            if trade.status == "TRADE_CLOSED":
                return problem(400, "TRADE_HAS_CLOSE", "the trade is closed or expired")
            if trade.status != "WAIT_BUYER_PAY":
                return problem(400, "TRADE_HAS_SUCCESS", "the trade is already paid")
            mark_paid(trade)
            return JSONResponse({"trade_no": trade.trade_no})

    @app.post("/simulate/next_code")
    async def simulate_next_code(request: Request) -> Response:
        try:
            result = (await json_body(request)).get("result")
        except ValueError:
            result = None
        if result not in ("userpaying", "refuse", "success"):
            return problem(400, "PARAM_ERROR", "result must be userpaying, refuse or success")
        with lock:
            code_modes.append(str(result))
        return JSONResponse({"queued": len(code_modes)})

    @app.post("/simulate/confirm")
    async def simulate_confirm(request: Request) -> Response:
        try:
            document = await json_body(request)
            out_trade_no, result = str(document["out_trade_no"]), document.get("result", "success")
        except (ValueError, KeyError):
            return problem(400, "PARAM_ERROR", 'body must be {"out_trade_no": …, "result": "success"|"fail"}')
        with lock:
            trade = trades.get(out_trade_no)
            if trade is None or trade.kind != "bar_code":
                return problem(404, "NOT_FOUND", "no payment-code trade with this out_trade_no")
            if trade.status != "WAIT_BUYER_PAY":
                return problem(400, "TRADE_STATUS_ERROR", f"the trade is {trade.status}")
            if result == "fail":
                trade.status = "TRADE_CLOSED"
            else:
                mark_paid(trade)
            return JSONResponse({"trade_status": trade.status, "trade_no": trade.trade_no})

    @app.post("/simulate/fault")
    async def simulate_fault(request: Request) -> Response:
        try:
            document = await json_body(request)
            kind = document.get("kind")
            seconds = float(document.get("seconds", 60.0 if kind == "hang" else 1.0))
            count = int(document.get("count", 1))
        except (ValueError, TypeError):
            kind = None
        if kind not in ("http500", "drop", "hang", "delay"):
            return problem(400, "PARAM_ERROR", "kind must be http500, drop, hang or delay")
        with lock:
            faults.append(_Fault(kind=str(kind), seconds=seconds, method=document.get("method"), count=count))
        return JSONResponse({"queued": len(faults)})

    @app.post("/simulate/notify/repeat")
    async def simulate_notify_repeat(request: Request) -> Response:
        try:
            out_trade_no = str((await json_body(request))["out_trade_no"])
        except (ValueError, KeyError):
            return problem(400, "PARAM_ERROR", 'body must be {"out_trade_no": …}')
        with lock:
            trade = trades.get(out_trade_no)
            if trade is None or not trade.notifications:
                return problem(404, "NOT_FOUND", "no notification was sent for this trade")
            last = trade.notifications[-1]
            record = {"event": last["event"] + " (repeat)", "attempts": 0, "delivered": False, "dropped": False,
                      "last_outcome": None, "body": last["body"]}
            trade.notifications.append(record)
            send_notification(trade, record)
        return JSONResponse({"notifications": len(trade.notifications)})

    @app.post("/simulate/notify/drop")
    async def simulate_notify_drop(request: Request) -> Response:
        try:
            count = int((await json_body(request)).get("count", 1))
        except (ValueError, TypeError):
            return problem(400, "PARAM_ERROR", 'body must be {"count": n}')
        with lock:
            drop["count"] = count
        return JSONResponse({"dropping": count})

    @app.get("/simulate/trades/{out_trade_no}")
    async def simulate_trade(out_trade_no: str) -> Response:
        with lock:
            trade = trades.get(out_trade_no)
            if trade is None:
                return problem(404, "NOT_FOUND", "no such trade")
            document = view(trade)
            document.update(exists=trade.exists, kind=trade.kind, refunded=fen_to_yuan(trade.refunded),
                            qr_code=trade.qr_code, notify_url=trade.notify_url,
                            refunds=[{"out_request_no": r.out_request_no, "amount": fen_to_yuan(r.amount),
                                      "gmt_refund": r.gmt_refund} for r in trade.refunds.values()],
                            notifications=[{k: v for k, v in n.items() if k != "body"}
                                           for n in trade.notifications])
            return JSONResponse(document)

    return app
