"""Kiosk API, ``/api/v1/kiosk``: hospital, patient identification, schedule, registration orders."""
from __future__ import annotations

import logging
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from central import orders
from central.api.auth import Svc, Terminal
from central.api.errors import ApiError
from central.api.views import age_on, department_view, doctor_view, order_view, slot_view
from central.services import Services
from drivers.idcard.idnumber import mask_name

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1/kiosk", tags=["kiosk"])

DateQuery = Annotated[date | None, Query(description="YYYY-MM-DD in the hospital's timezone; default today")]


class IdentifyRequest(BaseModel):
    method: Literal["id_card"]
    # 18 characters: resident ID card and HK/Macao/Taiwan residence permit; 3 letters + 12 digits:
    # foreigner's permanent residence card (2017 version).
    id_number: str = Field(pattern=r"^(\d{17}[\dXx]|[A-Z]{3}\d{12})$")
    name: str = Field(min_length=1, max_length=50)


class RegistrationRequest(BaseModel):
    patient_id: str = Field(min_length=1, max_length=32)
    slot_id: int
    idempotency_key: str = Field(min_length=8, max_length=128)


class PayRequest(BaseModel):
    channel: Literal["wechat_native", "alipay_native", "wechat_code", "alipay_code"]
    # The code on the patient's phone, scanned at the kiosk (for the *_code methods only).
    auth_code: str | None = Field(default=None, pattern=r"^\d{16,24}$")
    idempotency_key: str = Field(min_length=8, max_length=128)


def _day(svc: Services, day: date | None) -> date:
    return day or svc.today()


def _department_or_404(svc: Services, dept: str, day: date) -> Any:
    department = svc.his.get_department(dept, day, svc.now())
    if department is None:
        raise ApiError(404, "DEPARTMENT_NOT_FOUND", "未找到该科室", "No such department")
    return department


@router.get("/hospital")
def hospital(svc: Svc, _terminal: Terminal) -> dict[str, Any]:
    info = svc.his.hospital()
    return {"name": info.name, "name_en": info.name_en, "address": info.address, "phone": info.phone,
            "date": svc.today().isoformat()}


@router.post("/patients/identify")
def identify(body: IdentifyRequest, svc: Svc, _terminal: Terminal) -> dict[str, Any]:
    patient = svc.his.find_patient_by_id_number(body.id_number.upper())
    if patient is None:
        raise ApiError(404, "PATIENT_NOT_FOUND", "未找到您的就诊档案，请到人工窗口建档",
                       "No patient file found; please register at a service counter")
    if patient.name != body.name.strip():
        raise ApiError(409, "NAME_MISMATCH", "姓名与档案不符，请到人工窗口核对",
                       "The name does not match the patient file; please check at a service counter")
    return {"patient_id": patient.patient_id, "name_masked": mask_name(patient.name), "gender": patient.gender,
            "age": age_on(patient.birth, svc.today())}


@router.get("/departments")
def departments(svc: Svc, _terminal: Terminal, date: DateQuery = None) -> dict[str, Any]:
    day = _day(svc, date)
    return {"date": day.isoformat(),
            "departments": [department_view(d) for d in svc.his.list_departments(day, svc.now())]}


@router.get("/departments/{dept}/doctors")
def doctors(dept: str, svc: Svc, _terminal: Terminal, date: DateQuery = None) -> dict[str, Any]:
    day = _day(svc, date)
    department = _department_or_404(svc, dept, day)
    return {"date": day.isoformat(), "department": department_view(department),
            "doctors": [doctor_view(d) for d in svc.his.list_doctors(dept, day, svc.now())]}


@router.get("/departments/{dept}/doctors/{doctor}/slots")
def slots(dept: str, doctor: str, svc: Svc, _terminal: Terminal, date: DateQuery = None) -> dict[str, Any]:
    day = _day(svc, date)
    _department_or_404(svc, dept, day)
    if not any(d.code == doctor for d in svc.his.list_doctors(dept, day, svc.now())):
        raise ApiError(404, "DOCTOR_NOT_FOUND", "该科室没有这位医生", "No such doctor in this department")
    return {"date": day.isoformat(),
            "slots": [slot_view(s) for s in svc.his.list_free_slots(dept, doctor, day, svc.now())]}


@router.post("/registrations", status_code=201)
def create_registration(body: RegistrationRequest, svc: Svc, terminal: Terminal) -> dict[str, Any]:
    order, _created = orders.create_registration_order(svc, terminal, body.patient_id, body.slot_id,
                                                       body.idempotency_key)
    return order_view(order, svc.settings.tz)


@router.get("/registrations/by-key/{idempotency_key}")
def registration_by_key(idempotency_key: str, svc: Svc, terminal: Terminal) -> dict[str, Any]:
    """The order a create request with this key made, if it made one: for a kiosk that crashed before it
    heard the answer. Never creates anything."""
    order = orders.find_by_key(svc, terminal, idempotency_key)
    if order is None:
        raise ApiError(404, "NOT_FOUND", "未找到该订单", "No order was made with this key")
    return order_view(order, svc.settings.tz)


@router.post("/orders/{order_no}/pay")
def pay(order_no: str, body: PayRequest, svc: Svc, terminal: Terminal) -> dict[str, Any]:
    order = orders.start_payment(svc, terminal, order_no, body.channel, body.idempotency_key,
                                 auth_code=body.auth_code)
    return order_view(order, svc.settings.tz)


@router.get("/orders/{order_no}")
def get_order(order_no: str, svc: Svc, terminal: Terminal) -> dict[str, Any]:
    return order_view(orders.refresh_order(svc, terminal, order_no), svc.settings.tz)


@router.post("/orders/{order_no}/refund")
def refund(order_no: str, svc: Svc, terminal: Terminal) -> dict[str, Any]:
    """退号退费: give back a registration not yet used; its fee returns along the original trade."""
    return order_view(orders.request_refund(svc, terminal, order_no), svc.settings.tz)


@router.post("/orders/{order_no}/cancel")
def cancel(order_no: str, svc: Svc, terminal: Terminal) -> dict[str, Any]:
    return order_view(orders.cancel_order(svc, terminal, order_no), svc.settings.tz)
