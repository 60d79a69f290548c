"""The PIN pad: format-0 and SM4 against published vectors, then the real driver on a pty pair against the
simulated pad, with a stand-in host security module that is the only other place a PIN is ever seen."""
from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.device import Device
from drivers.health import Status
from drivers.pinpad.base import (
    KeyEvent, KeyKind, Outcome, PinPadDisconnectedError, PinPadDriver, PinPadError, PinPadRefusedError,
    PinPadTamperedError, PinResult,
)
from drivers.pinpad.crypto import Algorithm, decrypt, encrypt, kcv
from drivers.pinpad.pad import SerialPinPad
from drivers.pinpad.pinblock import PinBlockError, format0, format0_wide, pan_digits, parse_format0
from drivers.pinpad.protocol import (
    CMD_EVENT, CMD_STATUS, ChecksumError, FrameError, LengthError, MissingEtxError, NoResponseError,
    NoStartError, TruncatedFrameError, decode_event, decode_frame, encode_frame,
)
from drivers.pinpad.simulator import DEMO_MASTER_KEYS, PinPadSimulator
from drivers.serial_pair import SerialPair

pytestmark = pytest.mark.timeout(60)

PAN = "6230606601007726888"
PIN = "924613"


# --- PIN block and ciphers -----------------------------------------------------------------------------

def test_format0_published_example() -> None:
    # PIN field 041234FFFFFFFFFF XOR PAN field 0000111111111111 (PAN 4111111111111111 without check digit).
    assert pan_digits("4111111111111111") == "111111111111"
    assert format0("1234", "4111111111111111").hex().upper() == "041225EEEEEEEEEE"
    assert parse_format0(bytes.fromhex("041225EEEEEEEEEE"), "4111111111111111") == "1234"


def test_format0_second_example() -> None:
    # The common ANSI X9.8 worked example: PIN 123456, PAN 123456789012345678 -> 061253DFFEDCBA98.
    assert format0("123456", "123456789012345678").hex().upper() == "061253DFFEDCBA98"


def test_wide_block_for_sm4_matches_the_worked_example() -> None:
    assert format0_wide("123654", PAN).hex().upper() == "06123654FFFFFFFFFFFF99FEFF88D977"
    assert parse_format0(format0_wide("123654", PAN), PAN) == "123654"


def test_short_pan_is_zero_padded_and_bad_input_refused() -> None:
    assert pan_digits("12345") == "000000001234"
    for pin, pan in [("123", PAN), ("1234567890123", PAN), ("12a4", PAN), ("1234", "12x4"), ("1234", "1")]:
        with pytest.raises(PinBlockError):
            format0(pin, pan)
    with pytest.raises(PinBlockError):
        parse_format0(format0("1234", PAN), "4111111111111111")  # another card's block
    with pytest.raises(PinBlockError):
        parse_format0(b"\x00" * 7, PAN)


def test_sm4_gbt_32907_vector() -> None:
    key = bytes.fromhex("0123456789abcdeffedcba9876543210")
    assert encrypt(Algorithm.SM4, key, key).hex() == "681edf34d206965e86b3e94f536e4246"
    assert decrypt(Algorithm.SM4, key, bytes.fromhex("681edf34d206965e86b3e94f536e4246")) == key


def test_sm4_working_key_and_check_value_worked_example() -> None:
    # A published 密码键盘 example: TMK decrypts the working key; SM4(WK, 0...0) starts with its check value.
    tmk = bytes.fromhex("1234567890ABCDEFABCDEF0987654321")
    wk = decrypt(Algorithm.SM4, tmk, bytes.fromhex("3D66234C49E4296FF9C78D8BACBD6A76"))
    assert wk.hex().upper() == "F351D490994603795C6EBEE8FAEBB481"
    assert encrypt(Algorithm.SM4, wk, bytes(16))[:8].hex().upper() == "861E83E31FAEBF10"
    assert kcv(Algorithm.SM4, wk).hex().upper() == "861E83E3"


def test_3des_double_length_key_is_k1_k2_k1() -> None:
    k1, k2 = bytes.fromhex("0123456789ABCDEF"), bytes.fromhex("FEDCBA9876543210")
    block = format0("1234", "4111111111111111")
    assert encrypt(Algorithm.TDES, k1 + k2, block) == encrypt(Algorithm.TDES, k1 + k2 + k1, block)
    assert decrypt(Algorithm.TDES, k1 + k2, encrypt(Algorithm.TDES, k1 + k2, block)) == block


# --- wire protocol -------------------------------------------------------------------------------------

def test_frame_round_trip_and_layout() -> None:
    frame = encode_frame(CMD_STATUS, b"\x00\x01")
    assert frame == bytes.fromhex("02 0003 01 0001 03") + bytes([0x00 ^ 0x03 ^ 0x01 ^ 0x00 ^ 0x01 ^ 0x03])
    assert decode_frame(frame) == (CMD_STATUS, b"\x00\x01")
    assert decode_event(decode_frame(encode_frame(CMD_EVENT, b"\x01\x03"))[1]) == KeyEvent(KeyKind.DIGIT, 3)


@pytest.mark.parametrize("raw, error", [
    (b"", NoResponseError),
    (b"\xff\xfe", NoStartError),
    (b"\x02\x00\x00", LengthError),
    (b"\x02\x01\x01", LengthError),
    (b"\x02\x00\x03\x01\x00", TruncatedFrameError),
    (bytes.fromhex("02 0001 01 04 07"), MissingEtxError),
    (bytes.fromhex("02 0001 01 03 00"), ChecksumError),
])
def test_each_broken_frame_has_its_error(raw: bytes, error: type[FrameError]) -> None:
    with pytest.raises(error):
        decode_frame(raw)


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.binary(max_size=300),
                 st.binary(max_size=40).map(lambda b: b"\x02" + b),
                 st.tuples(st.integers(0, 255), st.binary(max_size=20)).map(
                     lambda t: bytearray(encode_frame(*t))).flatmap(
                     lambda f: st.tuples(st.integers(0, len(f) - 1), st.integers(0, 255)).map(
                         lambda m: bytes(f[:m[0]]) + bytes([m[1]]) + bytes(f[m[0] + 1:])))))
def test_garbage_frames_raise_only_the_drivers_errors(raw: bytes) -> None:
    try:
        cmd, data = decode_frame(raw)
        if cmd == CMD_EVENT:
            decode_event(data)
    except PinPadError:
        pass


# --- the real driver on a pty pair ---------------------------------------------------------------------

class Hsm:
    """The bank side: knows the pad's master keys, issues working keys, and opens PIN blocks."""

    def __init__(self, master_keys: dict[Algorithm, bytes] = DEMO_MASTER_KEYS) -> None:
        self.master_keys = master_keys
        self.working: dict[Algorithm, bytes] = {}

    def issue_working_key(self, alg: Algorithm) -> tuple[bytes, bytes]:
        key = os.urandom(16)
        self.working[alg] = key
        return encrypt(alg, self.master_keys[alg], key), kcv(alg, key)

    def open_pin_block(self, result: PinResult, pan: str) -> str:
        assert result.pin_block is not None and result.algorithm is not None
        alg = Algorithm(result.algorithm)
        return parse_format0(decrypt(alg, self.working[alg], result.pin_block), pan)


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[SerialPair]:
    with SerialPair(tmp_path, name="pinpad") as p:
        yield p


@pytest.fixture
def sim(pair: SerialPair) -> Iterator[PinPadSimulator]:
    s = PinPadSimulator(pair.device_end)
    s.start()
    yield s
    s.stop()


def make_pad(pair: SerialPair, alg: Algorithm, hsm: Hsm) -> SerialPinPad:
    pad = SerialPinPad(str(pair.host_end), algorithm=alg, timeout=0.5)
    pad.open()
    pad.load_working_key(*hsm.issue_working_key(alg))
    return pad


class Entry:
    """Runs read_pin on its own thread (as the device worker would) while the test types on the pad."""

    def __init__(self, pad: SerialPinPad, pan: str = PAN, **kwargs: object) -> None:
        self.events: list[KeyEvent] = []
        self.result: PinResult | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(pad, pan, kwargs), daemon=True)
        self._thread.start()

    def _run(self, pad: SerialPinPad, pan: str, kwargs: dict) -> None:  # type: ignore[type-arg]
        try:
            self.result = pad.read_pin(pan, on_key=self.events.append, **kwargs)  # type: ignore[arg-type]
        except BaseException as exc:
            self.error = exc

    def join(self, timeout: float = 10) -> PinResult | None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "read_pin did not return"
        return self.result


@pytest.mark.parametrize("alg, block_size", [(Algorithm.SM4, 16), (Algorithm.TDES, 8)])
def test_typed_pin_reaches_the_hsm_encrypted(pair: SerialPair, sim: PinPadSimulator, alg: Algorithm,
                                             block_size: int, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    hsm = Hsm()
    pad = make_pad(pair, alg, hsm)
    try:
        assert isinstance(pad, Device) and isinstance(pad, PinPadDriver)
        entry = Entry(pad)
        assert sim.wait_for_entry()
        for digit in PIN:
            sim.press(digit)
        sim.press("enter")
        result = entry.join()
        assert entry.error is None and result is not None
        assert result.outcome is Outcome.ENTERED and result.digits == 6 and result.algorithm == alg.value
        assert len(result.pin_block) == block_size
        assert hsm.open_pin_block(result, PAN) == PIN
        assert [e.kind for e in entry.events] == [KeyKind.DIGIT] * 6 + [KeyKind.ENTER]
        assert [e.masked for e in entry.events][:6] == ["*", "**", "***", "****", "*****", "******"]
        # What the kiosk side saw and logged never contains the digits.
        for text in (caplog.text, repr(result), repr(entry.events), repr(sim)):
            assert PIN not in text
        assert format0(PIN, PAN).hex() not in caplog.text.lower()
        assert pad.health().status is Status.OK
    finally:
        pad.close()


def test_each_entry_gets_a_fresh_block_and_clear_restarts(pair: SerialPair, sim: PinPadSimulator) -> None:
    hsm = Hsm()
    pad = make_pad(pair, Algorithm.SM4, hsm)
    try:
        entry = Entry(pad, min_length=4, max_length=6)
        assert sim.wait_for_entry()
        sim.type_pin("999", enter=False)
        sim.press("enter")  # too short: the pad waits
        sim.press("clear")
        sim.type_pin("1234567")  # the 7th digit is beyond max and ignored by the pad
        result = entry.join()
        assert result.outcome is Outcome.ENTERED and result.digits == 6
        assert hsm.open_pin_block(result, PAN) == "123456"
        assert KeyKind.CLEAR in [e.kind for e in entry.events]
        entry = Entry(pad, min_length=4, max_length=6)
        assert sim.wait_for_entry()
        sim.type_pin("8080")
        assert hsm.open_pin_block(entry.join(), PAN) == "8080"
    finally:
        pad.close()


def test_cancel_gives_a_clear_cancelled_result(pair: SerialPair, sim: PinPadSimulator) -> None:
    pad = make_pad(pair, Algorithm.SM4, Hsm())
    try:
        entry = Entry(pad)
        assert sim.wait_for_entry()
        sim.type_pin("12", enter=False)
        sim.press("cancel")
        result = entry.join()
        assert result.outcome is Outcome.CANCELLED and result.pin_block is None
        assert result.message_zh == "您已取消输入密码"
        with pytest.raises(PinPadRefusedError, match="no PIN"):
            pad._command(0x04)  # the pad holds nothing to fetch after a cancel
    finally:
        pad.close()


def test_pad_timeout_gives_a_timed_out_result(pair: SerialPair, sim: PinPadSimulator) -> None:
    pad = make_pad(pair, Algorithm.TDES, Hsm())
    try:
        started = time.monotonic()
        entry = Entry(pad, timeout=1)
        assert sim.wait_for_entry()
        sim.type_pin("12", enter=False)
        result = entry.join()
        assert result.outcome is Outcome.TIMED_OUT and result.pin_block is None
        assert 0.9 < time.monotonic() - started < 3
        assert entry.events[-1].kind is KeyKind.TIMEOUT
        assert not sim.entering
    finally:
        pad.close()


def test_wrong_check_value_and_no_key_are_refused(pair: SerialPair, sim: PinPadSimulator) -> None:
    pad = SerialPinPad(str(pair.host_end), algorithm=Algorithm.SM4, timeout=0.5)
    pad.open()
    try:
        health = pad.health()
        assert health.status is Status.DEGRADED and health.reason == "no_working_key"
        with pytest.raises(PinPadRefusedError, match="no working key"):
            pad.read_pin(PAN)
        encrypted, check = Hsm().issue_working_key(Algorithm.SM4)
        with pytest.raises(PinPadRefusedError, match="check value"):
            pad.load_working_key(encrypted, bytes(4) if check != bytes(4) else b"\x01\x02\x03\x04")
        with pytest.raises(ValueError):
            pad.read_pin("123")
    finally:
        pad.close()


def test_tampered_pad_is_a_fault_and_refuses_keys(pair: SerialPair, sim: PinPadSimulator) -> None:
    hsm = Hsm()
    pad = make_pad(pair, Algorithm.SM4, hsm)
    try:
        assert pad.self_test().status is Status.OK
        sim.tampered = True
        health = pad.health()
        assert health.status is Status.FAULT and health.reason == "tampered" and not health.usable
        with pytest.raises(PinPadTamperedError):
            pad.read_pin(PAN)
        with pytest.raises(PinPadTamperedError):
            pad.load_working_key(*hsm.issue_working_key(Algorithm.SM4))
    finally:
        pad.close()


def test_garbage_on_the_line_is_a_frame_error_then_the_pad_works(pair: SerialPair,
                                                                 sim: PinPadSimulator) -> None:
    hsm = Hsm()
    pad = make_pad(pair, Algorithm.SM4, hsm)
    try:
        sim.send_raw(b"\x02\x00\x05\x01garbage-without-etx")
        with pytest.raises(FrameError):
            pad._read(1.0)
        assert pad.self_test().status is Status.OK
        entry = Entry(pad)
        assert sim.wait_for_entry()
        sim.type_pin("246810")
        assert hsm.open_pin_block(entry.join(), PAN) == "246810"
    finally:
        pad.close()


def test_unplug_mid_entry_faults_then_recovers(tmp_path: Path) -> None:
    pair = SerialPair(tmp_path, name="pinpad").open()
    sim = PinPadSimulator(pair.device_end)
    sim.start()
    hsm = Hsm()
    pad = make_pad(pair, Algorithm.SM4, hsm)
    try:
        entry = Entry(pad)
        assert sim.wait_for_entry()
        sim.type_pin("123", enter=False)
        time.sleep(0.2)
        pair.close()  # cable pulled while the patient types
        sim.stop()
        entry.join()
        assert isinstance(entry.error, PinPadDisconnectedError) and "went away" in str(entry.error)
        health = pad.health()
        assert health.status is Status.FAULT and health.reason == "disconnected"
        pair = SerialPair(tmp_path, name="pinpad").open()
        sim = PinPadSimulator(pair.device_end)  # power-cycled: the working key must be loaded again
        sim.start()
        assert pad.health().reason == "no_working_key"
        pad.load_working_key(*hsm.issue_working_key(Algorithm.SM4))
        assert pad.health().status is Status.OK
        entry = Entry(pad)
        assert sim.wait_for_entry()
        sim.type_pin("135790")
        assert hsm.open_pin_block(entry.join(), PAN) == "135790"
    finally:
        pad.close()
        sim.stop()
        pair.close()


def test_missing_port_is_disconnected(tmp_path: Path) -> None:
    pad = SerialPinPad(str(tmp_path / "no-such-tty"))
    assert pad.health().reason == "disconnected"
    with pytest.raises(PinPadDisconnectedError, match="cannot open"):
        pad.open()


def test_silent_pad_is_disconnected(pair: SerialPair) -> None:
    with SerialPinPad(str(pair.host_end), timeout=0.3) as pad:
        assert pad.self_test().reason == "disconnected"


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(noise=st.binary(min_size=1, max_size=120))
def test_garbage_from_the_pad_gives_only_driver_errors(pair: SerialPair, sim: PinPadSimulator,
                                                       noise: bytes) -> None:
    with SerialPinPad(str(pair.host_end), timeout=0.2) as pad:
        sim.send_raw(noise)
        try:
            pad._read(0.3)
        except PinPadError:
            pass
        pad._drain(pad._serial)  # type: ignore[arg-type]
        assert pad.self_test().status in (Status.OK, Status.DEGRADED)
