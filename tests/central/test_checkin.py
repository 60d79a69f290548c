"""Check-in (K5) over real HTTP: inside the hospital's window only, with the queue position and an estimated
wait from the patients ahead and the doctor's minutes per patient; the queue moves when the doctor calls."""
from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from central.his.seed import DEMO_PATIENT_ID
from central.his.tables import HisDoctor, HisSlot
from tests.central.conftest import LiveCentral, provision
from tests.central.test_appointments import weekday_ahead
from tests.central.visits import assert_error, book, booked_and_paid, local


def shared_slot(live: LiveCentral) -> HisSlot:
    """A future slot with room for two patients."""
    from sqlalchemy import select

    day = live.svc.today() + timedelta(days=weekday_ahead(live))
    with live.svc.sessions() as session:
        slot = session.scalars(select(HisSlot).where(HisSlot.day == day, HisSlot.dept_code != "JZNK",
                                                     HisSlot.capacity - HisSlot.booked >= 2)
                               .order_by(HisSlot.starts_at, HisSlot.id).limit(1)).first()
    assert slot is not None
    return slot


def test_check_in_inside_the_window_gives_position_and_wait(live: LiveCentral) -> None:
    kiosk = provision(live.svc, "KIOSK-001")
    slot = shared_slot(live)
    first = booked_and_paid(live, kiosk, DEMO_PATIENT_ID, slot.id)
    second = booked_and_paid(live, kiosk, "P00000001", slot.id)
    with live.svc.sessions() as session:
        minutes = session.get(HisDoctor, slot.doctor_code).minutes_per_patient
    starts = slot.starts_at
    path = f"/appointments/{first['order_no']}/check-in"

    live.svc.clock = lambda: starts - timedelta(minutes=61)
    early = assert_error(live.api(kiosk, "POST", path, json={"patient_id": DEMO_PATIENT_ID}), 409,
                         "CHECKIN_TOO_EARLY")
    opens = (starts - timedelta(minutes=60)).astimezone(live.svc.settings.tz)
    assert early["opens_at"] == opens.isoformat(timespec="minutes") and opens.strftime("%H:%M") in early["message"]
    live.svc.clock = lambda: starts + timedelta(minutes=16)
    late = assert_error(live.api(kiosk, "POST", path, json={"patient_id": DEMO_PATIENT_ID}), 409,
                        "CHECKIN_TOO_LATE")
    assert late["closes_at"] == (starts + timedelta(minutes=15)).astimezone(live.svc.settings.tz).isoformat(
        timespec="minutes")

    live.svc.clock = lambda: starts - timedelta(minutes=30)
    checked = live.api(kiosk, "POST", path, json={"patient_id": DEMO_PATIENT_ID})
    assert checked.status_code == 200, checked.text
    me = checked.json()
    assert me["status"] == "CHECKED_IN" and me["position"] == 1 and me["ahead"] == 0
    assert me["estimated_wait_minutes"] == 0 and me["queue_no"] == first["registration"]["queue_no"]
    assert me["location"] == first["registration"]["location"] and me["checked_in_at"]
    assert live.api(kiosk, "POST", path, json={"patient_id": DEMO_PATIENT_ID}).json() == me  # idempotent

    other = provision(live.svc, "KIOSK-002")  # the second patient checks in at another kiosk
    them = live.api(other, "POST", f"/appointments/{second['order_no']}/check-in",
                    json={"patient_id": "P00000001"}).json()
    assert (them["position"], them["ahead"], them["estimated_wait_minutes"]) == (2, 1, minutes)

    today_queue = live.api(kiosk, "GET", f"/patients/P00000001/queue").json()
    assert today_queue["date"] == slot.day.isoformat()
    assert [(r["visit_code"], r["position"]) for r in today_queue["registrations"]] == [
        (second["registration"]["visit_code"], 2)]

    # the doctor calls the first patient in: the second moves up
    called = live.svc.his.call_next(slot.dept_code, slot.doctor_code, slot.day, starts)
    assert called == first["registration"]["visit_code"]
    moved = live.api(kiosk, "GET", f"/appointments/{second['order_no']}/queue",
                     params={"patient_id": "P00000001"}).json()
    assert (moved["position"], moved["ahead"], moved["estimated_wait_minutes"]) == (1, 0, 0)
    seen = live.api(kiosk, "GET", f"/appointments/{first['order_no']}/queue",
                    params={"patient_id": DEMO_PATIENT_ID}).json()
    assert seen["status"] == "SEEN" and seen["position"] is None


def test_the_window_is_the_hospitals_rule(live: LiveCentral) -> None:
    kiosk = provision(live.svc, "KIOSK-001")
    slot = shared_slot(live)
    done = booked_and_paid(live, kiosk, DEMO_PATIENT_ID, slot.id)
    live.svc.his.his_rules = replace(live.svc.his.his_rules, checkin_opens_minutes_before=120)
    live.svc.clock = lambda: slot.starts_at - timedelta(minutes=90)
    checked = live.api(kiosk, "POST", f"/appointments/{done['order_no']}/check-in",
                       json={"patient_id": DEMO_PATIENT_ID})
    assert checked.status_code == 200 and checked.json()["status"] == "CHECKED_IN"
    # checked in, the registration is used: self-service cancellation is no longer possible at all
    live.svc.clock = lambda: local(live, slot.day - timedelta(days=2), "09:00")
    assert_error(live.api(kiosk, "POST", f"/appointments/{done['order_no']}/cancel",
                          json={"patient_id": DEMO_PATIENT_ID}), 409, "REFUND_AT_COUNTER")


def test_refusals(live: LiveCentral) -> None:
    kiosk = provision(live.svc, "KIOSK-001")
    slot = shared_slot(live)
    unpaid = book(live, kiosk, DEMO_PATIENT_ID, slot.id).json()
    live.svc.clock = lambda: slot.starts_at - timedelta(minutes=10)
    assert_error(live.api(kiosk, "POST", f"/appointments/{unpaid['order_no']}/check-in",
                          json={"patient_id": DEMO_PATIENT_ID}), 409, "APPOINTMENT_NOT_ACTIVE")
    assert_error(live.api(kiosk, "POST", f"/appointments/{unpaid['order_no']}/check-in",
                          json={"patient_id": "P00000002"}), 404, "APPOINTMENT_NOT_FOUND")
    assert_error(live.api(kiosk, "POST", "/appointments/RG2099/check-in", json={"patient_id": DEMO_PATIENT_ID}),
                 404, "APPOINTMENT_NOT_FOUND")
    assert_error(live.api(kiosk, "POST", f"/appointments/{unpaid['order_no']}/check-in",
                          json={"patient_id": ""}), 422, "BAD_REQUEST")
    assert_error(live.api(kiosk, "GET", f"/appointments/{unpaid['order_no']}/queue"), 422, "BAD_REQUEST")


def test_a_cancelled_appointment_cannot_check_in(live: LiveCentral) -> None:
    kiosk = provision(live.svc, "KIOSK-001")
    slot = shared_slot(live)
    done = booked_and_paid(live, kiosk, DEMO_PATIENT_ID, slot.id)
    cancelled = live.api(kiosk, "POST", f"/appointments/{done['order_no']}/cancel",
                         json={"patient_id": DEMO_PATIENT_ID})
    assert cancelled.json()["status"] == "REFUNDED"
    live.svc.clock = lambda: slot.starts_at - timedelta(minutes=10)
    assert_error(live.api(kiosk, "POST", f"/appointments/{done['order_no']}/check-in",
                          json={"patient_id": DEMO_PATIENT_ID}), 409, "APPOINTMENT_NOT_ACTIVE")
