"""预约挂号 and 取消预约 through the real Qt app, a real kiosk-central process (reference HIS, WeChat Pay
sandbox), the ID-card reader simulator on a serial pty pair and the TCP receipt printer: the demo patient finds a
doctor by pinyin initials on the letter keyboard, books the nearest day she can still cancel, pays by QR, takes
the slip, then cancels the appointment and the fee goes back along the trade."""
from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from PySide6.QtWidgets import QPushButton

from central.his.seed import DEMO_PATIENT, DEMO_PATIENT_ID
from drivers.receipt.render import printed_text
from kiosk_app.phone import qr_on_screen
from kiosk_app.scripted import (ScriptError, click, click_button, click_tile, leave_after_visit, wait_for_screen,
                                 wait_until)
from kiosk_app.simulated import card_for
from tests.e2e.conftest import api

pytestmark = pytest.mark.e2e

#: The reference HIS's cut-off for self-service cancellation (HisRules.cancel_cutoff), on the day before.
CANCEL_CUTOFF = time(18, 0)


@pytest.fixture
def terminal_id() -> str:
    return "KIOSK-E2E-YY"


def booking_day(k) -> date:
    """Tomorrow, unless the HIS's cut-off for cancelling tomorrow's appointments has already passed today (an
    evening run): then the day after, the nearest day an appointment can be both booked and given back here."""
    now = datetime.now(ZoneInfo(k.config.timezone))
    margin = (datetime.combine(now.date(), CANCEL_CUTOFF, now.tzinfo) - now) > timedelta(minutes=10)
    return now.date() + timedelta(days=1 if margin else 2)


def doctor_with_places(central, k, day: date) -> tuple[dict, dict]:
    """A general-clinic doctor with free places on `day`, as the kiosk API lists them, and the department."""
    for dept in api(central, k, "/appointments/departments?clinic_type=general")["departments"]:
        for doctor in api(central, k, f"/appointments/departments/{dept['code']}/doctors")["doctors"]:
            if doctor["remaining"] <= 0:
                continue
            dates = api(central, k, f"/appointments/departments/{dept['code']}/doctors/{doctor['code']}/dates")
            if any(d["date"] == day.isoformat() and d["remaining"] > 0 for d in dates["dates"]):
                return doctor, dept
    raise AssertionError(f"no doctor has free places on {day}")


def press_key(window, letter: str) -> None:
    """A key of the letter keyboard, by its exact label (other buttons may contain the letter)."""
    for btn in window.findChildren(QPushButton):
        if btn.isVisible() and btn.isEnabled() and btn.text() == letter:
            click(btn)
            return
    raise ScriptError(f"no key {letter!r}")


def identify(app, k, sims) -> None:
    wait_for_screen(app, k.window, "home")
    click_tile(k.window, "预约挂号")
    wait_for_screen(app, k.window, "insert_card")
    sims.id_card.insert(card_for(DEMO_PATIENT))
    wait_for_screen(app, k.window, "appt_departments")
    assert "李*英" in k.window.patient.text() and DEMO_PATIENT["name"] not in k.window.patient.text()


def test_book_by_pinyin_initials_pay_by_qr_then_cancel_and_get_the_refund(central, kiosk, qapp):
    k, sims = kiosk
    day = booking_day(k)
    doctor, dept = doctor_with_places(central, k, day)
    initials = next(d["initials"] for d in api(central, k, f"/appointments/doctors/search?q={doctor['name']}")
                    ["doctors"] if d["code"] == doctor["code"])

    identify(qapp, k, sims)
    click_button(k.window, "按医生查找")
    wait_for_screen(qapp, k.window, "doctor_search")
    for letter in initials:
        press_key(k.window, letter)
    wait_until(qapp, lambda: k.window.view.data.get("query") == initials, 10, "the initials")
    found = k.window.view.data["found"]
    assert any(f["code"] == doctor["code"] and f["department"]["code"] == dept["code"] for f in found), found
    click_tile(k.window, f"{doctor['name']}  {doctor.get('title') or ''}".rstrip() + f" {dept['name']}")
    wait_for_screen(qapp, k.window, "appt_dates")
    assert k.window.view.data["department"]["code"] == dept["code"]
    click_tile(k.window, f"{day.month}月{day.day}日")
    wait_for_screen(qapp, k.window, "appt_slots")
    assert k.window.view.data["date"] == day.isoformat()
    click_tile(k.window, "余号")
    wait_for_screen(qapp, k.window, "appt_confirm")
    click_button(k.window, "确认预约并支付")
    wait_until(qapp, lambda: k.window.view.screen in ("appt_payment", "error"), 30, "the payment screen")
    assert k.window.view.screen == "appt_payment", k.window.view.message

    code_url = qr_on_screen(k.window)
    assert code_url.startswith("weixin://wxpay/bizpayurl")
    order_no = k.window.view.data["order"]["order_no"]
    central.pay_as_phone(code_url)
    wait_until(qapp, lambda: k.window.view.screen in ("appt_done", "error"), 60, "the result")
    assert k.window.view.screen == "appt_done", k.window.view.message

    order = api(central, k, f"/orders/{order_no}")
    assert order["status"] == "FULFILLED" and order["slot"]["date"] == day.isoformat()
    assert order["doctor"]["code"] == doctor["code"] and order["payment"]["state"] == "SUCCESS"
    text = printed_text(sims.printer.wait_for_job(15))
    assert "预约挂号凭条" in text and "李*英" in text and DEMO_PATIENT["name"] not in text
    assert day.isoformat() in text and order_no in text and order["registration"]["visit_code"] in text
    leave_after_visit(qapp, k.window)
    assert k.window.patient_bar.isHidden()

    # 取消预约: a new visit; the appointment is on the list, the place and the money go back.
    identify(qapp, k, sims)
    click_button(k.window, "取消预约")
    wait_for_screen(qapp, k.window, "appt_cancel_list")
    assert order_no in [a["order_no"] for a in k.window.view.data["appointments"]]
    listed = k.window.view.data["appointments"]
    assert [a["order_no"] for a in listed].count(order_no) == 1
    click_tile(k.window, f"{day.month}月{day.day}日 星期{'一二三四五六日'[day.weekday()]}  {order['slot']['start']}")
    wait_for_screen(qapp, k.window, "appt_cancel_confirm")
    assert k.window.view.data["appointment"]["order_no"] == order_no
    click_button(k.window, "确认取消预约")
    wait_until(qapp, lambda: k.window.view.screen in ("appt_cancelled", "error"), 60, "the cancellation")
    assert k.window.view.screen == "appt_cancelled", k.window.view.message
    wait_until(qapp, lambda: api(central, k, f"/orders/{order_no}")["status"] == "REFUNDED", 60, "the refund")
    refunded = api(central, k, f"/orders/{order_no}")
    assert refunded["payment"]["state"] == "REFUND"  # the sandbox channel took the refund back to the payer
    history = api(central, k, f"/patients/{DEMO_PATIENT_ID}/history/registrations")["registrations"]
    assert next(r for r in history if r["order_no"] == order_no)["status"] == "CANCELLED"
    leave_after_visit(qapp, k.window)

    # The journal carries identifiers only: no name, no ID number, not the initials typed.
    journal = json.dumps(k.journal.entries(), ensure_ascii=False)
    assert DEMO_PATIENT["name"] not in journal and DEMO_PATIENT["id_number"] not in journal
    assert f'"cancel_order_no": "{order_no}"' in journal and '"query"' not in journal
