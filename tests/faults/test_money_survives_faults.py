"""Fault injection: kill -9 the kiosk at every point of a paying visit, cut the network, kill the server, and
check the money afterwards. Every paid order ends fulfilled exactly once or refunded, nothing is fulfilled
twice, and the money the channel kept equals the fees of the registrations the HIS holds.

Each scenario runs real processes: a kiosk (the real workflow, HTTP client, journal, printer driver), a
kiosk-central process with its sweeper, and the WeChat Pay sandbox in a process of its own so that paid
money survives a server crash as it would at the provider.
"""
from __future__ import annotations

import time

import httpx
import pytest

from tests.faults.conftest import STALLED

pytestmark = [pytest.mark.timeout(240), pytest.mark.faults]


def run_to(rig, journal, *stall):
    kiosk = rig.kiosk(*stall, "--qr-file", str(journal.with_suffix(".qr")), journal=journal)
    rig.wait_for_line(kiosk, STALLED)
    return kiosk


def visit_until_qr(rig, journal, *extra):
    """Start a visit and wait until its payment QR is on the screen; returns the kiosk and the QR."""
    kiosk = rig.kiosk(*extra, "--qr-file", str(journal.with_suffix(".qr")), journal=journal)
    deadline = time.monotonic() + 60
    while qr_of(journal) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert qr_of(journal), "the payment QR never reached the screen"
    return kiosk, qr_of(journal)


def qr_of(journal):
    path = journal.with_suffix(".qr")
    return path.read_text() if path.exists() else None


# (where the kiosk freezes and dies, does the patient's phone pay before the restart, how the order ends)
KILL_POINTS = [
    (("--stall-before", "create_registration"), False, None),  # nothing made yet
    (("--stall-after", "create_registration"), False, "CLOSED"),  # made; the kiosk never heard
    (("--stall-after", "pay"), False, "CLOSED"),  # the trade is open; no QR reached the screen
    (("--stall-before", "order"), False, "CLOSED"),  # QR on screen, the patient walks away
    (("--stall-before", "order"), True, "FULFILLED"),  # QR on screen, paid after the kiosk died
    (("--stall-before", "print_document"), None, "FULFILLED"),  # paid and registered; died before the slip
    (("--stall-after", "print_document"), None, "FULFILLED"),  # slip printed; died before going home
]


def orders_of(journal):
    from workflows.journal import Journal
    j = Journal(journal)
    try:
        return {e["data"].get("order_no") for e in j.entries()} - {None}
    finally:
        j.close()


@pytest.mark.parametrize("stall, pay_after_kill, ends", KILL_POINTS,
                         ids=[f"{s[0][8:]}-{s[1]}{'-paid' if p else ''}" for s, p, _ in KILL_POINTS])
def test_kill_9_the_kiosk_then_restart(rig, tmp_path, stall, pay_after_kill, ends):
    journal = tmp_path / "journal.db"
    before = {o["order_no"] for o in rig.orders()}
    if stall[1] == "print_document":  # reach printing: the phone pays while the kiosk waits
        kiosk, qr = visit_until_qr(rig, journal, *stall)
        rig.pay(qr)
        rig.wait_for_line(kiosk, STALLED)
    else:
        kiosk = run_to(rig, journal, *stall)
    rig.kill_9(kiosk)
    if pay_after_kill:
        rig.pay(qr_of(journal))
    outcomes = rig.restart_kiosk_and_recover(journal)
    assert "unresolved" not in outcomes
    rig.check_money()
    statuses = {o["order_no"]: o["status"] for o in rig.orders()}
    mine = orders_of(journal) | (set(statuses) - before - {None})
    if ends is None:
        assert not mine, "no order was made before the kiosk died"
    else:
        assert len(mine) == 1 and statuses[mine.pop()] == ends


def test_network_cut_while_paying(rig, tmp_path):
    journal = tmp_path / "journal.db"
    kiosk, qr = visit_until_qr(rig, journal)
    rig.proxy.refuse()  # cable pulled while the QR is on screen
    try:
        rig.pay(qr)  # the notification goes provider → server; the kiosk sees nothing
        time.sleep(3)
    finally:
        rig.proxy.restore()
    line = rig.wait_for_line(kiosk, "FINISHED", timeout=90)
    assert line.split()[1] == "done", line
    rig.check_money()


def test_answer_to_the_order_lost_on_the_way_back(rig, tmp_path):
    journal = tmp_path / "journal.db"
    rig.proxy.lose_answer_to(b"POST /api/v1/kiosk/registrations")
    kiosk, qr = visit_until_qr(rig, journal)
    assert rig.proxy.lost_answers == 1
    rig.pay(qr)
    line = rig.wait_for_line(kiosk, "FINISHED", timeout=90)
    assert line.split()[1] == "done", line
    rig.check_money()  # the retried request found the same order: one order, one registration


def test_server_killed_mid_payment_and_restarted(rig, tmp_path):
    journal = tmp_path / "journal.db"
    kiosk, qr = visit_until_qr(rig, journal)
    rig.central.kill()
    rig.pay(qr)  # paid while the server is down: the notification cannot be delivered yet
    time.sleep(2)
    rig.central.start()
    line = rig.wait_for_line(kiosk, "FINISHED", timeout=120)
    assert line.split()[1] == "done", line
    rig.check_money()


def test_repeated_and_reordered_notifications(rig, tmp_path):
    control = rig.sandbox_url + "/simulate/notifications"
    httpx.post(control, json={"mode": "hold", "repeat": 3}, timeout=10).raise_for_status()
    journal = tmp_path / "journal.db"
    try:
        kiosk, qr = visit_until_qr(rig, journal)
        rig.pay(qr)
        time.sleep(1)  # the kiosk's polls may settle it first; the held notifications come after, three times
        httpx.post(control + "/release", json={"order": "lifo"}, timeout=10).raise_for_status()
    finally:
        httpx.post(control, json={"mode": "deliver", "repeat": 1}, timeout=10).raise_for_status()
    line = rig.wait_for_line(kiosk, "FINISHED", timeout=90)
    assert line.split()[1] == "done", line
    rig.check_money()
