"""A local stand-in for the WeChat Pay v3 service, strict enough that code passing here passes there.

It checks what the real service checks (the merchant's signature over the exact request, the merchant serial,
the clock window, the parameters and their consistency with earlier requests) and signs every answer with the
platform key, so the channel's verification runs for real. ``/simulate/...`` stands for the patient's phone:
paying a code URL marks the trade paid and delivers the encrypted notification to the merchant's notify_url,
retrying like the real service until the merchant acknowledges it.

Besides native payments it serves code payments (``/v3/pay/transactions/codepay``: answered SUCCESS, or HTTP 202
``USERPAYING`` until the phone confirms or declines), reverse, refund query and the trade bill (``tradebill`` +
an unsigned ``billdownload`` whose SHA1 is in the signed answer, as in production; unlike production, today's
bill is available at once so tests can reconcile what they just did).

Test controls (unsigned, under ``/simulate``) inject the faults a merchant must survive: the next calls delayed,
answered 500 (optionally after the operation took effect), hung or dropped; notifications repeated, held and
released out of order, or dropped; the next code payment made to wait for the phone; a bill file corrupted.
``POST /simulate/reset`` undoes every control. Error codes of code payment that v3 documentation does not spell
out are modelled on the v2 ``micropay`` names.

Routes are relative (``/v3/...``) because the server mounts the app under a prefix; signatures are checked
against the path below the mount point, which is what the merchant signed.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from central.payments.keys import WeChatPayKeys, serial_hex
from central.payments.wechatpay import (AEAD_ALGORITHM, AUTH_CODE_PATTERN, BILL_COLUMNS, BILL_SUMMARY_COLUMNS,
                                        CHINA_TZ, MAX_CLOCK_SKEW_SECONDS, encrypt_resource, load_private_key,
                                        new_nonce, parse_authorization, request_message, response_message,
                                        rsa_sign, rsa_verify)

log = logging.getLogger(__name__)

CODE_URL_PREFIX = "weixin://wxpay/bizpayurl?pr="
#: Seconds between delivery attempts; the real service backs off over hours, a sandbox over seconds.
DEFAULT_NOTIFY_RETRY_DELAYS: tuple[float, ...] = (0.2, 0.5, 1.0, 2.0, 4.0)
#: The real service keeps bills for three months.
BILL_HISTORY_DAYS = 92
FAULT_KINDS = frozenset({"delay", "error500", "hang", "drop"})

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class _Refused(Exception):
    """An error answer in the service's format: HTTP status, error code, message."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class _Trade:
    out_trade_no: str
    description: str
    total: int
    notify_url: str
    time_expire: str
    expires_at: float
    code: str
    request: dict[str, Any]
    trade_type: str = "NATIVE"
    state: str = "NOTPAY"
    transaction_id: str | None = None
    success_time: str | None = None
    openid: str | None = None
    refunded: int = 0
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    notifications: list[dict[str, Any]] = field(default_factory=list)


# --- fault injection --------------------------------------------------------------------------------------------

@dataclass
class _Fault:
    """One injected fault: what happens to the next ``times`` merchant calls whose path contains ``path``.

    ``after`` lets the operation take effect first and spoils only the answer: the case where money moved but
    the merchant cannot know it.
    """

    kind: str
    seconds: float = 0.0
    times: int = 1
    path: str = ""
    method: str = ""
    after: bool = False

    def matches(self, method: str, path: str) -> bool:
        return (not self.method or self.method == method) and self.path in path


class _Faults:
    """The pending faults, shared by the control routes and the middleware (which may run on other threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[_Fault] = []
        self.generation = 0  # bumped by reset, which releases hung requests

    def add(self, fault: _Fault) -> None:
        with self._lock:
            self._pending.append(fault)

    def take(self, method: str, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._pending:
                if fault.matches(method, path):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._pending.remove(fault)
                    return fault
        return None

    def pending(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(vars(f)) for f in self._pending]

    def reset(self) -> None:
        with self._lock:
            self._pending.clear()
            self.generation += 1


class _FaultMiddleware:
    """ASGI middleware applying ``_Faults`` to ``/v3/...`` calls; ``/simulate`` controls are never faulted."""

    def __init__(self, app: ASGIApp, faults: _Faults, error_answer: Callable[[], tuple[int, dict[str, str], bytes]]):
        self.app, self.faults, self.error_answer = app, faults, error_answer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fault = None
        if scope["type"] == "http":
            path = _relative_path(scope)
            if path.startswith("/v3/"):
                fault = self.faults.take(scope["method"], path)
        if fault is None:
            await self.app(scope, receive, send)
            return
        log.info("sandbox injecting %s into %s %s", fault.kind, scope["method"], _relative_path(scope))
        answer: list[Message] = []
        if fault.after:
            await self.app(scope, receive, _collect(answer))
        elif fault.kind == "delay":
            await self._wait(fault.seconds)
            await self.app(scope, receive, send)
            return
        await self._strike(fault, answer, send)

    async def _strike(self, fault: _Fault, answer: list[Message], send: Send) -> None:
        if fault.kind == "delay":  # only reached with after=True: the operation ran, its answer comes late
            await self._wait(fault.seconds)
            for message in answer:
                await send(message)
        elif fault.kind == "error500":
            status, headers, body = self.error_answer()
            await send({"type": "http.response.start", "status": status,
                        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]})
            await send({"type": "http.response.body", "body": body})
        else:  # hang (then drop) or drop
            if fault.kind == "hang":
                await self._wait(fault.seconds or 30.0)
            await _drop(send)

    async def _wait(self, seconds: float) -> None:
        """Sleep, but wake early when the controls are reset, so a test never waits for a forgotten hang."""
        generation, deadline = self.faults.generation, time.monotonic() + seconds
        while time.monotonic() < deadline and self.faults.generation == generation:
            await asyncio.sleep(min(0.05, max(0.0, deadline - time.monotonic())))


def _collect(messages: list[Message]) -> Send:
    async def send(message: Message) -> None:
        messages.append(message)
    return send


async def _drop(send: Send) -> None:
    """Promise a body and close the connection halfway: the client sees a broken answer, not an error status."""
    try:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"1024")]})
        await send({"type": "http.response.body", "body": b'{"code_url":', "more_body": True})
    except Exception:  # the client may already have given up; a dropped answer is the point
        pass


def _relative_path(scope: Scope) -> str:
    path, root = scope.get("path", ""), scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path


# --- notifications ----------------------------------------------------------------------------------------------

class _Notifier:
    """Delivers notifications like the platform (until acknowledged, with back-off), under test controls:
    ``repeat`` delivers each one N times, ``mode`` "hold" keeps them until released (in any order), "drop"
    never sends them. Every delivery attempt is signed afresh, so a held one is not refused as stale."""

    def __init__(self, sign: Callable[[bytes], dict[str, str]], client_factory: Callable[[], httpx.Client],
                 retry_delays: Sequence[float]):
        self._sign, self._client_factory, self._delays = sign, client_factory, [0.0, *retry_delays]
        self._lock = threading.Lock()
        self.mode, self.repeat = "deliver", 1
        self._held: list[tuple[str, bytes, dict[str, Any]]] = []

    def configure(self, mode: str, repeat: int) -> None:
        with self._lock:
            self.mode, self.repeat = mode, repeat

    def submit(self, notify_url: str, body: bytes, record: dict[str, Any], name: str) -> None:
        with self._lock:
            record["repeat"] = self.repeat
            if self.mode == "drop":
                record["last_outcome"] = "dropped by the sandbox"
                return
            if self.mode == "hold":
                record["last_outcome"] = "held by the sandbox"
                self._held.append((notify_url, body, record))
                return
        self._start([(notify_url, body, record)], name)

    def release(self, order: str) -> int:
        with self._lock:
            held, self._held = self._held, []
        if order == "lifo":
            held.reverse()
        if held:
            self._start(held, "wechatpay-sandbox-release")
        return len(held)

    def reset(self) -> None:
        with self._lock:
            self.mode, self.repeat, self._held = "deliver", 1, []

    def _start(self, batch: list[tuple[str, bytes, dict[str, Any]]], name: str) -> None:
        """One thread per batch delivers in order: a released batch arrives in exactly the order asked for."""
        def run() -> None:
            for notify_url, body, record in batch:
                for _ in range(record.get("repeat", 1)):
                    self._deliver(notify_url, body, record)
        threading.Thread(target=run, name=name, daemon=True).start()

    def _client(self) -> httpx.Client:
        """One client for all deliveries: a new one per notification costs more CPU than the delivery."""
        with self._lock:
            if getattr(self, "_shared_client", None) is None:
                self._shared_client = self._client_factory()
            return self._shared_client

    def _deliver(self, notify_url: str, body: bytes, record: dict[str, Any]) -> None:
        """Deliver until acknowledged, the way the platform does: only 200/204 counts as received."""
        for delay in self._delays:
            time.sleep(delay)
            headers = self._sign(body)
            try:
                status: int | None = self._client().post(notify_url, content=body, headers=headers).status_code
                outcome = f"HTTP {status}"
            except httpx.HTTPError as exc:
                status, outcome = None, type(exc).__name__
            with self._lock:
                record["attempts"] += 1
                record["last_outcome"] = outcome
                if status in (200, 204):
                    record["delivered"] = True
                    record["deliveries"] += 1
                    return
            log.info("sandbox notification to %s not acknowledged (%s)", notify_url, outcome)
        log.warning("sandbox gave up delivering a notification to %s after %d attempts", notify_url,
                    len(self._delays))


# --- the trade bill ---------------------------------------------------------------------------------------------

def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def _bill_time(rfc3339: str) -> tuple[date, str]:
    moment = datetime.fromisoformat(rfc3339).astimezone(CHINA_TZ)
    return moment.date(), moment.strftime("%Y-%m-%d %H:%M:%S")


def render_trade_bill(appid: str, mchid: str, trades: Iterable[_Trade], bill_date: date,
                      bill_type: str = "ALL") -> bytes | None:
    """The bill file for one day in WeChat's CSV format (backtick-prefixed fields, summary block at the end),
    or None when nothing happened that day (the service then answers NO_STATEMENT_EXIST)."""
    rows: list[tuple[str, list[str]]] = []
    for trade in trades:
        if trade.success_time and bill_type in ("ALL", "SUCCESS"):
            day, when = _bill_time(trade.success_time)
            if day == bill_date:
                rows.append((when, _bill_row(appid, mchid, trade, when, "SUCCESS", trade.total, None)))
        for refund in trade.refunds.values() if bill_type in ("ALL", "REFUND") else ():
            day, when = _bill_time(refund["success_time"])
            if day == bill_date:
                rows.append((when, _bill_row(appid, mchid, trade, when, "REFUND", 0, refund)))
    if not rows:
        return None
    rows.sort(key=lambda row: row[0])
    settled = sum(int(round(float(r[BILL_COLUMNS.index("应结订单金额")]) * 100)) for _, r in rows)
    refunded = sum(int(round(float(r[BILL_COLUMNS.index("退款金额")]) * 100)) for _, r in rows)
    fees = sum(float(r[BILL_COLUMNS.index("手续费")]) for _, r in rows)
    lines = [",".join(BILL_COLUMNS)]
    lines += [",".join("`" + value for value in row) for _, row in rows]
    lines.append(",".join(BILL_SUMMARY_COLUMNS))
    lines.append(",".join("`" + v for v in (str(len(rows)), _yuan(settled), _yuan(refunded), "0.00",
                                            f"{fees:.5f}", _yuan(settled), _yuan(refunded))))
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def _bill_row(appid: str, mchid: str, trade: _Trade, when: str, state: str, settled: int,
              refund: Mapping[str, Any] | None) -> list[str]:
    refund_fen = int(refund["amount"]["refund"]) if refund else 0
    fee = -round(refund_fen * 0.006 / 100, 5) if refund else round(settled * 0.006 / 100, 5)
    values = {"交易时间": when, "公众账号ID": appid, "商户号": mchid, "特约商户号": "0", "设备号": "",
              "微信订单号": trade.transaction_id or "", "商户订单号": trade.out_trade_no,
              "用户标识": trade.openid or "", "交易类型": trade.trade_type, "交易状态": state,
              "付款银行": "OTHERS", "货币种类": "CNY", "应结订单金额": _yuan(settled), "代金券金额": "0.00",
              "微信退款单号": refund["refund_id"] if refund else "0",
              "商户退款单号": refund["out_refund_no"] if refund else "0", "退款金额": _yuan(refund_fen),
              "充值券退款金额": "0.00", "退款类型": "ORIGINAL" if refund else "",
              "退款状态": "SUCCESS" if refund else "", "商品名称": trade.description, "商户数据包": "",
              "手续费": f"{fee:.5f}", "费率": "0.60%", "订单金额": _yuan(trade.total if not refund else 0),
              "申请退款金额": _yuan(refund_fen), "费率备注": ""}
    return [values[name].replace(",", "，") for name in BILL_COLUMNS]


def _now_rfc3339() -> str:
    return datetime.now(CHINA_TZ).isoformat(timespec="seconds")


def sign_notification(keys: WeChatPayKeys, transaction: dict[str, Any], *,
                      event_type: str = "TRANSACTION.SUCCESS", serial: str | None = None,
                      timestamp: str | None = None, nonce: str | None = None,
                      platform_private_key: bytes | None = None, apiv3_key: str | None = None
                      ) -> tuple[dict[str, str], bytes]:
    """The headers and body the platform sends for ``transaction`` (a transaction or refund object).

    The keyword overrides exist for fault injection: another serial, a stale timestamp, a foreign signing key or
    a foreign APIv3 key each produce a notification a merchant must refuse.
    """
    original_type = "refund" if event_type.startswith("REFUND.") else "transaction"
    resource_nonce = new_nonce(12)
    plaintext = json.dumps(transaction, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    body = json.dumps({
        "id": str(uuid.uuid4()),
        "create_time": _now_rfc3339(),
        "event_type": event_type,
        "resource_type": "encrypt-resource",
        "summary": "退款成功" if original_type == "refund" else "支付成功",
        "resource": {
            "algorithm": AEAD_ALGORITHM,
            "ciphertext": encrypt_resource(apiv3_key or keys.apiv3_key, plaintext, original_type,
                                           resource_nonce),
            "associated_data": original_type,
            "nonce": resource_nonce,
            "original_type": original_type,
        },
    }, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    headers = _platform_headers(load_private_key(platform_private_key or keys.platform_private_key),
                                serial or keys.platform_public_key_id, body, timestamp=timestamp, nonce=nonce)
    headers["Content-Type"] = "application/json"
    return headers, body


def _platform_headers(private_key: Any, serial: str, body: bytes, *, timestamp: str | None = None,
                      nonce: str | None = None) -> dict[str, str]:
    timestamp = timestamp if timestamp is not None else str(int(time.time()))
    nonce = nonce if nonce is not None else new_nonce()
    return {"Wechatpay-Timestamp": timestamp, "Wechatpay-Nonce": nonce,
            "Wechatpay-Signature": rsa_sign(private_key, response_message(timestamp, nonce, body)),
            "Wechatpay-Serial": serial}


def create_sandbox_app(keys: WeChatPayKeys, *,
                       notify_client_factory: Callable[[], httpx.Client] | None = None,
                       platform_certificate: bytes | None = None,
                       notify_retry_delays: Sequence[float] = DEFAULT_NOTIFY_RETRY_DELAYS) -> FastAPI:
    """The sandbox service for one merchant.

    ``platform_certificate`` switches it to certificate mode (answers carry the certificate's serial instead of
    the public key id); ``notify_client_factory`` supplies the HTTP client notifications are delivered with.
    """
    platform_key = load_private_key(keys.platform_private_key)
    platform_serial = (serial_hex(x509.load_pem_x509_certificate(platform_certificate))
                       if platform_certificate else keys.platform_public_key_id)
    merchant_public_key = x509.load_pem_x509_certificate(keys.merchant_certificate).public_key()
    lock = threading.Lock()
    trades: dict[str, _Trade] = {}
    by_code: dict[str, str] = {}
    by_transaction: dict[str, str] = {}
    refunds: dict[str, str] = {}  # out_refund_no -> out_trade_no
    used_auth_codes: dict[str, str] = {}  # auth_code -> out_trade_no: a payment code pays once
    bill_files: dict[str, bytes] = {}  # download token -> the exact bytes whose hash was announced
    bill_overrides: dict[str, bytes] = {}  # bill_date -> content served instead of the generated bill
    controls: dict[str, Any] = {"codepay_results": [], "corrupt_bills": 0}

    def platform_headers(body: bytes) -> dict[str, str]:
        headers = _platform_headers(platform_key, platform_serial, body)
        headers["Request-ID"] = uuid.uuid4().hex
        return headers

    def notification_headers(body: bytes) -> dict[str, str]:
        return {**_platform_headers(platform_key, platform_serial, body), "Content-Type": "application/json"}

    def system_error() -> tuple[int, dict[str, str], bytes]:
        body = json.dumps({"code": "SYSTEM_ERROR", "message": "系统错误"}, ensure_ascii=False).encode("utf-8")
        return 500, {**platform_headers(body), "Content-Type": "application/json"}, body

    faults = _Faults()
    notifier = _Notifier(notification_headers, notify_client_factory or (lambda: httpx.Client(timeout=5.0)),
                         notify_retry_delays)
    app = FastAPI(title="WeChat Pay v3 sandbox", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(_FaultMiddleware, faults=faults, error_answer=system_error)
    app.state.trades = trades

    def signed(status: int, payload: Mapping[str, Any] | None = None) -> Response:
        body = b"" if payload is None else json.dumps(payload, ensure_ascii=False,
                                                       separators=(",", ":")).encode("utf-8")
        return Response(body, status_code=status, headers=platform_headers(body),
                        media_type="application/json" if payload is not None else None)

    def refused(exc: _Refused) -> Response:
        return signed(exc.status, {"code": exc.code, "message": exc.message})

    async def authenticated_body(request: Request) -> bytes:
        """The request body, once the Authorization header proves the merchant sent exactly this request."""
        body = await request.body()
        # The merchant signed the path it addressed below our mount point, percent-encoding and query included.
        raw_path: bytes = request.scope.get("raw_path") or request.scope["path"].encode("utf-8")
        root = request.scope.get("root_path", "").encode("utf-8")
        if root and raw_path.startswith(root):
            raw_path = raw_path[len(root):]
        query: bytes = request.scope.get("query_string", b"")
        canonical = raw_path.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")
        reason = _authorization_problem(request.headers.get("Authorization"), request.method, canonical, body)
        if reason:
            log.warning("sandbox refused %s %s: %s", request.method, canonical, reason)
            raise _Refused(401, "SIGN_ERROR", f"签名错误: {reason}")
        return body

    def _authorization_problem(header: str | None, method: str, canonical: str, body: bytes) -> str | None:
        if not header:
            return "missing Authorization header"
        params = parse_authorization(header)
        if params is None:
            return "Authorization scheme is not WECHATPAY2-SHA256-RSA2048"
        for name in ("mchid", "nonce_str", "signature", "timestamp", "serial_no"):
            if not params.get(name):
                return f"Authorization lacks {name}"
        if params["mchid"] != keys.mchid:
            return "mchid in Authorization does not match the merchant"
        if params["serial_no"].upper() != keys.merchant_serial_no.upper():
            return "serial_no does not match the merchant certificate"
        try:
            timestamp = int(params["timestamp"])
        except ValueError:
            return "malformed timestamp"
        if abs(time.time() - timestamp) > MAX_CLOCK_SKEW_SECONDS:
            return "timestamp outside the allowed window"
        message = request_message(method, canonical, params["timestamp"], params["nonce_str"], body)
        if not rsa_verify(merchant_public_key, message, params["signature"]):  # type: ignore[arg-type]
            return "signature does not verify with the merchant certificate"
        return None

    def json_object(body: bytes) -> dict[str, Any]:
        try:
            document = json.loads(body)
        except ValueError:
            raise _Refused(400, "PARAM_ERROR", "请求体不是合法的JSON") from None
        if not isinstance(document, dict):
            raise _Refused(400, "PARAM_ERROR", "请求体必须是JSON对象")
        return document

    def order_basics(params: Mapping[str, Any], required: Sequence[str]) -> tuple[str, str, int]:
        """The checks every order shares: required fields, merchant, app, number, description, amount."""
        for name in required:
            if params.get(name) in (None, ""):
                raise _Refused(400, "PARAM_ERROR", f"输入源“/body/{name}”映射到字段“{name}”必填性规则校验失败")
        if params["mchid"] != keys.mchid:
            raise _Refused(400, "PARAM_ERROR", "mchid与请求头中的商户号不一致")
        if params["appid"] != keys.appid:
            raise _Refused(400, "APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配")
        out_trade_no = params["out_trade_no"]
        if not isinstance(out_trade_no, str) or not 6 <= len(out_trade_no) <= 32:
            raise _Refused(400, "PARAM_ERROR", "out_trade_no长度必须在6到32之间")
        description = params["description"]
        if not isinstance(description, str) or len(description) > 127:
            raise _Refused(400, "PARAM_ERROR", "description格式错误")
        amount = params["amount"]
        total = amount.get("total") if isinstance(amount, dict) else None
        if not isinstance(total, int) or isinstance(total, bool) or total <= 0:
            raise _Refused(400, "PARAM_ERROR", "amount.total必须为正整数（单位：分）")
        if amount.get("currency", "CNY") != "CNY":
            raise _Refused(400, "PARAM_ERROR", "amount.currency只支持CNY")
        return out_trade_no, description, total

    def comparable(params: Mapping[str, Any], total: int) -> dict[str, Any]:
        """The request as it is compared with a retry: same number must mean the same order."""
        same = {k: v for k, v in params.items() if k != "amount"}
        same["amount"] = {"total": total, "currency": "CNY"}
        return same

    def transaction_view(trade: _Trade) -> dict[str, Any]:
        view: dict[str, Any] = {"appid": keys.appid, "mchid": keys.mchid, "out_trade_no": trade.out_trade_no,
                                "trade_state": trade.state, "trade_state_desc": _STATE_DESC[trade.state],
                                "attach": "", "amount": {"total": trade.total, "currency": "CNY"}}
        if trade.transaction_id:
            view.update(transaction_id=trade.transaction_id, trade_type=trade.trade_type, bank_type="OTHERS",
                        success_time=trade.success_time, payer={"openid": trade.openid})
            view["amount"].update(payer_total=trade.total, payer_currency="CNY")
        return view

    def mark_paid(trade: _Trade, openid: str | None = None) -> None:
        trade.state = "SUCCESS"
        trade.transaction_id = "4200" + time.strftime("%Y%m%d") + f"{secrets.randbelow(10**14):014d}"
        trade.success_time = _now_rfc3339()
        trade.openid = openid or "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
        by_transaction[trade.transaction_id] = trade.out_trade_no

    def notify(trade: _Trade, notify_url: str, event_type: str, content: dict[str, Any]) -> None:
        headers, body = sign_notification(keys, content, event_type=event_type, serial=platform_serial)
        record = {"event_type": event_type, "id": json.loads(body)["id"], "attempts": 0, "deliveries": 0,
                  "delivered": False, "last_outcome": None}
        trade.notifications.append(record)
        notifier.submit(notify_url, body, record, f"wechatpay-sandbox-notify-{trade.out_trade_no}")

    def record_refund(trade: _Trade, out_refund_no: str, refund_fen: int, notify_url: str | None
                      ) -> dict[str, Any]:
        """Book a refund (always immediately successful here) and notify it if asked to."""
        now = _now_rfc3339()
        record = {"refund_id": "5030" + uuid.uuid4().hex[:24], "out_refund_no": out_refund_no,
                  "transaction_id": trade.transaction_id, "out_trade_no": trade.out_trade_no,
                  "channel": "ORIGINAL", "user_received_account": "支付用户零钱", "create_time": now,
                  "success_time": now, "status": "SUCCESS", "funds_account": "AVAILABLE",
                  "amount": {"total": trade.total, "refund": refund_fen, "payer_total": trade.total,
                             "payer_refund": refund_fen, "currency": "CNY"}}
        trade.refunds[out_refund_no] = record
        trade.refunded += refund_fen
        trade.state = "REFUND"
        refunds[out_refund_no] = trade.out_trade_no
        if notify_url:
            notify(trade, notify_url, "REFUND.SUCCESS",
                   {"mchid": keys.mchid, "out_trade_no": trade.out_trade_no,
                    "transaction_id": trade.transaction_id, "out_refund_no": out_refund_no,
                    "refund_id": record["refund_id"], "refund_status": "SUCCESS", "success_time": now,
                    "user_received_account": record["user_received_account"],
                    "amount": {"total": trade.total, "refund": refund_fen, "payer_total": trade.total,
                               "payer_refund": refund_fen}})
        return record

    @app.exception_handler(_Refused)
    async def _on_refused(request: Request, exc: _Refused) -> Response:
        return refused(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _on_http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code, "INVALID_REQUEST")
        return signed(exc.status_code, {"code": code, "message": str(exc.detail)})

    # -- orders --------------------------------------------------------------------------------------------------

    @app.post("/v3/pay/transactions/native")
    async def create_native(request: Request) -> Response:
        params = json_object(await authenticated_body(request))
        out_trade_no, description, total = order_basics(
            params, ("appid", "mchid", "description", "out_trade_no", "notify_url", "amount"))
        notify_url = params["notify_url"]
        if not isinstance(notify_url, str) or urlsplit(notify_url).scheme not in ("http", "https"):
            raise _Refused(400, "PARAM_ERROR", "notify_url格式错误")
        time_expire = params.get("time_expire")
        expires_at = time.time() + 2 * 3600
        if time_expire is not None:
            try:
                parsed = datetime.fromisoformat(str(time_expire))
                if parsed.tzinfo is None:
                    raise ValueError
            except ValueError:
                raise _Refused(400, "PARAM_ERROR", "time_expire必须为RFC3339格式（含时区）") from None
            expires_at = parsed.timestamp()
            if expires_at <= time.time():
                raise _Refused(400, "PARAM_ERROR", "time_expire已过期")
        same = comparable(params, total)
        with lock:
            existing = trades.get(out_trade_no)
            if existing is not None:
                # Same number, same order: the merchant retried after an unknown outcome; same answer.
                if existing.request != same:
                    raise _Refused(400, "INVALID_REQUEST", "201 商户订单号重复（参数与原订单不一致）")
                if existing.state != "NOTPAY":
                    raise _Refused(400, "ORDER_CLOSED" if existing.state == "CLOSED" else "ORDERPAID",
                                   "订单已关闭" if existing.state == "CLOSED" else "该订单已支付")
                return signed(200, {"code_url": CODE_URL_PREFIX + existing.code})
            code = uuid.uuid4().hex
            trades[out_trade_no] = _Trade(out_trade_no=out_trade_no, description=description, total=total,
                                          notify_url=notify_url, time_expire=str(time_expire or ""),
                                          expires_at=expires_at, code=code, request=same)
            by_code[code] = out_trade_no
        return signed(200, {"code_url": CODE_URL_PREFIX + code})

    def codepay_answer(trade: _Trade) -> Response:
        if trade.state == "USERPAYING":
            return signed(202, {"code": "USERPAYING", "message": "用户支付中，需要输入密码"})
        return signed(200, transaction_view(trade))

    @app.post("/v3/pay/transactions/codepay")
    async def codepay(request: Request) -> Response:
        params = json_object(await authenticated_body(request))
        out_trade_no, description, total = order_basics(
            params, ("appid", "mchid", "description", "out_trade_no", "payer", "amount", "scene_info"))
        payer = params["payer"]
        auth_code = payer.get("auth_code") if isinstance(payer, dict) else None
        if not isinstance(auth_code, str) or not AUTH_CODE_PATTERN.match(auth_code):
            raise _Refused(400, "PARAM_ERROR", "付款码无效（应为10~15开头的18位数字），请重新扫码")
        scene = params["scene_info"]
        store = scene.get("store_info") if isinstance(scene, dict) else None
        if not isinstance(store, dict) or not isinstance(store.get("id"), str) or not store["id"]:
            raise _Refused(400, "PARAM_ERROR", "scene_info.store_info.id必填")
        same = comparable(params, total)
        with lock:
            existing = trades.get(out_trade_no)
            if existing is not None:
                if existing.request != same:
                    raise _Refused(400, "INVALID_REQUEST", "201 商户订单号重复（参数与原订单不一致）")
                return codepay_answer(existing)
            if auth_code in used_auth_codes:
                raise _Refused(400, "INVALID_REQUEST", "付款码已使用，请刷新付款码后重新扫码")
            used_auth_codes[auth_code] = out_trade_no
            trade = _Trade(out_trade_no=out_trade_no, description=description, total=total, notify_url="",
                           time_expire="", expires_at=time.time() + 7 * 86400, code="", request=same,
                           trade_type="MICROPAY")
            trades[out_trade_no] = trade
            results: list[str] = controls["codepay_results"]
            if results and results.pop(0) == "USERPAYING":
                trade.state = "USERPAYING"
            else:
                mark_paid(trade)
            return codepay_answer(trade)

    def require_mchid(request: Request) -> None:
        mchid = request.query_params.get("mchid")
        if not mchid:
            raise _Refused(400, "PARAM_ERROR", "mchid必填")
        if mchid != keys.mchid:
            raise _Refused(400, "PARAM_ERROR", "mchid与请求头中的商户号不一致")

    @app.get("/v3/pay/transactions/out-trade-no/{out_trade_no}")
    async def query_by_out_trade_no(out_trade_no: str, request: Request) -> Response:
        await authenticated_body(request)
        require_mchid(request)
        with lock:
            trade = trades.get(out_trade_no)
            if trade is None:
                raise _Refused(404, "ORDER_NOT_EXIST", "订单不存在")
            return signed(200, transaction_view(trade))

    @app.get("/v3/pay/transactions/id/{transaction_id}")
    async def query_by_transaction_id(transaction_id: str, request: Request) -> Response:
        await authenticated_body(request)
        require_mchid(request)
        with lock:
            trade = trades.get(by_transaction.get(transaction_id, ""))
            if trade is None:
                raise _Refused(404, "ORDER_NOT_EXIST", "订单不存在")
            return signed(200, transaction_view(trade))

    @app.post("/v3/pay/transactions/out-trade-no/{out_trade_no}/close")
    async def close(out_trade_no: str, request: Request) -> Response:
        params = json_object(await authenticated_body(request))
        if params.get("mchid") != keys.mchid:
            raise _Refused(400, "PARAM_ERROR", "mchid必填且须与商户号一致")
        with lock:
            trade = trades.get(out_trade_no)
            if trade is None:
                raise _Refused(404, "ORDER_NOT_EXIST", "订单不存在")
            if trade.state in ("SUCCESS", "REFUND"):
                raise _Refused(400, "ORDERPAID", "订单已支付，不能关闭")
            trade.state = "CLOSED"
        return signed(204)

    @app.post("/v3/pay/transactions/out-trade-no/{out_trade_no}/reverse")
    async def reverse(out_trade_no: str, request: Request) -> Response:
        """Close an unpaid trade (REVOKED), refund a paid one in full; undoing twice answers the same."""
        params = json_object(await authenticated_body(request))
        if params.get("mchid") != keys.mchid:
            raise _Refused(400, "PARAM_ERROR", "mchid必填且须与商户号一致")
        if params.get("appid") != keys.appid:
            raise _Refused(400, "APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配")
        with lock:
            trade = trades.get(out_trade_no)
            if trade is None:
                raise _Refused(404, "ORDER_NOT_EXIST", "订单不存在")
            if trade.state in ("NOTPAY", "USERPAYING", "PAYERROR"):
                trade.state = "REVOKED"
            elif trade.state in ("SUCCESS", "REFUND") and trade.refunded < trade.total:
                record_refund(trade, f"REVERSE-{out_trade_no}", trade.total - trade.refunded, None)
        return signed(200, {"appid": keys.appid, "mchid": keys.mchid, "out_trade_no": out_trade_no})

    # -- refunds -------------------------------------------------------------------------------------------------

    @app.post("/v3/refund/domestic/refunds")
    async def refund(request: Request) -> Response:
        params = json_object(await authenticated_body(request))
        out_trade_no, out_refund_no = params.get("out_trade_no"), params.get("out_refund_no")
        amount = params.get("amount")
        if not out_trade_no or not out_refund_no or not isinstance(amount, dict):
            raise _Refused(400, "PARAM_ERROR", "out_trade_no、out_refund_no、amount必填")
        refund_fen, total = amount.get("refund"), amount.get("total")
        for value in (refund_fen, total):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise _Refused(400, "PARAM_ERROR", "amount.refund与amount.total必须为正整数（单位：分）")
        if amount.get("currency", "CNY") != "CNY":
            raise _Refused(400, "PARAM_ERROR", "amount.currency只支持CNY")
        notify_url = params.get("notify_url")
        with lock:
            trade = trades.get(str(out_trade_no))
            if trade is None:
                raise _Refused(404, "RESOURCE_NOT_EXISTS", "订单不存在")
            known = refunds.get(str(out_refund_no))
            if known is not None:
                previous = trades[known].refunds[str(out_refund_no)]
                if known != out_trade_no or previous["amount"]["refund"] != refund_fen:
                    raise _Refused(400, "INVALID_REQUEST", "商户退款单号重复（参数与原退款单不一致）")
                return signed(200, previous)
            if trade.state not in ("SUCCESS", "REFUND"):
                raise _Refused(400, "INVALID_REQUEST", "订单未支付，不能退款")
            if total != trade.total:
                raise _Refused(400, "PARAM_ERROR", "订单金额与原订单不一致")
            if trade.refunded + refund_fen > trade.total:
                raise _Refused(400, "NOT_ENOUGH", "退款金额超过订单可退金额")
            record = record_refund(trade, str(out_refund_no), refund_fen, str(notify_url) if notify_url else None)
        return signed(200, record)

    @app.get("/v3/refund/domestic/refunds/{out_refund_no}")
    async def query_refund(out_refund_no: str, request: Request) -> Response:
        await authenticated_body(request)
        with lock:
            known = refunds.get(out_refund_no)
            if known is None:
                raise _Refused(404, "RESOURCE_NOT_EXISTS", "退款单不存在")
            return signed(200, trades[known].refunds[out_refund_no])

    # -- bills ---------------------------------------------------------------------------------------------------

    def requested_bill_date(request: Request) -> date:
        try:
            bill_date = date.fromisoformat(request.query_params.get("bill_date", ""))
        except ValueError:
            raise _Refused(400, "PARAM_ERROR", "bill_date格式应为YYYY-MM-DD") from None
        today = datetime.now(CHINA_TZ).date()
        if bill_date > today:
            raise _Refused(400, "PARAM_ERROR", "bill_date不能晚于今天")
        if bill_date < today - timedelta(days=BILL_HISTORY_DAYS):
            raise _Refused(400, "PARAM_ERROR", "只能下载三个月以内的账单")
        return bill_date

    @app.get("/v3/bill/tradebill")
    async def tradebill(request: Request) -> Response:
        await authenticated_body(request)
        bill_date = requested_bill_date(request)
        bill_type = request.query_params.get("bill_type", "ALL")
        if bill_type not in ("ALL", "SUCCESS", "REFUND"):
            raise _Refused(400, "PARAM_ERROR", "bill_type只能是ALL、SUCCESS或REFUND")
        if "tar_type" in request.query_params:
            raise _Refused(400, "PARAM_ERROR", "sandbox serves uncompressed bills only (omit tar_type)")
        with lock:
            content = bill_overrides.get(bill_date.isoformat()) or render_trade_bill(
                keys.appid, keys.mchid, list(trades.values()), bill_date, bill_type)
            if content is None:
                raise _Refused(400, "NO_STATEMENT_EXIST", "账单文件不存在")
            token = secrets.token_urlsafe(24)
            bill_files[token] = content
        url = str(request.url.replace(query=""))
        download_url = url[:url.rindex("/v3/bill/tradebill")] + f"/v3/billdownload/file?token={token}"
        return signed(200, {"hash_type": "SHA1", "hash_value": hashlib.sha1(content).hexdigest(),
                            "download_url": download_url})

    @app.get("/v3/billdownload/file")
    async def billdownload(request: Request) -> Response:
        """The bill bytes, unsigned like the real service's: the announced SHA1 is what vouches for them."""
        await authenticated_body(request)
        with lock:
            content = bill_files.get(request.query_params.get("token", ""))
            if content is None:
                raise _Refused(400, "INVALID_REQUEST", "token无效或已过期")
            if controls["corrupt_bills"] > 0:
                controls["corrupt_bills"] -= 1
                content = content.replace(b"`", b"'", 1) + b"`tampered\r\n"
        return Response(content, media_type="text/plain; charset=utf-8")

    _add_simulation_routes(app, lock=lock, trades=trades, by_code=by_code, controls=controls, faults=faults,
                           notifier=notifier, bill_overrides=bill_overrides, mark_paid=mark_paid, notify=notify,
                           transaction_view=transaction_view,
                           render_bill=lambda d: render_trade_bill(keys.appid, keys.mchid, list(trades.values()), d))
    return app


# --- the payer's side and the test controls (unsigned: they stand for a phone and for the test itself) -----------

def _problem(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"code": code, "message": message}, status)


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        document = json.loads(await request.body() or b"{}")
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise _Refused(400, "PARAM_ERROR", "body must be a JSON object")
    return document


def _add_simulation_routes(app: FastAPI, *, lock: threading.Lock, trades: dict[str, _Trade],
                           by_code: dict[str, str], controls: dict[str, Any], faults: _Faults,
                           notifier: _Notifier, bill_overrides: dict[str, bytes],
                           mark_paid: Callable[..., None], notify: Callable[..., None],
                           transaction_view: Callable[[_Trade], dict[str, Any]],
                           render_bill: Callable[[date], bytes | None]) -> None:
    """Routes the tests drive: the phone (pay, confirm, decline) and the fault controls. See the module doc."""

    @app.post("/simulate/pay")
    async def simulate_pay(request: Request) -> Response:
        try:
            params = json.loads(await request.body())
            code_url = str(params["code_url"])
        except (ValueError, KeyError, TypeError):
            return _problem(400, "PARAM_ERROR", "body must be {\"code_url\": …}")
        code = code_url[len(CODE_URL_PREFIX):] if code_url.startswith(CODE_URL_PREFIX) else None
        with lock:
            trade = trades.get(by_code.get(code or "", ""))
            if trade is None:
                return _problem(404, "NOT_FOUND", "no trade has this code URL")
            if trade.state == "CLOSED":
                return _problem(400, "ORDER_CLOSED", "the trade is closed")
            if trade.state != "NOTPAY":
                return _problem(400, "ORDERPAID", "the trade is already paid")
            if time.time() >= trade.expires_at:
                return _problem(400, "ORDER_EXPIRED", "the code URL has expired")
            mark_paid(trade, str(params.get("openid") or "") or None)
            notify(trade, trade.notify_url, "TRANSACTION.SUCCESS", transaction_view(trade))
            return JSONResponse({"transaction_id": trade.transaction_id})

    def waiting_trade(params: Mapping[str, Any]) -> _Trade | JSONResponse:
        trade = trades.get(str(params.get("out_trade_no", "")))
        if trade is None:
            return _problem(404, "NOT_FOUND", "no such trade")
        if trade.state != "USERPAYING":
            return _problem(400, "NOT_USERPAYING", f"the trade is {trade.state}, not waiting for the phone")
        return trade

    @app.post("/simulate/confirm")
    async def simulate_confirm(request: Request) -> Response:
        """The patient confirms the code payment on the phone: USERPAYING becomes SUCCESS."""
        params = await _json_body(request)
        with lock:
            trade = waiting_trade(params)
            if isinstance(trade, JSONResponse):
                return trade
            mark_paid(trade, str(params.get("openid") or "") or None)
            return JSONResponse({"transaction_id": trade.transaction_id})

    @app.post("/simulate/decline")
    async def simulate_decline(request: Request) -> Response:
        """The patient cancels (or fails) the password prompt: USERPAYING becomes PAYERROR."""
        params = await _json_body(request)
        with lock:
            trade = waiting_trade(params)
            if isinstance(trade, JSONResponse):
                return trade
            trade.state = "PAYERROR"
            return JSONResponse({"trade_state": trade.state})

    @app.post("/simulate/codepay")
    async def simulate_codepay(request: Request) -> Response:
        """Queue how the next code payments answer: {"result": "USERPAYING"|"SUCCESS", "times": 1}."""
        params = await _json_body(request)
        result, times = params.get("result", "USERPAYING"), params.get("times", 1)
        if result not in ("USERPAYING", "SUCCESS") or not isinstance(times, int) or times < 1:
            return _problem(400, "PARAM_ERROR", "result must be USERPAYING or SUCCESS, times a positive int")
        with lock:
            controls["codepay_results"].extend([result] * times)
            return JSONResponse({"queued": list(controls["codepay_results"])})

    @app.post("/simulate/fault")
    async def simulate_fault(request: Request) -> Response:
        """Spoil the next merchant calls: {"kind": "delay"|"error500"|"hang"|"drop", "seconds": 0, "times": 1,
        "path": "<substring of /v3/... path>", "method": "", "after": false}."""
        params = await _json_body(request)
        try:
            fault = _Fault(kind=str(params["kind"]), seconds=float(params.get("seconds", 0.0)),
                           times=int(params.get("times", 1)), path=str(params.get("path", "")),
                           method=str(params.get("method", "")).upper(), after=bool(params.get("after", False)))
        except (KeyError, TypeError, ValueError):
            return _problem(400, "PARAM_ERROR", "body must name a kind; seconds a number, times an int")
        if fault.kind not in FAULT_KINDS or fault.times < 1 or fault.seconds < 0:
            return _problem(400, "PARAM_ERROR", f"kind must be one of {sorted(FAULT_KINDS)}")
        faults.add(fault)
        return JSONResponse({"pending": faults.pending()})

    @app.get("/simulate/faults")
    async def simulate_faults() -> Response:
        return JSONResponse({"pending": faults.pending()})

    @app.post("/simulate/notifications")
    async def simulate_notifications(request: Request) -> Response:
        """How notifications from now on are sent: {"mode": "deliver"|"hold"|"drop", "repeat": 1}."""
        params = await _json_body(request)
        mode, repeat = params.get("mode", "deliver"), params.get("repeat", 1)
        if mode not in ("deliver", "hold", "drop") or not isinstance(repeat, int) or not 1 <= repeat <= 20:
            return _problem(400, "PARAM_ERROR", "mode must be deliver, hold or drop; repeat 1..20")
        notifier.configure(mode, repeat)
        return JSONResponse({"mode": mode, "repeat": repeat})

    @app.post("/simulate/notifications/release")
    async def simulate_release(request: Request) -> Response:
        """Send the held notifications, one after another: {"order": "fifo"|"lifo"} (lifo: newest first)."""
        params = await _json_body(request)
        order = params.get("order", "fifo")
        if order not in ("fifo", "lifo"):
            return _problem(400, "PARAM_ERROR", "order must be fifo or lifo")
        return JSONResponse({"released": notifier.release(order)})

    @app.post("/simulate/bill")
    async def simulate_bill(request: Request) -> Response:
        """Bill controls: {"bill_date": "YYYY-MM-DD", "content": "<csv>"} serves that file for the day (null
        content removes it); {"corrupt_next": 1} makes the next downloads disagree with their announced hash."""
        params = await _json_body(request)
        with lock:
            if "bill_date" in params:
                try:
                    day = date.fromisoformat(str(params["bill_date"])).isoformat()
                except ValueError:
                    return _problem(400, "PARAM_ERROR", "bill_date must be YYYY-MM-DD")
                content = params.get("content")
                if content is None:
                    bill_overrides.pop(day, None)
                else:
                    bill_overrides[day] = str(content).encode("utf-8")
            corrupt = params.get("corrupt_next", 0)
            if not isinstance(corrupt, int) or corrupt < 0:
                return _problem(400, "PARAM_ERROR", "corrupt_next must be a non-negative int")
            controls["corrupt_bills"] += corrupt
            return JSONResponse({"overrides": sorted(bill_overrides), "corrupt_next": controls["corrupt_bills"]})

    @app.get("/simulate/bill")
    async def simulate_bill_view(bill_date: str) -> Response:
        """The bill the service would generate for a day, for eyes and for tests."""
        try:
            day = date.fromisoformat(bill_date)
        except ValueError:
            return _problem(400, "PARAM_ERROR", "bill_date must be YYYY-MM-DD")
        with lock:
            content = bill_overrides.get(day.isoformat()) or render_bill(day)
        if content is None:
            return _problem(404, "NO_STATEMENT_EXIST", "nothing happened that day")
        return Response(content, media_type="text/csv; charset=utf-8")

    @app.post("/simulate/reset")
    async def simulate_reset() -> Response:
        """Undo every control: pending faults (hung calls are released), notification mode (held ones are
        discarded), queued code payment answers, bill overrides and corruption. Trades are kept."""
        faults.reset()
        notifier.reset()
        with lock:
            controls["codepay_results"].clear()
            controls["corrupt_bills"] = 0
            bill_overrides.clear()
        return JSONResponse({"reset": True})

    @app.get("/simulate/trades/{out_trade_no}")
    async def simulate_trade(out_trade_no: str) -> Response:
        with lock:
            trade = trades.get(out_trade_no)
            if trade is None:
                return _problem(404, "NOT_FOUND", "no such trade")
            view = transaction_view(trade)
            view.update(trade_type=trade.trade_type, code_url=CODE_URL_PREFIX + trade.code if trade.code else None,
                        notify_url=trade.notify_url, time_expire=trade.time_expire, refunded=trade.refunded,
                        refunds=list(trade.refunds.values()),
                        notifications=[dict(n) for n in trade.notifications])
            return JSONResponse(view)


_STATE_DESC = {"NOTPAY": "订单未支付", "SUCCESS": "支付成功", "CLOSED": "订单已关闭", "REFUND": "转入退款",
               "USERPAYING": "用户支付中", "PAYERROR": "支付失败", "REVOKED": "已撤销"}
