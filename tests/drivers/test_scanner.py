"""Scanners: the serial driver on a real pty pair against the simulator, the HID driver against a fake
pyusb backend, and the rules that say what a scanned text is."""
from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.device import Device
from drivers.health import Status
from drivers.scanner.base import ScanDecodeError, ScanLine, ScannerDisconnectedError, strip_aim
from drivers.scanner.classify import (
    MAX_TEXT_LENGTH, Rules, Scan, ScanKind, classify,
)
from drivers.scanner.fake_usb import FAKE_PRODUCT_ID, FAKE_VENDOR_ID, FakeUsbBackend
from drivers.scanner.hid_keymap import reports_for
from drivers.scanner.hid_scanner import HidScanner
from drivers.scanner.poller import ScannerPoller
from drivers.scanner.serial_scanner import HONEYWELL_REVINF, LineSplitter, SerialScanner, decode_scan
from drivers.scanner.simulator import ScannerSimulator
from drivers.serial_pair import SerialPair

pytestmark = pytest.mark.timeout(60)


# --- serial scanner ------------------------------------------------------------------------------------

@pytest.fixture
def pair(tmp_path: Path) -> Iterator[SerialPair]:
    with SerialPair(tmp_path, name="scanner") as p:
        yield p


@pytest.fixture
def sim(pair: SerialPair) -> Iterator[ScannerSimulator]:
    s = ScannerSimulator(pair.device_end)
    s.start()
    yield s
    s.stop()


@pytest.fixture
def scanner(pair: SerialPair, sim: ScannerSimulator) -> Iterator[SerialScanner]:
    s = SerialScanner(str(pair.host_end), query=HONEYWELL_REVINF, query_timeout=1.0)
    s.open()
    yield s
    s.close()


def test_drivers_meet_the_device_contract(scanner: SerialScanner) -> None:
    assert isinstance(scanner, Device)
    assert isinstance(HidScanner(1, 2, backend=FakeUsbBackend()), Device)


@pytest.mark.parametrize("terminator", ["CR", "LF", "CRLF"])
def test_each_line_ending_ends_a_scan(scanner: SerialScanner, sim: ScannerSimulator, terminator: str) -> None:
    sim.scan("123456789012", terminator=terminator)
    sim.scan("ZY20240001", terminator=terminator)
    assert scanner.read_scan(2).text == "123456789012"
    assert scanner.read_scan(2).text == "ZY20240001"
    assert scanner.read_scan(0.3) is None  # the LF of a CR LF is not an empty scan


def test_a_scan_split_across_reads_and_a_split_crlf(scanner: SerialScanner, sim: ScannerSimulator) -> None:
    sim.send_raw(b"1345678901")
    assert scanner.read_scan(0.2) is None
    sim.send_raw(b"23456789\r")
    assert scanner.read_scan(2).text == "134567890123456789"
    sim.send_raw(b"\nZY123456\r\n")
    assert scanner.read_scan(2).text == "ZY123456"


def test_chinese_in_utf8_and_gb18030(scanner: SerialScanner, sim: ScannerSimulator) -> None:
    sim.scan("患者：张三 门诊", encoding="utf-8")
    sim.scan("患者：李四 住院", encoding="gb18030")
    assert scanner.read_scan(2).text == "患者：张三 门诊"
    assert scanner.read_scan(2).text == "患者：李四 住院"


def test_garbage_bytes_give_a_clear_error_and_the_next_scan_works(
        scanner: SerialScanner, sim: ScannerSimulator) -> None:
    sim.send_raw(b"\xff\xfe\x80\x81\xff\r")
    with pytest.raises(ScanDecodeError, match="neither UTF-8 nor GB18030"):
        scanner.read_scan(2)
    sim.scan("123456789012")
    assert scanner.read_scan(2).text == "123456789012"


def test_control_bytes_decode_but_classify_as_unknown(scanner: SerialScanner, sim: ScannerSimulator) -> None:
    sim.send_raw(b"12\x0034\x1b[2J\r")
    scan = classify(scanner.read_scan(2).text)
    assert scan.kind is ScanKind.UNKNOWN and scan.value == "" and "无法识别" in scan.message_zh


def test_aim_prefix_is_stripped_only_when_configured(pair: SerialPair) -> None:
    sim = ScannerSimulator(pair.device_end, aim="]Q1")
    sim.start()
    try:
        with SerialScanner(str(pair.host_end), aim_prefix=True) as s:
            sim.scan("123456789012")
            assert s.read_scan(2) == ScanLine("123456789012", "]Q1")
        with SerialScanner(str(pair.host_end)) as s:
            sim.scan("123456789012")
            assert s.read_scan(2).text == "]Q1123456789012"
    finally:
        sim.stop()
    assert strip_aim("]") == ("]", None) and strip_aim("]C0ABC") == ("ABC", "]C0")


def test_overlong_line_is_discarded_with_a_clear_error() -> None:
    lines = LineSplitter(max_length=10)
    lines.feed(b"x" * 11)
    with pytest.raises(ScanDecodeError, match="without a line end"):
        lines.take()
    lines.feed(b"ok\r")
    assert lines.take() == b"ok"
    assert decode_scan("就诊".encode("gb18030")) == "就诊"


def test_self_test_queries_the_scanner(scanner: SerialScanner, sim: ScannerSimulator) -> None:
    sim.scan("123456789012")  # a scan already waiting survives the query
    assert scanner.self_test().status is Status.OK
    assert b"\x16M\rREVINF." in sim.received
    assert scanner.read_scan(2).text == "123456789012"
    sim.answers_query = False
    health = scanner.self_test()
    assert health.status is Status.DEGRADED and health.reason == "no_self_test_reply"


def test_self_test_without_a_query_only_checks_the_port(pair: SerialPair, sim: ScannerSimulator) -> None:
    sim.answers_query = False
    with SerialScanner(str(pair.host_end)) as s:
        assert s.self_test().status is Status.OK
    assert sim.received == b""


def test_missing_port_is_disconnected(tmp_path: Path) -> None:
    s = SerialScanner(str(tmp_path / "no-such-tty"))
    assert s.health().reason == "disconnected"
    with pytest.raises(ScannerDisconnectedError, match="cannot open"):
        s.open()


def wait_until(condition, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


class Recorder:
    def __init__(self) -> None:
        self.scans: queue.Queue[Scan] = queue.Queue()
        self.errors: queue.Queue[Exception] = queue.Queue()
        self.health: list[str] = []

    def on_health(self, health) -> None:  # type: ignore[no-untyped-def]
        self.health.append(f"{health.status.value}:{health.reason}")


def test_poller_delivers_classified_scans_and_unreadable_ones(pair: SerialPair, sim: ScannerSimulator) -> None:
    rec = Recorder()
    poller = ScannerPoller(SerialScanner(str(pair.host_end)), rec.scans.put, rec.errors.put, rec.on_health)
    poller.start()
    try:
        wait_until(lambda: poller.health().status is Status.OK)  # opening a port flushes what came before
        sim.scan("123456789012")
        scan = rec.scans.get(timeout=3)
        assert scan.kind is ScanKind.VISIT_CODE and scan.value == "123456789012"
        sim.send_raw(b"\xff\xff\xff\r")
        assert rec.scans.get(timeout=3).kind is ScanKind.UNKNOWN
        assert isinstance(rec.errors.get(timeout=1), ScanDecodeError)
        assert poller.health().status is Status.OK
    finally:
        poller.stop()
    assert not poller.running


def test_unplug_mid_scan_faults_then_recovers(tmp_path: Path) -> None:
    pair = SerialPair(tmp_path, name="scanner").open()
    sim = ScannerSimulator(pair.device_end)
    sim.start()
    rec = Recorder()
    scanner = SerialScanner(str(pair.host_end))
    poller = ScannerPoller(scanner, rec.scans.put, rec.errors.put, rec.on_health, reopen_interval=0.2)
    poller.start()
    try:
        wait_until(lambda: poller.health().status is Status.OK)
        sim.scan("123456789012")
        assert rec.scans.get(timeout=3).kind is ScanKind.VISIT_CODE
        sim.send_raw(b"1345678901")  # half a payment code, then the cable is pulled
        time.sleep(0.2)
        pair.close()
        sim.stop()
        assert isinstance(rec.errors.get(timeout=5), ScannerDisconnectedError)
        wait_until(lambda: poller.health().reason == "disconnected")
        assert poller.health().status is Status.FAULT and poller.health().reason == "disconnected"
        assert scanner.health().reason == "disconnected"
        time.sleep(0.6)
        assert poller.running and rec.errors.empty(), "one outage is reported once"
        assert rec.scans.empty(), "the half scan is never delivered"
        # Plugged back in.
        pair = SerialPair(tmp_path, name="scanner").open()
        sim = ScannerSimulator(pair.device_end, terminator="CRLF")
        sim.start()
        wait_until(lambda: poller.health().status is Status.OK)
        sim.scan("ZY123456")
        scan = rec.scans.get(timeout=3)
        assert scan.kind is ScanKind.WRISTBAND and scan.value == "ZY123456"
        assert rec.health == ["ok:", "fault:disconnected", "ok:"]
    finally:
        poller.stop()
        sim.stop()
        pair.close()
    assert not any(t.name == "scanner-poller" for t in threading.enumerate())


# --- USB HID scanner -----------------------------------------------------------------------------------

@pytest.fixture
def backend() -> FakeUsbBackend:
    return FakeUsbBackend()


@pytest.fixture
def hid(backend: FakeUsbBackend) -> Iterator[HidScanner]:
    s = HidScanner(FAKE_VENDOR_ID, FAKE_PRODUCT_ID, backend=backend)
    s.open()
    yield s
    s.close()


def test_hid_detaches_the_keyboard_driver_and_gives_it_back(backend: FakeUsbBackend) -> None:
    s = HidScanner(FAKE_VENDOR_ID, FAKE_PRODUCT_ID, backend=backend)
    s.open()
    assert not backend.kernel_driver_active and backend.claimed == {0}
    s.close()
    assert backend.kernel_driver_active and backend.claimed == set() and backend.open_handles == 0


def test_hid_types_uppercase_digits_and_symbols(hid: HidScanner, backend: FakeUsbBackend) -> None:
    backend.type_text("ZY20240001")
    backend.type_text("ehc:ABCdef-_=+/?!")
    assert hid.read_scan(2).text == "ZY20240001"
    assert hid.read_scan(2).text == "ehc:ABCdef-_=+/?!"
    assert hid.read_scan(0.2) is None


def test_hid_repeated_characters_and_keys_held_across_reports(hid: HidScanner, backend: FakeUsbBackend) -> None:
    backend.type_text("1100")
    assert hid.read_scan(2).text == "1100"
    # Rollover: 'a' still held while 'b' goes down is one new key, not two.
    backend.send_reports([bytes([0, 0, 0x04, 0, 0, 0, 0, 0]), bytes([0, 0, 0x04, 0x05, 0, 0, 0, 0]),
                          bytes([0x20, 0, 0x06, 0, 0, 0, 0, 0]), bytes(8), bytes([0, 0, 0x58, 0, 0, 0, 0, 0])])
    assert hid.read_scan(2).text == "abC"


def test_hid_text_waits_for_enter(hid: HidScanner, backend: FakeUsbBackend) -> None:
    backend.type_text("12345", enter=False)
    assert hid.read_scan(0.3) is None
    backend.type_text("6789012")
    assert hid.read_scan(2).text == "123456789012"


def test_hid_scan_through_the_poller_is_classified(backend: FakeUsbBackend) -> None:
    rec = Recorder()
    poller = ScannerPoller(HidScanner(FAKE_VENDOR_ID, FAKE_PRODUCT_ID, backend=backend), rec.scans.put,
                           rec.errors.put, rec.on_health, reopen_interval=0.1, name="hid-scanner")
    poller.start()
    try:
        wait_until(lambda: poller.health().status is Status.OK)
        backend.type_text("134567890123456789")
        assert rec.scans.get(timeout=3).kind is ScanKind.WECHAT_PAY
        backend.type_text("1234", enter=False)
        time.sleep(0.2)
        backend.unplug()  # mid-scan
        assert isinstance(rec.errors.get(timeout=3), ScannerDisconnectedError)
        assert poller.health().reason == "disconnected"
        backend.plug()
        wait_until(lambda: poller.health().status is Status.OK)
        backend.type_text("2812345678901234")
        scan = rec.scans.get(timeout=3)
        assert scan.kind is ScanKind.ALIPAY and scan.value == "2812345678901234", "the half scan is gone"
    finally:
        poller.stop()


def test_hid_unplug_is_disconnected_and_replug_recovers(hid: HidScanner, backend: FakeUsbBackend) -> None:
    assert hid.health().status is Status.OK and hid.self_test().status is Status.OK
    backend.unplug()
    with pytest.raises(ScannerDisconnectedError, match="went away"):
        hid.read_scan(1)
    health = hid.health()
    assert health.status is Status.FAULT and health.reason == "disconnected"
    with pytest.raises(ScannerDisconnectedError, match="no USB scanner"):
        hid.open()
    backend.plug()
    assert hid.health().status is Status.OK
    backend.type_text("OK1")
    assert hid.read_scan(2).text == "OK1"


def test_hid_device_absent_from_the_start() -> None:
    s = HidScanner(0x1234, 0x5678, backend=FakeUsbBackend())
    assert s.health().reason == "disconnected"


def test_keymap_refuses_what_a_keyboard_cannot_type() -> None:
    with pytest.raises(ValueError):
        reports_for("就诊")


# --- classify ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, kind, value", [
    ("123456789012", ScanKind.VISIT_CODE, "123456789012"),
    (" 123456789012\r\n", ScanKind.VISIT_CODE, "123456789012"),
    ("6200001234", ScanKind.VISIT_CARD, "6200001234"),  # the default 10-digit 就诊卡 number
    ("620000123", ScanKind.UNKNOWN, ""),
    ("134567890123456789", ScanKind.WECHAT_PAY, "134567890123456789"),
    ("104567890123456789", ScanKind.WECHAT_PAY, "104567890123456789"),
    ("164567890123456789", ScanKind.UNKNOWN, ""),  # 16 is not a WeChat prefix
    ("2812345678901234", ScanKind.ALIPAY, "2812345678901234"),
    ("301234567890123456789012", ScanKind.ALIPAY, "301234567890123456789012"),
    ("3112345678901234", ScanKind.UNKNOWN, ""),
    ("281234567890123", ScanKind.UNKNOWN, ""),  # 15 digits: too short for Alipay
    ("ZY20240001", ScanKind.WRISTBAND, "ZY20240001"),
    ("zy20240001", ScanKind.WRISTBAND, "ZY20240001"),
    ("CF2024031500012", ScanKind.PRESCRIPTION, "CF2024031500012"),
    ("ehc:3A7F0C", ScanKind.E_HEALTH_CARD, "ehc:3A7F0C"),
    ("A1" * 32, ScanKind.E_HEALTH_CARD, "a1" * 32),
    ("Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZg==", ScanKind.INSURANCE_VOUCHER,
     "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZg=="),
    ("Zm9vYmFy", ScanKind.UNKNOWN, ""),  # too short for the insurance token rule
    ("1" * 40, ScanKind.UNKNOWN, ""),  # all digits is not a token
    ("http://example.com/pay?id=123456789012", ScanKind.UNKNOWN, ""),
    ("HTTPS://u.wechat.com/abc", ScanKind.UNKNOWN, ""),
    ("www.example.com", ScanKind.UNKNOWN, ""),
    ("12345\x00789012", ScanKind.UNKNOWN, ""),
    ("1234\u200b56789012", ScanKind.UNKNOWN, ""),  # zero-width space
    ("就诊码123456789012", ScanKind.UNKNOWN, ""),
    ("", ScanKind.UNKNOWN, ""),
    ("x" * (MAX_TEXT_LENGTH + 1), ScanKind.UNKNOWN, ""),
])
def test_classify_table(text: str, kind: ScanKind, value: str) -> None:
    scan = classify(text)
    assert (scan.kind, scan.value) == (kind, value)
    assert scan.message_zh and scan.message_en


def test_unknown_messages_are_clear() -> None:
    assert classify("hello").message_zh.startswith("这个二维码不是本院的就诊码")
    assert "网址" in classify("https://example.com").message_zh
    assert "过长" in classify("9" * 2000).message_zh


def test_rules_are_configurable() -> None:
    rules = Rules(insurance_prefixes=("YBPZ",), wristband=r"IP\d{8}", e_health_prefixes=())
    assert classify("YBPZ0001", rules).kind is ScanKind.INSURANCE_VOUCHER
    assert classify("IP12345678", rules).kind is ScanKind.WRISTBAND
    assert classify("ZY20240001", rules).kind is ScanKind.UNKNOWN
    assert classify("ehc:abc", rules).kind is ScanKind.UNKNOWN
    cards = Rules(visit_card=r"JZ\d{8}")  # a hospital whose visit cards carry a prefix
    assert (classify("jz00001234", cards).kind, classify("jz00001234", cards).value) == (ScanKind.VISIT_CARD,
                                                                                       "JZ00001234")
    assert classify("6200001234", cards).kind is ScanKind.UNKNOWN
    broken = Rules(visit_code="(")  # a typo in the site config: unknown, never an exception
    assert classify("123456789012", broken).kind is ScanKind.UNKNOWN


def test_scan_repr_does_not_show_a_payment_code() -> None:
    assert "134567890123" not in repr(classify("134567890123456789"))
    assert "123456789012" not in repr(ScanLine("123456789012"))


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(), st.text(alphabet=st.characters(codec="utf-8")),
                 st.binary().map(lambda b: b.decode("utf-8", "surrogateescape")),
                 st.from_regex(r"[0-9A-Za-z:+/=_-]{0,140}", fullmatch=True)))
def test_any_text_classifies_without_raising(text: str) -> None:
    scan = classify(text)
    assert isinstance(scan, Scan) and isinstance(scan.kind, ScanKind)
    assert scan.message_zh and scan.message_en
    if scan.kind is ScanKind.UNKNOWN:
        assert scan.value == ""
    else:
        assert scan.value and len(scan.value) <= MAX_TEXT_LENGTH


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_split_and_decode_to_text_or_a_scanner_error(data: bytes) -> None:
    lines = LineSplitter(max_length=64)
    lines.feed(data + b"\r")
    try:
        while (raw := lines.take()) is not None:
            classify(decode_scan(raw))
    except ScanDecodeError:
        pass
