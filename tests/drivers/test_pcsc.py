"""The PC/SC driver against the real pcscd, the real vpcd reader driver and the project's virtual card.

Needs apt packages pcscd and vsmartcard-vpcd. Without them these tests fail and say so: CI has them, and a
silently skipped card reader is how a broken kiosk gets shipped.
"""
from __future__ import annotations

import json
import logging
import os
import queue
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.health import Status
from drivers.pcsc import apdu, emv, social, tlv
from drivers.pcsc.cards import BankCard, mask_pan
from drivers.pcsc.errors import (
    CardDataError, CardError, CardMuteError, CardRemovedError, NoCardError, ReaderUnavailableError,
)
from drivers.pcsc.reader import CardEvent, PcscCardReader
from drivers.pcsc.testbed import VPCD_PORTS, PcscTestbed, PcscTestbedError, virtual_reader
from drivers.pcsc.vcard import BANK, SOCIAL_SECURITY, VirtualCard, _Applet, _bcd

pytestmark = pytest.mark.timeout(180)

READER = virtual_reader(0)
PORT = VPCD_PORTS[0]
APDU_TIMEOUT = 1.0
PAN = BANK.pan


@pytest.fixture(scope="module")
def testbed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PcscTestbed]:
    bed = PcscTestbed(log_path=tmp_path_factory.mktemp("pcscd") / "pcscd.log")
    try:
        bed.start()
    except PcscTestbedError as exc:
        pytest.fail(f"cannot run the PC/SC testbed (apt install pcscd vsmartcard-vpcd): {exc}", pytrace=False)
    yield bed
    bed.stop()


class Events:
    def __init__(self) -> None:
        self.queue: queue.Queue[tuple[str, CardEvent]] = queue.Queue()

    def inserted(self, event: CardEvent) -> None:
        self.queue.put(("inserted", event))

    def removed(self, event: CardEvent) -> None:
        self.queue.put(("removed", event))

    def next(self, timeout: float = 5.0) -> tuple[str, CardEvent]:
        return self.queue.get(timeout=timeout)


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture
def reader(testbed: PcscTestbed, events: Events) -> Iterator[PcscCardReader]:
    r = PcscCardReader(READER, on_inserted=events.inserted, on_removed=events.removed, apdu_timeout=APDU_TIMEOUT)
    r.open()
    yield r
    r.close()


@pytest.fixture
def insert(reader: PcscCardReader) -> Iterator[Callable[..., VirtualCard]]:
    """Insert a virtual card; every card is pulled and seen gone before the next test starts."""
    cards: list[VirtualCard] = []

    def _insert(profile: str, **kwargs: object) -> VirtualCard:
        card = VirtualCard(profile, PORT, **kwargs)  # type: ignore[arg-type]
        card.start()
        cards.append(card)
        assert reader.wait_for_card(5.0), "pcscd did not see the virtual card"
        return card

    yield _insert
    for card in cards:
        card.stop()
    assert reader.wait_for_removal(5.0)
    deadline = time.monotonic() + 5.0
    while reader.stuck_sessions and time.monotonic() < deadline:
        time.sleep(0.05)


# --- health ----------------------------------------------------------------------------------------------

def test_health_ok_when_the_reader_is_there(reader: PcscCardReader) -> None:
    assert reader.health().status is Status.OK
    assert reader.self_test().status is Status.OK
    assert reader.reader_name() == READER


def test_health_disconnected_without_a_matching_reader(testbed: PcscTestbed) -> None:
    health = PcscCardReader("No Such Reader").health()
    assert (health.status, health.reason) == (Status.FAULT, "disconnected")
    with pytest.raises(ReaderUnavailableError, match="读卡器"):
        PcscCardReader("No Such Reader").read_bank_card()


def test_health_pcscd_unavailable_in_a_process_that_cannot_reach_it(tmp_path: Path) -> None:
    """pcsc-lite clients find pcscd through PCSCLITE_CSOCK_NAME: a dead socket path is a stopped pcscd,
    without stopping the one the other tests use."""
    code = ("import json; from drivers.pcsc.reader import PcscCardReader; "
            "h = PcscCardReader().health(); print(json.dumps([h.status.value, h.reason]))")
    env = dict(os.environ, PCSCLITE_CSOCK_NAME=str(tmp_path / "no-pcscd.comm"))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == ["fault", "pcscd_unavailable"]


# --- reads -----------------------------------------------------------------------------------------------

def test_bank_card_reads_pan_and_expiry_and_masks_them(reader: PcscCardReader, insert: Callable) -> None:
    insert("bank")
    card = reader.read_bank_card()
    assert card.pan == PAN and card.expiry == date(2030, 12, 31) and card.source == "records"
    assert card.aid == BANK.aid and card.label == BANK.label
    assert card.masked_pan == "622202*********0128" == mask_pan(PAN)
    assert card.to_dict()["pan"] == card.masked_pan and card.to_dict(masked=False)["pan"] == PAN
    for shown in (repr(card), str(card), f"{card}", repr([card]), json.dumps(card.to_dict())):
        assert PAN not in shown and card.masked_pan in shown


def test_pan_is_never_logged_unmasked(reader: PcscCardReader, insert: Callable,
                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    insert("bank")
    card = reader.read_bank_card()
    assert card.pan == PAN
    logging.getLogger("test").info("read %s / %r", card, card)
    text = caplog.text + "".join(r.getMessage() for r in caplog.records)
    assert "APDU" in text  # the DEBUG trace ran
    for leak in (PAN, PAN[6:-4], bytes.fromhex(PAN + "F").hex(), bytes.fromhex(PAN + "F").hex().upper()):
        assert leak not in text


def test_mask_pan_of_a_16_digit_pan() -> None:
    assert mask_pan("6222020000001234") == "622202******1234"
    assert mask_pan("1234") == "****"


def test_social_security_card(reader: PcscCardReader, insert: Callable) -> None:
    insert("social_security")
    card = reader.read_social_security_card()
    assert (card.card_number, card.name, card.id_number, card.issued_region) == (
        SOCIAL_SECURITY.card_number, SOCIAL_SECURITY.name, SOCIAL_SECURITY.id_number, SOCIAL_SECURITY.issued_region)
    for shown in (repr(card), str(card), json.dumps(card.to_dict(), ensure_ascii=False)):
        assert SOCIAL_SECURITY.id_number not in shown and SOCIAL_SECURITY.name not in shown


def test_a_bank_card_is_not_a_social_security_card(reader: PcscCardReader, insert: Callable) -> None:
    insert("bank")
    with pytest.raises(CardError) as info:
        reader.read_social_security_card()
    assert info.value.reason == "card_refused"


# --- events ----------------------------------------------------------------------------------------------

def test_insert_and_remove_events_fire(reader: PcscCardReader, events: Events) -> None:
    card = VirtualCard("bank", PORT)
    card.start()
    try:
        kind, event = events.next()
        assert kind == "inserted" and event.reader == READER and event.atr.startswith(b"\x3b")
    finally:
        card.stop()
    kind, event = events.next()
    assert kind == "removed" and event.reader == READER
    card.start()
    try:
        assert events.next()[0] == "inserted"
    finally:
        card.stop()
    assert events.next()[0] == "removed"
    assert events.queue.empty()


def test_wait_for_card_times_out_and_no_card_raises(reader: PcscCardReader) -> None:
    start = time.monotonic()
    assert reader.wait_for_card(0.5) is False
    assert 0.4 < time.monotonic() - start < 2.0
    assert reader.card_present() is False
    with pytest.raises(NoCardError, match="请插入"):
        reader.read_bank_card()


# --- misbehaving cards -----------------------------------------------------------------------------------

def test_mute_card_raises_within_the_bound_and_recovers(reader: PcscCardReader, insert: Callable) -> None:
    card = insert("mute")
    start = time.monotonic()
    with pytest.raises(CardMuteError, match="无响应"):
        reader.read_bank_card()
    elapsed = time.monotonic() - start
    assert APDU_TIMEOUT <= elapsed < APDU_TIMEOUT + 1.5, elapsed
    assert card.apdus, "the card got the command and kept quiet"
    assert reader.health().reason == "card_mute"
    # A second try while the card is still in does not hang either.
    start = time.monotonic()
    with pytest.raises(CardMuteError):
        reader.read_bank_card()
    assert time.monotonic() - start < APDU_TIMEOUT + 1.5
    card.stop()  # the patient takes the card out: the stuck calls return and clean up
    deadline = time.monotonic() + 5
    while reader.stuck_sessions and time.monotonic() < deadline:
        time.sleep(0.05)
    assert reader.stuck_sessions == 0
    assert reader.health().status is Status.OK
    insert("bank")
    assert reader.read_bank_card().pan == PAN


@pytest.mark.parametrize("pulled_after", [0, 1, 3, 5])
def test_card_pulled_mid_read_raises_card_removed(reader: PcscCardReader, insert: Callable,
                                                  pulled_after: int) -> None:
    insert("pulled", pulled_after=pulled_after)
    start = time.monotonic()
    with pytest.raises(CardRemovedError, match="取出"):
        reader.read_bank_card()
    assert time.monotonic() - start < 5
    assert reader.health().status is Status.OK


def test_malformed_tlv_raises_card_data_error(reader: PcscCardReader, insert: Callable) -> None:
    insert("malformed_tlv")
    with pytest.raises(CardDataError, match="无法识别"):
        reader.read_bank_card()


def test_garbage_answers_through_pcscd_are_card_errors(reader: PcscCardReader, insert: Callable) -> None:
    """Hypothesis drives the emulator's answers; the driver, over the real stack, only raises CardError."""
    plan: dict[str, object] = {"victim": 0, "garbage": b"", "count": 0}

    def hook(command: bytes, answer: bytes) -> bytes:
        index = plan["count"]
        plan["count"] = index + 1  # type: ignore[operator]
        return plan["garbage"] if index == plan["victim"] else answer  # type: ignore[return-value]

    reader.removal_grace = 0.3  # short answers make the driver check whether the card left
    insert("bank", answer_hook=hook)

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(victim=st.integers(0, 7), garbage=st.binary(min_size=2, max_size=300))
    def run(victim: int, garbage: bytes) -> None:
        plan.update(victim=victim, garbage=garbage, count=0)
        try:
            card = reader.read_bank_card()
        except CardError:
            return
        assert isinstance(card, BankCard)

    run()


# --- the protocol functions, fuzzed directly ------------------------------------------------------------

@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=400))
def test_tlv_parser_raises_only_tlv_error(data: bytes) -> None:
    try:
        items = tlv.parse(data)
    except tlv.TlvError:
        return
    for item in tlv.walk(items):
        assert tlv.parse(tlv.encode(item.tag, item.value))[0].value == item.value


def _scripted(answers: list[bytes]) -> Callable[[bytes], bytes]:
    it = iter(answers)
    return lambda _apdu: next(it, b"\x6a\x82")


_tlv_like = st.recursive(
    st.builds(tlv.encode, st.sampled_from([0x4F, 0x50, 0x57, 0x5A, 0x5F24, 0x87, 0x94, 0x9F38, 0x82, 0x80, 0x08,
                                           0x09, 0x07]), st.binary(max_size=24)),
    lambda inner: st.builds(tlv.encode, st.sampled_from([0x6F, 0xA5, 0xBF0C, 0x61, 0x70, 0x77]),
                            st.lists(inner, max_size=4).map(b"".join)),
    max_leaves=12)
_sw = st.sampled_from([b"\x90\x00", b"\x61\x10", b"\x6c\x05", b"\x6a\x82", b"\x6a\x83", b"\x69\x85", b"\x62\x83"])
_answer = st.one_of(st.binary(max_size=64), st.builds(lambda body, sw: body + sw, _tlv_like, _sw))


@settings(max_examples=400, deadline=None)
@given(st.lists(_answer, max_size=30))
def test_bank_and_social_reads_raise_only_card_errors(answers: list[bytes]) -> None:
    for read in (emv.read_bank_card, social.read_social_security_card):
        try:
            read(_scripted(answers))
        except CardError:
            pass


def test_get_response_loops_are_bounded() -> None:
    with pytest.raises(CardDataError, match="61xx"):
        apdu.exchange(lambda _apdu: b"\x00" * 8 + b"\x61\x08", apdu.select_by_name(b"X"))
    with pytest.raises(CardDataError, match="Le"):
        apdu.exchange(lambda _apdu: b"\x6c\x10", apdu.read_record(1, 1))


def test_emulator_logic_directly_covers_both_gpo_formats_and_track2() -> None:
    card = emv.read_bank_card(_Applet("bank", BANK, SOCIAL_SECURITY).answer)
    assert card.pan == PAN
    assert emv.parse_gpo(tlv.encode(0x80, b"\x19\x80\x08\x01\x02\x00")) == (b"\x19\x80", b"\x08\x01\x02\x00")
    track2 = tlv.encode(0x57, _bcd(PAN + "D3012220100000000"))
    from_track2 = emv.card_from_records(tlv.parse(track2), emv.Application(BANK.aid))
    assert from_track2.pan == PAN and from_track2.expiry == date(2030, 12, 31) and from_track2.source == "track2"
    assert len(emv.build_pdol_data(bytes.fromhex("9F66049F02065F2A029A03"), date(2026, 1, 2))) == 15


def test_testbed_without_pcscd_installed_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine without pcscd must fail the module with a message that names the fix, not skip."""
    from drivers.pcsc import testbed as tb
    monkeypatch.setattr(tb, "pcscd_running", lambda: False)
    monkeypatch.setattr(tb.shutil, "which", lambda *_a, **_k: None)
    with pytest.raises(PcscTestbedError, match="apt install pcscd"):
        tb.start_pcscd()


# --- last: stop the pcscd this module started, if it started one -----------------------------------------

def test_health_pcscd_unavailable_when_pcscd_stops(testbed: PcscTestbed) -> None:
    if not testbed.started_pcscd:
        pytest.skip("pcscd was already running before the tests; it is not ours to stop "
                    "(test_health_pcscd_unavailable_in_a_process_that_cannot_reach_it covers the fault)")
    reader = PcscCardReader(READER)
    testbed.stop_pcscd_only()
    try:
        health = reader.health()
        assert (health.status, health.reason) == (Status.FAULT, "pcscd_unavailable")
    finally:
        testbed.restart_pcscd()
    assert reader.health().status is Status.OK
