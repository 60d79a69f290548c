"""The same-day registration state machine, driven without Qt, devices or network."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from workflows.backend import BackendUnavailable
from workflows.journal import Journal
from workflows.registration import SameDayRegistration, Timeouts

from .fakes import Clock, FakeBackend, FakeCard, RecordingPrinter


@pytest.fixture
def env(tmp_path):
    journal = Journal(tmp_path / "journal.db")
    backend = FakeBackend(journal)
    printer = RecordingPrinter()
    views = []
    clock = Clock()
    wf = SameDayRegistration(backend, printer, journal, views.append, "KIOSK-T01",
                             Timeouts(poll_interval=1.0), clock=clock, sleep=lambda s: None)
    return wf, backend, printer, views, journal, clock


UP_TO_CONFIRM = [("start", {}), ("card_read", {"card": FakeCard()}), ("pick_department", {"code": "NK"}),
                 ("pick_doctor", {"code": "D01"}), ("pick_slot", {"slot_id": 101})]


def walk_to_payment(wf, backend, slot_id=101):
    wf.handle("start")
    wf.handle("card_read", card=FakeCard())
    assert wf.state == "choosing_department"
    wf.handle("pick_department", code="NK")
    wf.handle("pick_doctor", code="D01")
    wf.handle("pick_slot", slot_id=slot_id)
    assert wf.state == "confirming"
    wf.handle("confirm")


def test_full_visit_prints_slip_and_returns_home_wiped(env):
    wf, backend, printer, views, journal, clock = env
    walk_to_payment(wf, backend)
    assert wf.state == "awaiting_payment"
    assert views[-1].screen == "payment"
    assert views[-1].data["order"]["payment"]["code_url"].startswith("weixin://")
    assert views[-1].can_cancel  # nothing is paid yet: cancel closes the order through the server
    order_no = wf.visit.order["order_no"]

    clock.t += 0.5
    wf.tick()  # too early to poll
    assert wf.state == "awaiting_payment"
    backend.phone_pays(order_no)
    clock.t += 1.0
    wf.tick()
    assert wf.state == "done"
    assert views[-1].screen == "done" and views[-1].data["order"]["registration"]["queue_no"] == 7
    assert len(printer.documents) == 1
    texts = [getattr(b, "text", "") for b in printer.documents[0]]
    assert any("李*英" in t for t in texts) and not any("李秀英" in t for t in texts)
    assert any(getattr(b, "data", None) == f"V{order_no}" for b in printer.documents[0])

    clock.t += Timeouts().done + 1
    wf.tick()
    assert wf.state == "home"
    assert wf.visit.patient is None and wf.visit.order is None
    assert views[-1].screen == "home" and views[-1].patient == ""


def test_every_transition_is_journaled_before_its_side_effect(env):
    wf, backend, printer, views, journal, clock = env
    walk_to_payment(wf, backend)
    calls = {name: (args, last) for name, args, last in backend.calls}
    args, last = calls["create_registration"]
    assert last["dest"] == "creating_order" and last["data"]["order_key"] == args[2]
    args, last = calls["pay"]
    assert last["dest"] == "awaiting_payment" and last["data"]["pay_key"] == args[2]
    assert last["data"]["order_no"] == args[0]
    # identifiers only: nothing from the card reaches the journal
    dump = json.dumps(journal.entries(), ensure_ascii=False)
    assert "李秀英" not in dump and FakeCard.id_number not in dump


@pytest.mark.parametrize("steps", [0, 1, 2, 3, 4])
def test_cancel_before_payment_goes_home_and_creates_nothing(env, steps):
    wf, backend, printer, views, journal, clock = env
    for intent, kw in UP_TO_CONFIRM[:steps + 1]:
        wf.handle(intent, **kw)
    assert views[-1].can_cancel
    wf.handle("cancel")
    assert wf.state == "home" and wf.visit.patient is None
    assert not backend.orders


@pytest.mark.parametrize("steps", [0, 2, 3, 4])
def test_idle_timeout_before_payment_wipes_the_session(env, steps):
    wf, backend, printer, views, journal, clock = env
    for intent, kw in UP_TO_CONFIRM[:steps + 1]:
        wf.handle(intent, **kw)
    clock.t += 30
    wf.tick()
    assert wf.state != "home"  # not idle long enough yet
    clock.t += 100
    wf.tick()
    assert wf.state == "home" and wf.visit.patient is None
    assert views[-1].screen == "home"


def test_slot_taken_meanwhile_shows_message_and_fresh_list(env):
    wf, backend, printer, views, journal, clock = env
    wf.handle("start")
    wf.handle("card_read", card=FakeCard())
    wf.handle("pick_department", code="NK")
    wf.handle("pick_doctor", code="D01")
    backend.slot_table[101]["booked"] = 1  # someone else took the last place of 14:00
    wf.handle("pick_slot", slot_id=101)
    wf.handle("confirm")
    assert wf.state == "choosing_slot"
    view = views[-1]
    assert view.screen == "slots" and "已被他人挂走" in view.message
    assert [s["slot_id"] for s in view.data["slots"]] == [102]
    wf.handle("pick_slot", slot_id=102)
    wf.handle("confirm")
    assert wf.state == "awaiting_payment"


def test_invalid_pick_is_ignored(env):
    wf, backend, printer, views, journal, clock = env
    wf.handle("start")
    wf.handle("card_read", card=FakeCard())
    wf.handle("pick_department", code="NOPE")
    assert wf.state == "choosing_department"
    wf.handle("confirm")  # not valid here: ignored
    assert wf.state == "choosing_department"


def test_unknown_patient_gets_a_clear_message(env):
    wf, backend, printer, views, journal, clock = env
    wf.handle("start")
    wf.handle("card_read", card=FakeCard(id_number="110101199001011237"))
    assert wf.state == "failed" and views[-1].screen == "error"
    assert "建档" in views[-1].message


def test_server_unreachable_gives_a_clear_message(env):
    wf, backend, printer, views, journal, clock = env
    backend.offline.add("identify_by_id_card")
    wf.handle("start")
    wf.handle("card_read", card=FakeCard())
    assert views[-1].screen == "error" and "网络" in views[-1].message


def test_cancel_on_payment_screen_closes_the_order(env):
    wf, backend, printer, views, journal, clock = env
    walk_to_payment(wf, backend)
    wf.handle("cancel")
    assert wf.state == "home"
    assert all(o["status"] == "CLOSED" for o in backend.orders.values())


def test_payment_that_arrived_before_cancel_is_honoured(env):
    wf, backend, printer, views, journal, clock = env
    walk_to_payment(wf, backend)
    backend.phone_pays(wf.visit.order["order_no"])
    wf.handle("cancel")
    assert wf.state == "done" and len(printer.documents) == 1


def test_cancel_while_server_unreachable_keeps_trying(env):
    wf, backend, printer, views, journal, clock = env
    walk_to_payment(wf, backend)
    backend.offline.add("cancel")
    wf.handle("cancel")
    assert wf.state == "cancelling"
    clock.t += 5
    wf.tick()
    assert wf.state == "cancelling"  # never walks away from an order it could not close
    backend.offline.clear()
    clock.t += 5
    wf.tick()
    assert wf.state == "home"


def test_idle_on_payment_screen_closes_the_order(env):
    wf, backend, printer, views, journal, clock = env
    walk_to_payment(wf, backend)
    clock.t += Timeouts().awaiting_payment + 1
    wf.tick()
    assert wf.state in ("cancelling", "home")
    clock.t += 5
    wf.tick()
    assert wf.state == "home" and all(o["status"] == "CLOSED" for o in backend.orders.values())


def test_refunded_order_says_money_goes_back(env):
    wf, backend, printer, views, journal, clock = env
    walk_to_payment(wf, backend)
    backend.orders[wf.visit.order["order_no"]]["status"] = "REFUNDED"
    clock.t += 2
    wf.tick()
    assert views[-1].screen == "error" and "退回" in views[-1].message


def test_paid_but_unconfirmed_tells_patient_not_to_pay_again(env):
    wf, backend, printer, views, journal, clock = env
    walk_to_payment(wf, backend)
    backend.phone_pays(wf.visit.order["order_no"], fulfil=False)
    clock.t += 2
    wf.tick()
    assert wf.state == "fulfilling"
    clock.t += Timeouts().fulfilment + 5
    wf.tick()
    assert views[-1].screen == "error" and "无需重复支付" in views[-1].message


def test_printer_failure_keeps_the_registration(env):
    wf, backend, printer, views, journal, clock = env
    printer.fail = True
    walk_to_payment(wf, backend)
    backend.phone_pays(wf.visit.order["order_no"])
    clock.t += 2
    wf.tick()
    assert wf.state == "done" and views[-1].data["print_failed"] is True


def test_workflows_do_not_import_qt():
    code = "import sys, workflows.registration, workflows.runner; " \
           "sys.exit(1 if any(m.startswith('PySide6') for m in sys.modules) else 0)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_a_broken_printer_switches_the_service_off_and_back_on(env):
    from drivers.health import Health
    wf, backend, printer, views, journal, clock = env
    wf.handle("device_health", device="receipt_printer", health=Health.fault("paper_out", "paper out"))
    home = views[-1]
    assert home.screen == "home" and home.data["services"]["start"]["available"] is False
    assert "凭条打印机" in home.data["services"]["start"]["reason"]
    wf.handle("start")
    assert wf.state == "home"  # refused: no visit starts on a kiosk that cannot print the slip
    wf.handle("device_health", device="receipt_printer", health=Health.degraded("paper_low"))
    assert views[-1].data["services"]["start"]["available"] is True  # low paper still serves
    wf.handle("start")
    assert wf.state == "reading_card"


def test_device_failing_mid_visit_stops_before_money(env):
    from drivers.health import Health
    wf, backend, printer, views, journal, clock = env
    for intent, kw in UP_TO_CONFIRM:
        wf.handle(intent, **kw)
    wf.handle("device_health", device="receipt_printer", health=Health.fault("cover_open"))
    wf.handle("confirm")
    assert views[-1].screen == "error" and "凭条打印机" in views[-1].message
    assert not backend.orders


def test_device_health_does_not_count_as_patient_activity(env):
    from drivers.health import Health
    wf, backend, printer, views, journal, clock = env
    wf.handle("start")
    clock.t += 50
    wf.handle("device_health", device="id_card", health=Health.ok())
    clock.t += 20
    wf.tick()
    assert wf.state == "home"


def test_a_lost_answer_is_asked_again_with_the_same_key(env):
    wf, backend, printer, views, journal, clock = env
    for intent, kw in UP_TO_CONFIRM:
        wf.handle(intent, **kw)
    answers = iter([BackendUnavailable("timeout"), None])
    real_create = backend.create_registration

    def flaky_create(*args):
        outcome = real_create(*args)  # the server did the work ...
        problem = next(answers)
        if problem:
            raise problem  # ... and the answer was lost on the way back
        return outcome

    backend.create_registration = flaky_create
    wf.handle("confirm")
    assert wf.state == "awaiting_payment" and len(backend.orders) == 1


# --- a payment code shown instead of scanning the QR ---------------------------------------------------------

WECHAT_CODE = "134567890123456789"


def test_a_payment_code_shown_on_the_payment_screen_pays_the_order(env):
    wf, backend, printer, views, journal, clock = env
    walk_to_payment(wf, backend)
    assert wf.state == "awaiting_payment"
    wf.handle("code_scanned", kind="wechat_pay", code=WECHAT_CODE)
    assert wf.state == "done" and len(printer.documents) == 1
    pays = [args for name, args, _ in backend.calls if name == "pay"]
    assert [a[1] for a in pays] == ["wechat_native", "wechat_code"]
    assert pays[0][2] != pays[1][2]  # the code charge has its own idempotency key
    journaled = json.dumps([e for e in journal.entries()], default=str)
    assert WECHAT_CODE not in journaled and pays[1][2] in journaled  # the key is kept, the code never


def test_a_code_waiting_for_the_phone_shows_what_to_do_and_the_poll_finishes_it(env):
    wf, backend, printer, views, journal, clock = env
    walk_to_payment(wf, backend)
    backend.code_outcomes[WECHAT_CODE] = "USERPAYING"
    wf.handle("code_scanned", kind="wechat_pay", code=WECHAT_CODE)
    assert wf.state == "awaiting_payment"
    assert views[-1].screen == "payment" and "手机上确认" in views[-1].message
    backend.phone_pays(wf.visit.order["order_no"])
    clock.t += 2
    wf.tick()
    assert wf.state == "done"


def test_a_refused_code_leaves_the_qr_and_says_why(env):
    wf, backend, printer, views, journal, clock = env
    walk_to_payment(wf, backend)
    backend.code_outcomes[WECHAT_CODE] = "REFUSED"
    wf.handle("code_scanned", kind="wechat_pay", code=WECHAT_CODE)
    assert wf.state == "awaiting_payment" and "付款未成功" in views[-1].message
    assert views[-1].data["order"]["payment"] is not None


def test_codes_that_are_not_payment_codes_or_come_too_early_are_ignored(env):
    wf, backend, printer, views, journal, clock = env
    wf.handle("start")
    wf.handle("code_scanned", kind="wechat_pay", code=WECHAT_CODE)
    assert wf.state == "reading_card"
    walk_to_payment_from_card(wf)
    wf.handle("code_scanned", kind="insurance_voucher", code="ecXk3v9Q2mWJ7TzL0pRb5NfY8uHsAe1D")
    wf.handle("code_scanned", kind="unknown", code="")
    assert wf.state == "awaiting_payment"
    assert not [args for name, args, _ in backend.calls if name == "pay" and args[1] != "wechat_native"]


def walk_to_payment_from_card(wf):
    wf.handle("card_read", card=FakeCard())
    wf.handle("pick_department", code="NK")
    wf.handle("pick_doctor", code="D01")
    wf.handle("pick_slot", slot_id=101)
    wf.handle("confirm")
