"""Queries (信息查询) driven without Qt or network: the four tabs, a bill's items, a tab that fails without ending
the visit, the idle wipe, and a journal without personal data."""
from __future__ import annotations

import json

import pytest

from drivers.health import Health
from workflows.journal import Journal
from workflows.queries import RecordQueries
from workflows.service_base import Timeouts

from .fakes import Clock, FakeCard, FakeRecordsBackend, RecordingPrinter


@pytest.fixture
def env(tmp_path):
    journal = Journal(tmp_path / "journal.db")
    backend = FakeRecordsBackend(journal)
    views = []
    clock = Clock()
    wf = RecordQueries(backend, RecordingPrinter(), journal, views.append, "KIOSK-T01", Timeouts(), clock=clock,
                       sleep=lambda s: None)
    return wf, backend, views, journal, clock


def identify(wf):
    wf.handle("start")
    wf.handle("card_read", card=FakeCard())
    assert wf.state == "browsing"


def test_every_tab_shows_its_rows(env):
    wf, backend, views, journal, clock = env
    identify(wf)
    first = views[-1]
    assert first.screen == "records" and first.data["tab"] == "registrations" and first.can_cancel
    assert [t["name"] for t in first.data["tabs"]] == ["挂号记录", "缴费记录", "费用明细", "排队进度"]
    assert first.data["rows"][0]["visit_code"] == "V1" and first.patient.startswith("李*英")
    wf.handle("show_tab", tab="payments")
    pay = views[-1]
    assert pay.data["tab"] == "payments" and pay.data["rows"][0]["refunded_fen"] == 3700
    assert pay.data["rows"][0]["insurance_fen"] == 4620
    wf.handle("show_tab", tab="queue")
    q = views[-1]
    assert q.data["rows"][0]["ahead"] == 2 and q.data["rows"][0]["estimated_wait_minutes"] == 15
    backend.queue_rows[0].update(position=1, ahead=0, estimated_wait_minutes=0)  # the queue moves on
    wf.handle("show_tab", tab="queue")
    assert views[-1].data["rows"][0]["ahead"] == 0  # a tap on the tab asks again
    wf.handle("show_tab", tab="nonsense")
    assert views[-1].data["tab"] == "queue"


def test_a_bill_opens_with_its_items_and_back_returns_to_the_list(env):
    wf, backend, views, journal, clock = env
    identify(wf)
    wf.handle("open_bill", bill_no="B001")
    assert wf.state == "browsing"  # the bills tab was not loaded: no such bill on the glass
    wf.handle("show_tab", tab="bills")
    wf.handle("open_bill", bill_no="B001")
    assert wf.state == "viewing_bill"
    bill = views[-1]
    assert bill.screen == "record_bill" and bill.can_back and len(bill.data["bill"]["items"]) == 3
    wf.handle("back")
    assert wf.state == "browsing" and views[-1].data["tab"] == "bills"


def test_an_unreachable_server_on_one_tab_keeps_the_visit(env):
    wf, backend, views, journal, clock = env
    identify(wf)
    backend.offline.add("payment_history")
    wf.handle("show_tab", tab="payments")
    assert wf.state == "browsing" and "网络" in views[-1].message and views[-1].data["rows"] == []
    wf.handle("show_tab", tab="queue")
    assert views[-1].message == "" and views[-1].data["rows"]


def test_empty_lists_say_so(env):
    wf, backend, views, journal, clock = env
    backend.queue_rows = []
    identify(wf)
    wf.handle("show_tab", tab="queue")
    assert "没有挂号" in views[-1].message


def test_server_unreachable_at_identification_fails_with_the_offline_message(env):
    wf, backend, views, journal, clock = env
    backend.offline.add("identify_by_id_card")
    wf.handle("start")
    wf.handle("card_read", card=FakeCard())
    assert wf.state == "failed" and "网络" in views[-1].message


def test_idle_wipes_everything_shown(env):
    wf, backend, views, journal, clock = env
    identify(wf)
    wf.handle("show_tab", tab="payments")
    clock.t += Timeouts().choosing - 1
    wf.tick()
    assert wf.state == "browsing"
    clock.t += 2
    wf.tick()
    assert wf.state == "home" and wf.visit.patient is None and wf.visit.lists == {}
    assert views[-1].screen == "home"


def test_the_journal_holds_no_personal_data(env):
    wf, backend, views, journal, clock = env
    identify(wf)
    for tab in ("payments", "bills", "queue"):
        wf.handle("show_tab", tab=tab)
    wf.handle("open_bill", bill_no="B001")
    wf.handle("finish")
    dump = json.dumps(journal.entries(), ensure_ascii=False)
    for secret in ("李秀英", "李*英", FakeCard.id_number, "阿莫西林", "王医生", "3700"):
        assert secret not in dump, secret
    assert "B001" in dump and "P0001" in dump


def test_needs_only_the_id_card_reader(env):
    wf, backend, views, journal, clock = env
    wf.handle("device_health", device="report_printer", health=Health.fault("paper_out"))
    assert wf.availability()[0]
    wf.handle("device_health", device="id_card", health=Health.fault("sam_fault"))
    assert not wf.availability()[0]
