"""The bank-card channel against its acquirer sandbox over real HTTP on loopback: approvals and declines, the
reversal on timeout (real client timeouts), refunds, MACs, and the PIN travelling from the real PIN-pad driver
and simulator on a pty pair to the sandbox's "HSM" without ever being in clear in between."""
from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from central.payments.channel import ChannelError, ChannelUnavailable, SignatureError
from central.payments.unionpay import (MAC_HEADER, BankCardChannel, WorkingKey, compute_mac, encode_body,
                                       mac_header, transmission_time, verify_mac_header)
from central.payments.unionpay_sandbox import DEMO_MERCHANT_ID, Acquirer, create_sandbox_app
from drivers.pcsc.cards import mask_pan
from drivers.pinpad.crypto import Algorithm, clear_pin_block, decrypt, encrypt
from drivers.pinpad.pad import SerialPinPad
from drivers.pinpad.simulator import DEMO_MASTER_KEYS, PinPadSimulator
from drivers.serial_pair import SerialPair

pytestmark = pytest.mark.timeout(60)

MAC_KEY = bytes.fromhex("00112233445566778899AABBCCDDEEFF")
TERMINAL = "KIOSK001"
PAN = "6222021234567890128"  # the virtual smart card's PAN; PIN 123456 in the sandbox's card table
EXPIRY = "3012"
PIN = "123456"
LOW_BALANCE_PAN, LOW_BALANCE_PIN, LOW_BALANCE_EXPIRY = "6217000010001234569", "111111", "3106"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Sandbox:
    """The acquirer sandbox served by uvicorn on a loopback port, in a thread of this process."""

    def __init__(self, mac_algorithm: str = "HMAC-SM3") -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = create_sandbox_app(MAC_KEY, mac_algorithm=mac_algorithm)
        self.acquirer: Acquirer = self.app.state.acquirer
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port,
                                                    log_level="warning", timeout_graceful_shutdown=2))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> Sandbox:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("sandbox did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)

    def control(self, **params: Any) -> dict[str, Any]:
        response = httpx.post(f"{self.url}/simulate/control", json=params, timeout=5)
        assert response.status_code == 200, response.text
        return response.json()

    def trade(self, order_id: str) -> dict[str, Any]:
        return httpx.get(f"{self.url}/simulate/trades/{order_id}", timeout=5).json()

    def balance(self, pan: str) -> int:
        return int(httpx.get(f"{self.url}/simulate/cards/{pan}", timeout=5).json()["balance_fen"])

    def channel(self, *, timeout: float = 5.0, mac_key: bytes = MAC_KEY, mac_algorithm: str = "HMAC-SM3"
                ) -> BankCardChannel:
        return BankCardChannel(self.url, DEMO_MERCHANT_ID, mac_key, default_terminal_id=TERMINAL,
                               mac_algorithm=mac_algorithm, timeout=timeout)


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    server = Sandbox().start()
    yield server
    server.stop()


@pytest.fixture
def channel(sandbox: Sandbox) -> Iterator[BankCardChannel]:
    with sandbox.channel() as ch:
        yield ch


class SoftPad:
    """What a PIN pad does with the working key, for tests that do not need the serial pad: it opens the key
    with its master key and encrypts a format-0 block. (The pad test below uses the real driver instead.)"""

    def __init__(self, key: WorkingKey) -> None:
        self.alg = Algorithm(key.algorithm)
        self._key = decrypt(self.alg, DEMO_MASTER_KEYS[self.alg], key.encrypted_key)

    def block(self, pin: str, pan: str = PAN) -> bytes:
        return encrypt(self.alg, self._key, clear_pin_block(self.alg, pin, pan))


@pytest.fixture
def pad(channel: BankCardChannel) -> SoftPad:
    return SoftPad(channel.sign_on(algorithm="sm4"))


# --- primitives ------------------------------------------------------------------------------------------------

def test_hmac_sha256_matches_rfc_4231_case_2() -> None:
    assert compute_mac("HMAC-SHA256", b"Jefe", b"what do ya want for nothing?") == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")


def test_mac_header_is_bound_to_its_algorithm_and_body() -> None:
    body = b'{"a":1}'
    header = mac_header("HMAC-SM3", MAC_KEY, body)
    assert len(header.partition(":")[2]) == 64
    assert verify_mac_header("HMAC-SM3", MAC_KEY, body, header)
    assert not verify_mac_header("HMAC-SM3", MAC_KEY, b'{"a":2}', header)
    assert not verify_mac_header("HMAC-SHA256", MAC_KEY, body, header)  # no downgrade by relabelling
    assert not verify_mac_header("HMAC-SM3", MAC_KEY, body, None)


# --- sales -----------------------------------------------------------------------------------------------------

def test_approved_sale_then_query(sandbox: Sandbox, channel: BankCardChannel, pad: SoftPad) -> None:
    before = sandbox.balance(PAN)
    state = channel.charge_card("CARD000001", 1250, PAN, EXPIRY, pad.block(PIN), "sm4")
    assert state.state == "SUCCESS" and state.paid and state.amount_fen == 1250
    assert state.transaction_id and len(state.transaction_id) == 12 and state.success_time
    assert sandbox.balance(PAN) == before - 1250
    assert channel.query("CARD000001") == state
    # Asking again with the same order number never charges twice: it gets the same approval.
    assert channel.charge_card("CARD000001", 1250, PAN, EXPIRY, pad.block(PIN), "sm4") == state
    assert sandbox.balance(PAN) == before - 1250


def test_wrong_pin_is_55_then_75_after_three(sandbox: Sandbox, channel: BankCardChannel, pad: SoftPad) -> None:
    before = sandbox.balance(PAN)
    with pytest.raises(ChannelError) as caught:
        channel.charge_card("CARD000002", 500, PAN, EXPIRY, pad.block("654321"), "sm4")
    assert caught.value.code == "55"
    assert channel.query("CARD000002").state == "PAYERROR"
    # A declined attempt does not use the order number up: the patient may type the PIN again.
    assert channel.charge_card("CARD000002", 500, PAN, EXPIRY, pad.block(PIN), "sm4").paid
    for attempt, code in enumerate(["55", "55", "75"]):
        with pytest.raises(ChannelError) as caught:
            channel.charge_card(f"CARD00010{attempt}", 500, PAN, EXPIRY, pad.block("000000"), "sm4")
        assert caught.value.code == code
    assert sandbox.balance(PAN) == before - 500


@pytest.mark.parametrize("pan, pin, expiry, code", [
    (LOW_BALANCE_PAN, LOW_BALANCE_PIN, LOW_BALANCE_EXPIRY, "51"),
    ("6228480000000000018", "888888", "2808", "05"),
    ("6210810000000000017", "246810", "2001", "54"),
    ("6222021234567890136", "123456", "3012", "14"),  # not a card this issuer knows
])
def test_issuer_declines(channel: BankCardChannel, pad: SoftPad, pan: str, pin: str, expiry: str,
                         code: str) -> None:
    with pytest.raises(ChannelError) as caught:
        channel.charge_card("CARD000003", 5000, pan, expiry, pad.block(pin, pan), "sm4")
    assert caught.value.code == code


def test_decline_control_and_issuer_unavailable(sandbox: Sandbox, channel: BankCardChannel, pad: SoftPad) -> None:
    sandbox.control(decline_next=["91"])
    with pytest.raises(ChannelError) as caught:
        channel.charge_card("CARD000004", 100, PAN, EXPIRY, pad.block(PIN), "sm4")
    assert caught.value.code == "91"
    sandbox.control(decline_next="98")  # "no answer from the issuer": unknown, so reverse
    with pytest.raises(ChannelUnavailable):
        channel.charge_card("CARD000005", 100, PAN, EXPIRY, pad.block(PIN), "sm4")
    channel.reverse("CARD000005")
    assert channel.query("CARD000005").state == "CLOSED"


def test_block_under_a_stale_working_key_is_refused(channel: BankCardChannel, pad: SoftPad) -> None:
    channel.sign_on(algorithm="sm4")  # a new sign-on replaces the key the pad still holds
    with pytest.raises(ChannelError) as caught:
        channel.charge_card("CARD000006", 100, PAN, EXPIRY, pad.block(PIN), "sm4")
    assert caught.value.code in ("99", "55")


def test_3des_working_key_and_hmac_sha256() -> None:
    server = Sandbox(mac_algorithm="HMAC-SHA256").start()
    try:
        with server.channel(mac_algorithm="HMAC-SHA256") as ch:
            tdes = SoftPad(ch.sign_on(algorithm="3des"))
            block = tdes.block(PIN)
            assert len(block) == 8
            assert ch.charge_card("CARD000007", 300, PAN, EXPIRY, block, "3des").paid
        with server.channel(mac_algorithm="HMAC-SM3") as wrong_algorithm:
            with pytest.raises(SignatureError):  # refused with "A0", in a MAC it cannot accept either
                wrong_algorithm.query("CARD000007")
    finally:
        server.stop()


# --- reversal on timeout ---------------------------------------------------------------------------------------

def test_dropped_answer_then_reversal_exactly_once(sandbox: Sandbox, pad: SoftPad) -> None:
    before = sandbox.balance(PAN)
    sandbox.control(drop_next={"sale": 1})
    with sandbox.channel(timeout=0.5) as impatient:
        started = time.monotonic()
        with pytest.raises(ChannelUnavailable):
            impatient.charge_card("CARD000010", 2000, PAN, EXPIRY, pad.block(PIN), "sm4")
        assert time.monotonic() - started < 3  # a real client timeout, not the sandbox giving up
        # The acquirer did approve it: money left the card although the kiosk never heard so.
        assert sandbox.trade("CARD000010")["trade_state"] == "APPROVED"
        assert sandbox.balance(PAN) == before - 2000
        impatient.reverse("CARD000010")
        impatient.reverse("CARD000010")  # repeated (e.g. after a lost reversal answer): nothing more happens
        sandbox.control(drop_next={"reversal": 1})
        with pytest.raises(ChannelUnavailable):
            impatient.reverse("CARD000010")
        impatient.reverse("CARD000010")
    record = sandbox.trade("CARD000010")
    assert record["trade_state"] == "REVERSED"
    assert record["reversals_applied"] == 1 and record["reversal_messages"] == 4
    assert sandbox.balance(PAN) == before


def test_reversal_overtaking_a_delayed_sale_wins(sandbox: Sandbox, pad: SoftPad) -> None:
    before = sandbox.balance(PAN)
    sandbox.control(delay_seconds=1.5)
    with sandbox.channel(timeout=0.5) as impatient:
        with pytest.raises(ChannelUnavailable):
            impatient.charge_card("CARD000011", 700, PAN, EXPIRY, pad.block(PIN), "sm4")
        sandbox.control(delay_seconds=0)
        impatient.reverse("CARD000011")  # arrives while the sale is still on its way
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len(sandbox.acquirer.messages) < 3:  # sign-on, reversal, sale
        time.sleep(0.05)
    record = sandbox.trade("CARD000011")
    assert record["trade_state"] == "REVERSED" and record["reversed_before_sale"]
    assert sandbox.balance(PAN) == before  # the late sale was refused ("94"), not charged


def test_close_reverses_unpaid_and_refuses_paid(sandbox: Sandbox, channel: BankCardChannel, pad: SoftPad) -> None:
    channel.close("CARD000020")  # never seen: reversed in advance, so a late sale cannot succeed
    with pytest.raises(ChannelError) as caught:
        channel.charge_card("CARD000020", 100, PAN, EXPIRY, pad.block(PIN), "sm4")
    assert caught.value.code == "94"
    channel.charge_card("CARD000021", 100, PAN, EXPIRY, pad.block(PIN), "sm4")
    with pytest.raises(ChannelError) as caught:
        channel.close("CARD000021")
    assert caught.value.code == "ORDERPAID"
    with pytest.raises(ChannelError) as caught:
        channel.query("CARD000099")
    assert caught.value.code == "ORDER_NOT_EXIST"


# --- refunds ---------------------------------------------------------------------------------------------------

def test_partial_and_full_refund_idempotent(sandbox: Sandbox, channel: BankCardChannel, pad: SoftPad) -> None:
    before = sandbox.balance(PAN)
    channel.charge_card("CARD000030", 3000, PAN, EXPIRY, pad.block(PIN), "sm4")
    assert channel.refund("CARD000030", "CARD000030R1", 1000, 3000, "检查项目取消") == "SUCCESS"
    assert channel.refund("CARD000030", "CARD000030R1", 1000, 3000, "检查项目取消") == "SUCCESS"  # repeated
    assert sandbox.balance(PAN) == before - 2000
    assert channel.query("CARD000030").state == "REFUND"
    assert channel.query_refund("CARD000030R1") == "SUCCESS"
    with pytest.raises(ChannelError) as caught:
        channel.refund("CARD000030", "CARD000030R2", 2001, 3000, "too much")
    assert caught.value.code == "13"
    channel.refund("CARD000030", "CARD000030R2", 2000, 3000, "rest")
    assert sandbox.balance(PAN) == before
    with pytest.raises(ChannelError) as caught:
        channel.reverse("CARD000030")  # refunded money must not come back a second time by reversal
    assert caught.value.code == "12"
    with pytest.raises(ChannelError) as caught:
        channel.refund("CARD000098", "CARD000098R1", 100, 100, "no sale")
    assert caught.value.code == "25"


# --- MACs ------------------------------------------------------------------------------------------------------

def _raw_sale(sandbox: Sandbox, **overrides: Any) -> dict[str, Any]:
    document = {"protocol": "KIOSK-ACQ/1", "message": "query", "stan": "000321",
                "transmission_time": transmission_time(), "terminal_id": TERMINAL,
                "merchant_id": DEMO_MERCHANT_ID, "order_id": "CARD000040"}
    document.update(overrides)
    return document


def test_tampered_request_is_refused_with_a0(sandbox: Sandbox, channel: BankCardChannel, pad: SoftPad) -> None:
    before = sandbox.balance(PAN)
    signed = encode_body(_raw_sale(sandbox, message="sale", mti="0200", pan=PAN, expiry=EXPIRY, amount_fen=100,
                                   pin_block=pad.block(PIN).hex(), pin_algorithm="sm4"))
    tampered = signed.replace(b'"amount_fen":100', b'"amount_fen":1')
    response = httpx.post(f"{sandbox.url}/acq/v1/sale", content=tampered,
                          headers={MAC_HEADER: mac_header("HMAC-SM3", MAC_KEY, signed)}, timeout=5)
    assert verify_mac_header("HMAC-SM3", MAC_KEY, response.content, response.headers[MAC_HEADER])
    assert response.json()["response_code"] == "A0"
    unsigned = httpx.post(f"{sandbox.url}/acq/v1/sale", content=signed, timeout=5)
    assert unsigned.json()["response_code"] == "A0"
    assert sandbox.balance(PAN) == before and sandbox.acquirer.trades == {}
    # A stale message with a perfect MAC is refused too (bounded replay).
    stale = encode_body(_raw_sale(sandbox, transmission_time="20200101120000"))
    answer = httpx.post(f"{sandbox.url}/acq/v1/query", content=stale,
                        headers={MAC_HEADER: mac_header("HMAC-SM3", MAC_KEY, stale)}, timeout=5).json()
    assert answer["response_code"] == "12"


def test_channel_with_a_wrong_key_gets_nothing_done(sandbox: Sandbox, pad: SoftPad) -> None:
    with sandbox.channel(mac_key=bytes(16)) as forged:
        with pytest.raises(SignatureError):
            forged.charge_card("CARD000041", 100, PAN, EXPIRY, pad.block(PIN), "sm4")
    assert "CARD000041" not in sandbox.acquirer.trades


def test_answer_with_a_bad_mac_is_not_believed(sandbox: Sandbox, channel: BankCardChannel, pad: SoftPad) -> None:
    before = sandbox.balance(PAN)
    sandbox.control(corrupt_mac_next=1)
    with pytest.raises(SignatureError):
        channel.charge_card("CARD000042", 100, PAN, EXPIRY, pad.block(PIN), "sm4")
    channel.reverse("CARD000042")  # unproven answer = unknown outcome: reverse
    assert sandbox.trade("CARD000042")["reversals_applied"] == 1
    assert sandbox.balance(PAN) == before


# --- logs ------------------------------------------------------------------------------------------------------

def test_pan_and_pin_block_never_logged(sandbox: Sandbox, channel: BankCardChannel, pad: SoftPad,
                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    block = pad.block(PIN)
    channel.charge_card("CARD000050", 100, PAN, EXPIRY, block, "sm4")
    with pytest.raises(ChannelError):
        channel.charge_card("CARD000051", 100, PAN, EXPIRY, pad.block("999999"), "sm4")
    sandbox.control(drop_next={"sale": 1})
    with sandbox.channel(timeout=0.5) as impatient, pytest.raises(ChannelUnavailable):
        impatient.charge_card("CARD000052", 100, PAN, EXPIRY, block, "sm4")
    channel.reverse("CARD000052")
    assert mask_pan(PAN) in caplog.text  # masked PANs are logged, so the test sees the log at all
    for secret in (PAN, block.hex(), block.hex().upper(), MAC_KEY.hex(), MAC_KEY.hex().upper()):
        assert secret not in caplog.text
    assert PAN not in repr(sandbox.acquirer.messages) and PAN not in json.dumps(sandbox.trade("CARD000050"))


def test_cards_have_no_qr_codes_or_notifications(channel: BankCardChannel) -> None:
    from datetime import datetime, timezone
    with pytest.raises(NotImplementedError):
        channel.create_native("CARD000060", "x", 1, "http://127.0.0.1/n", datetime.now(timezone.utc))
    with pytest.raises(NotImplementedError):
        channel.parse_notification({}, b"{}")


# --- the real PIN pad ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("algorithm", [Algorithm.SM4, Algorithm.TDES])
def test_pin_typed_on_the_real_pad_driver_is_accepted(tmp_path: Path, sandbox: Sandbox, channel: BankCardChannel,
                                                      algorithm: Algorithm,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with SerialPair(tmp_path, name="pinpad") as pair:
        sim = PinPadSimulator(pair.device_end)
        sim.start()
        device = SerialPinPad(str(pair.host_end), algorithm=algorithm, timeout=0.5)
        try:
            device.open()
            key = channel.sign_on(algorithm=algorithm.value)  # the acquirer's key, opened only inside the pad
            device.load_working_key(key.encrypted_key, key.check_value)

            def entry(pin: str) -> Any:
                results: list[Any] = []
                worker = threading.Thread(target=lambda: results.append(device.read_pin(PAN)), daemon=True)
                worker.start()
                assert sim.wait_for_entry()
                sim.type_pin(pin)
                worker.join(10)
                assert results, "read_pin did not return"
                return results[0]

            result = entry(PIN)
            assert result.pin_block is not None and result.algorithm == algorithm.value
            state = channel.charge_card("CARD000070", 880, PAN, EXPIRY, result.pin_block, result.algorithm)
            assert state.paid
            wrong = entry("000111")
            with pytest.raises(ChannelError) as caught:
                channel.charge_card("CARD000071", 880, PAN, EXPIRY, wrong.pin_block, wrong.algorithm)
            assert caught.value.code == "55"
        finally:
            device.close()
            sim.stop()
    assert PIN not in caplog.text and PAN not in caplog.text
