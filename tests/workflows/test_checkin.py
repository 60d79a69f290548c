"""取号报到 (K5), driven without Qt, devices or network against a backend that keeps the server's rules."""
from __future__ import annotations

import json
from datetime import datetime

import pytest

from workflows.checkin import NONE_TODAY, CheckIn
from workflows.journal import Journal
from workflows.service_base import OFFLINE, Timeouts

from .fakes import Clock, FakeAppointmentBackend, FakeCard, RecordingPrinter

TODAY = FakeAppointmentBackend.TODAY


def paid_appointment(backend: FakeAppointmentBackend, slot_id: int = 101, day: str = TODAY) -> str:
    """An appointment booked and paid earlier (at any kiosk or on the phone), on `day`."""
    order = backend.book_appointment("P0001", slot_id, f"key-{slot_id}-{day}")
    backend.phone_pays(order["order_no"])
    backend.orders[order["order_no"]]["slot"]["date"] = day
    backend.calls.clear()
    return order["order_no"]


@pytest.fixture
def env(tmp_path):
    journal = Journal(tmp_path / "journal.db")
    backend = FakeAppointmentBackend(journal)
    printer = RecordingPrinter()
    views: list = []
    clock = Clock()
    wf = CheckIn(backend, printer, journal, views.append, "KIOSK-T01", Timeouts(), clock=clock,
                 sleep=lambda s: None, now=lambda: datetime(2026, 11, 23, 13, 30))
    return wf, backend, printer, views, journal, clock


def identify(wf) -> None:
    wf.handle("start")
    wf.handle("card_read", card=FakeCard())


def test_check_in_shows_and_prints_the_queue_and_where_to_go(env):
    wf, backend, printer, views, journal, clock = env
    order_no = paid_appointment(backend)
    paid_appointment(backend, 102, FakeAppointmentBackend.TOMORROW)  # another day: not today's business
    identify(wf)
    assert wf.state == "choosing_appointment" and views[-1].screen == "checkin_list"
    assert [a["order_no"] for a in views[-1].data["appointments"]] == [order_no]
    wf.handle("pick_appointment", order_no=order_no)
    assert wf.state == "done" and views[-1].screen == "checkin_done"
    queue = views[-1].data["queue"]
    assert (queue["queue_no"], queue["ahead"], queue["estimated_wait_minutes"]) == (7, 4, 32)
    assert queue["location"] == "门诊楼3层A区 5诊室" and not views[-1].data["print_failed"]
    texts = [getattr(b, "text", "") for b in printer.documents[0]]
    assert "报到凭条" in texts and "7 号" in texts and "前面还有 4 人" in texts and "预计等候约 32 分钟" in texts
    assert "候诊地点：门诊楼3层A区 5诊室" in texts
    assert [a for n, a, _ in backend.calls if n == "check_in"] == [(order_no, "P0001")]

    dump = json.dumps(journal.entries(), ensure_ascii=False)
    assert "李秀英" not in dump and FakeCard.id_number not in dump and "李*英" not in dump
    entry = [e for e in journal.entries() if e["dest"] == "checking_in"][-1]
    assert entry["data"]["checkin_order_no"] == order_no  # journaled before the server was asked

    clock.t += Timeouts().done + 1
    wf.tick()
    assert wf.state == "home" and wf.visit.patient is None and wf.visit.queue is None


@pytest.mark.parametrize("window, words", [("early", "还未到报到时间。请于 11-23 13:00 至 11-23 14:15 之间报到"),
                                           ("late", "已超过报到时间（11-23 13:00 至 11-23 14:15）")])
def test_too_early_or_too_late_says_the_window_in_words(env, window, words):
    wf, backend, printer, views, journal, clock = env
    order_no = paid_appointment(backend)
    backend.checkin_window = window
    identify(wf)
    wf.handle("pick_appointment", order_no=order_no)
    assert wf.state == "choosing_appointment" and views[-1].screen == "checkin_list"
    assert words in views[-1].message and "13:00" in views[-1].message_en
    assert not printer.documents and backend.orders[order_no]["status"] == "FULFILLED"
    backend.checkin_window = "open"  # the patient waits and taps again
    wf.handle("pick_appointment", order_no=order_no)
    assert wf.state == "done"


def test_no_appointment_today_says_so(env):
    wf, backend, printer, views, journal, clock = env
    paid_appointment(backend, day=FakeAppointmentBackend.TOMORROW)
    identify(wf)
    assert views[-1].data["appointments"] == [] and views[-1].message == NONE_TODAY[0]
    wf.handle("pick_appointment", order_no="VHIS")  # not on the list: nothing happens
    assert wf.state == "choosing_appointment" and not [n for n, _, _ in backend.calls if n == "check_in"]


def test_server_unreachable_at_check_in_says_so(env):
    wf, backend, printer, views, journal, clock = env
    order_no = paid_appointment(backend)
    identify(wf)
    backend.offline.add("check_in")
    wf.handle("pick_appointment", order_no=order_no)
    assert wf.state == "failed" and (views[-1].message, views[-1].message_en) == OFFLINE
    assert len([n for n, _, _ in backend.calls if n == "check_in"]) == 1 + len(Timeouts().retry_delays)


def test_server_unreachable_for_the_list_says_so(env):
    wf, backend, printer, views, journal, clock = env
    backend.offline.add("registration_history")
    identify(wf)
    assert wf.state == "failed" and views[-1].message == OFFLINE[0]


def test_printer_fault_keeps_the_check_in_and_shows_the_number(env):
    wf, backend, printer, views, journal, clock = env
    printer.fail = True
    order_no = paid_appointment(backend)
    identify(wf)
    wf.handle("pick_appointment", order_no=order_no)
    assert wf.state == "done" and views[-1].data["print_failed"] and views[-1].data["queue"]["queue_no"] == 7
    assert backend.orders[order_no]["status"] == "CHECKED_IN"


@pytest.mark.parametrize("how", ["cancel", "idle"])
def test_leaving_before_check_in_goes_home_wiped(env, how):
    wf, backend, printer, views, journal, clock = env
    paid_appointment(backend)
    identify(wf)
    assert views[-1].can_cancel
    if how == "cancel":
        wf.handle("cancel")
    else:
        clock.t += Timeouts().choosing - 1
        wf.tick()
        assert wf.state == "choosing_appointment"
        clock.t += 2
        wf.tick()
    assert wf.state == "home" and wf.visit.patient is None and wf.visit.appointments == []
    assert not [n for n, _, _ in backend.calls if n == "check_in"]
