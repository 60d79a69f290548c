"""预约挂号 and 取消预约 (K3), driven without Qt, devices or network against a backend that keeps the server's rules."""
from __future__ import annotations

import json
from datetime import datetime

import pytest

from drivers.health import Health
from workflows.appointment import SEARCH_OFFLINE, AppointmentBooking, NO_UPCOMING
from workflows.journal import Journal
from workflows.service_base import OFFLINE, Timeouts

from .fakes import Clock, FakeAppointmentBackend, FakeCard, RecordingPrinter

TOMORROW = FakeAppointmentBackend.TOMORROW


@pytest.fixture
def env(tmp_path):
    journal = Journal(tmp_path / "journal.db")
    backend = FakeAppointmentBackend(journal)
    printer = RecordingPrinter()
    views: list = []
    clock = Clock()
    wf = AppointmentBooking(backend, printer, journal, views.append, "KIOSK-T01", Timeouts(poll_interval=1.0),
                            clock=clock, sleep=lambda s: None, now=lambda: datetime(2026, 11, 23, 10, 0),
                            qr_channel="alipay_native")
    return wf, backend, printer, views, journal, clock


STEPS = [("start", {}), ("card_read", {"card": FakeCard()}), ("pick_department", {"code": "XXG"}),
         ("pick_doctor", {"code": "D01"}), ("pick_date", {"date": TOMORROW}), ("pick_slot", {"slot_id": 101})]


def walk(wf, upto: int = len(STEPS)) -> None:
    for intent, kw in STEPS[:upto]:
        wf.handle(intent, **kw)


def book_and_pay(wf, backend, clock) -> str:
    walk(wf)
    wf.handle("confirm")
    assert wf.state == "awaiting_payment"
    order_no = wf.visit.order["order_no"]
    backend.phone_pays(order_no)
    clock.t += 1.5
    wf.tick()
    assert wf.state == "done"
    wf.handle("finish")
    assert wf.state == "home"
    return order_no


def test_book_by_department_pay_by_qr_print_and_go_home_wiped(env):
    wf, backend, printer, views, journal, clock = env
    walk(wf, 2)
    assert views[-1].screen == "appt_departments"
    groups = {g["id"]: g["count"] for g in views[-1].data["groups"]}
    assert groups == {"general": 2, "special": 1, "mdt": 1}
    assert [d["code"] for d in views[-1].data["departments"]] == ["XXG", "HX"]
    wf.handle("pick_clinic_type", clinic_type="mdt")
    assert wf.state == "choosing_department" and [d["code"] for d in views[-1].data["departments"]] == ["MDT"]
    wf.handle("pick_clinic_type", clinic_type="general")
    wf.handle("pick_department", code="XXG")
    assert views[-1].screen == "appt_doctors" and [d["code"] for d in views[-1].data["doctors"]] == ["D01"]
    wf.handle("pick_doctor", code="D01")
    assert views[-1].screen == "appt_dates" and views[-1].data["last"] == "2026-12-07"
    wf.handle("pick_date", date="2026-11-25")  # no places left that day: the tap does nothing
    assert wf.state == "choosing_date"
    wf.handle("pick_date", date=TOMORROW)
    assert views[-1].screen == "appt_slots" and views[-1].data["date"] == TOMORROW
    assert ("appointment_slots", ("XXG", "D01", TOMORROW)) in [(n, a) for n, a, _ in backend.calls]
    wf.handle("pick_slot", slot_id=101)
    assert views[-1].screen == "appt_confirm" and views[-1].data["date"] == TOMORROW
    wf.handle("confirm")
    assert wf.state == "awaiting_payment" and views[-1].screen == "appt_payment"
    assert views[-1].data["channel"] == "alipay_native" and views[-1].can_cancel
    pay = [a for n, a, _ in backend.calls if n == "pay"][-1]
    assert pay[1] == "alipay_native"  # the terminal's configured QR, as outpatient payment uses it

    order_no = wf.visit.order["order_no"]
    backend.phone_pays(order_no)
    clock.t += 1.5
    wf.tick()
    assert wf.state == "done" and views[-1].screen == "appt_done"
    assert views[-1].data["order"]["registration"]["queue_no"] == 7 and not views[-1].data["print_failed"]
    texts = [getattr(b, "text", "") for b in printer.documents[0]]
    assert "预约挂号凭条" in texts and f"就诊日期：{TOMORROW}" in texts
    assert any("李*英" in t for t in texts) and not any("李秀英" in t for t in texts)
    assert any(getattr(b, "data", None) == f"V{order_no}" for b in printer.documents[0])

    clock.t += Timeouts().done + 1
    wf.tick()
    assert wf.state == "home" and wf.visit.patient is None and wf.visit.order is None
    assert views[-1].screen == "home"


def test_find_a_doctor_by_pinyin_initials_in_either_department(env):
    wf, backend, printer, views, journal, clock = env
    walk(wf, 2)
    wf.handle("open_search")
    assert views[-1].screen == "doctor_search" and views[-1].data == {"query": "", "found": []}
    for key in ("w", "7", "J"):  # lower case counts as the letter; a digit is not on the keyboard
        wf.handle("key", letter=key)
    assert views[-1].data["query"] == "WJ"
    found = views[-1].data["found"]
    assert [(f["code"], f["department"]["code"]) for f in found] == [("D01", "XXG"), ("D01", "TXMZ")]
    wf.handle("backspace")
    wf.handle("key", letter="L")
    assert [f["name"] for f in views[-1].data["found"]] == []  # no doctor WL
    wf.handle("clear_query")
    wf.handle("key", letter="W")
    wf.handle("pick_found", code="D01", department="TXMZ")  # the same doctor, in the special-needs clinic
    assert wf.state == "choosing_date" and wf.visit.department["code"] == "TXMZ"
    assert ("appointment_dates", ("TXMZ", "D01")) in [(n, a) for n, a, _ in backend.calls]
    wf.handle("back")
    assert wf.state == "searching_doctor" and views[-1].data["query"] == "W"  # the search as left
    wf.handle("back")
    assert wf.state == "choosing_department"
    dump = json.dumps(journal.entries(), ensure_ascii=False)
    assert '"WJ"' not in dump and '"query"' not in dump  # what was typed stays on the glass


def test_search_with_the_server_unreachable_says_so_and_stays(env):
    wf, backend, printer, views, journal, clock = env
    walk(wf, 2)
    wf.handle("open_search")
    backend.offline.add("search_doctors")
    wf.handle("key", letter="W")
    assert wf.state == "searching_doctor" and (views[-1].message, views[-1].message_en) == SEARCH_OFFLINE
    backend.offline.clear()
    wf.handle("key", letter="J")
    assert views[-1].message == "" and views[-1].data["found"]


def test_every_transition_is_journaled_first_and_holds_no_personal_data(env):
    wf, backend, printer, views, journal, clock = env
    order_no = book_and_pay(wf, backend, clock)
    calls = {name: (args, last) for name, args, last in backend.calls}
    args, last = calls["book_appointment"]
    assert last["dest"] == "creating_order" and last["data"]["order_key"] == args[2]
    assert last["data"]["date"] == TOMORROW and last["data"]["slot_id"] == 101
    args, last = calls["pay"]
    assert last["dest"] == "awaiting_payment" and last["data"]["pay_key"] == args[2] and args[0] == order_no
    dump = json.dumps(journal.entries(), ensure_ascii=False)
    assert "李秀英" not in dump and FakeCard.id_number not in dump and "李*英" not in dump
    assert {e["workflow"] for e in journal.entries()} == {"appointment"}


@pytest.mark.parametrize("steps", range(1, len(STEPS) + 1))
def test_cancel_before_money_goes_home_and_books_nothing(env, steps):
    wf, backend, printer, views, journal, clock = env
    walk(wf, steps)
    assert views[-1].can_cancel
    wf.handle("cancel")
    assert wf.state == "home" and wf.visit.patient is None
    assert not backend.orders and not [n for n, _, _ in backend.calls if n in ("book_appointment", "pay")]


@pytest.mark.parametrize("steps", [1, 3, 5, 6])
def test_idle_before_money_wipes_the_session(env, steps):
    wf, backend, printer, views, journal, clock = env
    walk(wf, steps)
    clock.t += 60
    wf.tick()
    assert wf.state != "home"
    clock.t += Timeouts().choosing
    wf.tick()
    assert wf.state == "home" and wf.visit.patient is None and wf.visit.slot is None
    assert views[-1].screen == "home" and not backend.orders


def test_idle_on_the_search_screen_wipes_what_was_typed(env):
    wf, backend, printer, views, journal, clock = env
    walk(wf, 2)
    wf.handle("open_search")
    wf.handle("key", letter="W")
    clock.t += Timeouts().choosing + 1
    wf.tick()
    assert wf.state == "home" and wf.visit.query == "" and wf.visit.found == []


def test_slot_taken_meanwhile_brings_the_fresh_slots(env):
    wf, backend, printer, views, journal, clock = env
    walk(wf)
    backend.slot_table[101]["booked"] = 1  # someone else took the last place meanwhile
    wf.handle("confirm")
    assert wf.state == "choosing_slot" and views[-1].screen == "appt_slots"
    assert "已被他人" in views[-1].message
    assert [s["slot_id"] for s in views[-1].data["slots"]] == [102]
    wf.handle("pick_slot", slot_id=102)
    wf.handle("confirm")
    assert wf.state == "awaiting_payment" and wf.visit.order["slot"]["slot_id"] == 102


def test_a_daily_limit_sends_the_patient_back_to_the_days_with_the_his_words(env):
    wf, backend, printer, views, journal, clock = env
    backend.max_per_day = 0
    walk(wf)
    wf.handle("confirm")
    assert wf.state == "choosing_date" and views[-1].screen == "appt_dates"
    assert "最多预约 0 个号" in views[-1].message and "其他日期" in views[-1].message
    assert views[-1].data["dates"] and not backend.orders


def test_server_unreachable_while_browsing_ends_the_visit_with_the_offline_words(env):
    wf, backend, printer, views, journal, clock = env
    backend.offline.add("appointment_dates")
    walk(wf, 4)
    assert wf.state == "failed" and (views[-1].message, views[-1].message_en) == OFFLINE


def test_booking_answer_lost_is_asked_again_with_the_same_key_then_offline(env):
    wf, backend, printer, views, journal, clock = env
    walk(wf)
    backend.offline.add("book_appointment")
    wf.handle("confirm")
    keys = [a[2] for n, a, _ in backend.calls if n == "book_appointment"]
    assert len(keys) == 1 + len(Timeouts().retry_delays) and len(set(keys)) == 1
    assert wf.state == "failed" and views[-1].message == OFFLINE[0]
    assert "pay" not in [n for n, _, _ in backend.calls]  # no QR was ever shown


def test_payment_timeout_closes_the_order_at_the_server_and_goes_home(env):
    wf, backend, printer, views, journal, clock = env
    walk(wf)
    wf.handle("confirm")
    order_no = wf.visit.order["order_no"]
    clock.t += Timeouts().awaiting_payment + 1
    wf.tick()
    assert wf.state == "home" and backend.orders[order_no]["status"] == "CLOSED"
    assert not printer.documents


def test_cancel_on_the_payment_screen_waits_for_the_server_and_honours_a_payment_first(env):
    wf, backend, printer, views, journal, clock = env
    walk(wf)
    wf.handle("confirm")
    order_no = wf.visit.order["order_no"]
    backend.phone_pays(order_no)  # the phone was quicker than the Cancel button
    wf.handle("cancel")
    assert wf.state == "done" and backend.orders[order_no]["status"] == "FULFILLED"
    assert len(printer.documents) == 1


def test_cancel_on_the_payment_screen_without_network_keeps_asking(env):
    wf, backend, printer, views, journal, clock = env
    walk(wf)
    wf.handle("confirm")
    order_no = wf.visit.order["order_no"]
    backend.offline.add("cancel")
    wf.handle("cancel")
    assert wf.state == "cancelling"
    clock.t += 5
    wf.tick()
    assert wf.state == "cancelling"  # never walks away from an open order
    backend.offline.clear()
    clock.t += 5
    wf.tick()
    assert wf.state == "home" and backend.orders[order_no]["status"] == "CLOSED"


def test_payment_code_is_charged_under_its_own_key(env):
    wf, backend, printer, views, journal, clock = env
    walk(wf)
    wf.handle("confirm")
    wf.handle("code_scanned", kind="wechat_pay", code="134567890123456789")
    assert wf.state == "done"
    pays = [a for n, a, _ in backend.calls if n == "pay"]
    assert pays[-1][1] == "wechat_code" and pays[-1][2] == wf.visit.code_key != wf.visit.pay_key
    assert "134567890123456789" not in json.dumps(journal.entries())


def test_printer_fault_keeps_the_appointment_and_says_so(env):
    wf, backend, printer, views, journal, clock = env
    printer.fail = True
    walk(wf)
    wf.handle("confirm")
    backend.phone_pays(wf.visit.order["order_no"])
    clock.t += 1.5
    wf.tick()
    assert wf.state == "done" and views[-1].data["print_failed"]
    assert backend.orders[wf.visit.order["order_no"]]["status"] == "FULFILLED"


def test_a_broken_printer_switches_the_service_off(env):
    wf, backend, printer, views, journal, clock = env
    wf.handle("device_health", device="receipt_printer", health=Health.fault("paper_out", "no paper"))
    usable, why, _ = wf.availability()
    assert not usable and "凭条打印机" in why
    wf.handle("start")
    assert wf.state == "home"


# ---- 取消预约 ---------------------------------------------------------------------------------------------

def open_cancel(wf) -> None:
    wf.handle("start")
    wf.handle("card_read", card=FakeCard())
    wf.handle("open_cancel")


def test_cancel_an_upcoming_appointment_and_the_money_goes_back(env):
    wf, backend, printer, views, journal, clock = env
    order_no = book_and_pay(wf, backend, clock)
    open_cancel(wf)
    assert wf.state == "choosing_cancel" and views[-1].screen == "appt_cancel_list"
    # only appointments the platform booked can be given back here
    assert [a["order_no"] for a in views[-1].data["appointments"]] == [order_no]
    wf.handle("pick_appointment", order_no=order_no)
    assert views[-1].screen == "appt_cancel_confirm" and views[-1].data["appointment"]["order_no"] == order_no
    assert not [n for n, _, _ in backend.calls if n == "cancel_appointment"]  # nothing asked before confirming
    wf.handle("confirm_cancel")
    assert wf.state == "done" and views[-1].screen == "appt_cancelled"
    assert views[-1].data["order"]["status"] == "REFUNDED"
    assert backend.orders[order_no]["status"] == "REFUNDED" and backend.slot_table[101]["booked"] == 0
    entry = [e for e in journal.entries() if e["dest"] == "cancelling_appointment"][-1]
    assert entry["data"]["cancel_order_no"] == order_no and entry["data"]["order_no"] is None


def test_cancel_after_the_cut_off_shows_the_his_words_and_keeps_the_appointment(env):
    wf, backend, printer, views, journal, clock = env
    order_no = book_and_pay(wf, backend, clock)
    backend.cancel_at_counter.add(order_no)
    open_cancel(wf)
    wf.handle("pick_appointment", order_no=order_no)
    wf.handle("confirm_cancel")
    assert wf.state == "failed" and "人工窗口" in views[-1].message and "18:00" in views[-1].message
    assert backend.orders[order_no]["status"] == "FULFILLED"


def test_cancel_with_the_server_unreachable_says_the_outcome_is_unknown(env):
    wf, backend, printer, views, journal, clock = env
    order_no = book_and_pay(wf, backend, clock)
    open_cancel(wf)
    wf.handle("pick_appointment", order_no=order_no)
    backend.offline.add("cancel_appointment")
    wf.handle("confirm_cancel")
    assert wf.state == "failed" and "结果未知" in views[-1].message and "请勿重复" in views[-1].message
    assert len([n for n, _, _ in backend.calls if n == "cancel_appointment"]) == 1 + len(Timeouts().retry_delays)


def test_nothing_to_cancel_says_so_and_back_returns_to_booking(env):
    wf, backend, printer, views, journal, clock = env
    open_cancel(wf)
    assert views[-1].data["appointments"] == [] and views[-1].message == NO_UPCOMING[0]
    wf.handle("pick_appointment", order_no="VHIS")
    assert wf.state == "choosing_cancel"
    wf.handle("back")
    assert wf.state == "choosing_department"
