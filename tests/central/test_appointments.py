"""Appointments (K3) over real HTTP: browse the window, find doctors by name and initials, book a future slot
through the registration-order flow and pay it, the hospital's daily limits, slots taken meanwhile, and
cancellation with a refund before the cut-off and a refusal after it."""
from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import httpx
from sqlalchemy import func, select

from central import orders
from central.his.schedule import WINDOW_DAYS
from central.his.seed import DEMO_PATIENT_ID
from central.his.tables import HisDoctor, HisDoctorDepartment, HisRegistration, HisSlot
from tests.central.conftest import LiveCentral, provision
from tests.central.visits import assert_error, book, booked_and_paid, future_slot, local, pay


def weekday_ahead(live: LiveCentral, at_least: int = 2) -> int:
    """Days from today to the first Monday–Friday at least ``at_least`` days ahead (every clinic sits then)."""
    today = live.svc.today()
    return next(n for n in range(at_least, at_least + 7) if (today + timedelta(days=n)).weekday() < 5)


def slots_in_distinct_departments(live: LiveCentral, days_ahead: int, count: int) -> list[HisSlot]:
    day = live.svc.today() + timedelta(days=days_ahead)
    chosen: dict[str, HisSlot] = {}
    with live.svc.sessions() as session:
        for slot in session.scalars(select(HisSlot).where(HisSlot.day == day, HisSlot.dept_code != "JZNK",
                                                          HisSlot.booked < HisSlot.capacity).order_by(HisSlot.id)):
            chosen.setdefault(slot.dept_code, slot)
    assert len(chosen) >= count
    return list(chosen.values())[:count]


def test_browse_departments_doctors_dates_and_slots(live: LiveCentral) -> None:
    kiosk = provision(live.svc, "KIOSK-001")
    window = live.api(kiosk, "GET", "/appointments/window").json()
    today = live.svc.today()
    assert window == {"first": today.isoformat(), "last": (today + timedelta(days=WINDOW_DAYS - 1)).isoformat()}

    everything = live.api(kiosk, "GET", "/appointments/departments").json()["departments"]
    assert len(everything) == 26
    special = live.api(kiosk, "GET", "/appointments/departments", params={"clinic_type": "special"}).json()
    assert [d["code"] for d in special["departments"]] == ["TXMZ"]
    mdt = live.api(kiosk, "GET", "/appointments/departments", params={"clinic_type": "mdt"}).json()
    assert [(d["code"], d["clinic_type"]) for d in mdt["departments"]] == [("MDT", "mdt")]
    assert_error(live.api(kiosk, "GET", "/appointments/departments", params={"clinic_type": "vip"}), 422,
                 "BAD_REQUEST")

    doctors = live.api(kiosk, "GET", "/appointments/departments/XXG/doctors").json()["doctors"]
    bookable = [d for d in doctors if d["remaining"] > 0]
    assert bookable and all(d["days"] >= 1 for d in bookable)
    doctor = bookable[0]["code"]
    dates = live.api(kiosk, "GET", f"/appointments/departments/XXG/doctors/{doctor}/dates").json()
    days = [d["date"] for d in dates["dates"]]
    assert days and days == sorted(days) and dates["first"] <= days[0] and days[-1] <= dates["last"]
    assert sum(d["remaining"] for d in dates["dates"]) == bookable[0]["remaining"]
    later = next(d for d in dates["dates"] if d["date"] > today.isoformat() and d["remaining"] > 0)
    slots = live.api(kiosk, "GET", f"/appointments/departments/XXG/doctors/{doctor}/slots",
                     params={"date": later["date"]}).json()
    assert slots["date"] == later["date"] and sum(s["remaining"] for s in slots["slots"]) == later["remaining"]

    beyond = (today + timedelta(days=WINDOW_DAYS)).isoformat()
    outside = assert_error(live.api(kiosk, "GET", f"/appointments/departments/XXG/doctors/{doctor}/slots",
                                    params={"date": beyond}), 409, "DATE_OUTSIDE_WINDOW")
    assert outside["last"] == window["last"]
    assert_error(live.api(kiosk, "GET", f"/appointments/departments/XXG/doctors/{doctor}/slots"), 422,
                 "BAD_REQUEST")
    assert_error(live.api(kiosk, "GET", f"/appointments/departments/XXG/doctors/{doctor}/slots",
                          params={"date": "next tuesday"}), 422, "BAD_REQUEST")
    assert_error(live.api(kiosk, "GET", "/appointments/departments/NOPE/doctors"), 404, "DEPARTMENT_NOT_FOUND")
    assert_error(live.api(kiosk, "GET", "/appointments/departments/XXG/doctors/D9999/dates"), 404,
                 "DOCTOR_NOT_FOUND")


def test_doctor_search_by_name_and_initials_with_every_department(live: LiveCentral) -> None:
    kiosk = provision(live.svc, "KIOSK-001")
    with live.svc.sessions() as session:
        # a chief physician who also sits in the special-needs clinic
        code = session.scalar(select(HisDoctorDepartment.doctor_code).where(HisDoctorDepartment.dept_code == "TXMZ")
                              .order_by(HisDoctorDepartment.doctor_code).limit(1))
        doctor = session.get(HisDoctor, code)
        assert doctor is not None and doctor.initials
        name, initials = doctor.name, doctor.initials
    by_name = live.api(kiosk, "GET", "/appointments/doctors/search", params={"q": name}).json()["doctors"]
    match = next(d for d in by_name if d["code"] == code)
    seats = {d["code"] for d in match["departments"]}
    assert "TXMZ" in seats and len(seats) >= 2 and match["initials"] == initials
    by_initials = live.api(kiosk, "GET", "/appointments/doctors/search",
                           params={"q": initials.lower()}).json()["doctors"]
    assert code in {d["code"] for d in by_initials}
    assert all(d["initials"].startswith(initials) or initials.lower() in d["name"] for d in by_initials)
    by_surname = live.api(kiosk, "GET", "/appointments/doctors/search", params={"q": name[0]}).json()["doctors"]
    assert by_surname and all(name[0] in d["name"] or d["initials"].startswith(name[0]) for d in by_surname)
    assert live.api(kiosk, "GET", "/appointments/doctors/search", params={"q": "ZZZZ"}).json() == {"doctors": []}
    assert_error(live.api(kiosk, "GET", "/appointments/doctors/search", params={"q": ""}), 422, "BAD_REQUEST")
    assert_error(live.api(kiosk, "GET", "/appointments/doctors/search"), 422, "BAD_REQUEST")


def test_book_a_future_slot_and_pay(live: LiveCentral) -> None:
    kiosk = provision(live.svc, "KIOSK-001")
    slot = future_slot(live, "XXG", weekday_ahead(live))
    first = book(live, kiosk, DEMO_PATIENT_ID, slot.id, key="appointment-key-1")
    assert first.status_code == 201, first.text
    order = first.json()
    assert order["status"] == "AWAITING_PAYMENT" and order["slot"]["date"] == slot.day.isoformat()
    assert order["patient_name_masked"] == "李*英"
    again = book(live, kiosk, DEMO_PATIENT_ID, slot.id, key="appointment-key-1")  # a retried request
    assert again.status_code == 201 and again.json()["order_no"] == order["order_no"]
    done = pay(live, kiosk, order["order_no"])
    assert done["status"] == "FULFILLED" and done["registration"]["date"] == slot.day.isoformat()
    with live.svc.sessions() as session:
        assert session.scalar(select(func.count()).select_from(HisRegistration).where(
            HisRegistration.patient_id == DEMO_PATIENT_ID, HisRegistration.day == slot.day)) == 1


def test_daily_limits_per_department_and_per_day(live: LiveCentral) -> None:
    kiosk = provision(live.svc, "KIOSK-001")
    ahead = weekday_ahead(live)
    first, second, third, fourth = slots_in_distinct_departments(live, ahead, 4)
    made = book(live, kiosk, DEMO_PATIENT_ID, first.id)
    assert made.status_code == 201  # held while unpaid: it counts already
    same_department = future_slot(live, first.dept_code, ahead, exclude=(first.id,))
    refused = assert_error(book(live, kiosk, DEMO_PATIENT_ID, same_department.id), 409, "BOOKING_LIMIT_DEPARTMENT")
    assert refused["limit"] == 1
    for slot in (second, third):
        assert book(live, kiosk, DEMO_PATIENT_ID, slot.id).status_code == 201
    assert_error(book(live, kiosk, DEMO_PATIENT_ID, fourth.id), 409, "BOOKING_LIMIT_DAY")
    # another day is another count; another patient is not limited by this one
    assert book(live, kiosk, DEMO_PATIENT_ID, future_slot(live, first.dept_code, ahead + 1).id).status_code == 201
    assert book(live, kiosk, "P00000001", fourth.id).status_code == 201
    # an order given up frees its place in the count
    closed = live.api(kiosk, "POST", f"/orders/{made.json()['order_no']}/cancel")
    assert closed.json()["status"] == "CLOSED"
    assert book(live, kiosk, DEMO_PATIENT_ID, same_department.id).status_code == 201
    # the hospital's numbers are the HIS's to set
    live.svc.his.his_rules = replace(live.svc.his.his_rules, max_per_day=5)
    assert book(live, kiosk, DEMO_PATIENT_ID, fourth.id).status_code == 201


def test_same_day_registration_counts_against_the_same_limits(live: LiveCentral) -> None:
    """挂号 at the kiosk (K4) takes its place through `/registrations`; the HIS's limits per patient and day hold
    there as they do for appointments, and a retried request still gets its first answer."""
    kiosk = provision(live.svc, "KIOSK-001")
    ahead = weekday_ahead(live)
    first = future_slot(live, "XXG", ahead)
    booked = book(live, kiosk, DEMO_PATIENT_ID, first.id)
    assert booked.status_code == 201, booked.text
    second = future_slot(live, "XXG", ahead, exclude=(first.id,))

    def register(key: str) -> httpx.Response:
        return live.api(kiosk, "POST", "/registrations",
                        json={"patient_id": DEMO_PATIENT_ID, "slot_id": second.id, "idempotency_key": key})

    refused = assert_error(register("same-day-key-1"), 409, "BOOKING_LIMIT_DEPARTMENT")
    assert refused["limit"] == 1 and "挂" in refused["message"]
    live.api(kiosk, "POST", f"/orders/{booked.json()['order_no']}/cancel")  # the first place given up
    made = register("same-day-key-2")
    assert made.status_code == 201, made.text
    assert register("same-day-key-2").json()["order_no"] == made.json()["order_no"]


def test_the_reference_his_limits_come_from_the_settings(data_dir) -> None:
    """The embedded reference HIS takes its limits from the server's settings (a demo or a test rig with other
    rules); a hospital's own HIS states its own."""
    from central.config import Settings
    from central.services import build_services
    settings = Settings.from_env({"KIOSK_CENTRAL_HIS_MAX_PER_DEPARTMENT_PER_DAY": "2",
                                  "KIOSK_CENTRAL_HIS_MAX_PER_DAY": "4"})
    assert (settings.his_max_per_department_per_day, settings.his_max_per_day) == (2, 4)
    svc = build_services(replace(settings, data_dir=data_dir))
    try:
        rules = svc.his.rules()
        assert (rules.max_per_department_per_day, rules.max_per_day) == (2, 4)
        assert Settings().his_max_per_day == 3 and Settings().his_max_per_department_per_day == 1
    finally:
        svc.close()


def test_two_bookings_racing_past_the_first_check_cannot_both_stand(live: LiveCentral, monkeypatch) -> None:
    kiosk = provision(live.svc, "KIOSK-001")
    ahead = weekday_ahead(live)
    first = future_slot(live, "XXG", ahead)
    second = future_slot(live, "XXG", ahead, exclude=(first.id,))
    his = live.svc.his
    real_check = his.check_booking_limits

    def racing(patient_id, slot_id, now, *, lock_id=None):  # the other booking was not there yet at the check
        if lock_id is not None:
            real_check(patient_id, slot_id, now, lock_id=lock_id)

    monkeypatch.setattr(his, "check_booking_limits", racing)
    earlier = book(live, kiosk, DEMO_PATIENT_ID, first.id)
    assert earlier.status_code == 201
    later = book(live, kiosk, DEMO_PATIENT_ID, second.id)
    assert_error(later, 409, "BOOKING_LIMIT_DEPARTMENT")
    with live.svc.sessions() as session:  # the later place went back to the pool
        assert session.get(HisSlot, second.id).booked == second.booked
    assert orders.get_order(live.svc, earlier.json()["order_no"]).status == "AWAITING_PAYMENT"


def test_slot_taken_meanwhile(live: LiveCentral) -> None:
    kiosk = provision(live.svc, "KIOSK-001")
    slot = future_slot(live, "XXG", weekday_ahead(live))
    for n in range(slot.capacity - slot.booked):  # other patients take every place first
        assert book(live, kiosk, f"P{n + 10:08d}", slot.id).status_code == 201
    taken = assert_error(book(live, kiosk, DEMO_PATIENT_ID, slot.id), 409, "SLOT_TAKEN")
    assert slot.id not in {s["slot_id"] for s in taken["slots"]}


def test_bad_bookings(live: LiveCentral) -> None:
    kiosk = provision(live.svc, "KIOSK-001")
    slot = future_slot(live, "XXG", weekday_ahead(live))
    assert_error(book(live, kiosk, "P99999999", slot.id), 404, "PATIENT_NOT_FOUND")
    assert_error(book(live, kiosk, DEMO_PATIENT_ID, 99_999_999), 404, "SLOT_NOT_FOUND")
    for body in ({"patient_id": DEMO_PATIENT_ID, "slot_id": "first", "idempotency_key": "k" * 16},
                 {"patient_id": DEMO_PATIENT_ID, "slot_id": slot.id},
                 {"patient_id": DEMO_PATIENT_ID, "slot_id": slot.id, "idempotency_key": "short"},
                 {"patient_id": "P0000/../1", "slot_id": slot.id, "idempotency_key": "k" * 16}):
        body_error = assert_error(live.api(kiosk, "POST", "/appointments", json=body), 422, "BAD_REQUEST")
        assert "Bad request" in body_error["message_en"]
    assert live.api(kiosk, "POST", "/appointments", content=b"{not json",
                    headers={"Content-Type": "application/json"}).status_code == 422
    assert httpx.get(f"{live.url}/api/v1/kiosk/appointments/window", timeout=15).status_code == 401


def test_cancel_before_the_cut_off_refunds_in_full(live: LiveCentral) -> None:
    kiosk = provision(live.svc, "KIOSK-001")
    slot = future_slot(live, "XXG", weekday_ahead(live))
    done = booked_and_paid(live, kiosk, DEMO_PATIENT_ID, slot.id)
    order_no = done["order_no"]
    assert_error(live.api(kiosk, "POST", f"/appointments/{order_no}/cancel", json={"patient_id": "P00000001"}),
                 404, "APPOINTMENT_NOT_FOUND")
    phone = provision(live.svc, "PHONE-GATEWAY")  # booked at a kiosk, cancelled elsewhere by the same patient
    cancelled = live.api(phone, "POST", f"/appointments/{order_no}/cancel", json={"patient_id": DEMO_PATIENT_ID})
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "REFUNDED"
    assert orders.get_order(live.svc, order_no).payment.state == "REFUND"  # the channel took the refund
    with live.svc.sessions() as session:
        registration = session.scalar(select(HisRegistration).where(
            HisRegistration.visit_code == done["registration"]["visit_code"]))
        assert registration.status == "CANCELLED"
        assert session.get(HisSlot, slot.id).booked == slot.booked
    events = [(e.event, e.actor) for e in orders.order_events(live.svc, order_no)]
    assert ("CANCEL_REQUESTED", "terminal:PHONE-GATEWAY") in events and ("REFUNDED" in {e for e, _ in events})
    again = live.api(kiosk, "POST", f"/appointments/{order_no}/cancel", json={"patient_id": DEMO_PATIENT_ID})
    assert again.status_code == 200 and again.json()["status"] == "REFUNDED"  # asking twice changes nothing


def test_cancel_after_the_cut_off_is_refused(live: LiveCentral) -> None:
    kiosk = provision(live.svc, "KIOSK-001")
    slot = future_slot(live, "XXG", weekday_ahead(live))
    done = booked_and_paid(live, kiosk, DEMO_PATIENT_ID, slot.id)
    cutoff = local(live, slot.day - timedelta(days=1), "18:00")
    live.svc.clock = lambda: cutoff + timedelta(minutes=1)
    refused = assert_error(live.api(kiosk, "POST", f"/appointments/{done['order_no']}/cancel",
                                    json={"patient_id": DEMO_PATIENT_ID}), 409, "CANCEL_AT_COUNTER")
    assert "人工窗口" in refused["message"] and "18:00" in refused["message"]
    assert orders.get_order(live.svc, done["order_no"]).status == "FULFILLED"
    live.svc.clock = lambda: cutoff - timedelta(minutes=1)  # a minute earlier it was still allowed
    allowed = live.api(kiosk, "POST", f"/appointments/{done['order_no']}/cancel",
                       json={"patient_id": DEMO_PATIENT_ID})
    assert allowed.status_code == 200 and allowed.json()["status"] == "REFUNDED"


def test_an_unpaid_appointment_has_nothing_to_cancel(live: LiveCentral) -> None:
    kiosk = provision(live.svc, "KIOSK-001")
    made = book(live, kiosk, DEMO_PATIENT_ID, future_slot(live, "XXG", weekday_ahead(live)).id).json()
    assert_error(live.api(kiosk, "POST", f"/appointments/{made['order_no']}/cancel",
                          json={"patient_id": DEMO_PATIENT_ID}), 409, "APPOINTMENT_NOT_CANCELLABLE")
    assert_error(live.api(kiosk, "POST", "/appointments/RG000/cancel", json={"patient_id": DEMO_PATIENT_ID}),
                 404, "APPOINTMENT_NOT_FOUND")
    assert_error(live.api(kiosk, "POST", f"/appointments/{made['order_no']}/cancel", json={}), 422,
                 "BAD_REQUEST")
