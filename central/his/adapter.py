"""The HIS as the platform sees it. A hospital's own HIS replaces the reference one by implementing this class.

Everything crosses the boundary as plain values (no ORM objects), because a real HIS is a remote system: the
platform must not assume it shares a transaction, a database, or even a clock with it. Times are aware
datetimes; dates and times of day are in the hospital's timezone.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import date, datetime


class HisError(Exception):
    """The HIS refused a request for a reason the patient can be told."""


class SlotTaken(HisError):
    """No free place left in the slot (someone else got the last one, or it has ended)."""


class SlotNotFound(HisError):
    pass


class BillRefused(HisError):
    """The HIS will not take payment for this bill (paid at the counter meanwhile, cancelled by the doctor)."""


class ItemsExecuted(HisError):
    """Items already dispensed or performed cannot be refunded by the kiosk: the counter handles them."""

    def __init__(self, item_ids: list[str], message: str = "items already executed"):
        super().__init__(message)
        self.item_ids = item_ids


class RegistrationRefused(HisError):
    """The HIS will not confirm: the lock expired and its place went to someone else, or the lock is unknown.
    A paid order that gets this answer must be refunded."""


@dataclass(frozen=True)
class Hospital:
    name: str
    name_en: str
    address: str
    phone: str


@dataclass(frozen=True)
class Patient:
    patient_id: str
    name: str
    gender: str
    birth: date


@dataclass(frozen=True)
class Department:
    code: str
    name: str
    name_en: str
    category: str
    location: str
    location_en: str
    remaining: int


@dataclass(frozen=True)
class Doctor:
    code: str
    name: str
    title: str
    title_en: str
    specialty: str
    fee_fen: int
    remaining: int


@dataclass(frozen=True)
class Slot:
    slot_id: int
    dept_code: str
    doctor_code: str
    day: date
    start: str
    end: str
    starts_at: datetime
    ends_at: datetime
    remaining: int


@dataclass(frozen=True)
class Registration:
    lock_id: str
    queue_no: int
    visit_code: str
    location: str
    day: date
    start: str
    end: str


@dataclass(frozen=True)
class BillLine:
    """One item of an outpatient bill (费用明细). ``insurance_class`` is the catalogue class (A 甲 / B 乙 / C 丙);
    ``place`` is where the patient goes for it (pharmacy window, lab, imaging room)."""

    item_id: str
    category: str
    name: str
    spec: str
    quantity: int
    unit: str
    amount_fen: int
    insurance_class: str
    place: str
    place_en: str
    status: str  # "PENDING" | "PAID" | "EXECUTED" | "REFUNDED"


@dataclass(frozen=True)
class Bill:
    """An outpatient bill (门诊处方/检查单) waiting for payment, or paid."""

    bill_no: str
    patient_id: str
    dept_code: str
    dept_name: str
    doctor_code: str
    doctor_name: str
    issued_at: datetime
    status: str  # "PENDING" | "PAID"
    total_fen: int
    items: tuple[BillLine, ...]


class HisAdapter(ABC):
    """What the platform needs from a HIS for same-day registration."""

    @abstractmethod
    def hospital(self) -> Hospital: ...

    @abstractmethod
    def find_patient_by_id_number(self, id_number: str) -> Patient | None: ...

    @abstractmethod
    def get_patient(self, patient_id: str) -> Patient | None: ...

    @abstractmethod
    def list_departments(self, day: date, now: datetime) -> list[Department]:
        """Departments with their free places in slots of ``day`` that have not ended at ``now``."""

    @abstractmethod
    def get_department(self, dept_code: str, day: date, now: datetime) -> Department | None: ...

    @abstractmethod
    def list_doctors(self, dept_code: str, day: date, now: datetime) -> list[Doctor]: ...

    @abstractmethod
    def get_doctor(self, doctor_code: str) -> Doctor | None:
        """A doctor without availability (``remaining`` is 0): for fees and titles."""

    @abstractmethod
    def list_free_slots(self, dept_code: str, doctor_code: str, day: date, now: datetime) -> list[Slot]: ...

    @abstractmethod
    def get_slot(self, slot_id: int) -> Slot | None: ...

    @abstractmethod
    def lock_slot(self, slot_id: int, patient_id: str, until: datetime, reference: str) -> str:
        """Hold one place until ``until``; returns the lock id. Idempotent on ``reference``: the same reference
        returns the same lock. Raises SlotTaken when no place is free, SlotNotFound for an unknown slot."""

    @abstractmethod
    def release_lock(self, lock_id: str) -> None:
        """Give the place back (order cancelled). Releasing twice, or a confirmed lock, does nothing."""

    @abstractmethod
    def cancel_registration(self, lock_id: str) -> None:
        """退号: cancel a registration the patient has not used, giving its place back. Idempotent; raises
        RegistrationRefused when the patient already checked in or saw the doctor (refund at the counter)."""

    @abstractmethod
    def confirm_registration(self, lock_id: str, payment_ref: str) -> Registration:
        """Turn a lock into a registration. Idempotent for the same lock. A lock that expired is still honoured
        while its place is free; raises RegistrationRefused once the place is gone."""

    # --- outpatient bills (门诊缴费) -------------------------------------------------------------------------

    @abstractmethod
    def list_bills(self, patient_id: str, *, unpaid_only: bool = True) -> list[Bill]:
        """The patient's bills, newest first."""

    @abstractmethod
    def get_bill(self, bill_no: str) -> Bill | None: ...

    @abstractmethod
    def pay_bill(self, bill_no: str, payment_ref: str) -> Bill:
        """Record a bill as paid so its items can be dispensed or performed. Idempotent for the same
        ``payment_ref``; raises BillRefused if the bill is no longer payable (paid elsewhere, withdrawn)."""

    @abstractmethod
    def refund_bill_items(self, bill_no: str, item_ids: list[str], refund_ref: str) -> None:
        """Withdraw paid items not yet executed (the pharmacy will not dispense them). Idempotent on
        ``refund_ref``; raises ItemsExecuted naming the items that were dispensed or performed (none is
        withdrawn then)."""
