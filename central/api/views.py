"""How platform objects look on the wire. The kiosk client is written against these shapes; change them only
together with it."""
from __future__ import annotations

import json
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from central.his.adapter import Bill, Department, Doctor, Slot
from central.models import Order


def department_view(dept: Department) -> dict[str, Any]:
    return {"code": dept.code, "name": dept.name, "name_en": dept.name_en, "category": dept.category,
            "location": dept.location, "location_en": dept.location_en, "remaining": dept.remaining}


def doctor_view(doctor: Doctor) -> dict[str, Any]:
    return {"code": doctor.code, "name": doctor.name, "title": doctor.title, "title_en": doctor.title_en,
            "specialty": doctor.specialty, "fee_fen": doctor.fee_fen, "remaining": doctor.remaining}


def slot_view(slot: Slot) -> dict[str, Any]:
    return {"slot_id": slot.slot_id, "start": slot.start, "end": slot.end, "remaining": slot.remaining}


def age_on(birth: date, today: date) -> int:
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


def order_view(order: Order, tz: ZoneInfo, *, aggregate_url: str | None = None) -> dict[str, Any]:
    """`aggregate_url` is the order's aggregate code, shown instead of a trade's code while no app has
    scanned it (only the server knows how to make it)."""
    payment = order.payment
    registered = order.queue_no is not None
    insurance = order.insurance_payment
    code_url = payment.code_url if payment is not None else None
    if order.payment_method == "aggregate" and aggregate_url is not None:
        code_url = aggregate_url
    return {
        "order_no": order.order_no,
        "status": order.status,
        "amount_fen": order.amount_fen,
        "kind": order.kind,
        "self_pay_fen": order.self_pay_fen,
        "payment_method": order.payment_method,
        "code_url": code_url,
        "insurance": None if insurance is None else {
            "state": insurance.state, "amount_fen": insurance.amount_fen,
            **{k: v for k, v in json.loads(insurance.detail or "{}").items() if k in ("split", "insutype",
                                                                                      "name_masked")}},
        "expires_at": order.expires_at.astimezone(tz).isoformat(timespec="seconds"),
        "patient_name_masked": order.patient_name_masked,
        "department": {"code": order.dept_code, "name": order.dept_name, "location": order.dept_location},
        "doctor": {"code": order.doctor_code, "name": order.doctor_name, "title": order.doctor_title},
        "slot": {"slot_id": order.slot_id, "date": order.slot_date.isoformat(), "start": order.slot_start,
                 "end": order.slot_end},
        "payment": None if payment is None else {
            "channel": payment.channel, "out_trade_no": payment.out_trade_no, "code_url": payment.code_url,
            "state": payment.state, "amount_fen": payment.amount_fen,
            "card": json.loads(payment.detail or "{}").get("card")},
        "items": [{"item_id": i.item_id, "name": i.name, "category": i.category, "amount_fen": i.amount_fen,
                   "insurance_class": i.insurance_class, "place": i.place, "place_en": i.place_en,
                   "status": i.status} for i in order.items],
        "registration": None if not registered else {
            "queue_no": order.queue_no, "visit_code": order.visit_code, "location": order.registration_location,
            "date": order.slot_date.isoformat(), "start": order.slot_start, "end": order.slot_end},
    }


def bill_view(bill: Bill, tz: ZoneInfo) -> dict[str, Any]:
    return {"bill_no": bill.bill_no, "status": bill.status, "total_fen": bill.total_fen,
            "issued_at": bill.issued_at.astimezone(tz).isoformat(timespec="minutes"),
            "department": {"code": bill.dept_code, "name": bill.dept_name},
            "doctor": {"code": bill.doctor_code, "name": bill.doctor_name},
            "items": [{"item_id": i.item_id, "category": i.category, "name": i.name, "spec": i.spec,
                       "quantity": i.quantity, "unit": i.unit, "amount_fen": i.amount_fen,
                       "insurance_class": i.insurance_class, "place": i.place, "place_en": i.place_en,
                       "status": i.status} for i in bill.items]}
