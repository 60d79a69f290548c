"""Bank cards (银行卡) on the payment screens and the social-security card at the bill checkout (K6), driven
without Qt, devices or network: every branch a patient can meet at the card reader and the PIN pad, and the money
rules (the attempt's key journaled before the sale, the same key on a lost answer, the server decides)."""
from __future__ import annotations

import json
import logging

import pytest

from drivers.health import Health
from drivers.pcsc.errors import CardMuteError, CardRemovedError
from workflows.appointment import AppointmentBooking
from workflows.card_payment import (CARD_EXPIRED, CARD_NOT_TAKEN, CARD_UNKNOWN, INSURANCE_APPLIED, NOT_A_BANK_CARD,
                                    NOT_A_SOCIAL_CARD, PINPAD_DOWN, QR_LEFT, TAKE_CARD)
from workflows.journal import Journal
from workflows.outpatient_payment import OutpatientPayment
from workflows.peripherals import Peripherals
from workflows.registration import SameDayRegistration
from workflows.service_base import Timeouts

from .card_fakes import (BANK_CARD, OLD_CARD, PAN, SOCIAL_CARD, WORKING_KEY, FakeCardAppointmentBackend,
                         FakeCardBackend, FakeCardBillBackend, FakeCardReader, FakePinPad)
from .fakes import Clock, FakeCard, RecordingPrinter


class Env:
    def __init__(self, tmp_path, service=SameDayRegistration, backend_cls=FakeCardBackend, reader=True, pad=True,
                 qr_channel="wechat_native"):
        self.journal = Journal(tmp_path / "journal.db")
        self.backend = backend_cls(self.journal)
        self.reader = FakeCardReader() if reader else None
        self.pad = FakePinPad() if pad is True else (pad or None)
        self.views: list = []
        self.clock = Clock()
        self.wf = service(self.backend, RecordingPrinter(), self.journal, self.views.append, "KIOSK-T01",
                          Timeouts(poll_interval=1.0), clock=self.clock, sleep=lambda s: None,
                          peripherals=Peripherals(card_reader=self.reader, pinpad=self.pad), qr_channel=qr_channel)

    @property
    def view(self):
        return self.views[-1]

    def card_calls(self):
        return [c for c in self.backend.calls if c[0] == "pay" and c[1][1] == "unionpay_card"]


def to_qr(env: Env) -> None:
    wf = env.wf
    wf.handle("start")
    wf.handle("card_read", card=FakeCard())
    if isinstance(wf, SameDayRegistration):
        wf.handle("pick_department", code="NK")
        wf.handle("pick_doctor", code="D01")
        wf.handle("pick_slot", slot_id=101)
        wf.handle("confirm")
    elif isinstance(wf, OutpatientPayment):
        wf.handle("pick_bill", bill_no="B001")
        wf.handle("confirm")
        wf.handle("pay")
    else:
        wf.handle("pick_department", code="XXG")
        wf.handle("pick_doctor", code="D01")
        wf.handle("pick_date", date="2026-11-24")
        wf.handle("pick_slot", slot_id=101)
        wf.handle("confirm")
    assert wf.state == "awaiting_payment", wf.state


@pytest.fixture
def env(tmp_path):
    return Env(tmp_path)


def test_card_read_pin_entered_approved_take_card_then_done(env, caplog):
    caplog.set_level(logging.DEBUG)
    wf = env.wf
    to_qr(env)
    assert env.view.screen == "payment" and env.view.data["bank_card"] is True
    wf.handle("pay_by_card")
    assert wf.state == "card_inserting"
    insert = env.view
    assert insert.screen == "bank_card" and insert.data["step"] == "insert" and insert.can_cancel
    env.reader.card = BANK_CARD
    wf.handle("card_inserted")
    # read → PIN (the glass counts the digits) → sale → "take your card"
    pin_views = [v for v in env.views if v.screen == "bank_card" and v.data["step"] == "pin"]
    assert [v.data["digits"] for v in pin_views] == [0, 1, 2, 3, 4, 5, 6]
    assert all(not v.can_cancel for v in pin_views)
    assert wf.state == "card_taking" and env.view.data["step"] == "take"
    assert env.pad.pans == [PAN]
    [call] = env.card_calls()
    key = call[1][2]
    assert key and key == call[2]["data"]["code_key"]  # journaled before the sale was sent
    assert call[2]["dest"] == "card_paying"
    sent = env.backend.card_requests[0]
    assert sent == {"pan": PAN, "expiry": "3012", "pin_block": "11" * 16, "pin_algorithm": "sm4"}
    assert env.backend.card_charges == [key]
    env.reader.card = None
    wf.handle("card_removed")
    assert wf.state == "done" and env.view.screen == "done"
    # The card never reached the journal, the outbox or a log line.
    stored = json.dumps([e for e in env.journal.entries()], default=str)
    text = caplog.text + "".join(r.getMessage() for r in caplog.records)
    for leak in (PAN, PAN[6:-4], "11" * 16):
        assert leak not in stored and leak not in text
    assert "****0128" in text


def test_card_left_in_the_reader_goes_on_after_a_while(env):
    wf = env.wf
    to_qr(env)
    env.reader.card = BANK_CARD  # already in the slot when the patient chose the card: read at once
    wf.handle("pay_by_card")
    assert wf.state == "card_taking"
    assert env.view.message == "" and env.view.data["step"] == "take"
    env.clock.t += 16
    wf.tick()
    assert wf.state == "done"


def test_wrong_pin_is_declined_with_the_banks_words_then_the_right_pin_pays(env):
    wf = env.wf
    env.pad.entries = ["wrong", "right"]
    to_qr(env)
    env.reader.card = BANK_CARD
    wf.handle("pay_by_card")
    assert wf.state == "card_inserting"
    assert env.view.message == "密码错误，请重新输入" and env.view.message_en == "Wrong PIN; please try again"
    assert env.backend.card_charges == []
    wf.handle("card_retry")  # the card is still in: read again, PIN again
    assert wf.state == "card_taking"
    keys = [c[1][2] for c in env.card_calls()]
    assert len(keys) == 2 and keys[0] != keys[1]  # every attempt its own key
    assert env.backend.card_charges == [keys[1]]


def test_insufficient_funds_then_back_to_the_qr_is_refused_by_the_server_and_said(env):
    wf = env.wf
    env.backend.card_declines = ["51"]
    to_qr(env)
    env.reader.card = BANK_CARD
    wf.handle("pay_by_card")
    assert env.view.message.startswith("卡内余额不足")
    assert env.view.data["qr_back"] is False  # the screen no longer offers the QR ...
    wf.handle("back")  # ... and were "back" sent anyway, the server will not take the left method up again
    assert wf.state == "card_inserting" and env.view.message == QR_LEFT[0]
    wf.handle("cancel")
    assert wf.state == "home"
    assert env.backend.orders["R0001"]["status"] == "CLOSED" and env.backend.card_charges == []


def test_back_to_the_qr_before_any_card_was_charged_shows_the_same_qr(env):
    wf = env.wf
    to_qr(env)
    qr = env.view.data["order"]["payment"]["code_url"]
    wf.handle("pay_by_card")
    assert env.view.data["qr_back"] is True
    wf.handle("back")
    assert wf.state == "awaiting_payment" and env.view.data["order"]["payment"]["code_url"] == qr
    qr_calls = [c for c in env.backend.calls if c[0] == "pay"]
    assert len(qr_calls) == 2 and qr_calls[0][1] == qr_calls[1][1]  # the same key: the same trade


def test_aggregate_terminal_goes_back_to_the_qr_after_a_decline(tmp_path):
    env = Env(tmp_path, qr_channel="aggregate")
    env.pad.entries = ["wrong"]
    to_qr(env)
    env.reader.card = BANK_CARD
    env.wf.handle("pay_by_card")
    assert env.wf.state == "card_inserting" and env.view.data["qr_back"] is True
    env.wf.handle("back")
    assert env.wf.state == "awaiting_payment" and env.view.message == TAKE_CARD[0]  # the card is still in


def test_answer_lost_then_approved_once_with_the_same_key(env):
    wf = env.wf
    env.backend.lose_answers = 1
    to_qr(env)
    env.reader.card = BANK_CARD
    wf.handle("pay_by_card")
    assert wf.state == "card_taking"
    keys = [c[1][2] for c in env.card_calls()]
    assert len(keys) == 2 and keys[0] == keys[1]  # asked again with the same key: a query, not a second sale
    assert len(env.backend.card_charges) == 1


def test_sale_the_bank_never_answered_is_reversed_and_said_not_charged(env):
    wf = env.wf
    env.backend.bank_silent = 1
    to_qr(env)
    env.reader.card = BANK_CARD
    wf.handle("pay_by_card")
    assert wf.state == "card_inserting" and env.view.message == CARD_NOT_TAKEN[0]
    assert env.backend.card_charges == []


def test_no_answer_at_all_keeps_asking_and_a_payment_found_goes_ahead(env):
    wf = env.wf
    to_qr(env)
    env.reader.card = BANK_CARD
    env.backend.offline.add("pay")
    wf.handle("pay_by_card")
    assert wf.state == "card_inserting" and env.view.message == CARD_UNKNOWN[0]
    env.backend.offline.discard("pay")
    env.backend.phone_pays("R0001")  # what the poll finds: the order was paid after all
    env.clock.t += 1.5
    wf.tick()
    assert wf.state == "done"


@pytest.mark.parametrize("card, words", [
    (CardRemovedError("pulled"), "读卡过程中卡片被取出"), (CardMuteError("mute"), "卡片无响应"),
    (SOCIAL_CARD, NOT_A_BANK_CARD[0]), (OLD_CARD, CARD_EXPIRED[0])])
def test_unreadable_wrong_or_expired_card_is_said_and_nothing_is_sent(env, card, words):
    wf = env.wf
    to_qr(env)
    env.reader.card = card
    wf.handle("pay_by_card")
    assert wf.state == "card_inserting" and env.view.message.startswith(words) and env.view.message_en
    assert env.card_calls() == [] and env.pad.pans == []
    env.reader.card = BANK_CARD  # another card inserted
    wf.handle("card_inserted")
    assert wf.state == "card_taking"


@pytest.mark.parametrize("entry, words", [("timeout", "输入密码超时"), ("cancel", "您已取消输入密码"),
                                          ("unplugged", PINPAD_DOWN[0])])
def test_pin_pad_timeout_cancel_or_fault_sends_nothing(env, entry, words):
    wf = env.wf
    env.pad.entries = [entry]
    to_qr(env)
    env.reader.card = BANK_CARD
    wf.handle("pay_by_card")
    assert wf.state == "card_inserting" and env.view.message.startswith(words)
    assert env.card_calls() == []
    wf.handle("card_retry")
    assert wf.state == "card_taking"


def test_cancel_or_idle_on_the_card_screen_closes_the_order_before_money(env):
    wf = env.wf
    to_qr(env)
    wf.handle("pay_by_card")
    env.clock.t += Timeouts().awaiting_payment + 1
    wf.tick()
    assert wf.state == "home"
    assert env.backend.orders["R0001"]["status"] == "CLOSED" and env.card_calls() == []


def test_bank_card_offered_only_with_a_usable_reader_and_pin_pad(tmp_path):
    env = Env(tmp_path, pad=False)
    to_qr(env)
    assert env.view.data["bank_card"] is False
    env.wf.handle("pay_by_card")
    assert env.wf.state == "awaiting_payment"
    env2 = Env(tmp_path / "2")
    env2.wf.handle("device_health", device="pinpad", health=Health.fault("tampered"))
    to_qr(env2)
    assert env2.view.data["bank_card"] is False
    env2.wf.handle("device_health", device="pinpad", health=Health.degraded("no_working_key"))
    env2.wf.handle("activity")
    env2.wf.handle("pay_by_card")
    assert env2.wf.state == "card_inserting"


def test_pin_pad_without_a_working_key_is_signed_on_at_first_use(tmp_path):
    env = Env(tmp_path, pad=FakePinPad(needs_key=True))
    to_qr(env)
    env.reader.card = BANK_CARD
    env.wf.handle("pay_by_card")
    assert env.wf.state == "card_taking" and env.backend.sign_ons == 1
    assert env.pad.keys == [(bytes.fromhex(WORKING_KEY["encrypted_key"]), bytes.fromhex(WORKING_KEY["check_value"]))]


def test_outpatient_bill_social_security_card_then_bank_card_for_the_rest(tmp_path):
    env = Env(tmp_path, OutpatientPayment, FakeCardBillBackend)
    wf = env.wf
    wf.handle("start")
    wf.handle("card_read", card=FakeCard())
    wf.handle("pick_bill", bill_no="B001")
    wf.handle("confirm")
    assert wf.state == "checkout" and env.view.data["insurance_card"] is True
    env.reader.card = BANK_CARD  # the wrong card first
    wf.handle("card_inserted")
    assert wf.state == "checkout" and env.view.message == NOT_A_SOCIAL_CARD[0]
    env.reader.card = SOCIAL_CARD
    wf.handle("card_inserted")
    assert wf.state == "checkout" and env.view.message == INSURANCE_APPLIED[0]
    presettle = [c for c in env.backend.calls if c[0] == "presettle_insurance"][-1]
    assert presettle[1] == ("MZ0001", "social_security_card")
    assert SOCIAL_CARD.card_number not in json.dumps(env.journal.entries(), default=str)
    order = env.view.data["order"]
    assert order["insurance"]["state"] == "PRESETTLED" and order["self_pay_fen"] == 7700 - 4620
    wf.handle("pay")
    assert env.view.screen == "bill_payment" and env.view.data["bank_card"] is True
    env.reader.card = None
    wf.handle("pay_by_card")
    env.reader.card = BANK_CARD
    wf.handle("card_inserted")
    assert wf.state == "card_taking"
    wf.handle("card_removed")
    assert wf.state == "done" and env.view.screen == "bill_done"
    assert env.backend.orders["MZ0001"]["status"] == "FULFILLED"


def test_social_security_card_still_in_from_identification_is_read_on_a_tap(tmp_path):
    env = Env(tmp_path, OutpatientPayment, FakeCardBillBackend, pad=False)
    wf = env.wf
    wf.handle("start")
    wf.handle("social_card_read", card_number="A12345678")
    assert wf.state == "choosing_bill"
    wf.handle("pick_bill", bill_no="B002")
    wf.handle("confirm")
    env.reader.card = SOCIAL_CARD
    wf.handle("use_insurance_card")
    assert wf.state == "checkout" and env.view.message == INSURANCE_APPLIED[0]
    wf.handle("pay")
    assert env.view.data["bank_card"] is False  # no PIN pad at this terminal


def test_insurance_card_not_offered_without_a_reader(tmp_path):
    env = Env(tmp_path, OutpatientPayment, FakeCardBillBackend, reader=False)
    wf = env.wf
    wf.handle("start")
    wf.handle("card_read", card=FakeCard())
    wf.handle("pick_bill", bill_no="B002")
    wf.handle("confirm")
    assert env.view.data["insurance_card"] is False
    wf.handle("use_insurance_card")
    assert wf.state == "checkout" and not [c for c in env.backend.calls if c[0] == "presettle_insurance"]


def test_appointment_paid_by_bank_card(tmp_path):
    env = Env(tmp_path, AppointmentBooking, FakeCardAppointmentBackend)
    to_qr(env)
    assert env.view.screen == "appt_payment" and env.view.data["bank_card"] is True
    env.reader.card = BANK_CARD
    env.wf.handle("pay_by_card")
    env.wf.handle("card_removed")
    assert env.wf.state == "done" and env.view.screen == "appt_done"
    assert len(env.backend.card_charges) == 1
