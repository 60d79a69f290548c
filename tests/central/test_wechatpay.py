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
from datetime import datetime, timedelta, timezone
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

from central.payments.channel import ChannelError, ChannelUnavailable, SignatureError, TradeState
from central.payments.keys import WeChatPayKeys, ensure_sandbox_keys, issue_platform_certificate, serial_hex
from central.payments.wechatpay import WeChatPayChannel, build_authorization, load_private_key
from central.payments.wechatpay_sandbox import create_sandbox_app, sign_notification

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
