"""The built-in reference HIS: same-day registration on the platform's own database (``his_`` tables).

It behaves like a careful real HIS: places are held by locks with an expiry, the booked count only grows through
a conditional UPDATE, and confirming is idempotent per lock, so the order logic above it can retry freely.
"""
from __future__ import annotations

import hashlib
import json
import secrets
from datetime import date, datetime

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from central.crypto import FieldCipher
from central.db import utcnow
from central.his.adapter import (Bill, BillLine, BillRefused, BookingLimitReached, CheckInRefused,
                                 DayAvailability, Department, Doctor, DoctorMatch, Document, DocumentNotFound,
                                 HisAdapter, HisRules, Hospital, InvoiceLine, ItemsExecuted, LabValue, Patient,
                                 PrintLimitReached, QueueStatus, Registration, RegistrationRecord,
                                 RegistrationRefused, Slot, SlotNotFound, SlotTaken)
from central.his.tables import (HisBill, HisBillItem, HisDepartment, HisDoctor, HisDoctorDepartment,
                                HisEHealthCard, HisImagingReport, HisInvoice, HisLabReport, HisLabResult, HisMedicalRecord,
                                HisPatient, HisPrintLog, HisRegistration, HisSlot, HisSlotLock)
from central.his.adapter import CardsOnFile, EHealthCardIssue, VisitCardTaken
from central.his.tables import HisIssuedEHealthCard, HisVisitCard

ID_INDEX_PURPOSE = "his_patients.id_number"
EHEALTH_INDEX_PURPOSE = "his_ehealth_cards.code"


def id_number_index(cipher: FieldCipher, id_number: str) -> str:
    return cipher.blind_index(id_number, ID_INDEX_PURPOSE)


def ehealth_code_index(cipher: FieldCipher, code: str) -> str:
    return cipher.blind_index(code, EHEALTH_INDEX_PURPOSE)


class ReferenceHis(HisAdapter):
    creates_patients = True

    def __init__(self, sessions: sessionmaker[Session], cipher: FieldCipher, hospital: Hospital,
                 rules: HisRules | None = None):
        self._sessions = sessions
        self._cipher = cipher
        self._hospital = hospital
        #: The demo hospital's rules; replaceable (tests, a demo with other rules) since it is plain data.
        self.his_rules = rules or HisRules()

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

    def find_patient_by_visit_code(self, visit_code: str) -> Patient | None:
        with self._sessions() as session:
            row = session.scalar(select(HisPatient).join(
                HisRegistration, HisRegistration.patient_id == HisPatient.patient_id).where(
                HisRegistration.visit_code == visit_code.strip()))
            return _patient(row) if row else None

    def find_patients_by_ehealth_code(self, code: str) -> list[Patient]:
        with self._sessions() as session:
            rows = session.scalars(select(HisPatient).join(
                HisEHealthCard, HisEHealthCard.patient_id == HisPatient.patient_id).where(
                HisEHealthCard.code_index == ehealth_code_index(self._cipher, code)).order_by(
                HisPatient.patient_id)).all()
            return [_patient(row) for row in rows]

    def bind_ehealth_card(self, code: str, patient_id: str) -> None:
        """Bind an e-health card code to a patient file (the regional platform issued it); idempotent."""
        index = ehealth_code_index(self._cipher, code)
        with self._sessions() as session, session.begin():
            if session.get(HisEHealthCard, (index, patient_id)) is None:
                session.add(HisEHealthCard(code_index=index, patient_id=patient_id))

    def create_patient(self, name: str, id_number: str, gender: str, birth: date,
                       phone: str | None) -> tuple[Patient, bool]:
        index = id_number_index(self._cipher, id_number)
        for _attempt in range(5):
            with self._sessions() as session:
                existing = session.scalar(select(HisPatient).where(HisPatient.id_index == index))
                if existing is not None:
                    return _patient(existing), False
                row = HisPatient(patient_id=f"P{secrets.randbelow(10**8):08d}", name=name,
                                 id_number=id_number.strip().upper(), id_index=index, gender=gender, birth=birth,
                                 phone=phone)
                session.add(row)
                try:
                    session.commit()
                except IntegrityError:  # the same person at another kiosk, or a patient number taken
                    session.rollback()
                    continue
                return _patient(row), True
        raise RuntimeError("could not allocate a patient number")

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

    # --- rules, appointments, check-in ----------------------------------------------------------------------

    def rules(self) -> HisRules:
        return self.his_rules

    def search_doctors(self, text: str) -> list[DoctorMatch]:
        text = text.strip()
        if not text:
            return []
        with self._sessions() as session:  # autoescape: a typed % or _ is a character, not a wildcard
            doctors = list(session.scalars(select(HisDoctor).where(or_(
                HisDoctor.name.contains(text, autoescape=True),
                HisDoctor.initials.startswith(text.upper(), autoescape=True)))
                .order_by(HisDoctor.initials, HisDoctor.code).limit(50)))
            seats: dict[str, list[tuple[str, str]]] = {}
            for doctor_code, code, name in session.execute(
                    select(HisDoctorDepartment.doctor_code, HisDepartment.code, HisDepartment.name)
                    .join(HisDepartment, HisDepartment.code == HisDoctorDepartment.dept_code)
                    .where(HisDoctorDepartment.doctor_code.in_([d.code for d in doctors]))
                    .order_by(HisDepartment.sort_order)):
                seats.setdefault(doctor_code, []).append((code, name))
            return [DoctorMatch(_doctor(d, 0), d.initials or "", tuple(seats.get(d.code, []))) for d in doctors]

    def doctor_dates(self, dept_code: str, doctor_code: str, first: date, last: date,
                     now: datetime) -> list[DayAvailability]:
        with self._sessions() as session:
            rows = session.execute(
                select(HisSlot.day, func.sum(HisSlot.capacity - HisSlot.booked))
                .where(HisSlot.dept_code == dept_code, HisSlot.doctor_code == doctor_code, HisSlot.day >= first,
                       HisSlot.day <= last, HisSlot.ends_at > now)
                .group_by(HisSlot.day).order_by(HisSlot.day)).all()
            return [DayAvailability(day, max(int(remaining or 0), 0)) for day, remaining in rows]

    def check_booking_limits(self, patient_id: str, slot_id: int, now: datetime, *,
                             lock_id: str | None = None) -> None:
        with self._sessions() as session:
            slot = session.get(HisSlot, slot_id)
            if slot is None:
                raise SlotNotFound(f"slot {slot_id} does not exist")
            # Holdings of the patient that day: confirmed registrations, and places held for payment that
            # have not lapsed. Cancelled, released and expired locks hold nothing.
            query = (select(HisSlotLock.lock_id, HisSlot.dept_code).join(HisSlot, HisSlot.id == HisSlotLock.slot_id)
                     .where(HisSlotLock.patient_id == patient_id, HisSlot.day == slot.day,
                            or_(HisSlotLock.status == "CONFIRMED",
                                (HisSlotLock.status == "HELD") & (HisSlotLock.until >= now))))
            if lock_id is not None:
                mine = session.get(HisSlotLock, lock_id)
                if mine is None:
                    raise SlotNotFound(f"unknown lock {lock_id}")
                query = query.where(or_(HisSlotLock.created_at < mine.created_at,
                                        (HisSlotLock.created_at == mine.created_at)
                                        & (HisSlotLock.lock_id < mine.lock_id)))
            held = session.execute(query).all()
        rules = self.his_rules
        same_department = sum(1 for _lock, dept in held if dept == slot.dept_code)
        if same_department >= rules.max_per_department_per_day:
            raise BookingLimitReached("DEPARTMENT_DAY_LIMIT", rules.max_per_department_per_day)
        if len(held) >= rules.max_per_day:
            raise BookingLimitReached("DAY_LIMIT", rules.max_per_day)

    def list_registrations(self, patient_id: str) -> list[RegistrationRecord]:
        with self._sessions() as session:
            rows = session.execute(_registration_query().where(HisRegistration.patient_id == patient_id)
                                   .order_by(HisSlot.starts_at.desc(), HisRegistration.id.desc())).all()
            return [_registration_record(*row) for row in rows]

    def get_registration(self, lock_id: str) -> RegistrationRecord | None:
        with self._sessions() as session:
            row = session.execute(_registration_query().where(HisRegistration.lock_id == lock_id)).first()
            return None if row is None else _registration_record(*row)

    def check_in(self, lock_id: str, now: datetime) -> QueueStatus:
        with self._sessions() as session, session.begin():
            registration = session.scalar(select(HisRegistration).where(HisRegistration.lock_id == lock_id))
            if registration is None:
                raise RegistrationRefused(f"no registration for lock {lock_id}")
            slot = session.get(HisSlot, registration.slot_id)
            assert slot is not None
            opens_at, closes_at = self.his_rules.checkin_window(slot.starts_at)
            if registration.status == "CANCELLED":
                raise CheckInRefused("REGISTRATION_CANCELLED", opens_at, closes_at)
            if registration.status == "BOOKED":
                if now < opens_at:
                    raise CheckInRefused("CHECKIN_TOO_EARLY", opens_at, closes_at)
                if now > closes_at:
                    raise CheckInRefused("CHECKIN_TOO_LATE", opens_at, closes_at)
                session.execute(update(HisRegistration).where(HisRegistration.id == registration.id,
                                                              HisRegistration.status == "BOOKED")
                                .values(status="CHECKED_IN", checked_in_at=now))
            session.flush()
            session.refresh(registration)
            return _queue_status(session, registration)

    def queue_status(self, lock_id: str) -> QueueStatus:
        with self._sessions() as session:
            registration = session.scalar(select(HisRegistration).where(HisRegistration.lock_id == lock_id))
            if registration is None:
                raise RegistrationRefused(f"no registration for lock {lock_id}")
            return _queue_status(session, registration)

    def call_next(self, dept_code: str, doctor_code: str, day: date, now: datetime) -> str | None:
        """The doctor calls the next checked-in patient in (the reference HIS's clinic screen, for demos and
        tests); returns the visit code called, or None when nobody waits."""
        with self._sessions() as session, session.begin():
            registration = session.scalar(select(HisRegistration).where(
                HisRegistration.dept_code == dept_code, HisRegistration.doctor_code == doctor_code,
                HisRegistration.day == day, HisRegistration.status == "CHECKED_IN")
                .order_by(HisRegistration.queue_no).limit(1))
            if registration is None:
                return None
            registration.status, registration.seen_at = "SEEN", now
            return registration.visit_code

    # --- documents ------------------------------------------------------------------------------------------

    def list_documents(self, patient_id: str) -> list[Document]:
        with self._sessions() as session:
            names = dict(session.execute(select(HisDepartment.code, HisDepartment.name)).all())
            documents = [_lab_document(session, row, names) for row in session.scalars(
                select(HisLabReport).where(HisLabReport.patient_id == patient_id))]
            documents += [_imaging_document(row, names) for row in session.scalars(
                select(HisImagingReport).where(HisImagingReport.patient_id == patient_id))]
            documents += [_record_document(session, row, names) for row in session.scalars(
                select(HisMedicalRecord).where(HisMedicalRecord.patient_id == patient_id))]
            documents += [_invoice_document(row) for row in session.scalars(
                select(HisInvoice).where(HisInvoice.patient_id == patient_id))]
        return sorted(documents, key=lambda d: (d.created_at, d.doc_no), reverse=True)

    def get_document(self, kind: str, doc_no: str) -> Document | None:
        table = _DOCUMENT_TABLES.get(kind)
        if table is None:
            return None
        with self._sessions() as session:
            row = session.get(table, doc_no)
            if row is None:
                return None
            names = dict(session.execute(select(HisDepartment.code, HisDepartment.name)).all())
            if kind == "lab":
                return _lab_document(session, row, names)
            if kind == "imaging":
                return _imaging_document(row, names)
            if kind == "record":
                return _record_document(session, row, names)
            return _invoice_document(row)

    def issue_invoice(self, order_ref: str, patient_id: str, title: str, lines: list[InvoiceLine],
                      now: datetime) -> Document:
        try:
            with self._sessions() as session, session.begin():
                row = session.scalar(select(HisInvoice).where(HisInvoice.order_ref == order_ref))
                if row is None:
                    row = HisInvoice(
                        invoice_no=_invoice_no(order_ref), order_ref=order_ref, patient_id=patient_id, title=title,
                        amount_fen=sum(line.amount_fen for line in lines), issued_at=now, printed_count=0,
                        items=json.dumps([{"name": line.name, "category": line.category,
                                           "amount_fen": line.amount_fen} for line in lines], ensure_ascii=False))
                    session.add(row)
                    session.flush()
                return _invoice_document(row)
        except IntegrityError:  # issued by a concurrent request meanwhile: that one is the invoice
            with self._sessions() as session:
                row = session.scalar(select(HisInvoice).where(HisInvoice.order_ref == order_ref))
                if row is None:
                    raise
                return _invoice_document(row)

    def record_print(self, kind: str, doc_no: str, print_ref: str, limit: int) -> int:
        table = _DOCUMENT_TABLES.get(kind)
        if table is None:
            raise DocumentNotFound(f"unknown kind {kind}")
        key = table.__mapper__.primary_key[0]
        with self._sessions() as session, session.begin():
            done = session.get(HisPrintLog, print_ref)
            if done is not None:
                return done.count_after
            row = session.get(table, doc_no)
            if row is None:
                raise DocumentNotFound(f"no {kind} document {doc_no}")
            counted = session.execute(update(table).where(key == doc_no, table.printed_count < limit)
                                      .values(printed_count=table.printed_count + 1))
            if counted.rowcount != 1:
                raise PrintLimitReached(row.printed_count, limit)
            count = session.scalar(select(table.printed_count).where(key == doc_no))
            session.add(HisPrintLog(print_ref=print_ref, kind=kind, doc_no=doc_no, count_after=count))
            return int(count)

    # -- cards (办卡绑卡, K2) ---------------------------------------------------------------------------------------

    def cards_on_file(self, patient_id: str) -> CardsOnFile:
        with self._sessions() as session:
            issued = session.get(HisIssuedEHealthCard, patient_id) is not None
            held = issued or session.scalar(select(HisEHealthCard.code_index).where(
                HisEHealthCard.patient_id == patient_id).limit(1)) is not None
            cards = session.scalars(select(HisVisitCard).where(HisVisitCard.patient_id == patient_id).order_by(
                HisVisitCard.bound_at, HisVisitCard.card_index)).all()
            return CardsOnFile(ehealth="here" if issued else ("elsewhere" if held else "none"),
                               visit_cards=[row.card_no for row in cards])

    def issue_ehealth_card(self, patient_id: str) -> EHealthCardIssue:
        """A random 64-hex-digit code: the kiosk scanner's e-health pattern, and unguessable, since whoever shows
        it is taken for the patient. Read and write in one write transaction, so two kiosks asking at once end
        with one card (the second waits, then finds the first's)."""
        for _attempt in range(3):
            try:
                with self._sessions() as session, session.begin():
                    if session.get(HisPatient, patient_id) is None:
                        raise ValueError("no such patient")
                    issued = session.get(HisIssuedEHealthCard, patient_id)
                    if issued is not None:
                        return EHealthCardIssue(code=issued.code, created=False)
                    if session.scalar(select(HisEHealthCard.code_index).where(
                            HisEHealthCard.patient_id == patient_id).limit(1)) is not None:
                        return EHealthCardIssue(code=None, created=False)
                    code = secrets.token_hex(32)
                    index = ehealth_code_index(self._cipher, code)
                    session.add(HisIssuedEHealthCard(patient_id=patient_id, code=code, code_index=index))
                    session.add(HisEHealthCard(code_index=index, patient_id=patient_id))
                    session.flush()
                    return EHealthCardIssue(code=code, created=True)  # committed on leaving the block
            except IntegrityError:  # another process issued one a moment earlier: read theirs
                continue
        raise RuntimeError("could not issue an e-health card")

    def bind_visit_card(self, card_no: str, patient_id: str) -> bool:
        number = card_no.strip().upper()
        index = visit_card_index(self._cipher, number)
        for _attempt in range(3):
            try:
                with self._sessions() as session, session.begin():
                    row = session.get(HisVisitCard, index)
                    if row is not None:
                        if row.patient_id != patient_id:
                            raise VisitCardTaken("visit card bound to another patient")
                        return False
                    session.add(HisVisitCard(card_index=index, card_no=number, patient_id=patient_id))
                    session.flush()
                    return True
            except IntegrityError:  # bound a moment ago by another process: read who holds it now
                continue
        raise RuntimeError("could not bind the visit card")

    def find_patient_by_visit_card(self, card_no: str) -> Patient | None:
        with self._sessions() as session:
            row = session.scalar(select(HisPatient).join(
                HisVisitCard, HisVisitCard.patient_id == HisPatient.patient_id).where(
                HisVisitCard.card_index == visit_card_index(self._cipher, card_no)))
            return _patient(row) if row else None


_DOCUMENT_TABLES: dict[str, type[HisLabReport] | type[HisImagingReport] | type[HisMedicalRecord] | type[HisInvoice]] = {
    "lab": HisLabReport, "imaging": HisImagingReport, "record": HisMedicalRecord, "invoice": HisInvoice}


def _invoice_no(order_ref: str) -> str:
    """Twenty digits derived from the order: an invoice number is never minted twice for one order."""
    digest = int.from_bytes(hashlib.sha256(order_ref.encode("utf-8")).digest()[:10], "big")
    return f"{digest % 10**20:020d}"


def _lab_document(session: Session, row: HisLabReport, names: dict[str, str]) -> Document:
    results = session.scalars(select(HisLabResult).where(HisLabResult.report_no == row.report_no)
                              .order_by(HisLabResult.id))
    return Document("lab", row.report_no, row.patient_id, row.title, names.get(row.dept_code, row.dept_code),
                    row.collected_at, row.reported_at, row.printed_count, detail=row.specimen,
                    results=tuple(LabValue(r.code, r.name, r.value, r.unit, r.reference_range, r.flag)
                                  for r in results))


def _imaging_document(row: HisImagingReport, names: dict[str, str]) -> Document:
    return Document("imaging", row.report_no, row.patient_id, row.title, names.get(row.dept_code, row.dept_code),
                    row.examined_at, row.reported_at, row.printed_count, detail=row.modality,
                    sections=(("检查所见 Findings", row.findings), ("诊断意见 Impression", row.impression)))


def _record_document(session: Session, row: HisMedicalRecord, names: dict[str, str]) -> Document:
    doctor = session.get(HisDoctor, row.doctor_code)
    return Document("record", row.record_no, row.patient_id, "门诊病历摘要 Outpatient record summary",
                    names.get(row.dept_code, row.dept_code), row.visited_at, row.visited_at, row.printed_count,
                    detail=doctor.name if doctor else row.doctor_code,
                    sections=(("主诉 Chief complaint", row.complaint), ("诊断 Diagnosis", row.diagnosis),
                              ("处理意见 Advice", row.advice)))


def _invoice_document(row: HisInvoice) -> Document:
    lines = tuple(InvoiceLine(item["name"], item["category"], int(item["amount_fen"]))
                  for item in json.loads(row.items))
    return Document("invoice", row.invoice_no, row.patient_id, row.title, "", row.issued_at, row.issued_at,
                    row.printed_count, detail=row.order_ref, lines=lines, amount_fen=row.amount_fen)


def _registration_query():  # type: ignore[no-untyped-def]
    return (select(HisRegistration, HisSlot, HisDepartment.name, HisDoctor.name)
            .join(HisSlot, HisSlot.id == HisRegistration.slot_id)
            .join(HisDepartment, HisDepartment.code == HisRegistration.dept_code)
            .join(HisDoctor, HisDoctor.code == HisRegistration.doctor_code))


def _registration_record(row: HisRegistration, slot: HisSlot, dept_name: str, doctor_name: str) -> RegistrationRecord:
    return RegistrationRecord(
        lock_id=row.lock_id, visit_code=row.visit_code, patient_id=row.patient_id, dept_code=row.dept_code,
        dept_name=dept_name, doctor_code=row.doctor_code, doctor_name=doctor_name, day=row.day, start=slot.start,
        end=slot.end, starts_at=slot.starts_at, queue_no=row.queue_no, location=row.location, fee_fen=row.fee_fen,
        status=row.status, created_at=row.created_at, checked_in_at=row.checked_in_at)


def _queue_status(session: Session, registration: HisRegistration) -> QueueStatus:
    """Checked-in patients are seen in number order; the wait is the patients ahead times the doctor's usual
    minutes per patient."""
    position = ahead = wait = None
    if registration.status == "CHECKED_IN":
        ahead = int(session.scalar(select(func.count()).select_from(HisRegistration).where(
            HisRegistration.dept_code == registration.dept_code,
            HisRegistration.doctor_code == registration.doctor_code, HisRegistration.day == registration.day,
            HisRegistration.status == "CHECKED_IN", HisRegistration.queue_no < registration.queue_no)) or 0)
        position = ahead + 1
        minutes = session.scalar(select(HisDoctor.minutes_per_patient).where(
            HisDoctor.code == registration.doctor_code)) or 10
        wait = ahead * int(minutes)
    return QueueStatus(visit_code=registration.visit_code, status=registration.status,
                       queue_no=registration.queue_no, location=registration.location, position=position,
                       ahead=ahead, estimated_wait_minutes=wait, checked_in_at=registration.checked_in_at)



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
                      location=row.location, location_en=row.location_en, remaining=max(remaining, 0),
                      clinic_type=row.clinic_type or "general")


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


VISIT_CARD_INDEX_PURPOSE = "his_visit_cards.card_no"


def visit_card_index(cipher: FieldCipher, card_no: str) -> str:
    return cipher.blind_index(card_no, VISIT_CARD_INDEX_PURPOSE)
