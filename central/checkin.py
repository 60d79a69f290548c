"""Check-in (K5, 取号报到): a paid appointment joins the doctor's queue inside the HIS's window (by default from
60 minutes before the slot starts to 15 minutes after); the answer carries the queue position and an estimated
wait (patients ahead times the doctor's usual minutes per patient, as the HIS knows it)."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from central.appointments import patients_order
from central.his.adapter import CheckInRefused, QueueStatus, RegistrationRefused
from central.models import Order, OrderStatus
from central.orders import Conflict
from central.services import Services


def _hhmm(svc: Services, moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(svc.settings.tz).strftime("%H:%M")


def queue_view(svc: Services, order: Order, status: QueueStatus) -> dict[str, Any]:
    return {"order_no": order.order_no, "visit_code": status.visit_code, "status": status.status,
            "queue_no": status.queue_no, "position": status.position, "ahead": status.ahead,
            "estimated_wait_minutes": status.estimated_wait_minutes, "location": status.location,
            "department": order.dept_name, "doctor": order.doctor_name, "date": order.slot_date.isoformat(),
            "start": order.slot_start, "end": order.slot_end,
            "checked_in_at": None if status.checked_in_at is None
            else status.checked_in_at.astimezone(svc.settings.tz).isoformat(timespec="minutes")}


def _registered(order: Order) -> None:
    if order.status != OrderStatus.FULFILLED or order.queue_no is None:
        raise Conflict("APPOINTMENT_NOT_ACTIVE", "该预约未支付或已取消，不能报到",
                       "This appointment is not paid or was cancelled; it cannot be checked in")


def check_in(svc: Services, patient_id: str, order_no: str, now: datetime | None = None) -> dict[str, Any]:
    now = now or svc.now()
    order = patients_order(svc, patient_id, order_no)
    _registered(order)
    try:
        status = svc.his.check_in(order.his_lock_id, now)
    except CheckInRefused as exc:
        opens, closes = _hhmm(svc, exc.opens_at), _hhmm(svc, exc.closes_at)
        day = order.slot_date.isoformat()
        window = {"opens_at": None if exc.opens_at is None else exc.opens_at.astimezone(svc.settings.tz)
                  .isoformat(timespec="minutes"),
                  "closes_at": None if exc.closes_at is None else exc.closes_at.astimezone(svc.settings.tz)
                  .isoformat(timespec="minutes")}
        if exc.code == "CHECKIN_TOO_EARLY":
            raise Conflict("CHECKIN_TOO_EARLY", f"还未到报到时间，请于 {day} {opens}–{closes} 报到",
                           f"Too early to check in; check in on {day} between {opens} and {closes}",
                           **window) from None
        if exc.code == "CHECKIN_TOO_LATE":
            raise Conflict("CHECKIN_TOO_LATE", f"已超过报到时间（{day} {opens}–{closes}），请到分诊台或人工窗口处理",
                           f"The check-in time ({day} {opens}–{closes}) has passed; please ask at the triage desk",
                           **window) from None
        raise Conflict("APPOINTMENT_NOT_ACTIVE", "该预约已取消，不能报到",
                       "This appointment was cancelled; it cannot be checked in") from None
    except RegistrationRefused:
        raise Conflict("APPOINTMENT_NOT_ACTIVE", "该预约未支付或已取消，不能报到",
                       "This appointment is not paid or was cancelled; it cannot be checked in") from None
    return queue_view(svc, order, status)


def queue(svc: Services, patient_id: str, order_no: str) -> dict[str, Any]:
    order = patients_order(svc, patient_id, order_no)
    _registered(order)
    return queue_view(svc, order, svc.his.queue_status(order.his_lock_id))
