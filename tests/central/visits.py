"""Steps the records, appointment and check-in tests share: book a future slot through the appointment
routes and pay it like a phone, over real HTTP against the live server."""
from __future__ import annotations

import uuid
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select

from central import orders
from central.his.tables import HisSlot
from tests.central.conftest import Kiosk, LiveCentral, wait_until


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code and body["message"] and body["message_en"], body
    assert "Traceback" not in response.text
    return body


def future_slot(live: LiveCentral, dept: str | None = None, days_ahead: int = 2, *,
                exclude: tuple[int, ...] = ()) -> HisSlot:
    """A free slot ``days_ahead`` days from today (in ``dept`` if given), outside the emergency clinic."""
    day = live.svc.today() + timedelta(days=days_ahead)
    with live.svc.sessions() as session:
        query = select(HisSlot).where(HisSlot.day == day, HisSlot.booked < HisSlot.capacity,
                                      HisSlot.dept_code != "JZNK", HisSlot.id.not_in(exclude or (0,)))
        if dept is not None:
            query = query.where(HisSlot.dept_code == dept)
        slot = session.scalars(query.order_by(HisSlot.starts_at, HisSlot.id).limit(1)).first()
    assert slot is not None, f"no free slot on {day} in {dept}"
    return slot


def book(live: LiveCentral, kiosk: Kiosk, patient_id: str, slot_id: int, key: str | None = None) -> Any:
    return live.api(kiosk, "POST", "/appointments", json={"patient_id": patient_id, "slot_id": slot_id,
                                                          "idempotency_key": key or uuid.uuid4().hex})


def pay(live: LiveCentral, kiosk: Kiosk, order_no: str) -> dict[str, Any]:
    """Pay by WeChat QR in the sandbox and wait until the HIS confirmed the registration."""
    paying = live.api(kiosk, "POST", f"/orders/{order_no}/pay",
                      json={"channel": "wechat_native", "idempotency_key": uuid.uuid4().hex})
    assert paying.status_code == 200, paying.text
    assert live.pay_as_phone(paying.json()["payment"]["code_url"]).status_code == 200
    wait_until(lambda: orders.get_order(live.svc, order_no).status == "FULFILLED")
    return live.api(kiosk, "GET", f"/orders/{order_no}").json()


def booked_and_paid(live: LiveCentral, kiosk: Kiosk, patient_id: str, slot_id: int) -> dict[str, Any]:
    created = book(live, kiosk, patient_id, slot_id)
    assert created.status_code == 201, created.text
    return pay(live, kiosk, created.json()["order_no"])


def local(live: LiveCentral, day: date, hhmm: str) -> datetime:
    hours, minutes = (int(part) for part in hhmm.split(":"))
    return datetime.combine(day, time(hours, minutes), tzinfo=live.svc.settings.tz)
