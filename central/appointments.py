"""Appointments (K3): browse departments → doctors → dates → slots inside the schedule window, find a doctor by
name or pinyin initials, book through the registration order flow, and cancel under the hospital's rules.

The rules are the HIS's (``HisAdapter.rules``): registrations per patient per day, and the cancellation
cut-off. Booking checks the limits before holding a place and again after, counting only holdings made
before this one: two bookings that race past the first check cannot both stand, and the earlier one wins.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select

from central import orders
from central.his.adapter import BookingLimitReached, SlotNotFound
from central.his.schedule import WINDOW_DAYS
from central.models import Order, OrderEvent, OrderStatus
from central.orders import KIND_REGISTRATION, Conflict, NotFound
from central.records import patient_or_404
from central.services import Services

CLINIC_TYPES = ("general", "special", "mdt")


def window(svc: Services) -> tuple[date, date]:
    """The days a patient can book: today and the schedule's days ahead."""
    today = svc.today()
    return today, today + timedelta(days=WINDOW_DAYS - 1)


def check_day(svc: Services, day: date) -> None:
    first, last = window(svc)
    if not first <= day <= last:
        raise Conflict("DATE_OUTSIDE_WINDOW", f"只能预约 {first.isoformat()} 至 {last.isoformat()} 的号源",
                       f"Appointments can be made from {first.isoformat()} to {last.isoformat()}",
                       first=first.isoformat(), last=last.isoformat())


def _limit_error(exc: BookingLimitReached) -> Conflict:
    if exc.code == "DEPARTMENT_DAY_LIMIT":
        return Conflict("BOOKING_LIMIT_DEPARTMENT", f"同一就诊日同一科室最多挂 {exc.limit} 个号",
                        f"At most {exc.limit} registration(s) per department per day", limit=exc.limit)
    return Conflict("BOOKING_LIMIT_DAY", f"同一就诊日最多挂 {exc.limit} 个号",
                    f"At most {exc.limit} registrations per day", limit=exc.limit)


def book(svc: Services, terminal_id: str, patient_id: str, slot_id: int, idempotency_key: str,
         now: datetime | None = None) -> Order:
    """A registration order on a slot of any day in the window, awaiting payment. Same-day registration (K4)
    comes here too: the HIS's limits per patient per day hold whichever way the place was taken."""
    now = now or svc.now()
    existing = orders.find_by_key(svc, terminal_id, idempotency_key)
    if existing is not None:  # a repeated request: the first answer, not a second place (nor a limit refusal)
        return orders.create_registration_order(svc, terminal_id, patient_id, slot_id, idempotency_key,
                                                now=now)[0]
    patient_or_404(svc, patient_id)
    slot = svc.his.get_slot(slot_id)
    if slot is None:
        raise NotFound("SLOT_NOT_FOUND", "未找到该号源", "No such time slot")
    check_day(svc, slot.day)
    try:
        svc.his.check_booking_limits(patient_id, slot_id, now)
    except BookingLimitReached as exc:
        raise _limit_error(exc) from None
    order, created = orders.create_registration_order(svc, terminal_id, patient_id, slot_id, idempotency_key,
                                                      now=now)
    if created:
        try:
            svc.his.check_booking_limits(patient_id, slot_id, now, lock_id=order.his_lock_id)
        except (BookingLimitReached, SlotNotFound) as exc:
            orders.cancel_order(svc, terminal_id, order.order_no, now=now)  # gives the place back
            if isinstance(exc, BookingLimitReached):
                raise _limit_error(exc) from None
            raise
    return order


def patients_order(svc: Services, patient_id: str, order_no: str) -> Order:
    """A registration order of this patient, made at any terminal or on the phone: the patient, identified at
    this kiosk, owns it, not the terminal that booked it."""
    try:
        order = orders.get_order(svc, order_no)
    except NotFound:
        order = None
    if order is None or order.patient_id != patient_id or order.kind != KIND_REGISTRATION:
        raise NotFound("APPOINTMENT_NOT_FOUND", "未找到该预约", "No such appointment for this patient")
    return order


def cancel(svc: Services, terminal_id: str, patient_id: str, order_no: str, now: datetime | None = None) -> Order:
    """取消预约: full refund until the HIS's cut-off (by default 18:00 the day before the visit); after it the
    kiosk refuses and sends the patient to the counter. The money goes back through ``orders.request_refund``."""
    now = now or svc.now()
    order = patients_order(svc, patient_id, order_no)
    if order.status in (OrderStatus.CANCEL_PENDING, OrderStatus.REFUND_PENDING, OrderStatus.REFUNDED):
        return orders.request_refund(svc, order.terminal_id, order_no, now=now)  # asked again: carry on
    if order.status != OrderStatus.FULFILLED:
        raise Conflict("APPOINTMENT_NOT_CANCELLABLE", "该预约尚未支付成功，无需取消",
                       "This appointment is not paid; there is nothing to cancel")
    deadline = svc.his.rules().cancel_deadline(order.slot_date, svc.settings.tz)
    if now > deadline:
        at = deadline.strftime("%Y-%m-%d %H:%M")
        raise Conflict("CANCEL_AT_COUNTER", f"已超过自助取消时间（{at}），请到人工窗口办理",
                       f"Self-service cancellation closed at {at}; please go to a service counter",
                       deadline=deadline.isoformat(timespec="minutes"))
    with svc.sessions() as session, session.begin():  # who asked, when the booking terminal is another one
        session.add(OrderEvent(order_id=order.id, actor=f"terminal:{terminal_id}"[:64], event="CANCEL_REQUESTED",
                               from_status=order.status, to_status=order.status, detail="appointment cancel"))
    return orders.request_refund(svc, order.terminal_id, order_no, now=now)


def doctor_search_view(svc: Services, text: str) -> list[dict[str, Any]]:
    return [{"code": m.doctor.code, "name": m.doctor.name, "initials": m.initials, "title": m.doctor.title,
             "title_en": m.doctor.title_en, "specialty": m.doctor.specialty, "fee_fen": m.doctor.fee_fen,
             "departments": [{"code": code, "name": name} for code, name in m.departments]}
            for m in svc.his.search_doctors(text)]


def appointment_orders(svc: Services, patient_id: str) -> list[Order]:
    with svc.sessions() as session:
        return list(session.scalars(select(Order).where(Order.patient_id == patient_id,
                                                        Order.kind == KIND_REGISTRATION)))
