"""The receipt printer's real status: DLE EOT answers from the TCP printer simulator, read by the driver."""
from __future__ import annotations

import socket
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.health import Status
from drivers.receipt.printer import NetworkReceiptPrinter
from drivers.receipt.simulator import PrinterListener
from drivers.receipt.status import health_from_status


@pytest.fixture
def listener():
    with PrinterListener() as printer:
        yield printer


@pytest.mark.parametrize("switch, status, reason", [
    (None, Status.OK, ""),
    ("paper_near_end", Status.DEGRADED, "paper_low"),
    ("paper_out", Status.FAULT, "paper_out"),
    ("cover_open", Status.FAULT, "cover_open"),
    ("cutter_jammed", Status.FAULT, "cutter_error"),
])
def test_each_printer_state_reaches_health(listener, switch, status, reason):
    if switch:
        setattr(listener, switch, True)
    health = NetworkReceiptPrinter("127.0.0.1", listener.port, timeout=2).health()
    assert (health.status, health.reason) == (status, reason)
    assert not listener.jobs  # status queries are not print jobs


def test_recovery_shows_at_the_next_check(listener):
    printer = NetworkReceiptPrinter("127.0.0.1", listener.port, timeout=2)
    listener.paper_out = True
    assert printer.health().reason == "paper_out"
    listener.paper_out = False
    assert printer.health().status is Status.OK


def test_garbled_status_is_reported_not_guessed(listener):
    listener.garbage = 0xFF
    health = NetworkReceiptPrinter("127.0.0.1", listener.port, timeout=2).health()
    assert health.status is Status.DEGRADED and health.reason == "status_garbled" and "0xFF" in health.detail


def test_unreachable_printer_is_disconnected():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    health = NetworkReceiptPrinter("127.0.0.1", port, timeout=1).health()
    assert health.status is Status.FAULT and health.reason == "disconnected"


def test_printer_that_never_answers_status_is_degraded():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    accepted = []
    threading.Thread(target=lambda: accepted.append(server.accept()), daemon=True).start()
    try:
        health = NetworkReceiptPrinter("127.0.0.1", server.getsockname()[1], timeout=1).health()
        assert health.status is Status.DEGRADED and health.reason == "no_status"
    finally:
        for conn, _ in accepted:
            conn.close()
        server.close()


def test_self_test_prints_a_page_when_usable(listener):
    printer = NetworkReceiptPrinter("127.0.0.1", listener.port, timeout=2)
    assert printer.self_test().status is Status.OK
    assert "self-test" in listener.wait_for_job(5).decode("gb18030", "replace")
    listener.paper_out = True
    assert printer.self_test().reason == "paper_out"
    assert len(listener.jobs) == 1  # no page is sent to a printer without paper


@given(st.dictionaries(st.sampled_from([1, 2, 3, 4]), st.integers(0, 255)))
def test_any_status_bytes_give_a_health_value(answers):
    health = health_from_status(answers)
    assert health.status in (Status.OK, Status.DEGRADED, Status.FAULT)
