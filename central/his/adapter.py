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
