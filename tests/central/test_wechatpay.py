"""WeChat Pay v3 channel against its sandbox over real HTTP (uvicorn on loopback, the sandbox under a prefix)."""
from __future__ import annotations

import dataclasses
import json
import logging
import queue
import socket
import stat
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from central.payments.channel import BillLine, ChannelError, ChannelUnavailable, SignatureError, TradeState
from central.payments.keys import WeChatPayKeys, ensure_sandbox_keys, issue_platform_certificate, serial_hex
from central.payments.wechatpay import (CHINA_TZ, WeChatPayChannel, build_authorization, encrypt_resource,
                                        load_private_key, parse_trade_bill)
from central.payments.wechatpay_sandbox import _platform_headers, create_sandbox_app, sign_notification

PREFIX = "/sandbox/wechatpay"


class LiveServer:
    """An ASGI app served by uvicorn on a free loopback port, in a background thread."""

    def __init__(self, app: Any):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class Receiver:
    """The merchant's notify endpoint: records what arrives, optionally refusing the first deliveries."""

    def __init__(self) -> None:
        self.inbox: dict[str, queue.Queue[tuple[dict[str, str], bytes]]] = {}
        self.refuse_first: dict[str, int] = {}
        self.lock = threading.Lock()

    def box(self, name: str) -> queue.Queue[tuple[dict[str, str], bytes]]:
        with self.lock:
            return self.inbox.setdefault(name, queue.Queue())

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/notify/{name}")
        async def notify(name: str, request: Request) -> Response:
            body = await request.body()
            with self.lock:
                if self.refuse_first.get(name, 0) > 0:
                    self.refuse_first[name] -= 1
                    return JSONResponse({"code": "FAIL", "message": "busy"}, status_code=500)
            self.box(name).put((dict(request.headers), body))
            return Response(status_code=204)

        return app


def faulty_app() -> FastAPI:
    """Answers a real service never gives: a 500, and an unsigned 200."""
    app = FastAPI()

    @app.api_route("/broken/{rest:path}", methods=["GET", "POST"])
    async def broken(rest: str) -> Response:
        return JSONResponse({"code": "SYSTEM_ERROR", "message": "系统错误"}, status_code=500)

    @app.api_route("/unsigned/{rest:path}", methods=["GET", "POST"])
    async def unsigned(rest: str) -> Response:
        return JSONResponse({"code_url": "weixin://wxpay/bizpayurl?pr=forged"})

    return app


def other_platform_key() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def serve(sandbox: FastAPI, *extra: tuple[str, FastAPI]) -> LiveServer:
    outer = FastAPI()
    outer.mount(PREFIX, sandbox)
    for prefix, app in extra:
        outer.mount(prefix, app)
    return LiveServer(outer)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> WeChatPayKeys:
    return ensure_sandbox_keys(tmp_path_factory.mktemp("wechatpay") / "keys")


@pytest.fixture(scope="module")
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture(scope="module")
def server(keys: WeChatPayKeys, receiver: Receiver) -> Iterator[LiveServer]:
    sandbox = create_sandbox_app(keys, notify_retry_delays=(0.05, 0.1, 0.2, 0.4))
    live = serve(sandbox, ("/merchant", receiver.app()), ("/faults", faulty_app()))
    yield live
    live.stop()


@pytest.fixture(scope="module")
def channel(server: LiveServer, keys: WeChatPayKeys) -> Iterator[WeChatPayChannel]:
    with WeChatPayChannel.from_keys(server.url + PREFIX, keys,
                                    refund_notify_url=server.url + "/merchant/notify/refunds") as ch:
        yield ch


def trade_no() -> str:
    return "T" + uuid.uuid4().hex[:24]


def in_minutes(minutes: float) -> datetime:
    return datetime.now(timezone.utc) + timedelta(minutes=minutes)


def notify_url(server: LiveServer, name: str) -> str:
    return f"{server.url}/merchant/notify/{name}"


def simulate_pay(server: LiveServer, code_url: str) -> httpx.Response:
    return httpx.post(server.url + PREFIX + "/simulate/pay", json={"code_url": code_url}, timeout=5)


def sandbox_trade(server: LiveServer, out_trade_no: str) -> dict[str, Any]:
    return httpx.get(f"{server.url}{PREFIX}/simulate/trades/{out_trade_no}", timeout=5).json()


def signed_request(keys: WeChatPayKeys, server: LiveServer, method: str, path: str, payload: Any = None, *,
                   signed_path: str | None = None, timestamp: str | None = None,
                   private_key: bytes | None = None, mchid: str | None = None) -> httpx.Response:
    """A hand-built request, to reach the sandbox's checks that the channel never trips."""
    body = b"" if payload is None else json.dumps(payload, ensure_ascii=False).encode("utf-8")
    auth = build_authorization(mchid or keys.mchid, keys.merchant_serial_no,
                               load_private_key(private_key or keys.merchant_private_key), method,
                               signed_path or path, body, timestamp=timestamp)
    return httpx.request(method, server.url + PREFIX + path, content=body, timeout=5,
                         headers={"Authorization": auth, "Content-Type": "application/json"})


def native_payload(keys: WeChatPayKeys, server: LiveServer, **changes: Any) -> dict[str, Any]:
    payload = {"appid": keys.appid, "mchid": keys.mchid, "description": "挂号费", "out_trade_no": trade_no(),
               "time_expire": (datetime.now(timezone(timedelta(hours=8))) + timedelta(minutes=5))
               .isoformat(timespec="seconds"),
               "notify_url": notify_url(server, "unused"), "amount": {"total": 100, "currency": "CNY"}}
    payload.update(changes)
    return payload


# --- keys -----------------------------------------------------------------------------------------------------

def test_sandbox_keys_are_generated_once_private_and_consistent(tmp_path: Path) -> None:
    first = ensure_sandbox_keys(tmp_path / "k")
    second = ensure_sandbox_keys(tmp_path / "k")
    assert first == second
    files = list((tmp_path / "k").iterdir())
    assert len([f for f in files if not f.name.startswith(".")]) == 6
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
    from cryptography import x509
    assert serial_hex(x509.load_pem_x509_certificate(first.merchant_certificate)) == first.merchant_serial_no
    assert first.platform_public_key_id.startswith("PUB_KEY_ID_")
    assert len(first.apiv3_key) == 32 and first.apiv3_key.isascii()
    text = repr(first)
    assert first.apiv3_key not in text and "PRIVATE KEY" not in text


# --- the payment flow -----------------------------------------------------------------------------------------

def test_native_pay_notify_and_query(channel: WeChatPayChannel, server: LiveServer, receiver: Receiver) -> None:
    out_trade_no = trade_no()
    code_url = channel.create_native(out_trade_no, "门诊挂号 内科", 2350, notify_url(server, "flow"), in_minutes(5))
    assert code_url.startswith("weixin://wxpay/bizpayurl?pr=")
    assert channel.query(out_trade_no) == TradeState(out_trade_no, "NOTPAY", None, 2350, None)

    paid = simulate_pay(server, code_url)
    assert paid.status_code == 200, paid.text
    transaction_id = paid.json()["transaction_id"]

    headers, body = receiver.box("flow").get(timeout=10)
    notified = channel.parse_notification(headers, body)
    assert notified.state == "SUCCESS" and notified.paid
    assert (notified.out_trade_no, notified.transaction_id, notified.amount_fen) == (out_trade_no, transaction_id,
                                                                                     2350)
    assert notified.success_time
    assert json.loads(body)["resource"]["algorithm"] == "AEAD_AES_256_GCM"
    assert channel.query(out_trade_no) == notified

    again = simulate_pay(server, code_url)
    assert again.status_code == 400 and again.json()["code"] == "ORDERPAID"


def test_notification_is_retried_until_acknowledged(channel: WeChatPayChannel, server: LiveServer,
                                                    receiver: Receiver) -> None:
    receiver.refuse_first["retry"] = 2
    out_trade_no = trade_no()
    code_url = channel.create_native(out_trade_no, "检验费", 800, notify_url(server, "retry"), in_minutes(5))
    assert simulate_pay(server, code_url).status_code == 200
    headers, body = receiver.box("retry").get(timeout=10)
    assert channel.parse_notification(headers, body).amount_fen == 800
    deadline = time.monotonic() + 5
    while not (record := sandbox_trade(server, out_trade_no)["notifications"][0])["delivered"]:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert record["attempts"] == 3


def test_create_is_idempotent_and_refuses_a_changed_duplicate(channel: WeChatPayChannel,
                                                              server: LiveServer) -> None:
    out_trade_no, expire = trade_no(), in_minutes(10)
    first = channel.create_native(out_trade_no, "挂号费", 500, notify_url(server, "idem"), expire)
    assert channel.create_native(out_trade_no, "挂号费", 500, notify_url(server, "idem"), expire) == first
    with pytest.raises(ChannelError) as refused:
        channel.create_native(out_trade_no, "挂号费", 600, notify_url(server, "idem"), expire)
    assert refused.value.code == "INVALID_REQUEST"


def test_closed_trade_cannot_be_paid(channel: WeChatPayChannel, server: LiveServer) -> None:
    out_trade_no = trade_no()
    code_url = channel.create_native(out_trade_no, "挂号费", 500, notify_url(server, "closed"), in_minutes(5))
    channel.close(out_trade_no)
    channel.close(out_trade_no)  # closing again is harmless: callers retry after unknown outcomes
    assert channel.query(out_trade_no).state == "CLOSED"
    refused = simulate_pay(server, code_url)
    assert refused.status_code == 400 and refused.json()["code"] == "ORDER_CLOSED"
    assert channel.query(out_trade_no).state == "CLOSED"


def test_expired_trade_cannot_be_paid(channel: WeChatPayChannel, server: LiveServer) -> None:
    out_trade_no = trade_no()
    code_url = channel.create_native(out_trade_no, "挂号费", 500, notify_url(server, "expired"),
                                     datetime.now(timezone.utc) + timedelta(seconds=2))
    time.sleep(2.2)
    refused = simulate_pay(server, code_url)
    assert refused.status_code == 400 and refused.json()["code"] == "ORDER_EXPIRED"
    assert channel.query(out_trade_no).state == "NOTPAY"


def test_unknown_code_and_unknown_trade(channel: WeChatPayChannel, server: LiveServer) -> None:
    missing = simulate_pay(server, "weixin://wxpay/bizpayurl?pr=nosuchcode")
    assert missing.status_code == 404 and "code URL" in missing.json()["message"]
    with pytest.raises(ChannelError) as refused:
        channel.query(trade_no())
    assert refused.value.code == "ORDER_NOT_EXIST"
    with pytest.raises(ChannelError):
        channel.close(trade_no())


def test_refund_partial_then_rest_never_more(channel: WeChatPayChannel, server: LiveServer,
                                             receiver: Receiver) -> None:
    out_trade_no = trade_no()
    code_url = channel.create_native(out_trade_no, "挂号费", 1000, notify_url(server, "refund-pay"), in_minutes(5))
    with pytest.raises(ChannelError):
        channel.refund(out_trade_no, "R" + out_trade_no, 1000, 1000, "未支付")
    assert simulate_pay(server, code_url).status_code == 200

    assert channel.refund(out_trade_no, "R1" + out_trade_no, 300, 1000, "患者取消") == "SUCCESS"
    assert channel.refund(out_trade_no, "R1" + out_trade_no, 300, 1000, "患者取消") == "SUCCESS"  # idempotent
    with pytest.raises(ChannelError) as too_much:
        channel.refund(out_trade_no, "R2" + out_trade_no, 701, 1000, "超额")
    assert too_much.value.code == "NOT_ENOUGH"
    assert channel.refund(out_trade_no, "R3" + out_trade_no, 700, 1000, "余额") == "SUCCESS"
    state = channel.query(out_trade_no)
    assert state.state == "REFUND" and state.paid and state.amount_fen == 1000
    assert sandbox_trade(server, out_trade_no)["refunded"] == 1000

    headers, body = receiver.box("refunds").get(timeout=10)
    notified = channel.parse_notification(headers, body)
    assert (notified.out_trade_no, notified.state, notified.amount_fen) == (out_trade_no, "REFUND", 1000)


def test_refused_parameters_are_channel_errors_or_value_errors(channel: WeChatPayChannel, keys: WeChatPayKeys,
                                                               server: LiveServer) -> None:
    with pytest.raises(ValueError):
        channel.create_native(trade_no(), "挂号费", 0, notify_url(server, "x"), in_minutes(5))
    with pytest.raises(ValueError):
        channel.create_native(trade_no(), "挂号费", 100, notify_url(server, "x"), datetime.now() + timedelta(1))
    path = "/v3/pay/transactions/native"
    cases = [
        (native_payload(keys, server, amount={"total": 0, "currency": "CNY"}), "PARAM_ERROR"),
        (native_payload(keys, server, amount={"total": 1.5, "currency": "CNY"}), "PARAM_ERROR"),
        (native_payload(keys, server, amount={"total": 100, "currency": "USD"}), "PARAM_ERROR"),
        (native_payload(keys, server, description=""), "PARAM_ERROR"),
        (native_payload(keys, server, appid="wx0000000000000000"), "APPID_MCHID_NOT_MATCH"),
        (native_payload(keys, server, mchid="1900000000"), "PARAM_ERROR"),
        (native_payload(keys, server, time_expire="2020-01-01T00:00:00+08:00"), "PARAM_ERROR"),
    ]
    for payload, code in cases:
        answer = signed_request(keys, server, "POST", path, payload)
        assert (answer.status_code, answer.json()["code"]) == (400, code), payload
    query = signed_request(keys, server, "GET", f"/v3/pay/transactions/out-trade-no/{trade_no()}?mchid=1")
    assert (query.status_code, query.json()["code"]) == (400, "PARAM_ERROR")


# --- request signatures, checked by the sandbox ---------------------------------------------------------------

def test_wrong_merchant_key_is_sign_error(keys: WeChatPayKeys, server: LiveServer,
                                          caplog: pytest.LogCaptureFixture) -> None:
    impostor = WeChatPayChannel(server.url + PREFIX, keys.mchid, keys.appid, other_platform_key(),
                                keys.merchant_serial_no, keys.apiv3_key,
                                {keys.platform_public_key_id: keys.platform_public_key})
    with caplog.at_level(logging.WARNING), pytest.raises(ChannelError) as refused:
        impostor.create_native(trade_no(), "挂号费", 100, notify_url(server, "x"), in_minutes(5))
    impostor.shutdown()
    assert refused.value.code == "SIGN_ERROR"
    assert any(r.levelno == logging.WARNING and "signature does not verify" in r.getMessage()
               for r in caplog.records)


def test_sandbox_checks_what_was_signed(keys: WeChatPayKeys, server: LiveServer) -> None:
    path = f"/v3/pay/transactions/out-trade-no/{trade_no()}?mchid={keys.mchid}"
    assert signed_request(keys, server, "GET", path).status_code == 404  # signed correctly: reaches the route

    def refused(response: httpx.Response) -> bool:
        return response.status_code == 401 and response.json()["code"] == "SIGN_ERROR"

    assert refused(signed_request(keys, server, "GET", path, signed_path=PREFIX + path))  # mount prefix signed
    assert refused(signed_request(keys, server, "GET", path, signed_path=path.replace("mchid=", "mchid=0")))
    assert refused(signed_request(keys, server, "GET", path, timestamp=str(int(time.time()) - 330)))
    assert refused(signed_request(keys, server, "GET", path, mchid="1900000000"))
    body_signed = build_authorization(keys.mchid, keys.merchant_serial_no, load_private_key(
        keys.merchant_private_key), "POST", "/v3/pay/transactions/native", b'{"a":1}')
    tampered = httpx.post(server.url + PREFIX + "/v3/pay/transactions/native", content=b'{"a":2}',
                          headers={"Authorization": body_signed}, timeout=5)
    assert refused(tampered)
    other_serial = body_signed.replace(keys.merchant_serial_no, "1" + keys.merchant_serial_no[1:] if
                                       keys.merchant_serial_no[0] != "1" else "2" + keys.merchant_serial_no[1:])
    assert refused(httpx.post(server.url + PREFIX + "/v3/pay/transactions/native", content=b'{"a":1}',
                              headers={"Authorization": other_serial}, timeout=5))
    assert refused(httpx.get(server.url + PREFIX + path, timeout=5))  # no Authorization at all
    assert refused(httpx.get(server.url + PREFIX + path, timeout=5,
                             headers={"Authorization": body_signed.replace("WECHATPAY2-SHA256-RSA2048",
                                                                           "WECHATPAY2-SHA256-RSA")}))


def test_sandbox_served_without_prefix(keys: WeChatPayKeys) -> None:
    live = LiveServer(create_sandbox_app(keys))
    try:
        with WeChatPayChannel.from_keys(live.url, keys) as ch:
            out_trade_no = trade_no()
            ch.create_native(out_trade_no, "挂号费", 100, "http://127.0.0.1:9/notify", in_minutes(5))
            assert ch.query(out_trade_no).state == "NOTPAY"
    finally:
        live.stop()


# --- response and notification signatures, checked by the channel ---------------------------------------------

def test_response_signed_with_another_key_is_refused(keys: WeChatPayKeys, caplog: pytest.LogCaptureFixture
                                                     ) -> None:
    forged = dataclasses.replace(keys, platform_private_key=other_platform_key())
    live = serve(create_sandbox_app(forged))
    try:
        with WeChatPayChannel.from_keys(live.url + PREFIX, keys) as ch, caplog.at_level(logging.WARNING):
            with pytest.raises(SignatureError):
                ch.create_native(trade_no(), "挂号费", 100, "http://127.0.0.1:9/n", in_minutes(5))
            with pytest.raises(SignatureError):  # error answers that carry a signature must prove it too
                ch.query(trade_no())
            # The refused create did open the trade (an unproven answer is an unknown outcome, not a failure);
            # closing it answers an empty 204, whose signature is checked as well.
            out_trade_no = trade_no()
            with pytest.raises(SignatureError):
                ch.create_native(out_trade_no, "挂号费", 100, "http://127.0.0.1:9/n", in_minutes(5))
            assert sandbox_trade(live, out_trade_no)["trade_state"] == "NOTPAY"
            with pytest.raises(SignatureError):
                ch.close(out_trade_no)
            assert sandbox_trade(live, out_trade_no)["trade_state"] == "CLOSED"
        assert any("response refused" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    finally:
        live.stop()


def test_response_from_an_unknown_platform_serial_is_refused(keys: WeChatPayKeys, tmp_path: Path) -> None:
    strangers = ensure_sandbox_keys(tmp_path / "strangers")
    live = serve(create_sandbox_app(dataclasses.replace(keys, platform_private_key=strangers.platform_private_key,
                                                        platform_public_key_id=strangers.platform_public_key_id)))
    try:
        with WeChatPayChannel.from_keys(live.url + PREFIX, keys) as ch, pytest.raises(SignatureError):
            ch.query(trade_no())
    finally:
        live.stop()


def test_unsigned_success_and_server_errors(keys: WeChatPayKeys, server: LiveServer) -> None:
    with WeChatPayChannel.from_keys(server.url + "/faults/unsigned", keys) as ch, pytest.raises(SignatureError):
        ch.create_native(trade_no(), "挂号费", 100, "http://127.0.0.1:9/n", in_minutes(5))
    with WeChatPayChannel.from_keys(server.url + "/faults/broken", keys) as ch, pytest.raises(ChannelUnavailable):
        ch.query(trade_no())


def test_certificate_mode(keys: WeChatPayKeys, receiver: Receiver) -> None:
    certificate = issue_platform_certificate(keys)
    from cryptography import x509
    serial = serial_hex(x509.load_pem_x509_certificate(certificate))
    live = serve(create_sandbox_app(keys, platform_certificate=certificate), ("/merchant", receiver.app()))
    try:
        with WeChatPayChannel(live.url + PREFIX, keys.mchid, keys.appid, keys.merchant_private_key,
                              keys.merchant_serial_no, keys.apiv3_key, {serial: certificate}) as ch:
            out_trade_no = trade_no()
            code_url = ch.create_native(out_trade_no, "挂号费", 1200, f"{live.url}/merchant/notify/cert",
                                        in_minutes(5))
            assert httpx.post(live.url + PREFIX + "/simulate/pay", json={"code_url": code_url}).status_code == 200
            headers, body = receiver.box("cert").get(timeout=10)
            assert headers["wechatpay-serial"] == serial
            assert ch.parse_notification(headers, body).amount_fen == 1200
            # The public-key-mode notification of the same merchant is not trusted by a certificate-mode channel.
            with pytest.raises(SignatureError):
                ch.parse_notification(*sign_notification(keys, {"out_trade_no": out_trade_no}))
    finally:
        live.stop()
    with pytest.raises(ValueError):  # a certificate filed under the wrong serial is a configuration error
        WeChatPayChannel.from_keys("http://127.0.0.1:9", dataclasses.replace(
            keys, platform_public_key_id="ABCDEF", platform_public_key=certificate))


def paid_transaction(keys: WeChatPayKeys, out_trade_no: str = "K20260101000001", total: int = 1500
                     ) -> dict[str, Any]:
    return {"mchid": keys.mchid, "appid": keys.appid, "out_trade_no": out_trade_no,
            "transaction_id": "4200000000202601010000000001", "trade_type": "NATIVE", "trade_state": "SUCCESS",
            "success_time": "2026-01-01T10:00:00+08:00", "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
            "amount": {"total": total, "payer_total": total, "currency": "CNY", "payer_currency": "CNY"}}


def test_forged_notifications_are_refused(channel: WeChatPayChannel, keys: WeChatPayKeys) -> None:
    transaction = paid_transaction(keys)
    headers, body = sign_notification(keys, transaction)
    assert channel.parse_notification(headers, body).amount_fen == 1500

    tampered = body.replace(b'"summary":"', b'"summary":"x')
    with pytest.raises(SignatureError):
        channel.parse_notification(headers, tampered)
    with pytest.raises(SignatureError):
        channel.parse_notification(*sign_notification(keys, transaction, platform_private_key=other_platform_key()))
    stale = str(int(time.time()) - 330)
    with pytest.raises(SignatureError):
        channel.parse_notification(*sign_notification(keys, transaction, timestamp=stale))
    future = str(int(time.time()) + 330)
    with pytest.raises(SignatureError):
        channel.parse_notification(*sign_notification(keys, transaction, timestamp=future))
    with pytest.raises(SignatureError):
        channel.parse_notification(*sign_notification(keys, transaction, serial="PUB_KEY_ID_0000000000"))
    with pytest.raises(SignatureError):  # signed by the platform, but not encrypted with our APIv3 key
        channel.parse_notification(*sign_notification(keys, transaction, apiv3_key="0" * 32))
    without_signature = {k: v for k, v in headers.items() if k != "Wechatpay-Signature"}
    with pytest.raises(SignatureError):
        channel.parse_notification(without_signature, body)
    probe = dict(headers, **{"Wechatpay-Signature": "WECHATPAY/SIGNTEST/" + headers["Wechatpay-Signature"]})
    with pytest.raises(SignatureError):
        channel.parse_notification(probe, body)
    with pytest.raises(ChannelError):  # authentic, but for another app
        channel.parse_notification(*sign_notification(keys, dict(transaction, appid="wx0000000000000000")))
    with pytest.raises(ChannelError):
        channel.parse_notification(*sign_notification(keys, transaction, event_type="REFUND.ABNORMAL"))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(out_trade_no=st.from_regex(r"[A-Za-z0-9_\-|*]{6,32}", fullmatch=True),
       total=st.integers(min_value=1, max_value=10**9), flip=st.integers(min_value=0))
def test_notification_round_trip_and_any_byte_flip(channel: WeChatPayChannel, keys: WeChatPayKeys,
                                                   out_trade_no: str, total: int, flip: int) -> None:
    headers, body = sign_notification(keys, paid_transaction(keys, out_trade_no, total))
    state = channel.parse_notification({k.lower(): v for k, v in headers.items()}, body)
    assert (state.out_trade_no, state.amount_fen, state.state) == (out_trade_no, total, "SUCCESS")
    position = flip % len(body)
    corrupted = body[:position] + bytes([body[position] ^ 0x01]) + body[position + 1:]
    with pytest.raises(SignatureError):
        channel.parse_notification(headers, corrupted)


# --- outages and secrets --------------------------------------------------------------------------------------

def test_sandbox_down_is_unavailable_not_failure(keys: WeChatPayKeys) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with WeChatPayChannel.from_keys(f"http://127.0.0.1:{port}{PREFIX}", keys, timeout=1.0) as ch:
        with pytest.raises(ChannelUnavailable):
            ch.create_native(trade_no(), "挂号费", 100, "http://127.0.0.1:9/n", in_minutes(5))
        with pytest.raises(ChannelUnavailable):
            ch.query(trade_no())
        with pytest.raises(ChannelUnavailable):
            ch.refund(trade_no(), "R1", 1, 1, "")


def test_timeout_is_unavailable(keys: WeChatPayKeys) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts the connection, never answers
    try:
        with WeChatPayChannel.from_keys(f"http://127.0.0.1:{listener.getsockname()[1]}", keys,
                                        timeout=0.5) as ch, pytest.raises(ChannelUnavailable):
            ch.query(trade_no())
    finally:
        listener.close()


def test_secrets_stay_out_of_logs_and_errors(keys: WeChatPayKeys, server: LiveServer,
                                             caplog: pytest.LogCaptureFixture) -> None:
    impostor_key = other_platform_key()
    messages: list[str] = []
    with caplog.at_level(logging.DEBUG):
        with WeChatPayChannel.from_keys(server.url + PREFIX, keys) as ch:
            messages.append(repr(ch))
            out_trade_no = trade_no()
            ch.create_native(out_trade_no, "挂号费", 100, notify_url(server, "secrets"), in_minutes(5))
            ch.query(out_trade_no)
        with WeChatPayChannel(server.url + PREFIX, keys.mchid, keys.appid, impostor_key, keys.merchant_serial_no,
                              keys.apiv3_key, {keys.platform_public_key_id: keys.platform_public_key}) as bad:
            with pytest.raises(ChannelError) as refused:
                bad.query(out_trade_no)
            messages.append(str(refused.value))
        with WeChatPayChannel.from_keys(server.url + "/faults/broken", keys) as broken:
            with pytest.raises(ChannelUnavailable) as unavailable:
                broken.query(out_trade_no)
            messages.append(str(unavailable.value))
    text = caplog.text + "\n".join(messages)
    assert "WECHATPAY2-SHA256-RSA2048" not in text and "signature=" not in text
    assert keys.apiv3_key not in text
    for pem in (keys.merchant_private_key, keys.platform_private_key, impostor_key):
        for line in pem.decode().splitlines()[1:-1]:
            assert line not in text


# --- code payment, reverse, refund query, bill: in public-key mode and in certificate mode -----------------------

def auth_code() -> str:
    """A fresh payment code: 18 digits starting 10..15 (the sandbox, like the service, takes each code once)."""
    return f"1{uuid.uuid4().int % 6}{uuid.uuid4().int % 10**16:016d}"


def post_simulate(live: LiveServer, path: str, **body: Any) -> httpx.Response:
    return httpx.post(f"{live.url}{PREFIX}/simulate/{path}", json=body, timeout=5)


class Mode:
    """One sandbox and a channel trusting it, in public-key or certificate mode."""

    def __init__(self, name: str, keys: WeChatPayKeys, receiver: Receiver):
        self.name = name
        certificate = issue_platform_certificate(keys) if name == "certificate" else None
        from cryptography import x509
        trusted = ({serial_hex(x509.load_pem_x509_certificate(certificate)): certificate} if certificate
                   else {keys.platform_public_key_id: keys.platform_public_key})
        self.serial = next(iter(trusted))
        self.live = serve(create_sandbox_app(keys, platform_certificate=certificate,
                                             notify_retry_delays=(0.05, 0.1, 0.2)), ("/merchant", receiver.app()))
        self.channel = WeChatPayChannel(self.live.url + PREFIX, keys.mchid, keys.appid, keys.merchant_private_key,
                                        keys.merchant_serial_no, keys.apiv3_key, trusted,
                                        refund_notify_url=f"{self.live.url}/merchant/notify/{name}-refunds")

    def close(self) -> None:
        self.channel.shutdown()
        self.live.stop()


@pytest.fixture(scope="module", params=["public_key", "certificate"])
def mode(request: pytest.FixtureRequest, keys: WeChatPayKeys, receiver: Receiver) -> Iterator[Mode]:
    current = Mode(request.param, keys, receiver)
    yield current
    current.close()


def test_code_payment_succeeds_at_once(mode: Mode) -> None:
    out_trade_no, code = trade_no(), auth_code()
    state = mode.channel.pay_by_code(out_trade_no, "门诊缴费", 3650, code)
    assert (state.out_trade_no, state.state, state.amount_fen) == (out_trade_no, "SUCCESS", 3650)
    assert state.transaction_id and state.success_time and state.paid
    assert mode.channel.query(out_trade_no) == state
    assert mode.channel.pay_by_code(out_trade_no, "门诊缴费", 3650, code) == state  # a retry: same answer
    with pytest.raises(ChannelError) as changed:  # same number, other amount: refused, never charged twice
        mode.channel.pay_by_code(out_trade_no, "门诊缴费", 3651, code)
    assert changed.value.code == "INVALID_REQUEST"
    with pytest.raises(ChannelError) as reused:  # a payment code pays once
        mode.channel.pay_by_code(trade_no(), "门诊缴费", 100, code)
    assert reused.value.code == "INVALID_REQUEST"
    assert sandbox_trade(mode.live, out_trade_no)["trade_type"] == "MICROPAY"


def test_code_payment_userpaying_then_confirmed(mode: Mode) -> None:
    assert post_simulate(mode.live, "codepay", result="USERPAYING").status_code == 200
    out_trade_no = trade_no()
    state = mode.channel.pay_by_code(out_trade_no, "门诊缴费", 990, auth_code())
    assert (state.state, state.transaction_id, state.paid) == ("USERPAYING", None, False)
    polled = [mode.channel.query(out_trade_no).state for _ in range(2)]
    assert polled == ["USERPAYING", "USERPAYING"]
    assert post_simulate(mode.live, "confirm", out_trade_no=out_trade_no).status_code == 200
    deadline = time.monotonic() + 5
    while (final := mode.channel.query(out_trade_no)).state == "USERPAYING":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert final.state == "SUCCESS" and final.amount_fen == 990 and final.transaction_id


def test_code_payment_past_the_deadline_is_reversed(mode: Mode) -> None:
    post_simulate(mode.live, "codepay", result="USERPAYING")
    out_trade_no = trade_no()
    assert mode.channel.pay_by_code(out_trade_no, "门诊缴费", 500, auth_code()).state == "USERPAYING"
    deadline = time.monotonic() + 0.3  # the kiosk's deadline, shortened
    while time.monotonic() < deadline:
        assert mode.channel.query(out_trade_no).state == "USERPAYING"
        time.sleep(0.05)
    mode.channel.reverse(out_trade_no)
    mode.channel.reverse(out_trade_no)  # idempotent: a reverse whose answer was lost is simply repeated
    assert mode.channel.query(out_trade_no).state == "CLOSED"  # REVOKED, which the order logic sees as CLOSED
    assert sandbox_trade(mode.live, out_trade_no)["trade_state"] == "REVOKED"
    late = post_simulate(mode.live, "confirm", out_trade_no=out_trade_no)  # the phone confirms too late
    assert late.status_code == 400 and late.json()["code"] == "NOT_USERPAYING"
    assert mode.channel.query(out_trade_no).state == "CLOSED"


def test_declined_code_payment_then_reverse(mode: Mode) -> None:
    post_simulate(mode.live, "codepay", result="USERPAYING")
    out_trade_no = trade_no()
    mode.channel.pay_by_code(out_trade_no, "门诊缴费", 500, auth_code())
    assert post_simulate(mode.live, "decline", out_trade_no=out_trade_no).json()["trade_state"] == "PAYERROR"
    assert mode.channel.query(out_trade_no).state == "PAYERROR"
    mode.channel.reverse(out_trade_no)
    assert mode.channel.query(out_trade_no).state == "CLOSED"


def test_reverse_of_a_paid_trade_refunds_it(mode: Mode) -> None:
    out_trade_no = trade_no()
    paid = mode.channel.pay_by_code(out_trade_no, "门诊缴费", 2200, auth_code())
    mode.channel.reverse(out_trade_no)
    mode.channel.reverse(out_trade_no)
    state = mode.channel.query(out_trade_no)
    assert (state.state, state.paid, state.transaction_id, state.amount_fen) == ("REFUND", True,
                                                                                  paid.transaction_id, 2200)
    trade = sandbox_trade(mode.live, out_trade_no)
    assert trade["refunded"] == 2200 and len(trade["refunds"]) == 1
    assert mode.channel.query_refund(trade["refunds"][0]["out_refund_no"]) == "SUCCESS"
    with pytest.raises(ChannelError) as missing:
        mode.channel.reverse(trade_no())
    assert missing.value.code == "ORDER_NOT_EXIST"


def test_query_refund(mode: Mode) -> None:
    out_trade_no = trade_no()
    mode.channel.pay_by_code(out_trade_no, "门诊缴费", 800, auth_code())
    assert mode.channel.refund(out_trade_no, "RQ" + out_trade_no, 300, 800, "部分退费") == "SUCCESS"
    assert mode.channel.query_refund("RQ" + out_trade_no) == "SUCCESS"
    with pytest.raises(ChannelError) as missing:
        mode.channel.query_refund("RQ-none-" + out_trade_no)
    assert missing.value.code == "RESOURCE_NOT_EXISTS"
    with pytest.raises(ValueError):
        mode.channel.query_refund("no spaces allowed")


def test_notifications_verify_in_each_mode(mode: Mode, receiver: Receiver) -> None:
    out_trade_no = trade_no()
    code_url = mode.channel.create_native(out_trade_no, "挂号费", 1300, f"{mode.live.url}/merchant/notify/"
                                          f"{mode.name}-pay", in_minutes(5))
    assert simulate_pay(mode.live, code_url).status_code == 200
    headers, body = receiver.box(f"{mode.name}-pay").get(timeout=10)
    assert headers["wechatpay-serial"] == mode.serial
    assert mode.channel.parse_notification(headers, body).state == "SUCCESS"
    mode.channel.refund(out_trade_no, "RN" + out_trade_no, 1300, 1300, "退号")
    headers, body = receiver.box(f"{mode.name}-refunds").get(timeout=10)
    assert headers["wechatpay-serial"] == mode.serial
    assert mode.channel.parse_notification(headers, body).state == "REFUND"


def test_code_payment_parameters(mode: Mode, keys: WeChatPayKeys) -> None:
    for bad in ("", "12345678901234567", "163456789012345678", "1234567890123456789", "13456789012345678x"):
        with pytest.raises(ValueError):
            mode.channel.pay_by_code(trade_no(), "门诊缴费", 100, bad)
    payload = {"appid": keys.appid, "mchid": keys.mchid, "description": "门诊缴费", "out_trade_no": trade_no(),
               "payer": {"auth_code": auth_code()}, "amount": {"total": 100, "currency": "CNY"},
               "scene_info": {"store_info": {"id": "KIOSK"}}}
    cases = [({"payer": {"auth_code": "283456789012345678"}}, "PARAM_ERROR"),  # an Alipay code
             ({"payer": {}}, "PARAM_ERROR"), ({"scene_info": {"device_id": "K1"}}, "PARAM_ERROR"),
             ({"amount": {"total": 0}}, "PARAM_ERROR"), ({"appid": "wx0000000000000000"}, "APPID_MCHID_NOT_MATCH")]
    for change, code in cases:
        answer = signed_request(keys, mode.live, "POST", "/v3/pay/transactions/codepay", {**payload, **change})
        assert (answer.status_code, answer.json()["code"]) == (400, code), change
    reverse = signed_request(keys, mode.live, "POST", f"/v3/pay/transactions/out-trade-no/{trade_no()}/reverse",
                             {"mchid": keys.mchid})
    assert (reverse.status_code, reverse.json()["code"]) == (400, "APPID_MCHID_NOT_MATCH")


def test_userpaying_in_every_documented_shape(keys: WeChatPayKeys) -> None:
    """202, a 200 carrying trade_state USERPAYING, or an error coded USERPAYING: each means "wait and query"."""
    private = load_private_key(keys.platform_private_key)
    shapes = {"202": (202, {"code": "USERPAYING", "message": "需要用户输入支付密码"}),
              "200": (200, {"trade_state": "USERPAYING"}),
              "400": (400, {"code": "USERPAYING", "message": "需要用户输入支付密码"})}
    app = FastAPI()

    @app.post("/{shape}/v3/pay/transactions/codepay")
    async def codepay(shape: str) -> Response:
        status, payload = shapes[shape]
        body = json.dumps(payload).encode()
        return Response(body, status, headers=_platform_headers(private, keys.platform_public_key_id, body))

    live = LiveServer(app)
    try:
        for shape in shapes:
            with WeChatPayChannel.from_keys(f"{live.url}/{shape}", keys) as ch:
                state = ch.pay_by_code(trade_no(), "门诊缴费", 100, auth_code())
                assert (state.state, state.amount_fen) == ("USERPAYING", 100), shape
    finally:
        live.stop()


# --- the daily bill -------------------------------------------------------------------------------------------

def today_in_china() -> date:
    return datetime.now(CHINA_TZ).date()


def test_bill_lines_equal_the_trades_made(keys: WeChatPayKeys) -> None:
    live = serve(create_sandbox_app(keys))  # a fresh service: the day's bill holds exactly these trades
    try:
        with WeChatPayChannel.from_keys(live.url + PREFIX, keys) as ch:
            assert ch.download_bill(today_in_china()) == []  # NO_STATEMENT_EXIST: nothing happened yet
            native_no, code_no, reversed_no = trade_no(), trade_no(), trade_no()
            code_url = ch.create_native(native_no, "挂号费，内科", 2350, "http://127.0.0.1:9/n", in_minutes(5))
            simulate_pay(live, code_url)
            ch.pay_by_code(code_no, "检验费", 1800, auth_code())
            ch.refund(code_no, "R-" + code_no, 500, 1800, "部分退费")
            ch.pay_by_code(reversed_no, "药费", 990, auth_code())
            ch.reverse(reversed_no)
            post_simulate(live, "codepay", result="USERPAYING")
            ch.pay_by_code(trade_no(), "药费", 100, auth_code())  # never paid: not on the bill
            expected = set()
            for no in (native_no, code_no, reversed_no):
                trade = sandbox_trade(live, no)
                expected.add(("PAY", no, trade["transaction_id"], trade["amount"]["total"], None))
                for refund in trade["refunds"]:
                    expected.add(("REFUND", no, trade["transaction_id"], refund["amount"]["refund"],
                                  refund["out_refund_no"]))
            lines = ch.download_bill(today_in_china())
            assert {(b.kind, b.out_trade_no, b.transaction_id, b.amount_fen, b.out_refund_no) for b in lines} \
                == expected
            assert len(lines) == 5 and all(len(b.time) == 19 for b in lines)
            assert ch.download_bill(today_in_china() - timedelta(days=1)) == []
            with pytest.raises(ChannelError):  # the service has no bills of the future
                ch.download_bill(today_in_china() + timedelta(days=1))
    finally:
        live.stop()


def test_bill_hash_mismatch_is_unavailable(mode: Mode) -> None:
    """A file that does not match its signed hash is no statement at all: retry later, record no failure."""
    mode.channel.pay_by_code(trade_no(), "检验费", 100, auth_code())
    post_simulate(mode.live, "bill", corrupt_next=1)
    with pytest.raises(ChannelUnavailable):
        mode.channel.download_bill(today_in_china())
    assert mode.channel.download_bill(today_in_china())  # the next download is intact


def test_bill_whose_summary_disagrees_is_a_channel_error(mode: Mode) -> None:
    day = today_in_china() - timedelta(days=3)
    good = ("交易时间,微信订单号,商户订单号,交易状态,应结订单金额,商户退款单号,退款金额\r\n"
            "`2026-01-01 10:00:00,`4200001,`K000001,`SUCCESS,`12.30,`0,`0.00\r\n"
            "总交易单数,应结订单总金额,退款总金额\r\n`1,`12.30,`0.00\r\n")
    post_simulate(mode.live, "bill", bill_date=day.isoformat(), content=good)
    assert mode.channel.download_bill(day) == [BillLine("K000001", "4200001", "PAY", 1230, "2026-01-01 10:00:00")]
    post_simulate(mode.live, "bill", bill_date=day.isoformat(), content=good.replace("`1,`12.30", "`1,`12.31"))
    with pytest.raises(ChannelError) as broken:
        mode.channel.download_bill(day)
    assert broken.value.code == "INVALID_BILL"
    post_simulate(mode.live, "bill", bill_date=day.isoformat(), content=None)


def test_parse_trade_bill_refuses_what_is_not_a_bill() -> None:
    header = "交易时间,微信订单号,商户订单号,交易状态,应结订单金额,商户退款单号,退款金额,申请退款金额"
    refund = "`2026-01-01 11:00:00,`4200001,`K000001,`REFUND,`0.00,`RK1,`5.00,`5.00"
    bill = f"{header}\n{refund}\n总交易单数,应结订单总金额,退款总金额\n`1,`0.00,`5.00\n"
    assert parse_trade_bill(bill) == [BillLine("K000001", "4200001", "REFUND", 500, "2026-01-01 11:00:00", "RK1")]
    for broken in ("", header, bill.replace("`5.00,`5.00", "`5.001,`5.001"), bill.replace("REFUND", "WHATEVER"),
                   bill.replace("`1,`0.00", "`2,`0.00"), bill.replace(",`RK1", ""), "a,b\n`1,`2\n"):
        with pytest.raises(ValueError):
            parse_trade_bill(broken)


# --- platform keys: both modes, rotation, validity ------------------------------------------------------------

def test_keyring_with_certificate_and_public_key_accepts_both(keys: WeChatPayKeys) -> None:
    """While a merchant moves from certificates to the platform public key, both serials must verify."""
    from cryptography import x509
    certificate = issue_platform_certificate(keys)
    serial = serial_hex(x509.load_pem_x509_certificate(certificate))
    with WeChatPayChannel(
            "http://127.0.0.1:9", keys.mchid, keys.appid, keys.merchant_private_key, keys.merchant_serial_no,
            keys.apiv3_key, {serial: certificate, keys.platform_public_key_id: keys.platform_public_key}) as ch:
        transaction = paid_transaction(keys)
        assert ch.parse_notification(*sign_notification(keys, transaction)).state == "SUCCESS"
        assert ch.parse_notification(*sign_notification(keys, transaction, serial=serial)).state == "SUCCESS"
        assert ch.parse_notification(*sign_notification(keys, transaction, serial=serial.lower())).paid


def test_expired_platform_certificate_is_refused(keys: WeChatPayKeys) -> None:
    from cryptography import x509
    expired = issue_platform_certificate(keys, days=0)  # valid from five minutes ago until now
    serial = serial_hex(x509.load_pem_x509_certificate(expired))
    time.sleep(1.1)
    with WeChatPayChannel("http://127.0.0.1:9", keys.mchid, keys.appid, keys.merchant_private_key,
                          keys.merchant_serial_no, keys.apiv3_key, {serial: expired}) as ch:
        with pytest.raises(SignatureError, match="not valid now"):
            ch.parse_notification(*sign_notification(keys, paid_transaction(keys), serial=serial))


# --- garbage in, only the two refusals out ----------------------------------------------------------------------

_header_names = st.sampled_from(["Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Signature",
                                 "Wechatpay-Serial", "Content-Type", "X-Other"])
_json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                            lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12),
                                                                                        inner, max_size=5),
                            max_leaves=12)


def _transaction_like(keys: WeChatPayKeys) -> st.SearchStrategy[Any]:
    """Objects shaped like a transaction with any field replaced by junk: the parser's hardest inputs."""
    base = paid_transaction(keys)
    return st.one_of(_json_values, st.fixed_dictionaries(
        {}, optional={k: st.one_of(st.just(v), _json_values) for k, v in base.items()}))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_garbage_notifications_are_only_ever_refused(channel: WeChatPayChannel, keys: WeChatPayKeys,
                                                     data: st.DataObject) -> None:
    """Whatever arrives at the notify URL, parse_notification answers SignatureError or ChannelError (or, for a
    well-formed authentic event, a TradeState); nothing else may escape into the web layer."""
    layer = data.draw(st.sampled_from(["raw", "signed", "signed_event", "encrypted"]))
    if layer == "raw":  # anything at all, headers included
        headers = data.draw(st.dictionaries(_header_names, st.text(max_size=40), max_size=6))
        body = data.draw(st.binary(max_size=300))
    elif layer == "signed":  # authentic signature over junk bytes
        body = data.draw(st.binary(max_size=300) | _json_values.map(lambda v: json.dumps(v).encode()))
        headers = _platform_headers(load_private_key(keys.platform_private_key), keys.platform_public_key_id, body)
    else:
        event_type = data.draw(st.sampled_from(["TRANSACTION.SUCCESS", "REFUND.SUCCESS"]) | st.text(max_size=10))
        if layer == "signed_event":  # authentic envelope, junk resource
            resource: Any = data.draw(_json_values)
        else:  # authentic and decryptable, junk transaction inside
            plaintext = json.dumps(data.draw(_transaction_like(keys))).encode()
            resource = {"algorithm": "AEAD_AES_256_GCM", "nonce": "0123456789ab", "associated_data": "transaction",
                        "ciphertext": encrypt_resource(keys.apiv3_key, plaintext, "transaction", "0123456789ab")}
        body = json.dumps({"id": "x", "event_type": event_type, "resource": resource}).encode()
        headers = _platform_headers(load_private_key(keys.platform_private_key), keys.platform_public_key_id, body)
    try:
        state = channel.parse_notification(headers, body)
    except (SignatureError, ChannelError):
        return
    assert layer == "encrypted" and isinstance(state, TradeState)
    assert isinstance(state.out_trade_no, str) and state.state in ("SUCCESS", "NOTPAY", "CLOSED", "USERPAYING",
                                                                   "REFUND", "PAYERROR")
    assert state.transaction_id is None or isinstance(state.transaction_id, str)
    assert state.success_time is None or isinstance(state.success_time, str)
    assert state.amount_fen is None or (isinstance(state.amount_fen, int) and state.amount_fen >= 0)
