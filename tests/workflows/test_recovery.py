"""Start-up recovery of a visit the last run left half-way, against the in-memory backend."""
from __future__ import annotations

import pytest

from tests.workflows.fakes import FakeBackend
from workflows.backend import BackendUnavailable
from workflows.journal import Journal
from workflows.recovery import recover, unfinished

WF = "same_day_registration"


@pytest.fixture
def journal(tmp_path):
    j = Journal(tmp_path / "journal.db")
    yield j
    j.close()


def left_in(journal, state, **data):
    journal.record("s1", WF, "confirm", "confirming", state, {"patient_id": None, "slot_id": None,
                                                             "order_key": None, "order_no": None, **data})


def test_an_unpaid_order_left_open_is_cancelled_once(journal):
    backend = FakeBackend()
    order = backend.create_registration("P1", 101, "key-1")
    left_in(journal, "awaiting_payment", patient_id="P1", slot_id=101, order_key="key-1",
            order_no=order["order_no"])
    [result] = recover(journal, backend)
    assert result.outcome == "cancelled" and backend.orders[order["order_no"]]["status"] == "CLOSED"
    assert recover(journal, backend) == [] and unfinished(journal) == []


def test_a_crash_before_the_answer_finds_the_order_by_its_key(journal):
    backend = FakeBackend()
    order = backend.create_registration("P1", 101, "key-2")  # the server made it; the kiosk never heard
    left_in(journal, "creating_order", patient_id="P1", slot_id=101, order_key="key-2")
    [result] = recover(journal, backend)
    assert result.order_no == order["order_no"] and result.outcome == "cancelled"
    assert len(backend.orders) == 1


def test_a_paid_order_is_left_to_the_server(journal):
    backend = FakeBackend()
    order = backend.create_registration("P1", 101, "key-3")
    backend.phone_pays(order["order_no"])
    left_in(journal, "awaiting_payment", order_no=order["order_no"])
    [result] = recover(journal, backend)
    assert result.outcome == "server_owned" and backend.orders[order["order_no"]]["status"] == "FULFILLED"


def test_server_unreachable_leaves_it_for_the_next_start(journal, monkeypatch):
    backend = FakeBackend()
    order = backend.create_registration("P1", 101, "key-4")
    left_in(journal, "awaiting_payment", order_no=order["order_no"])

    def down(*_a, **_k):
        raise BackendUnavailable("network down")

    monkeypatch.setattr(backend, "order", down)
    assert recover(journal, backend)[0].outcome == "unresolved"
    monkeypatch.undo()
    assert recover(journal, backend)[0].outcome == "cancelled"


def test_finished_visits_and_visits_without_an_order_need_nothing(journal):
    journal.record("s0", WF, "home", "done", "home", {})
    left_in(journal, "choosing_slot")
    [result] = recover(journal, FakeBackend())
    assert result.outcome == "no_order"


def test_a_key_the_server_never_used_makes_no_order(journal):
    backend = FakeBackend()
    left_in(journal, "creating_order", patient_id="P1", slot_id=101, order_key="key-never-sent")
    [result] = recover(journal, backend)
    assert result.outcome == "no_order" and not backend.orders
