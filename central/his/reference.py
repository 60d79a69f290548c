"""The built-in reference HIS: same-day registration on the platform's own database (``his_`` tables).

It behaves like a careful real HIS: places are held by locks with an expiry, the booked count only grows through
a conditional UPDATE, and confirming is idempotent per lock, so the order logic above it can retry freely.
"""
from __future__ import annotations

import hashlib
import secrets
from datetime import date, datetime

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from central.crypto import FieldCipher
from central.db import utcnow
from central.his.adapter import (Bill, BillLine, BillRefused, Department, Doctor, HisAdapter, Hospital,
                                 ItemsExecuted, Patient, Registration, RegistrationRefused, Slot, SlotNotFound,
                                 SlotTaken)
from central.his.tables import (HisBill, HisBillItem, HisDepartment, HisDoctor, HisDoctorDepartment, HisPatient,
                                HisRegistration, HisSlot, HisSlotLock)

ID_INDEX_PURPOSE = "his_patients.id_number"


def id_number_index(cipher: FieldCipher, id_number: str) -> str:
    return cipher.blind_index(id_number, ID_INDEX_PURPOSE)


class ReferenceHis(HisAdapter):
    def __init__(self, sessions: sessionmaker[Session], cipher: FieldCipher, hospital: Hospital):
        self._sessions = sessions
        self._cipher = cipher
        self._hospital = hospital

    def hospital(self) -> Hospital:
        return self._hospital

    # -- patients ------------------------------------------------------------------------------------------------

    def find_patient_by_id_number(self, id_number: str) -> Patient | None:
        with self._sessions() as session:
            row = session.scalar(select(HisPatient).where(
                HisPatient.id_index == id_number_index(self._cipher, id_number)))
            return _patient(row) if row else None

    def get_patient(self, patient_id: str) -> Patient | None:
        with self._sessions() as session:
            row = session.get(HisPatient, patient_id)
            return _patient(row) if row else None

    # -- schedule ------------------------------------------------------------------------------------------------

    def list_departments(self, day: date, now: datetime) -> list[Department]:
        with self._sessions() as session, session.begin():
            expire_locks(session, now)
            remaining = dict(session.execute(
                select(HisSlot.dept_code, func.sum(HisSlot.capacity - HisSlot.booked))
                .where(HisSlot.day == day, HisSlot.ends_at > now).group_by(HisSlot.dept_code)).all())
            depts = session.scalars(select(HisDepartment).order_by(HisDepartment.sort_order, HisDepartment.code))
            return [_department(d, int(remaining.get(d.code) or 0)) for d in depts]

    def get_department(self, dept_code: str, day: date, now: datetime) -> Department | None:
        with self._sessions() as session:
            dept = session.get(HisDepartment, dept_code)
            if dept is None:
                return None
            remaining = session.scalar(select(func.sum(HisSlot.capacity - HisSlot.booked)).where(
                HisSlot.dept_code == dept_code, HisSlot.day == day, HisSlot.ends_at > now))
            return _department(dept, int(remaining or 0))

    def list_doctors(self, dept_code: str, day: date, now: datetime) -> list[Doctor]:
        with self._sessions() as session, session.begin():
            expire_locks(session, now)
            remaining = dict(session.execute(
                select(HisSlot.doctor_code, func.sum(HisSlot.capacity - HisSlot.booked))
                .where(HisSlot.dept_code == dept_code, HisSlot.day == day, HisSlot.ends_at > now)
                .group_by(HisSlot.doctor_code)).all())
            doctors = session.scalars(
                select(HisDoctor).join(HisDoctorDepartment, HisDoctorDepartment.doctor_code == HisDoctor.code)
                .where(HisDoctorDepartment.dept_code == dept_code).order_by(HisDoctor.fee_fen.desc(), HisDoctor.code))
            return [_doctor(d, int(remaining.get(d.code) or 0)) for d in doctors]

    def get_doctor(self, doctor_code: str) -> Doctor | None:
        with self._sessions() as session:
            doctor = session.get(HisDoctor, doctor_code)
            return _doctor(doctor, 0) if doctor else None

    def list_free_slots(self, dept_code: str, doctor_code: str, day: date, now: datetime) -> list[Slot]:
        with self._sessions() as session:
            lapsed = session.scalar(select(HisSlotLock.lock_id).where(
                HisSlotLock.status == "HELD", HisSlotLock.until < now).limit(1))
        if lapsed is not None:  # give lapsed places back first; the common case is a pure read, no writer lock
            with self._sessions() as session, session.begin():
                expire_locks(session, now)
        with self._sessions() as session:
            rows = session.scalars(select(HisSlot).where(
                HisSlot.dept_code == dept_code, HisSlot.doctor_code == doctor_code, HisSlot.day == day,
                HisSlot.ends_at > now, HisSlot.booked < HisSlot.capacity).order_by(HisSlot.starts_at))
            return [_slot(s) for s in rows]

    def get_slot(self, slot_id: int) -> Slot | None:
        with self._sessions() as session:
            row = session.get(HisSlot, slot_id)
            return _slot(row) if row else None

    # -- locks and registrations -----------------------------------------------------------------------------------

    def lock_slot(self, slot_id: int, patient_id: str, until: datetime, reference: str) -> str:
        now = utcnow()
        try:
            with self._sessions() as session, session.begin():
                existing = session.scalar(select(HisSlotLock).where(HisSlotLock.reference == reference))
                if existing is not None:
                    return _same_lock(existing, slot_id, patient_id)
                slot = session.get(HisSlot, slot_id)
                if slot is None:
                    raise SlotNotFound(f"slot {slot_id} does not exist")
                if slot.ends_at <= now:
                    raise SlotTaken(f"slot {slot_id} has ended")
                expire_locks(session, now, slot_id=slot_id)
                if not _take_place(session, slot_id):
                    raise SlotTaken(f"slot {slot_id} is full")
                lock_id = "L" + secrets.token_hex(12)
                session.add(HisSlotLock(lock_id=lock_id, reference=reference, slot_id=slot_id,
                                        patient_id=patient_id, until=until, status="HELD", created_at=now))
                return lock_id
        except IntegrityError:
            # The same reference raced in from another request (PostgreSQL); its lock is the answer.
            with self._sessions() as session:
                existing = session.scalar(select(HisSlotLock).where(HisSlotLock.reference == reference))
                if existing is None:
                    raise
                return _same_lock(existing, slot_id, patient_id)

    def release_lock(self, lock_id: str) -> None:
        with self._sessions() as session, session.begin():
            released = session.execute(update(HisSlotLock).where(
                HisSlotLock.lock_id == lock_id, HisSlotLock.status == "HELD").values(status="RELEASED"))
            if released.rowcount:
                slot_id = session.scalar(select(HisSlotLock.slot_id).where(HisSlotLock.lock_id == lock_id))
                session.execute(update(HisSlot).where(HisSlot.id == slot_id).values(booked=HisSlot.booked - 1))

    def cancel_registration(self, lock_id: str) -> None:
        with self._sessions() as session, session.begin():
            registration = session.scalar(select(HisRegistration).where(HisRegistration.lock_id == lock_id))
            if registration is None:
                raise RegistrationRefused(f"no registration for lock {lock_id}")
            if registration.status == "CANCELLED":
                return
            if registration.status != "BOOKED":
                raise RegistrationRefused(f"registration {registration.visit_code} is {registration.status.lower()}")
            registration.status = "CANCELLED"
            session.execute(update(HisSlotLock).where(HisSlotLock.lock_id == lock_id).values(status="CANCELLED"))
            session.execute(update(HisSlot).where(HisSlot.id == registration.slot_id)
                            .values(booked=HisSlot.booked - 1))

    def confirm_registration(self, lock_id: str, payment_ref: str) -> Registration:
        with self._sessions() as session, session.begin():
            lock = session.get(HisSlotLock, lock_id)
            if lock is None:
                raise RegistrationRefused(f"unknown lock {lock_id}")
            slot = session.get(HisSlot, lock.slot_id)
            assert slot is not None
            if lock.status == "CONFIRMED":
                done = session.scalar(select(HisRegistration).where(HisRegistration.lock_id == lock_id))
                assert done is not None
                return _registration(done, slot)
            if lock.status == "CANCELLED":
                raise RegistrationRefused(f"lock {lock_id} was cancelled")
            if lock.status != "HELD":
                # The lock lapsed and gave its place back; honour it only if a place is still free.
                if not _take_place(session, slot.id):
                    raise RegistrationRefused(f"lock {lock_id} {lock.status.lower()} and slot {slot.id} is full")
            lock.status = "CONFIRMED"
            dept = session.get(HisDepartment, slot.dept_code)
            doctor = session.get(HisDoctor, slot.doctor_code)
            assert dept is not None and doctor is not None
            last = session.scalar(select(func.max(HisRegistration.queue_no)).where(
                HisRegistration.dept_code == slot.dept_code, HisRegistration.doctor_code == slot.doctor_code,
                HisRegistration.day == slot.day))
            registration = HisRegistration(
                lock_id=lock_id, slot_id=slot.id, patient_id=lock.patient_id, dept_code=slot.dept_code,
                doctor_code=slot.doctor_code, day=slot.day, queue_no=(last or 0) + 1,
                visit_code=_visit_code(lock_id), location=dept.location, payment_ref=payment_ref,
                fee_fen=doctor.fee_fen)
            session.add(registration)
            session.flush()
            return _registration(registration, slot)


    # --- outpatient bills ------------------------------------------------------------------------------------

    def list_bills(self, patient_id: str, *, unpaid_only: bool = True) -> list[Bill]:
        with self._sessions() as session:
            query = select(HisBill).where(HisBill.patient_id == patient_id)
            if unpaid_only:
                query = query.where(HisBill.status == "PENDING")
            rows = list(session.scalars(query.order_by(HisBill.issued_at.desc(), HisBill.bill_no)))
            return [_bill(session, row) for row in rows]

    def get_bill(self, bill_no: str) -> Bill | None:
        with self._sessions() as session:
            row = session.get(HisBill, bill_no)
            return None if row is None else _bill(session, row)

    def pay_bill(self, bill_no: str, payment_ref: str) -> Bill:
        with self._sessions() as session, session.begin():
            row = session.get(HisBill, bill_no)
            if row is None:
                raise BillRefused(f"unknown bill {bill_no}")
            if row.status == "PAID" and row.payment_ref == payment_ref:
                return _bill(session, row)
            if row.status != "PENDING":
                raise BillRefused(f"bill {bill_no} is {row.status.lower()}")
            row.status, row.payment_ref, row.paid_at = "PAID", payment_ref, utcnow()
            session.execute(update(HisBillItem).where(HisBillItem.bill_no == bill_no,
                                                      HisBillItem.status == "PENDING").values(status="PAID"))
            session.flush()
            return _bill(session, row)

    def refund_bill_items(self, bill_no: str, item_ids: list[str], refund_ref: str) -> None:
        with self._sessions() as session, session.begin():
            rows = list(session.scalars(select(HisBillItem).where(
                HisBillItem.bill_no == bill_no, HisBillItem.id.in_([int(i) for i in item_ids if i.isdigit()]))))
            if len(rows) != len(set(item_ids)):
                raise BillRefused(f"bill {bill_no} has no such items")
            executed = [str(r.id) for r in rows if r.status == "EXECUTED"
                        or (r.status == "REFUNDED" and r.refund_ref != refund_ref)]
            if executed:
                raise ItemsExecuted(executed)
            for row in rows:
                if row.status == "PAID":
                    row.status, row.refund_ref = "REFUNDED", refund_ref
                elif row.status != "REFUNDED":
                    raise BillRefused(f"item {row.id} is {row.status.lower()}")

    def execute_item(self, item_id: str) -> None:
        """The pharmacy dispensed it or the lab took the sample (the reference HIS's departments, for demos
        and tests): from now on only the counter can refund it."""
        with self._sessions() as session, session.begin():
            session.execute(update(HisBillItem).where(HisBillItem.id == int(item_id), HisBillItem.status == "PAID")
                            .values(status="EXECUTED"))


#: Where the patient goes for each kind of item, and the catalogue class of items the demo catalogue lists
#: as 乙类 (B) or 丙类 (C); everything else is 甲类 (A). A real HIS sends both with the bill.
PLACES = {"西药费": "门诊西药房 1–4 号窗口", "中成药费": "门诊中药房 5 号窗口", "化验费": "检验科（门诊楼二楼）",
          "检查费": "医学影像科（医技楼一楼）", "治疗费": "门诊治疗室（门诊楼一楼）"}
PLACES_EN = {"西药费": "Western pharmacy, windows 1–4", "中成药费": "Chinese-medicine pharmacy, window 5",
             "化验费": "Laboratory, outpatient building 2F", "检查费": "Imaging, medical-technology building 1F",
             "治疗费": "Treatment room, outpatient building 1F"}
INSURANCE_CLASS = {"奥美拉唑肠溶胶囊": "B", "连花清瘟胶囊": "B", "硝苯地平控释片": "B"}


def _bill(session: Session, row: HisBill) -> Bill:
    dept = session.get(HisDepartment, row.dept_code)
    doctor = session.get(HisDoctor, row.doctor_code)
    items = session.scalars(select(HisBillItem).where(HisBillItem.bill_no == row.bill_no).order_by(HisBillItem.id))
    return Bill(row.bill_no, row.patient_id, row.dept_code, dept.name if dept else row.dept_code, row.doctor_code,
                doctor.name if doctor else row.doctor_code, row.issued_at, row.status, row.total_fen,
                tuple(BillLine(str(i.id), i.category, i.name, i.spec, i.quantity, i.unit, i.amount_fen,
                               INSURANCE_CLASS.get(i.name, "A"), PLACES.get(i.category, "门诊收费处"),
                               PLACES_EN.get(i.category, "Outpatient cashier"), i.status)
                      for i in items))


def expire_locks(session: Session, now: datetime, *, slot_id: int | None = None) -> int:
    """Give back the places of locks whose time is up. Each lock gives its place back once: the status change
    is conditional, and only a lock that changed decrements its slot."""
    query = select(HisSlotLock.lock_id, HisSlotLock.slot_id).where(
        HisSlotLock.status == "HELD", HisSlotLock.until < now)
    if slot_id is not None:
        query = query.where(HisSlotLock.slot_id == slot_id)
    expired = 0
    for lock_id, lock_slot_id in session.execute(query).all():
        changed = session.execute(update(HisSlotLock).where(
            HisSlotLock.lock_id == lock_id, HisSlotLock.status == "HELD").values(status="EXPIRED"))
        if changed.rowcount:
            session.execute(update(HisSlot).where(HisSlot.id == lock_slot_id).values(booked=HisSlot.booked - 1))
            expired += 1
    return expired


def _take_place(session: Session, slot_id: int) -> bool:
    result = session.execute(update(HisSlot).where(HisSlot.id == slot_id, HisSlot.booked < HisSlot.capacity)
                             .values(booked=HisSlot.booked + 1))
    return result.rowcount == 1


def _same_lock(lock: HisSlotLock, slot_id: int, patient_id: str) -> str:
    if lock.slot_id != slot_id or lock.patient_id != patient_id:
        raise ValueError("lock reference reused for another slot or patient")
    return lock.lock_id


def _visit_code(lock_id: str) -> str:
    """Twelve digits, derived from the lock so a retried confirmation could never mint a second code."""
    digest = int.from_bytes(hashlib.sha256(lock_id.encode("ascii")).digest()[:8], "big")
    return f"{digest % 10**12:012d}"


def _patient(row: HisPatient) -> Patient:
    return Patient(patient_id=row.patient_id, name=row.name, gender=row.gender, birth=row.birth)


def _department(row: HisDepartment, remaining: int) -> Department:
    return Department(code=row.code, name=row.name, name_en=row.name_en, category=row.category,
                      location=row.location, location_en=row.location_en, remaining=max(remaining, 0))


def _doctor(row: HisDoctor, remaining: int) -> Doctor:
    return Doctor(code=row.code, name=row.name, title=row.title, title_en=row.title_en, specialty=row.specialty,
                  fee_fen=row.fee_fen, remaining=max(remaining, 0))


def _slot(row: HisSlot) -> Slot:
    return Slot(slot_id=row.id, dept_code=row.dept_code, doctor_code=row.doctor_code, day=row.day, start=row.start,
                end=row.end, starts_at=row.starts_at, ends_at=row.ends_at,
                remaining=max(row.capacity - row.booked, 0))


def _registration(row: HisRegistration, slot: HisSlot) -> Registration:
    return Registration(lock_id=row.lock_id, queue_no=row.queue_no, visit_code=row.visit_code, location=row.location,
                        day=row.day, start=slot.start, end=slot.end)
