"""A local stand-in for the WeChat Pay v3 service, strict enough that code passing here passes there.

It checks what the real service checks (the merchant's signature over the exact request, the merchant serial,
the clock window, the parameters and their consistency with earlier requests) and signs every answer with the
platform key, so the channel's verification runs for real. ``/simulate/...`` stands for the patient's phone:
paying a code URL marks the trade paid and delivers the encrypted notification to the merchant's notify_url,
retrying like the real service until the merchant acknowledges it.

Routes are relative (``/v3/...``) because the server mounts the app under a prefix; signatures are checked
against the path below the mount point, which is what the merchant signed.
"""
from __future__ import annotations

import json
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from central.payments.keys import WeChatPayKeys, serial_hex
from central.payments.wechatpay import (AEAD_ALGORITHM, CHINA_TZ, MAX_CLOCK_SKEW_SECONDS, encrypt_resource,
                                        load_private_key, new_nonce, parse_authorization, request_message,
                                        response_message, rsa_sign, rsa_verify)

log = logging.getLogger(__name__)

CODE_URL_PREFIX = "weixin://wxpay/bizpayurl?pr="
#: Seconds between delivery attempts; the real service backs off over hours, a sandbox over seconds.
DEFAULT_NOTIFY_RETRY_DELAYS: tuple[float, ...] = (0.2, 0.5, 1.0, 2.0, 4.0)


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
    state: str = "NOTPAY"
    transaction_id: str | None = None
    success_time: str | None = None
    openid: str | None = None
    refunded: int = 0
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    notifications: list[dict[str, Any]] = field(default_factory=list)


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
    client_factory = notify_client_factory or (lambda: httpx.Client(timeout=5.0))
    lock = threading.Lock()
    trades: dict[str, _Trade] = {}
    by_code: dict[str, str] = {}
    by_transaction: dict[str, str] = {}
    refunds: dict[str, str] = {}  # out_refund_no -> out_trade_no

    app = FastAPI(title="WeChat Pay v3 sandbox", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.trades = trades

    def signed(status: int, payload: Mapping[str, Any] | None = None) -> Response:
        body = b"" if payload is None else json.dumps(payload, ensure_ascii=False,
                                                       separators=(",", ":")).encode("utf-8")
        headers = _platform_headers(platform_key, platform_serial, body)
        headers["Request-ID"] = uuid.uuid4().hex
        return Response(body, status_code=status, headers=headers,
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

    def transaction_view(trade: _Trade) -> dict[str, Any]:
        view: dict[str, Any] = {"appid": keys.appid, "mchid": keys.mchid, "out_trade_no": trade.out_trade_no,
                                "trade_state": trade.state, "trade_state_desc": _STATE_DESC[trade.state],
                                "attach": "", "amount": {"total": trade.total, "currency": "CNY"}}
        if trade.transaction_id:
            view.update(transaction_id=trade.transaction_id, trade_type="NATIVE", bank_type="OTHERS",
                        success_time=trade.success_time, payer={"openid": trade.openid})
            view["amount"].update(payer_total=trade.total, payer_currency="CNY")
        return view

    def deliver(notify_url: str, headers: dict[str, str], body: bytes, record: dict[str, Any]) -> None:
        """Deliver until acknowledged, the way the platform does: only 200/204 counts as received."""
        delays = [0.0, *notify_retry_delays]
        for delay in delays:
            time.sleep(delay)
            try:
                with client_factory() as client:
                    status = client.post(notify_url, content=body, headers=headers).status_code
            except httpx.HTTPError as exc:
                status = None
                outcome = type(exc).__name__
            else:
                outcome = f"HTTP {status}"
            with lock:
                record["attempts"] += 1
                record["last_outcome"] = outcome
                if status in (200, 204):
                    record["delivered"] = True
            if status in (200, 204):
                return
            log.info("sandbox notification to %s not acknowledged (%s)", notify_url, outcome)
        log.warning("sandbox gave up delivering a notification to %s after %d attempts", notify_url, len(delays))

    def notify(trade: _Trade, notify_url: str, event_type: str, content: dict[str, Any]) -> None:
        headers, body = sign_notification(keys, content, event_type=event_type, serial=platform_serial)
        record = {"event_type": event_type, "attempts": 0, "delivered": False, "last_outcome": None}
        trade.notifications.append(record)
        threading.Thread(target=deliver, args=(notify_url, headers, body, record),
                         name=f"wechatpay-sandbox-notify-{trade.out_trade_no}", daemon=True).start()

    @app.exception_handler(_Refused)
    async def _on_refused(request: Request, exc: _Refused) -> Response:
        return refused(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _on_http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code, "INVALID_REQUEST")
        return signed(exc.status_code, {"code": code, "message": str(exc.detail)})

    @app.post("/v3/pay/transactions/native")
    async def create_native(request: Request) -> Response:
        params = json_object(await authenticated_body(request))
        for name in ("appid", "mchid", "description", "out_trade_no", "notify_url", "amount"):
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
        notify_url = params["notify_url"]
        if not isinstance(notify_url, str) or urlsplit(notify_url).scheme not in ("http", "https"):
            raise _Refused(400, "PARAM_ERROR", "notify_url格式错误")
        amount = params["amount"]
        total = amount.get("total") if isinstance(amount, dict) else None
        if not isinstance(total, int) or isinstance(total, bool) or total <= 0:
            raise _Refused(400, "PARAM_ERROR", "amount.total必须为正整数（单位：分）")
        if amount.get("currency", "CNY") != "CNY":
            raise _Refused(400, "PARAM_ERROR", "amount.currency只支持CNY")
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
        comparable = {k: v for k, v in params.items() if k != "amount"}
        comparable["amount"] = {"total": total, "currency": "CNY"}
        with lock:
            existing = trades.get(out_trade_no)
            if existing is not None:
                # Same number, same order: the merchant retried after an unknown outcome; same answer.
                if existing.request != comparable:
                    raise _Refused(400, "INVALID_REQUEST", "201 商户订单号重复（参数与原订单不一致）")
                if existing.state != "NOTPAY":
                    raise _Refused(400, "ORDER_CLOSED" if existing.state == "CLOSED" else "ORDERPAID",
                                   "订单已关闭" if existing.state == "CLOSED" else "该订单已支付")
                return signed(200, {"code_url": CODE_URL_PREFIX + existing.code})
            code = uuid.uuid4().hex
            trades[out_trade_no] = _Trade(out_trade_no=out_trade_no, description=description, total=total,
                                          notify_url=notify_url, time_expire=str(time_expire or ""),
                                          expires_at=expires_at, code=code, request=comparable)
            by_code[code] = out_trade_no
        return signed(200, {"code_url": CODE_URL_PREFIX + code})

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
            now = _now_rfc3339()
            record = {"refund_id": "5030" + uuid.uuid4().hex[:24], "out_refund_no": out_refund_no,
                      "transaction_id": trade.transaction_id, "out_trade_no": trade.out_trade_no,
                      "channel": "ORIGINAL", "user_received_account": "支付用户零钱", "create_time": now,
                      "success_time": now, "status": "SUCCESS", "funds_account": "AVAILABLE",
                      "amount": {"total": trade.total, "refund": refund_fen, "payer_total": trade.total,
                                 "payer_refund": refund_fen, "currency": "CNY"}}
            trade.refunds[str(out_refund_no)] = record
            trade.refunded += refund_fen
            trade.state = "REFUND"
            refunds[str(out_refund_no)] = trade.out_trade_no
            if notify_url:
                notify(trade, str(notify_url), "REFUND.SUCCESS",
                       {"mchid": keys.mchid, "out_trade_no": trade.out_trade_no,
                        "transaction_id": trade.transaction_id, "out_refund_no": out_refund_no,
                        "refund_id": record["refund_id"], "refund_status": "SUCCESS", "success_time": now,
                        "user_received_account": record["user_received_account"],
                        "amount": {"total": trade.total, "refund": refund_fen, "payer_total": trade.total,
                                   "payer_refund": refund_fen}})
        return signed(200, record)

    @app.get("/v3/refund/domestic/refunds/{out_refund_no}")
    async def query_refund(out_refund_no: str, request: Request) -> Response:
        await authenticated_body(request)
        with lock:
            known = refunds.get(out_refund_no)
            if known is None:
                raise _Refused(404, "RESOURCE_NOT_EXISTS", "退款单不存在")
            return signed(200, trades[known].refunds[out_refund_no])

    # -- the payer's side (unsigned: it stands for a phone scanning the code) --------------------------------

    @app.post("/simulate/pay")
    async def simulate_pay(request: Request) -> Response:
        try:
            params = json.loads(await request.body())
            code_url = str(params["code_url"])
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"code": "PARAM_ERROR", "message": "body must be {\"code_url\": …}"}, 400)
        code = code_url[len(CODE_URL_PREFIX):] if code_url.startswith(CODE_URL_PREFIX) else None
        with lock:
            trade = trades.get(by_code.get(code or "", ""))
            if trade is None:
                return JSONResponse({"code": "NOT_FOUND", "message": "no trade has this code URL"}, 404)
            if trade.state == "CLOSED":
                return JSONResponse({"code": "ORDER_CLOSED", "message": "the trade is closed"}, 400)
            if trade.state != "NOTPAY":
                return JSONResponse({"code": "ORDERPAID", "message": "the trade is already paid"}, 400)
            if time.time() >= trade.expires_at:
                return JSONResponse({"code": "ORDER_EXPIRED", "message": "the code URL has expired"}, 400)
            trade.state = "SUCCESS"
            trade.transaction_id = "4200" + time.strftime("%Y%m%d") + f"{secrets.randbelow(10**14):014d}"
            trade.success_time = _now_rfc3339()
            trade.openid = str(params.get("openid") or "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o")
            by_transaction[trade.transaction_id] = trade.out_trade_no
            notify(trade, trade.notify_url, "TRANSACTION.SUCCESS", transaction_view(trade))
            return JSONResponse({"transaction_id": trade.transaction_id})

    @app.get("/simulate/trades/{out_trade_no}")
    async def simulate_trade(out_trade_no: str) -> Response:
        with lock:
            trade = trades.get(out_trade_no)
            if trade is None:
                return JSONResponse({"code": "NOT_FOUND", "message": "no such trade"}, 404)
            view = transaction_view(trade)
            view.update(code_url=CODE_URL_PREFIX + trade.code, notify_url=trade.notify_url,
                        time_expire=trade.time_expire, refunded=trade.refunded,
                        refunds=list(trade.refunds.values()),
                        notifications=[dict(n) for n in trade.notifications])
            return JSONResponse(view)

    return app


_STATE_DESC = {"NOTPAY": "订单未支付", "SUCCESS": "支付成功", "CLOSED": "订单已关闭", "REFUND": "转入退款",
               "USERPAYING": "用户支付中", "PAYERROR": "支付失败"}
