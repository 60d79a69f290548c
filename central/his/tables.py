"""Storage of the reference HIS (tables prefixed ``his_``).

It lives in the platform's database for convenience only: the platform reaches it through the adapter
interface, exactly as it would reach a hospital's own HIS.
"""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from central.crypto import EncryptedText
from central.db import Base, UTCDateTime, utcnow


class HisDepartment(Base):
    __tablename__ = "his_departments"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    name_en: Mapped[str] = mapped_column(String(100))
    category: Mapped[str] = mapped_column(String(32))
    location: Mapped[str] = mapped_column(String(200))
    location_en: Mapped[str] = mapped_column(String(200))
    sort_order: Mapped[int] = mapped_column(Integer, default=0)
    #: "general", "special" (特需门诊: chosen senior doctors, higher fees) or "mdt" (多学科联合门诊: a team sees
    #: the patient together). Patients look for these separately, so the kiosk filters on it.
    clinic_type: Mapped[str] = mapped_column(String(16), default="general", server_default="general")


class HisDoctor(Base):
    __tablename__ = "his_doctors"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(32))
    title_en: Mapped[str] = mapped_column(String(64))
    specialty: Mapped[str] = mapped_column(String(200))
    fee_fen: Mapped[int] = mapped_column(Integer)
    #: Pinyin initials of the name (李秀英 -> LXY), what patients type on a kiosk's letter keyboard to find a
    #: doctor; kept as a column so the search is an indexed prefix match.
    initials: Mapped[str | None] = mapped_column(String(16), index=True)
    #: The doctor's usual minutes per patient, from which the queue's waiting time is estimated.
    minutes_per_patient: Mapped[int] = mapped_column(Integer, default=10, server_default="10")


class HisDoctorDepartment(Base):
    """Which departments a doctor sits in; some sit in two (a cardiologist also in the geriatric clinic)."""

    __tablename__ = "his_doctor_departments"

    doctor_code: Mapped[str] = mapped_column(ForeignKey("his_doctors.code"), primary_key=True)
    dept_code: Mapped[str] = mapped_column(ForeignKey("his_departments.code"), primary_key=True)


class HisSessionTemplate(Base):
    """A weekly clinic session from which each day's slots are generated."""

    __tablename__ = "his_session_templates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dept_code: Mapped[str] = mapped_column(ForeignKey("his_departments.code"))
    doctor_code: Mapped[str] = mapped_column(ForeignKey("his_doctors.code"))
    weekday: Mapped[int] = mapped_column(Integer)  # Monday = 0
    start: Mapped[str] = mapped_column(String(5))  # HH:MM, hospital time
    end: Mapped[str] = mapped_column(String(5))  # HH:MM; "24:00" ends at midnight
    slot_minutes: Mapped[int] = mapped_column(Integer)
    capacity: Mapped[int] = mapped_column(Integer)


class HisScheduleDay(Base):
    """Marks a date whose slots have been generated, which makes generation idempotent per date."""

    __tablename__ = "his_schedule_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    generated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class HisSlot(Base):
    """A bookable time slot. ``booked`` counts held locks and confirmed registrations together, and only ever
    grows through ``UPDATE … WHERE booked < capacity``: that condition is what makes double booking impossible."""

    __tablename__ = "his_slots"
    __table_args__ = (UniqueConstraint("dept_code", "doctor_code", "day", "start"),
                      Index("ix_his_slots_day_dept", "day", "dept_code"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dept_code: Mapped[str] = mapped_column(ForeignKey("his_departments.code"))
    doctor_code: Mapped[str] = mapped_column(ForeignKey("his_doctors.code"))
    day: Mapped[date] = mapped_column(Date)
    start: Mapped[str] = mapped_column(String(5))
    end: Mapped[str] = mapped_column(String(5))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    capacity: Mapped[int] = mapped_column(Integer)
    booked: Mapped[int] = mapped_column(Integer, default=0)


class HisSlotLock(Base):
    """A place held for a patient while they pay. ``reference`` is the caller's idempotency reference: asking
    twice with the same reference returns the same lock instead of holding a second place."""

    __tablename__ = "his_slot_locks"

    lock_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    reference: Mapped[str] = mapped_column(String(64), unique=True)
    slot_id: Mapped[int] = mapped_column(ForeignKey("his_slots.id"), index=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("his_patients.patient_id"))
    until: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(16), default="HELD")  # HELD | RELEASED | EXPIRED | CONFIRMED
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class HisRegistration(Base):
    __tablename__ = "his_registrations"
    __table_args__ = (UniqueConstraint("dept_code", "doctor_code", "day", "queue_no"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    lock_id: Mapped[str] = mapped_column(ForeignKey("his_slot_locks.lock_id"), unique=True)
    slot_id: Mapped[int] = mapped_column(ForeignKey("his_slots.id"))
    patient_id: Mapped[str] = mapped_column(ForeignKey("his_patients.patient_id"), index=True)
    dept_code: Mapped[str] = mapped_column(String(32))
    doctor_code: Mapped[str] = mapped_column(String(32))
    day: Mapped[date] = mapped_column(Date)
    queue_no: Mapped[int] = mapped_column(Integer)
    visit_code: Mapped[str] = mapped_column(String(32), unique=True)
    location: Mapped[str] = mapped_column(String(200))
    payment_ref: Mapped[str] = mapped_column(String(64))
    fee_fen: Mapped[int] = mapped_column(Integer)
    # BOOKED → CHECKED_IN (the patient reported at the clinic) → SEEN (the doctor called them in);
    # BOOKED → CANCELLED (退号: the place goes back).
    status: Mapped[str] = mapped_column(String(16), default="BOOKED", server_default="BOOKED")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    checked_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class HisPatient(Base):
    """A patient file. Personal fields are encrypted; ``id_index`` is the blind index used to find the file."""

    __tablename__ = "his_patients"

    patient_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(EncryptedText("his_patients.name"))
    id_number: Mapped[str] = mapped_column(EncryptedText("his_patients.id_number"))
    id_index: Mapped[str] = mapped_column(String(64), unique=True)
    gender: Mapped[str] = mapped_column(String(4))  # 男 | 女, as printed on the ID card
    birth: Mapped[date] = mapped_column(Date)
    phone: Mapped[str | None] = mapped_column(EncryptedText("his_patients.phone"))
    address: Mapped[str | None] = mapped_column(EncryptedText("his_patients.address"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class HisBill(Base):
    __tablename__ = "his_bills"

    bill_no: Mapped[str] = mapped_column(String(32), primary_key=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("his_patients.patient_id"), index=True)
    dept_code: Mapped[str] = mapped_column(ForeignKey("his_departments.code"))
    doctor_code: Mapped[str] = mapped_column(ForeignKey("his_doctors.code"))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(16), default="PENDING")
    total_fen: Mapped[int] = mapped_column(Integer)
    payment_ref: Mapped[str | None] = mapped_column(String(64))
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class HisBillItem(Base):
    __tablename__ = "his_bill_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bill_no: Mapped[str] = mapped_column(ForeignKey("his_bills.bill_no"), index=True)
    category: Mapped[str] = mapped_column(String(32))  # 西药费 / 检查费 / 化验费 / 治疗费
    name: Mapped[str] = mapped_column(String(100))
    spec: Mapped[str] = mapped_column(String(100), default="")
    quantity: Mapped[int] = mapped_column(Integer)
    unit: Mapped[str] = mapped_column(String(16))
    unit_price_fen: Mapped[int] = mapped_column(Integer)
    amount_fen: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="PENDING")  # PENDING PAID EXECUTED REFUNDED
    refund_ref: Mapped[str | None] = mapped_column(String(64))


class HisLabReport(Base):
    __tablename__ = "his_lab_reports"

    report_no: Mapped[str] = mapped_column(String(32), primary_key=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("his_patients.patient_id"), index=True)
    title: Mapped[str] = mapped_column(String(100))
    specimen: Mapped[str] = mapped_column(String(32))
    dept_code: Mapped[str] = mapped_column(ForeignKey("his_departments.code"))
    collected_at: Mapped[datetime] = mapped_column(UTCDateTime())
    reported_at: Mapped[datetime] = mapped_column(UTCDateTime())
    printed_count: Mapped[int] = mapped_column(Integer, default=0)


class HisLabResult(Base):
    __tablename__ = "his_lab_results"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    report_no: Mapped[str] = mapped_column(ForeignKey("his_lab_reports.report_no"), index=True)
    code: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(64))
    value: Mapped[str] = mapped_column(String(32))
    unit: Mapped[str] = mapped_column(String(32))
    reference_range: Mapped[str] = mapped_column(String(32))
    flag: Mapped[str] = mapped_column(String(2), default="")  # "" | H | L


class HisImagingReport(Base):
    """An imaging (检查) report: free text written by the radiologist, unlike a lab report's result table."""

    __tablename__ = "his_imaging_reports"

    report_no: Mapped[str] = mapped_column(String(32), primary_key=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("his_patients.patient_id"), index=True)
    dept_code: Mapped[str] = mapped_column(ForeignKey("his_departments.code"))
    modality: Mapped[str] = mapped_column(String(16))  # DR | CT | MR | US
    title: Mapped[str] = mapped_column(String(100))
    findings: Mapped[str] = mapped_column(Text)
    impression: Mapped[str] = mapped_column(Text)
    examined_at: Mapped[datetime] = mapped_column(UTCDateTime())
    reported_at: Mapped[datetime] = mapped_column(UTCDateTime())  # in the future: not ready, expected then
    printed_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class HisMedicalRecord(Base):
    """An outpatient medical-record summary (门诊病历). The clinical text is encrypted like the patient's
    personal fields: a diagnosis is as personal as an address."""

    __tablename__ = "his_medical_records"

    record_no: Mapped[str] = mapped_column(String(32), primary_key=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("his_patients.patient_id"), index=True)
    dept_code: Mapped[str] = mapped_column(ForeignKey("his_departments.code"))
    doctor_code: Mapped[str] = mapped_column(ForeignKey("his_doctors.code"))
    visited_at: Mapped[datetime] = mapped_column(UTCDateTime())
    complaint: Mapped[str] = mapped_column(EncryptedText("his_medical_records.complaint"))
    diagnosis: Mapped[str] = mapped_column(EncryptedText("his_medical_records.diagnosis"))
    advice: Mapped[str] = mapped_column(EncryptedText("his_medical_records.advice"))
    printed_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class HisInvoice(Base):
    """An outpatient e-invoice (门诊电子票据), one per paid order; ``order_ref`` makes issuing idempotent."""

    __tablename__ = "his_invoices"

    invoice_no: Mapped[str] = mapped_column(String(32), primary_key=True)
    order_ref: Mapped[str] = mapped_column(String(64), unique=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("his_patients.patient_id"), index=True)
    title: Mapped[str] = mapped_column(String(100))
    amount_fen: Mapped[int] = mapped_column(Integer)
    items: Mapped[str] = mapped_column(Text)  # JSON list of {name, category, amount_fen}
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    printed_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class HisPrintLog(Base):
    """Each counted print once: ``print_ref`` is the caller's reference, so a repeated report counts once."""

    __tablename__ = "his_print_log"

    print_ref: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    doc_no: Mapped[str] = mapped_column(String(32))
    count_after: Mapped[int] = mapped_column(Integer)
    printed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class HisEHealthCard(Base):
    """电子健康卡: a code issued by the regional health platform, bound to a patient file. Only its blind index is
    kept (the code is a credential: whoever holds it is the patient), so the table can find a file but cannot
    give a code back."""

    __tablename__ = "his_ehealth_cards"

    # One code may carry several files: a phone account holding the cards of a family.
    code_index: Mapped[str] = mapped_column(String(64), primary_key=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("his_patients.patient_id"), primary_key=True, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class HisIssuedEHealthCard(Base):
    """电子健康卡 issued through this HIS at the patient's request (申领). Unlike a card the regional platform
    issued elsewhere, the HIS must be able to show this one again (a retried request, a lost slip), so the code is
    kept encrypted beside its blind index; the index also sits in ``his_ehealth_cards`` so the card identifies."""

    __tablename__ = "his_ehealth_issued"

    patient_id: Mapped[str] = mapped_column(ForeignKey("his_patients.patient_id"), primary_key=True)
    code: Mapped[str] = mapped_column(EncryptedText("his_ehealth_issued.code"))
    code_index: Mapped[str] = mapped_column(String(64), unique=True)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class HisVisitCard(Base):
    """A physical visit card (就诊卡) the hospital handed out, bound to one patient file (绑卡). The card number is
    the key to a file, so it is encrypted (for the masked list the patient sees) and found by its blind index; the
    index is the primary key, so a card can belong to one file only."""

    __tablename__ = "his_visit_cards"

    card_index: Mapped[str] = mapped_column(String(64), primary_key=True)
    card_no: Mapped[str] = mapped_column(EncryptedText("his_visit_cards.card_no"))
    patient_id: Mapped[str] = mapped_column(ForeignKey("his_patients.patient_id"), index=True)
    bound_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
