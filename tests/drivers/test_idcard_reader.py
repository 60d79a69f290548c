"""The real driver against the simulated reader on a real pseudo-terminal pair."""
from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from drivers.health import Health, Status
from drivers.idcard.protocol import (
    ChecksumError, FrameError, LengthError, NoPreambleError, NoResponseError, TruncatedFrameError,
)
from drivers.idcard.reader import IdCardPoller, ReaderDisconnectedError, SerialIdCardReader
from drivers.idcard.simulator import IdCardReaderSimulator, demo_card
from drivers.serial_pair import SerialPair, SerialPairError

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[SerialPair]:
    with SerialPair(tmp_path) as p:
        yield p


@pytest.fixture
def sim(pair: SerialPair) -> Iterator[IdCardReaderSimulator]:
    s = IdCardReaderSimulator(pair.device_end)
    s.start()
    yield s
    s.stop()


@pytest.fixture
def reader(pair: SerialPair, sim: IdCardReaderSimulator) -> Iterator[SerialIdCardReader]:
    r = SerialIdCardReader(str(pair.host_end), timeout=0.5)
    r.open()
    yield r
    r.close()


def test_serial_pair_links_exist_and_go_away(tmp_path: Path) -> None:
    with SerialPair(tmp_path) as p:
        assert p.host_end.exists() and p.device_end.exists() and p.running
    assert not p.host_end.exists() and not p.running


def test_serial_pair_without_socat_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SerialPairError, match="socat is not installed"):
        SerialPair(tmp_path).open()


def test_sam_status_ok(reader: SerialIdCardReader) -> None:
    assert reader.self_test().status is Status.OK
    assert reader.health().status is Status.OK


def test_no_card_reads_none(reader: SerialIdCardReader) -> None:
    assert reader.find_card() is False
    assert reader.read_card() is None


def test_inserted_card_reads_back_field_for_field(reader: SerialIdCardReader, sim: IdCardReaderSimulator) -> None:
    card = demo_card("欧阳娜娜", gender="女", nation="回")
    sim.insert(card)
    got = reader.read_card()
    assert got == card
    assert got.name == "欧阳娜娜" and got.valid_to is None and got.photo == card.photo
    sim.remove()
    assert reader.read_card() is None


@pytest.mark.parametrize("fault, error, words", [
    ("bad_checksum", ChecksumError, "checksum"),
    ("truncated", TruncatedFrameError, "truncated"),
    ("wrong_length", LengthError, "length"),
    ("garbage", NoPreambleError, "preamble"),
    ("silence", NoResponseError, "sent nothing"),
])
def test_each_fault_gives_its_clear_error_and_the_next_read_works(
        reader: SerialIdCardReader, sim: IdCardReaderSimulator, fault: str, error: type[FrameError],
        words: str) -> None:
    card = demo_card("张三丰")
    sim.insert(card)
    sim.inject(fault)
    with pytest.raises(error, match=words):
        reader.read_card()
    assert reader.read_card() == card
    # A fault on the big basic-info answer leaves its tail on the line; the reader must not trip over it.
    assert reader.find_card() and reader.select_card()
    sim.inject(fault)
    with pytest.raises(error):
        reader.read_identity()
    assert reader.read_card() == card


def test_sam_fault_shows_in_health(reader: SerialIdCardReader, sim: IdCardReaderSimulator) -> None:
    sim.sam_ok = False
    health = reader.health()
    assert health.status is Status.FAULT and health.reason == "sam_fault" and not health.usable
    assert "0x60" in health.detail
    sim.sam_ok = True
    assert reader.health().status is Status.OK


def test_silent_reader_is_a_fault_in_health(reader: SerialIdCardReader, sim: IdCardReaderSimulator) -> None:
    sim.inject("silence")
    health = reader.health()
    assert health.status is Status.FAULT and health.reason == "no_answer"


def test_missing_port_is_disconnected(tmp_path: Path) -> None:
    reader = SerialIdCardReader(str(tmp_path / "no-such-tty"))
    assert reader.health().reason == "disconnected"
    with pytest.raises(ReaderDisconnectedError, match="cannot open"):
        reader.open()


class Recorder:
    def __init__(self) -> None:
        self.cards: queue.Queue = queue.Queue()
        self.errors: queue.Queue = queue.Queue()

    def expect_card(self, timeout: float = 3.0):  # type: ignore[no-untyped-def]
        return self.cards.get(timeout=timeout)

    def expect_no_card(self, wait: float) -> None:
        with pytest.raises(queue.Empty):
            self.cards.get(timeout=wait)


def test_poller_reports_a_card_once_until_it_is_removed(pair: SerialPair, sim: IdCardReaderSimulator) -> None:
    rec = Recorder()
    poller = IdCardPoller(SerialIdCardReader(str(pair.host_end), timeout=0.5), on_card=rec.cards.put,
                          on_error=rec.errors.put, interval=0.3)
    poller.start()
    try:
        rec.expect_no_card(0.7)
        first = demo_card("张三")
        sim.insert(first)
        assert rec.expect_card() == first
        rec.expect_no_card(1.2)  # left on the reader: not reported again
        sim.remove()
        time.sleep(0.7)
        sim.insert(first)  # the same card again
        assert rec.expect_card() == first
        sim.remove()
        time.sleep(0.7)
        second = demo_card("李四", birth=date(1970, 1, 2))
        sim.insert(second)
        assert rec.expect_card() == second
        assert rec.errors.empty()
    finally:
        poller.stop()
    assert not poller.running


def test_rearmed_poller_reads_a_card_left_on_the_reader(pair: SerialPair, sim: IdCardReaderSimulator) -> None:
    rec = Recorder()
    poller = IdCardPoller(SerialIdCardReader(str(pair.host_end), timeout=0.5), on_card=rec.cards.put,
                          on_error=rec.errors.put, interval=0.3)
    card = demo_card("王五")
    sim.insert(card)
    poller.start()
    try:
        assert rec.expect_card() == card
        rec.expect_no_card(0.8)
        poller.rearm()  # a screen now asks for the card that is still lying there
        assert rec.expect_card() == card
        rec.expect_no_card(0.8)
    finally:
        poller.stop()


def test_poller_polls_no_faster_than_300_ms(pair: SerialPair, sim: IdCardReaderSimulator) -> None:
    with pytest.raises(ValueError):
        IdCardPoller(SerialIdCardReader(str(pair.host_end)), on_card=print, interval=0.1)
    poller = IdCardPoller(SerialIdCardReader(str(pair.host_end)), on_card=print, interval=0.3)
    poller.start()
    time.sleep(1.55)
    poller.stop()
    assert 3 <= len(sim.requests) <= 6


def test_poller_survives_a_corrupt_frame(pair: SerialPair, sim: IdCardReaderSimulator) -> None:
    rec = Recorder()
    poller = IdCardPoller(SerialIdCardReader(str(pair.host_end), timeout=0.3), on_card=rec.cards.put,
                          on_error=rec.errors.put, interval=0.3)
    card = demo_card("王五")
    sim.inject("bad_checksum")
    sim.insert(card)
    poller.start()
    try:
        assert isinstance(rec.errors.get(timeout=3), ChecksumError)
        assert rec.expect_card() == card
    finally:
        poller.stop()


def test_unplugging_reports_an_error_and_health_says_disconnected(tmp_path: Path) -> None:
    pair = SerialPair(tmp_path).open()
    sim = IdCardReaderSimulator(pair.device_end)
    sim.start()
    rec = Recorder()
    reader = SerialIdCardReader(str(pair.host_end), timeout=0.3)
    poller = IdCardPoller(reader, on_card=rec.cards.put, on_error=rec.errors.put, interval=0.3)
    poller.start()
    try:
        time.sleep(0.5)
        assert rec.errors.empty()
        pair.close()  # cable pulled
        sim.stop()
        error = rec.errors.get(timeout=5)
        assert isinstance(error, (ReaderDisconnectedError, FrameError))
        time.sleep(1.0)
        assert poller.running, "the poller must survive the outage"
        health = reader.health()
        assert health.status is Status.FAULT and health.reason == "disconnected"
        # Plugged back in: the poller reopens the port and reports cards again.
        pair = SerialPair(tmp_path).open()
        sim = IdCardReaderSimulator(pair.device_end)
        sim.start()
        card = demo_card("赵六")
        sim.insert(card)
        assert rec.expect_card(timeout=5) == card
    finally:
        poller.stop()
        sim.stop()
        pair.close()
    assert not any(t.name == "idcard-poller" for t in threading.enumerate())


def test_poller_health_follows_the_reader(pair: SerialPair, sim: IdCardReaderSimulator) -> None:
    """Health changes are reported once each: ok, silent reader → no_answer, SAM fault, back to ok."""
    seen: "queue.Queue[Health]" = queue.Queue()
    poller = IdCardPoller(SerialIdCardReader(str(pair.host_end), timeout=0.3), on_card=lambda card: None,
                          interval=0.3, on_health=seen.put)
    poller.start()
    try:
        assert seen.get(timeout=3) == Health.ok()
        sim.inject("silence")
        sim.inject("silence")
        assert seen.get(timeout=5).reason == "no_answer"
        assert seen.get(timeout=5) == Health.ok()  # answering again after two silent polls
        sim.sam_ok = False
        assert seen.get(timeout=5).reason == "sam_fault"
        sim.sam_ok = True
        assert seen.get(timeout=5) == Health.ok()
        time.sleep(1.0)
        assert seen.empty(), "an unchanged health is not reported again"
    finally:
        poller.stop()
