"""Appointments (K3) and check-in (K5) under ``/api/v1/kiosk/appointments``. Payment, polling and the order
itself use the registration-order routes (``/orders/{order_no}/...``) like a same-day registration."""
from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from central import appointments, checkin, orders
from central.api.auth import Svc, Terminal
from central.api.errors import ApiError
from central.api.views import doctor_view, order_view, slot_view
from central.services import Services

router = APIRouter(prefix="/api/v1/kiosk/appointments", tags=["appointments"])

Code = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[0-9A-Za-z_\-]+$")]
PatientQuery = Annotated[str, Query(min_length=1, max_length=32, pattern=r"^[0-9A-Za-z_\-]+$")]


class BookRequest(BaseModel):
    patient_id: str = Field(min_length=1, max_length=32, pattern=r"^[0-9A-Za-z_\-]+$")
    slot_id: int = Field(ge=1)
    idempotency_key: str = Field(min_length=8, max_length=128)


class PatientRequest(BaseModel):
    patient_id: str = Field(min_length=1, max_length=32, pattern=r"^[0-9A-Za-z_\-]+$")


def _order(svc: Services, order: Any) -> dict[str, Any]:
    return order_view(order, svc.settings.tz, aggregate_url=orders.aggregate_url(svc, order.order_no))


def _department(svc: Services, dept: str) -> Any:
    department = svc.his.get_department(dept, svc.today(), svc.now())
    if department is None:
        raise ApiError(404, "DEPARTMENT_NOT_FOUND", "未找到该科室", "No such department")
    return department


def _doctor_in(svc: Services, dept: str, doctor: str, day: date) -> None:
    if not any(d.code == doctor for d in svc.his.list_doctors(dept, day, svc.now())):
        raise ApiError(404, "DOCTOR_NOT_FOUND", "该科室没有这位医生", "No such doctor in this department")


@router.get("/window")
def booking_window(svc: Svc, _terminal: Terminal) -> dict[str, Any]:
    first, last = appointments.window(svc)
    return {"first": first.isoformat(), "last": last.isoformat()}


@router.get("/departments")
def departments(svc: Svc, _terminal: Terminal,
                clinic_type: Literal["general", "special", "mdt"] | None = None) -> dict[str, Any]:
    """Departments with their clinic type; ``clinic_type=special`` lists the 特需 clinics, ``mdt`` the MDT ones."""
    found = [d for d in svc.his.list_departments(svc.today(), svc.now())
             if clinic_type is None or d.clinic_type == clinic_type]
    return {"departments": [{"code": d.code, "name": d.name, "name_en": d.name_en, "category": d.category,
                             "clinic_type": d.clinic_type, "location": d.location, "location_en": d.location_en}
                            for d in found]}


@router.get("/departments/{dept}/doctors")
def doctors(dept: Code, svc: Svc, _terminal: Terminal) -> dict[str, Any]:
    """The department's doctors with their free places over the whole window."""
    _department(svc, dept)
    first, last = appointments.window(svc)
    listed = []
    for doctor in svc.his.list_doctors(dept, first, svc.now()):
        days = svc.his.doctor_dates(dept, doctor.code, first, last, svc.now())
        listed.append({**doctor_view(doctor), "remaining": sum(d.remaining for d in days),
                       "days": len(days)})
    return {"doctors": listed}


@router.get("/departments/{dept}/doctors/{doctor}/dates")
def dates(dept: Code, doctor: Code, svc: Svc, _terminal: Terminal) -> dict[str, Any]:
    _department(svc, dept)
    first, last = appointments.window(svc)
    _doctor_in(svc, dept, doctor, first)
    return {"first": first.isoformat(), "last": last.isoformat(),
            "dates": [{"date": d.day.isoformat(), "remaining": d.remaining}
                      for d in svc.his.doctor_dates(dept, doctor, first, last, svc.now())]}


@router.get("/departments/{dept}/doctors/{doctor}/slots")
def slots(dept: Code, doctor: Code, svc: Svc, _terminal: Terminal,
          date: Annotated[date, Query(description="YYYY-MM-DD, inside the booking window")]) -> dict[str, Any]:
    _department(svc, dept)
    appointments.check_day(svc, date)
    _doctor_in(svc, dept, doctor, date)
    return {"date": date.isoformat(),
            "slots": [slot_view(s) for s in svc.his.list_free_slots(dept, doctor, date, svc.now())]}


@router.get("/doctors/search")
def search(svc: Svc, _terminal: Terminal,
           q: Annotated[str, Query(min_length=1, max_length=20, description="name, or pinyin initials (LXY)")],
           ) -> dict[str, Any]:
    """By name (a part of it) or pinyin initials; each doctor with every department the doctor sits in."""
    return {"doctors": appointments.doctor_search_view(svc, q)}


@router.post("", status_code=201)
def book(body: BookRequest, svc: Svc, terminal: Terminal) -> dict[str, Any]:
    order = appointments.book(svc, terminal, body.patient_id, body.slot_id, body.idempotency_key)
    return _order(svc, order)


@router.post("/{order_no}/cancel")
def cancel(order_no: Code, body: PatientRequest, svc: Svc, terminal: Terminal) -> dict[str, Any]:
    return _order(svc, appointments.cancel(svc, terminal, body.patient_id, order_no))


@router.post("/{order_no}/check-in")
def check_in(order_no: Code, body: PatientRequest, svc: Svc, _terminal: Terminal) -> dict[str, Any]:
    return checkin.check_in(svc, body.patient_id, order_no)


@router.get("/{order_no}/queue")
def queue(order_no: Code, patient_id: PatientQuery, svc: Svc, _terminal: Terminal) -> dict[str, Any]:
    return checkin.queue(svc, patient_id, order_no)
