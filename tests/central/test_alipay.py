"""Alipay channel against its sandbox over real HTTP (uvicorn on loopback, the sandbox under a prefix), plus the
RSA2 primitives against a fixed vector and an independent implementation."""
from __future__ import annotations

import dataclasses
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
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from central.payments.alipay import (CHINA_TZ, AlipayChannel, canonical_string, fen_to_yuan, json_members,
                                     request_params, rsa2_verify, sign_params, signed_response_body,
                                     verify_params, yuan_to_fen)
from central.payments.alipay_keys import AlipayKeys, ensure_alipay_sandbox_keys, load_private_key
from central.payments.alipay_sandbox import create_sandbox_app, notification_body
from central.payments.channel import ChannelError, ChannelUnavailable, SignatureError, TradeState

PREFIX = "/sandbox/alipay"

# A key published here on purpose, for the fixed signature vector only; it protects nothing.
VECTOR_KEY = b"""-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDG4uE1Ss110i1W
ZpN/X+MM8EBH+/Rwk6n4ADJyfhjz3gkbquljtI2lj+oCHDwR0MijWBOvoDbQtZzc
kF8EGUZBgFIymimRejwX7zLSC0OQ7fdYzBbzVzDOnBZWldWQ+Pj6ktnSdAQxcNUQ
JpjKjzR7f6UE7Qak6OTUQqoafekMJOen/K4iz2cFMesw2KCjjLvLCzm3hVdyCoOo
iBnidzi4oeuZtW17lvGwB43FoDXyKh0j83c7X9cLS1JI/wMi4mNJwxNfFldpUrXA
56Sw/kgwKruQG0sAYHiUwztNLiu3iQ3iUv/rdIGX7+cgH+NoalGHacyr+qhFRG71
j1XKK42xAgMBAAECggEAFvSBx4EKOiKXlATZL6xADF1rIJkpNe3SgirM/R+maU3u
dts2U96M3hfrC5z5pplr8Zp4BInKjzKfAmrGuguMFdb7OxbwXEz47vmZ6oSyouGB
w9B5MlM/xrZc8lfEjhaGb4QP5bVOn0GQKJc5Lwvx+UfFd/jpjugd3Tfn4pCMxkIE
bxnMfxfN0izcldx+Qbf+5RKhWSIXTSIQK9UP0qfEc6vLr9cV4TjUeIfPj8bWjgrh
bPst2GgEgiTcnL93WDrF7eLxmS9H8wWLq6nnzrosvyhYLN39M1N02LXOyOIgy6yG
8dLcMHZYc2oZhSKSl2wZVeSc4gu6NlXgpwKlN2NdrwKBgQD8xQaIMLgQ6yAfdaum
UPDtcIkxH/A4rpdcETsv7Fn+ilNnEYsCTnBBJDxTrBvqXYUzRyRR/Pxu2xMYwo+W
HM+wH5F2kUKJks/L4P3F/x05LoYqZ0bjwsqkjfKFsXVd2rCvIcMq0yXsp8hvJZRX
KsLFuzqhkZcGjYCqR7HaWxmyWwKBgQDJbZEFDCs9SKTGtBUv8lZK8QQagORt/WUc
R4opBw45pxqMvALDYqsAQi91NHLThhxIGAyVXYG0qJbk3enDKpvrc/GWE3cLhO5d
4OAimQ+bIYgpLEa1V2LGUeR5bueGa2VDbxyzeLW07EcAg3OLfxczA6xBxeZsbb1c
ZiPemzXl4wKBgBkR4Yf4bQkgiNsV7KReOscR9kltBYJZrqFvBBPIuVRJm+QJFWRx
KykK0wDpfQtNozxmve9zzAWirM4z3dHhoaeyOdcsqRDEAuARvJm6p8dYGe5yt9E3
LKoNehRQeXeJjSSRkK3aq1RBf9umOoQ6tX6vBy2nJvd7aVt6KOWjS3UpAoGAZ9XL
hEaZo6XnC2eZ5HWQdmF4NBFtsCWIEePvHOc+NgombZYd9orOi/uSa2D2MIRZ3/BF
zFm/m1mtL54V+z3j0qSaTTsLiyyjlFFwOWWd3eKTRmZErQa3LHTayp6ZS3nhYbnN
mdcIFJQYpfMdhTOmye2CxwU1m3+WtiMRKpfoWPECgYEAyoJ2ZPUMev1kKc8G75Ve
Uugi3PEk7oo2lCqcLQK851zfkURI1TsCXaTJgg7UiBXf8LvdjZkd+k1Z1epReM7J
r2gyhL975dgtUU0UauFcoGRtR4uG+WhUXm03qkzBEXkkeVelMB5OddaLxZp6JK3Z
DrclnDc/BHKstxcZGKBhqaw=
-----END PRIVATE KEY-----
"""
VECTOR_PARAMS = {
    "app_id": "2014072300007148", "method": "alipay.trade.precreate", "format": "JSON", "charset": "utf-8",
    "sign_type": "RSA2", "timestamp": "2014-07-24 03:07:50", "version": "1.0",
    "notify_url": "https://example.com/alipay/notify", "app_auth_token": "",
    "biz_content": '{"out_trade_no":"20150320010101001","total_amount":"88.88","subject":"挂号费 内科"}'}
VECTOR_CANONICAL = (
    'app_id=2014072300007148&biz_content={"out_trade_no":"20150320010101001","total_amount":"88.88",'
    '"subject":"挂号费 内科"}&charset=utf-8&format=JSON&method=alipay.trade.precreate'
    '&notify_url=https://example.com/alipay/notify&sign_type=RSA2&timestamp=2014-07-24 03:07:50&version=1.0')
VECTOR_SIGNATURE = (
    "tsuEaSMm91yv140nZCV//1PBzdT/l0xTsLPLbBtOTzACDNhI4+91BnNeDipTwlZZG2rBhvdN6F+zXEnPHdfLZ9Z3YcqH75beZU2VTOlBKBmD6"
    "DnqcJk+LFD/PPmxfI+2Txh6kBnkW4qeiwZ/8A0iXbWmUUnJLKFAJ8bF6DCeluAjd2ujzF2wd84q4J8CvtbDro9sf1lCn8ZErg1E+Ta8RAHp"
    "bHortPEkqf0Xyil+NAsScst6EW3BHu/HVK1ttWzZpgt7l973pWEom532hjacVQhj2lvGAScdGoXXAsM4d4MYuYwyx6jX+TLa7HhKBkBJ28qq"
    "NPfWf3srRU9ZOc6zhw==")


class LiveServer:
    """An ASGI app served by uvicorn on a free loopback port, in a background thread."""

    def __init__(self, app: Any):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="critical", lifespan="off"))
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
    """The merchant's notify endpoint: answers "success" as Alipay requires, optionally failing first."""

    def __init__(self) -> None:
        self.inbox: dict[str, queue.Queue[bytes]] = {}
        self.refuse_first: dict[str, int] = {}
        self.lock = threading.Lock()

    def box(self, name: str) -> queue.Queue[bytes]:
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
                    return PlainTextResponse("fail")  # HTTP 200 but not "success": Alipay retries
            self.box(name).put(body)
            return PlainTextResponse("success")

        return app


def other_key() -> bytes:
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
def keys(tmp_path_factory: pytest.TempPathFactory) -> AlipayKeys:
    return ensure_alipay_sandbox_keys(tmp_path_factory.mktemp("alipay") / "keys")


@pytest.fixture(scope="module")
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture(scope="module")
def server(keys: AlipayKeys, receiver: Receiver) -> Iterator[LiveServer]:
    live = serve(create_sandbox_app(keys, notify_retry_delays=(0.05, 0.1, 0.2, 0.4)),
                 ("/merchant", receiver.app()))
    yield live
    live.stop()


def gateway(server: LiveServer) -> str:
    return server.url + PREFIX + "/gateway.do"


@pytest.fixture(scope="module")
def channel(server: LiveServer, keys: AlipayKeys) -> Iterator[AlipayChannel]:
    with AlipayChannel.from_keys(gateway(server), keys, timeout=2.0) as ch:
        yield ch


def trade_no() -> str:
    return "T" + uuid.uuid4().hex[:24]


def in_minutes(minutes: float) -> datetime:
    return datetime.now(timezone.utc) + timedelta(minutes=minutes)


def notify_url(server: LiveServer, name: str) -> str:
    return f"{server.url}/merchant/notify/{name}"


def simulate(server: LiveServer, what: str, **payload: Any) -> httpx.Response:
    return httpx.post(f"{server.url}{PREFIX}/simulate/{what}", json=payload, timeout=5)


def sandbox_trade(server: LiveServer, out_trade_no: str) -> dict[str, Any]:
    return httpx.get(f"{server.url}{PREFIX}/simulate/trades/{out_trade_no}", timeout=5).json()


def raw_call(server: LiveServer, keys: AlipayKeys, method: str, biz: dict[str, Any], *,
             private_key: bytes | None = None, **changes: str) -> dict[str, Any]:
    """A hand-built gateway call, to reach the sandbox's checks the channel never trips; returns the members."""
    params = request_params(keys.app_id, load_private_key(private_key or keys.app_private_key), method, biz)
    params.update(changes)
    answer = httpx.post(gateway(server), data=params, timeout=5)
    assert answer.status_code == 200
    return {k: v for k, (_, v) in json_members(answer.text).items()}


def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def paid_fields(out_trade_no: str = "K20260101000001", total: str = "15.00", **changes: str) -> dict[str, str]:
    fields = {"trade_no": "2026010122001419121412730660", "out_trade_no": out_trade_no,
              "trade_status": "TRADE_SUCCESS", "total_amount": total, "receipt_amount": total,
              "subject": "挂号费", "gmt_create": "2026-01-01 10:00:00", "gmt_payment": "2026-01-01 10:00:05",
              "buyer_id": "2088102122524333"}
    fields.update(changes)
    return fields


# --- primitives -----------------------------------------------------------------------------------------------

def test_canonical_string_and_signature_match_a_fixed_vector() -> None:
    key = load_private_key(VECTOR_KEY)
    assert canonical_string(VECTOR_PARAMS) == VECTOR_CANONICAL  # empty values and "sign" are left out
    signature = sign_params(key, VECTOR_PARAMS)
    assert signature == VECTOR_SIGNATURE  # PKCS#1 v1.5 is deterministic: same key and string, same bytes
    signed = dict(VECTOR_PARAMS, sign=signature)
    assert verify_params(key.public_key(), signed)
    assert canonical_string(signed) == VECTOR_CANONICAL
    assert not verify_params(key.public_key(), dict(signed, timestamp="2014-07-24 03:07:51"))
    assert canonical_string(dict(signed, sign_type="RSA2"), exclude=("sign", "sign_type")) == (
        VECTOR_CANONICAL.replace("&sign_type=RSA2", ""))


def test_signature_agrees_with_an_independent_implementation() -> None:
    Crypto = pytest.importorskip("Cryptodome")  # pycryptodomex, as Alipay's own Python SDK uses
    from Cryptodome.Hash import SHA256
    from Cryptodome.PublicKey import RSA
    from Cryptodome.Signature import pkcs1_15
    import base64
    assert Crypto
    theirs = pkcs1_15.new(RSA.import_key(VECTOR_KEY)).sign(SHA256.new(VECTOR_CANONICAL.encode("utf-8")))
    assert base64.b64encode(theirs).decode() == VECTOR_SIGNATURE


def test_amounts_convert_exactly_and_refuse_fractions_of_a_fen() -> None:
    assert [fen_to_yuan(f) for f in (0, 1, 10, 1250, 100_000_000_00)] == [
        "0.00", "0.01", "0.10", "12.50", "100000000.00"]
    assert [yuan_to_fen(y) for y in ("0.01", "12.5", "12.50", "88", "0.1")] == [1, 1250, 1250, 8800, 10]
    for bad in ("12.345", "1e3", "-1.00", "01.00", " 1.00", "1.", ".5", "NaN", "", "1,00"):
        with pytest.raises(ValueError):
            yuan_to_fen(bad)
    for bad_fen in (-1, 1.5, True):
        with pytest.raises(ValueError):
            fen_to_yuan(bad_fen)  # type: ignore[arg-type]


_KEYS = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz_"), min_size=1, max_size=12)
# "&" and "=" are left out: Alipay's canonical string does not escape them, so values containing them can be
# rearranged into other parameter sets with the same string; that is the protocol's property, not ours.
_VALUES = st.text(st.characters(blacklist_characters="&=", blacklist_categories=("Cs",)), min_size=1,
                  max_size=20)


@settings(max_examples=60, deadline=None)
@given(params=st.dictionaries(_KEYS, _VALUES, min_size=1, max_size=8), data=st.data())
def test_canonicalisation_is_deterministic_and_any_tampering_breaks_it(params: dict[str, str],
                                                                      data: st.DataObject) -> None:
    key = load_private_key(VECTOR_KEY)
    shuffled = dict(reversed(list(params.items())))
    assert canonical_string(params) == canonical_string(shuffled)
    signed = dict(params, sign=sign_params(key, params))
    assert verify_params(key.public_key(), signed)
    target = data.draw(st.sampled_from(sorted(params)))
    replacement = data.draw(_VALUES.filter(lambda v: v != params[target]))
    assert not verify_params(key.public_key(), dict(signed, **{target: replacement}))
    extra = data.draw(_KEYS.filter(lambda k: k not in signed))
    assert not verify_params(key.public_key(), dict(signed, **{extra: "1"}))
    if len(params) > 1:
        removed = {k: v for k, v in signed.items() if k != target}
        assert not verify_params(key.public_key(), removed)


@settings(max_examples=40, deadline=None)
@given(total=st.integers(min_value=1, max_value=10**11), subject=st.text(min_size=1, max_size=30),
       flip=st.integers(min_value=0))
def test_response_signature_covers_the_exact_member_text(total: int, subject: str, flip: int) -> None:
    key = load_private_key(VECTOR_KEY)
    payload = {"code": "10000", "msg": "Success", "total_amount": fen_to_yuan(total), "subject": subject}
    body = signed_response_body(key, "alipay_trade_query_response", payload)
    members = json_members(body.decode("utf-8"))
    raw, value = members["alipay_trade_query_response"]
    assert value == payload
    assert rsa2_verify(key.public_key(), raw.encode("utf-8"), members["sign"][1])
    start = body.index(b":") + 1
    position = start + flip % (len(raw.encode("utf-8")))
    corrupted = body[:position] + bytes([body[position] ^ 0x01]) + body[position + 1:]
    try:
        text = corrupted.decode("utf-8")
        tampered = json_members(text)["alipay_trade_query_response"][0]
    except (UnicodeDecodeError, ValueError, KeyError):
        return  # no longer readable: refused before any signature check
    assert not rsa2_verify(key.public_key(), tampered.encode("utf-8"), members["sign"][1])


def test_json_members_refuses_duplicates_and_trailing_data() -> None:
    with pytest.raises(ValueError):
        json_members('{"a_response":{"code":"10000"},"a_response":{"code":"40004"},"sign":"x"}')
    with pytest.raises(ValueError):
        json_members('{"a":1} {"b":2}')
    assert json_members(' { "a" : {"x": [1, 2]} , "sign" : "s" } ')["a"][0] == '{"x": [1, 2]}'


# --- keys -----------------------------------------------------------------------------------------------------

def test_sandbox_keys_are_generated_once_private_and_consistent(tmp_path: Path) -> None:
    first = ensure_alipay_sandbox_keys(tmp_path / "k")
    assert ensure_alipay_sandbox_keys(tmp_path / "k") == first
    files = [f for f in (tmp_path / "k").iterdir() if not f.name.startswith(".")]
    assert sorted(f.name for f in files) == ["alipay.json", "alipay_private_key.pem", "alipay_public_key.pem",
                                             "app_private_key.pem", "app_public_key.pem"]
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
    assert first.seller_id.startswith("2088") and len(first.seller_id) == 16
    assert "PRIVATE KEY" not in repr(first) and "PUBLIC KEY" not in repr(first)
    (tmp_path / "k" / "alipay_private_key.pem").write_bytes(other_key())
    with pytest.raises(ValueError):  # a sandbox key that does not match the public half is refused
        ensure_alipay_sandbox_keys(tmp_path / "k")


# --- QR payments ----------------------------------------------------------------------------------------------

def test_precreate_pay_notify_and_query(channel: AlipayChannel, server: LiveServer, receiver: Receiver) -> None:
    out_trade_no = trade_no()
    qr_code = channel.create_native(out_trade_no, "门诊挂号 内科", 2350, notify_url(server, "flow"), in_minutes(5))
    assert qr_code.startswith("https://qr.alipay.com/")
    # Alipay knows no trade until the code is scanned: "trade not exist" is an unpaid trade.
    assert channel.query(out_trade_no) == TradeState(out_trade_no, "NOTPAY", None, None, None)

    paid = simulate(server, "pay", qr_code=qr_code)
    assert paid.status_code == 200, paid.text
    transaction_id = paid.json()["trade_no"]

    body = receiver.box("flow").get(timeout=10)
    notified = channel.parse_notification({"content-type": "application/x-www-form-urlencoded"}, body)
    assert (notified.out_trade_no, notified.state, notified.transaction_id, notified.amount_fen) == (
        out_trade_no, "SUCCESS", transaction_id, 2350)
    assert notified.success_time and notified.paid
    form = dict(parse_qsl(body.decode()))
    assert form["total_amount"] == "23.50" and form["sign_type"] == "RSA2" and form["app_id"] == channel.app_id
    assert channel.query(out_trade_no) == notified

    again = simulate(server, "pay", qr_code=qr_code)
    assert again.status_code == 400 and again.json()["code"] == "TRADE_HAS_SUCCESS"


def test_notification_is_retried_until_success_repeated_and_dropped(channel: AlipayChannel, server: LiveServer,
                                                                    receiver: Receiver) -> None:
    receiver.refuse_first["retry"] = 2
    out_trade_no = trade_no()
    qr_code = channel.create_native(out_trade_no, "检验费", 800, notify_url(server, "retry"), in_minutes(5))
    assert simulate(server, "pay", qr_code=qr_code).status_code == 200
    assert channel.parse_notification({}, receiver.box("retry").get(timeout=10)).amount_fen == 800
    wait_for(lambda: sandbox_trade(server, out_trade_no)["notifications"][0]["delivered"])
    assert sandbox_trade(server, out_trade_no)["notifications"][0]["attempts"] == 3

    assert simulate(server, "notify/repeat", out_trade_no=out_trade_no).status_code == 200
    repeated = channel.parse_notification({}, receiver.box("retry").get(timeout=10))
    assert (repeated.out_trade_no, repeated.state) == (out_trade_no, "SUCCESS")  # the handler must be idempotent

    assert simulate(server, "notify/drop", count=1).status_code == 200
    lost = trade_no()
    qr_code = channel.create_native(lost, "检验费", 900, notify_url(server, "lost"), in_minutes(5))
    assert simulate(server, "pay", qr_code=qr_code).status_code == 200
    with pytest.raises(queue.Empty):
        receiver.box("lost").get(timeout=0.5)
    assert sandbox_trade(server, lost)["notifications"][0]["dropped"]
    assert channel.query(lost).state == "SUCCESS"  # a lost notification is why the order logic also queries
    assert simulate(server, "notify/repeat", out_trade_no=lost).status_code == 200
    assert channel.parse_notification({}, receiver.box("lost").get(timeout=10)).out_trade_no == lost


def test_create_is_idempotent_and_refuses_a_changed_duplicate(channel: AlipayChannel, server: LiveServer) -> None:
    out_trade_no, expire = trade_no(), in_minutes(10)
    first = channel.create_native(out_trade_no, "挂号费", 500, notify_url(server, "idem"), expire)
    assert channel.create_native(out_trade_no, "挂号费", 500, notify_url(server, "idem"), expire) == first
    with pytest.raises(ChannelError) as refused:
        channel.create_native(out_trade_no, "挂号费", 600, notify_url(server, "idem"), expire)
    assert refused.value.code == "ACQ.CONTEXT_INCONSISTENT"


def test_close_makes_an_unscanned_code_unpayable(channel: AlipayChannel, server: LiveServer) -> None:
    out_trade_no = trade_no()
    qr_code = channel.create_native(out_trade_no, "挂号费", 500, notify_url(server, "closed"), in_minutes(5))
    channel.close(out_trade_no)  # unscanned: Alipay's close says "not exist", so the channel cancels
    channel.close(out_trade_no)  # harmless again: callers retry after unknown outcomes
    assert channel.query(out_trade_no).state == "CLOSED"
    refused = simulate(server, "pay", qr_code=qr_code)
    assert refused.status_code == 400 and refused.json()["code"] == "TRADE_HAS_CLOSE"


def test_closing_a_paid_trade_is_refused(channel: AlipayChannel, server: LiveServer) -> None:
    out_trade_no = trade_no()
    qr_code = channel.create_native(out_trade_no, "挂号费", 500, notify_url(server, "x"), in_minutes(5))
    assert simulate(server, "pay", qr_code=qr_code).status_code == 200
    with pytest.raises(ChannelError) as refused:
        channel.close(out_trade_no)
    assert refused.value.code == "ACQ.TRADE_STATUS_ERROR"
    assert channel.query(out_trade_no).state == "SUCCESS"


def test_expired_code_cannot_be_paid(channel: AlipayChannel, server: LiveServer) -> None:
    out_trade_no = trade_no()
    qr_code = channel.create_native(out_trade_no, "挂号费", 500, notify_url(server, "x"),
                                    datetime.now(timezone.utc) + timedelta(seconds=1.5))
    time.sleep(2.1)
    refused = simulate(server, "pay", qr_code=qr_code)
    assert refused.status_code == 400 and refused.json()["code"] == "TRADE_HAS_CLOSE"
    assert channel.query(out_trade_no).state == "NOTPAY"


# --- payment codes --------------------------------------------------------------------------------------------

AUTH_CODE = "281234567890123456"


def poll(channel: AlipayChannel, out_trade_no: str, deadline: float) -> TradeState:
    """What the order logic does after USERPAYING: query until paid, closed or out of time."""
    while True:
        state = channel.query(out_trade_no)
        if state.state in ("SUCCESS", "CLOSED") or time.monotonic() >= deadline:
            return state
        time.sleep(0.05)


def test_payment_code_paid_at_once(channel: AlipayChannel, server: LiveServer) -> None:
    out_trade_no = trade_no()
    state = channel.pay_by_code(out_trade_no, "挂号费", 1999, AUTH_CODE)
    assert (state.state, state.amount_fen) == ("SUCCESS", 1999) and state.transaction_id and state.success_time
    assert channel.pay_by_code(out_trade_no, "挂号费", 1999, AUTH_CODE) == state  # a retry gets the same answer
    assert channel.query(out_trade_no) == state


def test_payment_code_user_paying_then_confirmed(channel: AlipayChannel, server: LiveServer) -> None:
    assert simulate(server, "next_code", result="userpaying").status_code == 200
    out_trade_no = trade_no()
    state = channel.pay_by_code(out_trade_no, "挂号费", 1200, AUTH_CODE)
    assert state.state == "USERPAYING" and not state.paid
    assert channel.query(out_trade_no).state == "NOTPAY"  # WAIT_BUYER_PAY
    threading.Timer(0.3, lambda: simulate(server, "confirm", out_trade_no=out_trade_no, result="success")).start()
    final = poll(channel, out_trade_no, time.monotonic() + 5)
    assert (final.state, final.amount_fen) == ("SUCCESS", 1200)


def test_payment_code_refused_by_the_payer(channel: AlipayChannel, server: LiveServer) -> None:
    assert simulate(server, "next_code", result="userpaying").status_code == 200
    out_trade_no = trade_no()
    assert channel.pay_by_code(out_trade_no, "挂号费", 1200, AUTH_CODE).state == "USERPAYING"
    assert simulate(server, "confirm", out_trade_no=out_trade_no, result="fail").status_code == 200
    assert channel.query(out_trade_no).state == "CLOSED"


def test_user_paying_past_the_deadline_is_reversed(channel: AlipayChannel, server: LiveServer) -> None:
    assert simulate(server, "next_code", result="userpaying").status_code == 200
    out_trade_no = trade_no()
    assert channel.pay_by_code(out_trade_no, "挂号费", 1500, AUTH_CODE).state == "USERPAYING"
    assert poll(channel, out_trade_no, time.monotonic() + 0.3).state == "NOTPAY"
    channel.reverse(out_trade_no)
    channel.reverse(out_trade_no)  # idempotent
    assert channel.query(out_trade_no).state == "CLOSED"
    late = simulate(server, "confirm", out_trade_no=out_trade_no, result="success")
    assert late.status_code == 400  # the phone can no longer pay it


def test_reverse_after_a_last_second_payment_refunds(channel: AlipayChannel, server: LiveServer) -> None:
    assert simulate(server, "next_code", result="userpaying").status_code == 200
    out_trade_no = trade_no()
    assert channel.pay_by_code(out_trade_no, "挂号费", 1500, AUTH_CODE).state == "USERPAYING"
    assert simulate(server, "confirm", out_trade_no=out_trade_no, result="success").status_code == 200
    channel.reverse(out_trade_no)  # the kiosk gave up just as the patient confirmed
    state = channel.query(out_trade_no)
    assert (state.state, state.amount_fen) == ("REFUND", 1500) and state.paid
    assert sandbox_trade(server, out_trade_no)["refunded"] == "15.00"


def test_reversing_a_trade_alipay_never_saw_blocks_it(channel: AlipayChannel, server: LiveServer) -> None:
    out_trade_no = trade_no()
    channel.reverse(out_trade_no)  # the pay request may have been lost on the way: cancel anyway
    with pytest.raises(ChannelError) as refused:
        channel.pay_by_code(out_trade_no, "挂号费", 100, AUTH_CODE)
    assert refused.value.code == "ACQ.TRADE_HAS_CLOSE"


def test_payment_code_business_refusals(channel: AlipayChannel, server: LiveServer, keys: AlipayKeys) -> None:
    assert simulate(server, "next_code", result="refuse").status_code == 200
    with pytest.raises(ChannelError) as refused:
        channel.pay_by_code(trade_no(), "挂号费", 100, AUTH_CODE)
    assert refused.value.code == "ACQ.BUYER_BALANCE_NOT_ENOUGH" and refused.value.message
    with pytest.raises(ValueError):
        channel.pay_by_code(trade_no(), "挂号费", 100, "not-a-code")
    answer = raw_call(server, keys, "alipay.trade.pay", {"out_trade_no": trade_no(), "scene": "bar_code",
                                                         "auth_code": "1234567890123456", "subject": "x",
                                                         "total_amount": "1.00"})
    assert answer["alipay_trade_pay_response"]["sub_code"] == "ACQ.PAYMENT_AUTH_CODE_INVALID"


# --- refunds and the bill -------------------------------------------------------------------------------------

def paid_trade(channel: AlipayChannel, server: LiveServer, amount_fen: int, name: str = "x") -> str:
    out_trade_no = trade_no()
    qr_code = channel.create_native(out_trade_no, "挂号费", amount_fen, notify_url(server, name), in_minutes(5))
    assert simulate(server, "pay", qr_code=qr_code).status_code == 200
    return out_trade_no


def test_refund_partial_then_rest_never_more(channel: AlipayChannel, server: LiveServer,
                                             receiver: Receiver) -> None:
    out_trade_no = trade_no()
    qr_code = channel.create_native(out_trade_no, "挂号费", 1000, notify_url(server, "refund"), in_minutes(5))
    with pytest.raises(ChannelError):  # not scanned yet: no trade to refund
        channel.refund(out_trade_no, "R0" + out_trade_no, 1000, 1000, "未支付")
    assert simulate(server, "pay", qr_code=qr_code).status_code == 200
    receiver.box("refund").get(timeout=10)

    assert channel.refund(out_trade_no, "R1" + out_trade_no, 300, 1000, "患者取消") == "SUCCESS"
    # The repeat answers fund_change=N; the channel settles it with a refund query, as Alipay advises.
    assert channel.refund(out_trade_no, "R1" + out_trade_no, 300, 1000, "患者取消") == "SUCCESS"
    with pytest.raises(ChannelError) as too_much:
        channel.refund(out_trade_no, "R2" + out_trade_no, 701, 1000, "超额")
    assert too_much.value.code == "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL"
    with pytest.raises(ValueError):
        channel.refund(out_trade_no, "R2" + out_trade_no, 1001, 1000, "超额")
    partial = channel.parse_notification({}, receiver.box("refund").get(timeout=10))
    assert (partial.state, partial.amount_fen) == ("REFUND", 1000)
    assert channel.query(out_trade_no).state == "SUCCESS"  # partly refunded: still paid and open

    assert channel.refund(out_trade_no, "R3" + out_trade_no, 700, 1000, "余额") == "SUCCESS"
    state = channel.query(out_trade_no)
    assert (state.state, state.amount_fen) == ("REFUND", 1000) and state.paid  # closed by the full refund

    assert channel.query_refund("R1" + out_trade_no) == "SUCCESS"
    assert channel.query_refund("R3" + out_trade_no, out_trade_no=out_trade_no) == "SUCCESS"
    assert channel.query_refund("R9" + out_trade_no, out_trade_no=out_trade_no) == "PROCESSING"
    with pytest.raises(ValueError):  # Alipay needs the trade number; this instance never saw the refund
        channel.query_refund("R9" + trade_no())


def test_bill_lists_the_days_payments_and_refunds(channel: AlipayChannel, server: LiveServer) -> None:
    paid = paid_trade(channel, server, 2550)
    refunded = paid_trade(channel, server, 1000)
    assert channel.refund(refunded, "RB" + refunded, 400, 1000, "部分退款") == "SUCCESS"
    open_trade = trade_no()
    channel.create_native(open_trade, "挂号费", 300, notify_url(server, "x"), in_minutes(5))

    lines = channel.download_bill(datetime.now(CHINA_TZ).date())
    mine = sorted(((line.out_trade_no, line.kind, line.amount_fen, line.out_refund_no) for line in lines
                   if line.out_trade_no in (paid, refunded, open_trade)), key=str)
    assert mine == sorted([(paid, "PAY", 2550, None), (refunded, "PAY", 1000, None),
                           (refunded, "REFUND", 400, "RB" + refunded)], key=str)
    by_trade = {line.out_trade_no: line for line in lines if line.kind == "PAY"}
    assert by_trade[paid] .transaction_id == channel.query(paid).transaction_id
    assert by_trade[paid].time == channel.query(paid).success_time
    yesterday = datetime.now(CHINA_TZ).date() - timedelta(days=1)
    assert [line for line in channel.download_bill(yesterday) if line.out_trade_no == paid] == []
    with pytest.raises(ChannelError):
        channel.download_bill(datetime.now(CHINA_TZ).date() + timedelta(days=2))


# --- notifications and answers that must be proven ------------------------------------------------------------

def test_forged_notifications_are_refused(channel: AlipayChannel, keys: AlipayKeys) -> None:
    body = notification_body(keys, paid_fields())
    state = channel.parse_notification({}, body)
    assert (state.out_trade_no, state.state, state.amount_fen) == ("K20260101000001", "SUCCESS", 1500)

    forgeries = {
        "signed by another key": notification_body(keys, paid_fields(), alipay_private_key=other_key()),
        "another app": notification_body(keys, paid_fields(app_id="2021009999999999")),
        "another seller": notification_body(keys, paid_fields(seller_id="2088000000000000")),
        "tampered amount": body.replace(b"total_amount=15.00", b"total_amount=0.01"),
        "tampered status": body.replace(b"trade_status=TRADE_SUCCESS", b"trade_status=TRADE_FINISHED"),
        "added parameter": body + b"&refund_fee=15.00",
        "no signature": b"&".join(p for p in body.split(b"&") if not p.startswith(b"sign=")),
        "weaker sign_type": body.replace(b"sign_type=RSA2", b"sign_type=RSA"),
        "repeated parameter": body + b"&total_amount=15.00",
        "not a form": b"\xff\xfe{}",
        "empty": b"",
    }
    for what, forged in forgeries.items():
        with pytest.raises(SignatureError):
            channel.parse_notification({}, forged)
        assert what
    # Authentic but meaningless to us: understood as a definite "cannot use this", not as a payment.
    with pytest.raises(ChannelError):
        channel.parse_notification({}, notification_body(keys, paid_fields(trade_status="SOMETHING_NEW")))
    with pytest.raises(ChannelError):
        channel.parse_notification({}, notification_body(keys, paid_fields(total_amount="1.005")))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(total=st.integers(min_value=1, max_value=10**11), flip=st.integers(min_value=0))
def test_notification_round_trip_and_any_value_change(channel: AlipayChannel, keys: AlipayKeys, total: int,
                                                      flip: int) -> None:
    body = notification_body(keys, paid_fields("N" + str(total), fen_to_yuan(total)))
    state = channel.parse_notification({}, body)
    assert (state.out_trade_no, state.amount_fen) == ("N" + str(total), total)
    params = dict(parse_qsl(body.decode(), keep_blank_values=True))
    names = sorted(k for k in params if k not in ("sign", "sign_type"))
    name = names[flip % len(names)]
    params[name] = params[name] + "0"
    with pytest.raises(SignatureError):
        channel.parse_notification({}, urlencode(params).encode())


def fake_gateway(keys: AlipayKeys, answer: bytes, status: int = 200) -> FastAPI:
    app = FastAPI()

    @app.post("/gateway.do")
    async def gateway_do() -> Response:
        return Response(answer, status_code=status, media_type="application/json")

    return app


def test_answer_signed_by_another_key_is_a_signature_error(keys: AlipayKeys,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    impostor = dataclasses.replace(keys, alipay_private_key=other_key())  # a gateway that is not Alipay
    live = serve(create_sandbox_app(impostor))
    try:
        with AlipayChannel.from_keys(gateway(live), keys) as ch, caplog.at_level(logging.WARNING):
            out_trade_no = trade_no()
            with pytest.raises(SignatureError):
                ch.create_native(out_trade_no, "挂号费", 100, "http://127.0.0.1:9/n", in_minutes(5))
            with pytest.raises(SignatureError):  # refusals must prove themselves too
                ch.query(trade_no())
        assert any("signature does not verify" in r.getMessage() for r in caplog.records)
        # The refused answer did create the trade: an unproven answer is an unknown outcome, not a failure.
        assert sandbox_trade(live, out_trade_no)["trade_status"] == "WAIT_BUYER_PAY"
    finally:
        live.stop()


def test_unproven_and_unavailable_answers(keys: AlipayKeys) -> None:
    alipay_key = load_private_key(keys.alipay_private_key)
    ok = {"code": "10000", "msg": "Success", "out_trade_no": "T1", "qr_code": "https://qr.alipay.com/forged"}
    cases = [
        ("unsigned", signed_response_body(alipay_key, "alipay_trade_precreate_response", ok, sign=False),
         200, ChannelUnavailable),
        ("garbage", b"<html>gateway busy</html>", 200, ChannelUnavailable),
        ("tampered", signed_response_body(alipay_key, "alipay_trade_precreate_response", ok)
         .replace(b"forged", b"forgeD"), 200, SignatureError),
        ("unavailable", signed_response_body(alipay_key, "alipay_trade_precreate_response", {
            "code": "20000", "msg": "Service Currently Unavailable", "sub_code": "isp.unknow-error",
            "sub_msg": "系统繁忙"}), 200, ChannelUnavailable),
        ("system error", signed_response_body(alipay_key, "alipay_trade_precreate_response", {
            "code": "40004", "msg": "Business Failed", "sub_code": "ACQ.SYSTEM_ERROR", "sub_msg": "系统错误"}),
         200, ChannelUnavailable),
        ("wrong member", signed_response_body(alipay_key, "alipay_trade_query_response", ok), 200,
         ChannelUnavailable),
        ("server error", b"", 502, ChannelUnavailable),
    ]
    apps = [(f"/{name.replace(' ', '-')}", fake_gateway(keys, answer, status)) for name, answer, status, _ in cases]
    outer = FastAPI()
    for prefix, app in apps:
        outer.mount(prefix, app)
    live = LiveServer(outer)
    try:
        for name, _, _, expected in cases:
            with AlipayChannel.from_keys(f"{live.url}/{name.replace(' ', '-')}/gateway.do", keys) as ch:
                with pytest.raises(expected):
                    ch.create_native("T1", "挂号费", 100, "http://127.0.0.1:9/n", in_minutes(5))
    finally:
        live.stop()


def test_sandbox_faults_are_unknown_outcomes(keys: AlipayKeys, server: LiveServer) -> None:
    with AlipayChannel.from_keys(gateway(server), keys, timeout=0.5) as ch:
        assert simulate(server, "fault", kind="http500").status_code == 200
        out_trade_no = trade_no()
        with pytest.raises(ChannelUnavailable):
            ch.create_native(out_trade_no, "挂号费", 100, notify_url(server, "x"), in_minutes(5))
        assert sandbox_trade(server, out_trade_no)["code"] == "NOT_FOUND"  # a 500 before processing
        qr_code = ch.create_native(out_trade_no, "挂号费", 100, notify_url(server, "x"), in_minutes(5))

        assert simulate(server, "fault", kind="drop", method="alipay.trade.pay").status_code == 200
        paid_no = trade_no()
        with pytest.raises(ChannelUnavailable):
            ch.pay_by_code(paid_no, "挂号费", 100, AUTH_CODE)
        assert ch.query(paid_no).state == "SUCCESS"  # processed, answer lost: the query settles it

        assert simulate(server, "fault", kind="hang").status_code == 200
        started = time.monotonic()
        with pytest.raises(ChannelUnavailable):
            ch.query(out_trade_no)
        assert time.monotonic() - started < 3

        assert simulate(server, "fault", kind="delay", seconds=0.2).status_code == 200
        started = time.monotonic()
        assert ch.query(out_trade_no).state == "NOTPAY"
        assert time.monotonic() - started >= 0.2
        assert simulate(server, "pay", qr_code=qr_code).status_code == 200
        assert ch.query(out_trade_no).state == "SUCCESS"


def test_sandbox_down_and_silent_listener_are_unavailable(keys: AlipayKeys) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with AlipayChannel.from_keys(f"http://127.0.0.1:{port}/gateway.do", keys, timeout=1.0) as ch:
        for call in (lambda: ch.query(trade_no()), lambda: ch.refund(trade_no(), "R1", 1, 1, ""),
                     lambda: ch.download_bill(datetime.now(CHINA_TZ).date())):
            with pytest.raises(ChannelUnavailable):
                call()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts, never answers
    try:
        with AlipayChannel.from_keys(f"http://127.0.0.1:{listener.getsockname()[1]}/gateway.do", keys,
                                     timeout=0.5) as ch, pytest.raises(ChannelUnavailable):
            ch.query(trade_no())
    finally:
        listener.close()


# --- the sandbox checks requests like the gateway -------------------------------------------------------------

def test_sandbox_refuses_unsigned_misdirected_and_invalid_requests(keys: AlipayKeys, server: LiveServer) -> None:
    def error(answer: dict[str, Any], method: str = "alipay.trade.precreate") -> tuple[str, str]:
        member = answer.get(method.replace(".", "_") + "_response") or answer["error_response"]
        return member["code"], member.get("sub_code", "")

    biz = {"out_trade_no": trade_no(), "total_amount": "1.00", "subject": "挂号费"}
    method = "alipay.trade.precreate"
    assert error(raw_call(server, keys, method, biz)) == ("10000", "")
    assert error(raw_call(server, keys, method, biz, private_key=other_key())) == ("40002", "isv.invalid-signature")
    tampered = raw_call(server, keys, method, biz, biz_content='{"out_trade_no":"X1","total_amount":"0.01",'
                                                              '"subject":"挂号费"}')
    assert error(tampered) == ("40002", "isv.invalid-signature")
    assert "sign" in tampered  # refusals are signed too, so the channel can trust them
    stale = (datetime.now(CHINA_TZ) - timedelta(minutes=20)).strftime("%Y-%m-%d %H:%M:%S")
    params = request_params(keys.app_id, load_private_key(keys.app_private_key), method, biz, timestamp=stale)
    answer = httpx.post(gateway(server), data=params, timeout=5).json()
    assert error(answer) == ("40002", "isv.invalid-timestamp")
    assert error(raw_call(server, keys, method, biz, sign_type="RSA")) == ("40002", "isv.invalid-signature-type")
    foreign = raw_call(server, keys, method, biz, app_id="2021009999999999")
    assert error(foreign) == ("40002", "isv.invalid-app-id") and "sign" not in foreign
    assert error(raw_call(server, keys, "alipay.trade.nonsense", biz)) == ("40002", "isv.invalid-method")

    invalid = [
        {"out_trade_no": "T" * 65, "total_amount": "1.00", "subject": "挂号费"},
        {"out_trade_no": "T-1", "total_amount": "1.00", "subject": "挂号费"},
        {"out_trade_no": trade_no(), "total_amount": "1.001", "subject": "挂号费"},
        {"out_trade_no": trade_no(), "total_amount": 1.5, "subject": "挂号费"},
        {"out_trade_no": trade_no(), "total_amount": "1.00", "subject": ""},
        {"out_trade_no": trade_no(), "total_amount": "1.00", "subject": "挂号费", "time_expire": "2020-01-01 00:00:00"},
    ]
    for case in invalid:
        assert error(raw_call(server, keys, method, case)) == ("40004", "ACQ.INVALID_PARAMETER"), case
    assert error(raw_call(server, keys, method, dict(biz, total_amount="0.00"))) == ("40004", "ACQ.TOTAL_FEE_EXCEED")
    assert error(raw_call(server, keys, method, dict(biz, total_amount="2.00"))) == (
        "40004", "ACQ.CONTEXT_INCONSISTENT")


def test_channel_with_the_wrong_app_key_gets_a_definite_refusal(keys: AlipayKeys, server: LiveServer) -> None:
    wrong = dataclasses.replace(keys, app_private_key=other_key())
    with AlipayChannel.from_keys(gateway(server), wrong) as ch, pytest.raises(ChannelError) as refused:
        ch.query(trade_no())
    assert refused.value.code == "isv.invalid-signature"
    other_app = dataclasses.replace(keys, app_id="2021009999999999")
    with AlipayChannel.from_keys(gateway(server), other_app) as ch, pytest.raises(ChannelUnavailable):
        ch.query(trade_no())  # unsigned error_response: unproven, so not acted on


def test_secrets_stay_out_of_logs_and_errors(keys: AlipayKeys, server: LiveServer,
                                             caplog: pytest.LogCaptureFixture) -> None:
    messages: list[str] = []
    with caplog.at_level(logging.DEBUG):
        with AlipayChannel.from_keys(gateway(server), keys) as ch:
            messages.append(repr(ch))
            out_trade_no = trade_no()
            ch.create_native(out_trade_no, "挂号费", 100, notify_url(server, "secrets"), in_minutes(5))
            ch.query(out_trade_no)
            body = notification_body(keys, paid_fields(out_trade_no))
            with pytest.raises(SignatureError) as forged:
                ch.parse_notification({}, body.replace(b"total_amount=15.00", b"total_amount=0.01"))
            messages.append(str(forged.value))
        with AlipayChannel.from_keys(gateway(server), dataclasses.replace(keys, app_private_key=other_key())) as bad:
            with pytest.raises(ChannelError) as refused:
                bad.query(out_trade_no)
            messages.append(str(refused.value))
    text = caplog.text + "\n".join(messages)
    signature = dict(parse_qsl(body.decode()))["sign"]
    assert signature not in text and "buyer_id" not in text and "total_amount=" not in text
    for pem in (keys.app_private_key, keys.alipay_private_key):
        for line in pem.decode().splitlines()[1:-1]:
            assert line not in text
