"""The card steps with the real drivers: `PcscCardReader` against the virtual cards under the real pcscd, and
`SerialPinPad` against its simulator on a pty pair, feeding the real workflow; and the kiosk's card watcher on the
reader's worker thread. The server is the workflow fakes' (its bank keeps the PIN the way the acquirer does: it
opens the pad's block with the working key it issued at sign-on).

Needs apt packages pcscd and vsmartcard-vpcd, like tests/drivers/test_pcsc.py. pcscd is started here only if
none runs, and stopped again at the end.
"""
from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from drivers.device import DeviceWorker
from drivers.pcsc.reader import PcscCardReader
from drivers.pcsc.testbed import VPCD_PORTS, PcscTestbed, PcscTestbedError, virtual_reader
from drivers.pcsc.vcard import BANK, SOCIAL_SECURITY, VirtualCard
from drivers.pinpad.crypto import Algorithm, clear_pin_block, decrypt, encrypt, kcv
from drivers.pinpad.pad import SerialPinPad
from drivers.pinpad.simulator import DEMO_MASTER_KEYS, PinPadSimulator
from drivers.serial_pair import SerialPair
from kiosk_app.card_watch import CardWatch, PinpadSignOn
from workflows.card_payment import NOT_A_SOCIAL_CARD
from workflows.journal import Journal
from workflows.peripherals import Peripherals
from workflows.registration import SameDayRegistration
from workflows.service_base import Timeouts

from tests.workflows.card_fakes import DECLINES, CardPayments
from tests.workflows.fakes import Clock, FakeBackend, FakeCard, RecordingPrinter

pytestmark = pytest.mark.timeout(240)

READER = virtual_reader(0)
PORT = VPCD_PORTS[0]
PIN = "123456"  # the sandbox issuer's PIN of the virtual card


class AcquirerBackend(CardPayments, FakeBackend):
    """The fake server with a bank that issues a real working key and checks the real PIN block under it."""

    def __init__(self, journal: Any = None) -> None:
        super().__init__(journal)
        self.working = os.urandom(16)

    def card_sign_on(self) -> dict[str, Any]:
        self._call("card_sign_on")
        self.sign_ons += 1
        alg = Algorithm.SM4
        return {"terminal_id": "KIOSK-T01", "algorithm": "sm4",
                "encrypted_key": encrypt(alg, DEMO_MASTER_KEYS[alg], self.working).hex().upper(),
                "check_value": kcv(alg, self.working).hex().upper()}

    def pay(self, order_no, channel, idempotency_key, auth_code=None, card=None):
        if card is not None:
            clear = decrypt(Algorithm.SM4, self.working, bytes.fromhex(card["pin_block"]))
            if clear != clear_pin_block(Algorithm.SM4, PIN, card["pan"]):
                self.card_declines.append("55")
            else:
                self.card_declines.append("00")
        return super().pay(order_no, channel, idempotency_key, auth_code, card)


@pytest.fixture(scope="module")
def testbed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PcscTestbed]:
    bed = PcscTestbed(log_path=tmp_path_factory.mktemp("pcscd") / "pcscd.log")
    try:
        bed.start()
    except PcscTestbedError as exc:
        pytest.fail(f"cannot run the PC/SC testbed (apt install pcscd vsmartcard-vpcd): {exc}", pytrace=False)
    yield bed
    bed.stop()


@pytest.fixture
def reader(testbed: PcscTestbed) -> Iterator[PcscCardReader]:
    r = PcscCardReader(READER, apdu_timeout=1.0)
    r.open()
    yield r
    r.close()


@pytest.fixture
def pad(tmp_path: Path) -> Iterator[tuple[SerialPinPad, PinPadSimulator]]:
    with SerialPair(tmp_path, name="pinpad") as pair:
        sim = PinPadSimulator(pair.device_end)
        sim.start()
        driver = SerialPinPad(str(pair.host_end), algorithm=Algorithm.SM4, timeout=0.5)
        driver.open()
        yield driver, sim
        driver.close()
        sim.stop()


class Card:
    def __init__(self, reader: PcscCardReader, profile: str) -> None:
        self.reader = reader
        self.card = VirtualCard(profile, PORT)

    def __enter__(self) -> "Card":
        self.card.start()
        assert self.reader.wait_for_card(10.0), "pcscd did not see the virtual card"
        return self

    def __exit__(self, *exc: object) -> None:
        self.card.stop()
        assert self.reader.wait_for_removal(10.0)


def in_background(call: Any) -> threading.Thread:
    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    return thread


def test_real_reader_and_pin_pad_pay_a_registration_wrong_pin_then_right(tmp_path, reader, pad):
    driver, sim = pad
    journal = Journal(tmp_path / "journal.db")
    backend = AcquirerBackend(journal)
    views: list = []
    wf = SameDayRegistration(backend, RecordingPrinter(), journal, views.append, "KIOSK-T01",
                             Timeouts(poll_interval=1.0), clock=Clock(), sleep=lambda s: None,
                             peripherals=Peripherals(card_reader=reader, pinpad=driver))
    wf.handle("start")
    wf.handle("card_read", card=FakeCard())
    for intent, kw in (("pick_department", {"code": "NK"}), ("pick_doctor", {"code": "D01"}),
                       ("pick_slot", {"slot_id": 101}), ("confirm", {})):
        wf.handle(intent, **kw)
    assert wf.state == "awaiting_payment" and views[-1].data["bank_card"] is True
    with Card(reader, "bank"):
        # The pad has no working key yet: the first entry signs it on through the server, then asks for the PIN.
        run = in_background(lambda: wf.handle("pay_by_card"))
        assert sim.wait_for_entry(15), "no PIN entry started"
        sim.type_pin("654321")
        run.join(20)
        assert not run.is_alive()
        assert backend.sign_ons == 1
        assert wf.state == "card_inserting" and views[-1].message == DECLINES["55"][0]
        run = in_background(lambda: wf.handle("card_retry"))
        assert sim.wait_for_entry(15)
        sim.type_pin(PIN)
        run.join(20)
        assert not run.is_alive()
        assert wf.state == "card_taking" and views[-1].data["step"] == "take"
    digits = [v.data["digits"] for v in views if v.screen == "bank_card" and v.data["step"] == "pin"]
    assert digits[-8:] == [0, 1, 2, 3, 4, 5, 6, 6]  # the pad's key counts (digits, then Enter) reached the glass
    sent = backend.card_requests[-1]
    assert sent["pan"] == BANK.pan and sent["expiry"] == "3012" and len(sent["pin_block"]) == 32
    assert len(backend.card_charges) == 1
    wf.handle("card_removed")
    assert wf.state == "done"
    assert BANK.pan not in str(journal.entries())


def test_pin_pad_sign_on_at_start_loads_the_servers_key(pad):
    driver, sim = pad
    backend = AcquirerBackend()
    assert driver.self_test().reason == "no_working_key"
    sign_on = PinpadSignOn(backend, driver, retry_seconds=0.1).start()
    deadline = time.monotonic() + 10
    while driver.self_test().reason == "no_working_key" and time.monotonic() < deadline:
        time.sleep(0.1)
    sign_on.stop()
    assert driver.self_test().status.value == "ok" and backend.sign_ons == 1


def test_card_watch_identifies_by_social_security_card_and_follows_cards_on_card_screens(testbed, qtbot):
    reader = PcscCardReader(READER, apdu_timeout=1.0)
    worker = DeviceWorker("pcsc", reader, health_interval=0.5)
    posted: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
    screen = ["insert_card"]
    notices: list[tuple[str, str]] = []
    watch = CardWatch(worker, lambda intent, **kw: posted.put((intent, kw)), lambda: screen[0]).attach()
    watch.notices.shown.connect(lambda zh, en: notices.append((zh, en)))
    worker.start()
    try:
        with Card(reader, "social_security"):
            assert posted.get(timeout=10) == ("social_card_read", {"card_number": SOCIAL_SECURITY.card_number})
        with Card(reader, "bank"):  # not a social-security card: said on the glass, nothing posted
            qtbot.waitUntil(lambda: bool(notices), timeout=10_000)  # queued to the Qt thread, as in the kiosk
            assert notices == [NOT_A_SOCIAL_CARD] and posted.empty()
        screen[0] = "bank_card"
        with Card(reader, "bank"):
            assert posted.get(timeout=10) == ("card_inserted", {})
        assert posted.get(timeout=10) == ("card_removed", {})
        # A card inserted while the patient tapped the service counts when the insert-card screen comes up.
        screen[0] = "home"
        with Card(reader, "social_security"):
            time.sleep(1.0)
            assert posted.empty()
            screen[0] = "insert_card"
            watch.screen_changed("insert_card")
            assert posted.get(timeout=10)[0] == "social_card_read"
    finally:
        worker.stop()
