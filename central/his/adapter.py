"""The HIS as the platform sees it. A hospital's own HIS replaces the reference one by implementing this class.

Everything crosses the boundary as plain values (no ORM objects), because a real HIS is a remote system: the
platform must not assume it shares a transaction, a database, or even a clock with it. Times are aware
datetimes; dates and times of day are in the hospital's timezone.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo


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


class BookingLimitReached(HisError):
    """The hospital limits registrations per patient (per department per day, per day); ``code`` says which."""

    def __init__(self, code: str, limit: int, message: str = "booking limit reached"):
        super().__init__(message)
        self.code, self.limit = code, limit


class CheckInRefused(HisError):
    """Check-in outside the hospital's window, or for a registration that cannot check in (cancelled)."""

    def __init__(self, code: str, opens_at: datetime | None = None, closes_at: datetime | None = None,
                 message: str = "check-in refused"):
        super().__init__(message)
        self.code, self.opens_at, self.closes_at = code, opens_at, closes_at


class PrintLimitReached(HisError):
    """The document was printed as often as the kiosk may print it; further copies come from the counter."""

    def __init__(self, printed: int, limit: int):
        super().__init__(f"printed {printed} of {limit}")
        self.printed, self.limit = printed, limit


class DocumentNotFound(HisError):
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
    clinic_type: str = "general"  # "general" | "special" (特需) | "mdt" (多学科联合门诊)


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


@dataclass(frozen=True)
class HisRules:
    """The hospital's rules for self-service, as its HIS states them. The platform enforces them at the kiosk
    and on the phone alike; a hospital changes them in its HIS, not in the platform."""

    #: Registrations (held or confirmed) one patient may have on one day: in one department, and in all.
    max_per_department_per_day: int = 1
    max_per_day: int = 3
    #: Self-service cancellation with a full refund until this time of the day before the visit
    #: (``cancel_days_before`` days before, at ``cancel_cutoff`` hospital time); afterwards at the counter.
    cancel_days_before: int = 1
    cancel_cutoff: str = "18:00"
    #: Check-in (报到) opens this many minutes before the slot starts and closes this many minutes after.
    checkin_opens_minutes_before: int = 60
    checkin_closes_minutes_after: int = 15
    #: Copies a kiosk may print of each kind of document; further copies are printed at ``reprint_place``.
    print_limits: tuple[tuple[str, int], ...] = (("lab", 1), ("imaging", 1), ("record", 1), ("invoice", 1))
    reprint_place: str = "门诊楼一楼服务台"
    reprint_place_en: str = "the service desk, outpatient building 1F"

    def print_limit(self, kind: str) -> int:
        return dict(self.print_limits).get(kind, 1)

    def cancel_deadline(self, day: date, tz: ZoneInfo) -> datetime:
        hours, minutes = (int(part) for part in self.cancel_cutoff.split(":"))
        return datetime.combine(day - timedelta(days=self.cancel_days_before), time(hours, minutes), tzinfo=tz)

    def checkin_window(self, starts_at: datetime) -> tuple[datetime, datetime]:
        return (starts_at - timedelta(minutes=self.checkin_opens_minutes_before),
                starts_at + timedelta(minutes=self.checkin_closes_minutes_after))


@dataclass(frozen=True)
class DoctorMatch:
    """A doctor found by name or initials, with every department the doctor sits in."""

    doctor: Doctor
    initials: str
    departments: tuple[tuple[str, str], ...]  # (code, name)


@dataclass(frozen=True)
class DayAvailability:
    day: date
    remaining: int


@dataclass(frozen=True)
class RegistrationRecord:
    """A registration as the patient's history shows it (挂号记录)."""

    lock_id: str
    visit_code: str
    patient_id: str
    dept_code: str
    dept_name: str
    doctor_code: str
    doctor_name: str
    day: date
    start: str
    end: str
    starts_at: datetime
    queue_no: int
    location: str
    fee_fen: int
    status: str  # BOOKED | CHECKED_IN | SEEN | CANCELLED
    created_at: datetime
    checked_in_at: datetime | None


@dataclass(frozen=True)
class QueueStatus:
    """Where a checked-in patient stands in the doctor's queue; ``position`` 1 is next."""

    visit_code: str
    status: str
    queue_no: int
    location: str
    position: int | None
    ahead: int | None
    estimated_wait_minutes: int | None
    checked_in_at: datetime | None


@dataclass(frozen=True)
class LabValue:
    code: str
    name: str
    value: str
    unit: str
    reference_range: str
    flag: str


@dataclass(frozen=True)
class InvoiceLine:
    name: str
    category: str
    amount_fen: int


@dataclass(frozen=True)
class Document:
    """A printable document of the patient: lab report, imaging report, medical-record summary or e-invoice.

    ``ready_at`` after now means the document is not ready yet and is expected then. Only the fields of its
    ``kind`` are filled: ``results`` (lab), ``sections`` (imaging, record: heading and text), ``lines`` and
    ``amount_fen`` (invoice)."""

    kind: str  # lab | imaging | record | invoice
    doc_no: str
    patient_id: str
    title: str
    dept_name: str
    created_at: datetime
    ready_at: datetime
    printed_count: int
    detail: str = ""  # specimen (lab), modality (imaging), doctor (record)
    results: tuple[LabValue, ...] = ()
    sections: tuple[tuple[str, str], ...] = ()
    lines: tuple[InvoiceLine, ...] = field(default=())
    amount_fen: int = 0


class HisAdapter(ABC):
    """What the platform needs from a HIS: registration and appointments, bills, check-in, documents."""

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

    # --- rules, appointments, check-in (预约, 报到) ----------------------------------------------------------

    @abstractmethod
    def rules(self) -> HisRules: ...

    @abstractmethod
    def search_doctors(self, text: str) -> list[DoctorMatch]:
        """Doctors whose name contains ``text`` or whose pinyin initials start with it (case-insensitive)."""

    @abstractmethod
    def doctor_dates(self, dept_code: str, doctor_code: str, first: date, last: date,
                     now: datetime) -> list[DayAvailability]:
        """The days from ``first`` to ``last`` on which the doctor sits in the department, with free places."""

    @abstractmethod
    def check_booking_limits(self, patient_id: str, slot_id: int, now: datetime, *,
                             lock_id: str | None = None) -> None:
        """Raise BookingLimitReached if one more registration of the patient on the slot's day breaks the
        hospital's limits. With ``lock_id`` (a place already held), only holdings made before it count: of two
        bookings that raced past the first check, the earlier one stands."""

    @abstractmethod
    def list_registrations(self, patient_id: str) -> list[RegistrationRecord]:
        """The patient's registrations, newest visit first."""

    @abstractmethod
    def get_registration(self, lock_id: str) -> RegistrationRecord | None: ...

    @abstractmethod
    def check_in(self, lock_id: str, now: datetime) -> QueueStatus:
        """报到: put the patient in the doctor's queue. Idempotent; raises CheckInRefused outside the window
        (``rules().checkin_window``) or for a cancelled registration."""

    @abstractmethod
    def queue_status(self, lock_id: str) -> QueueStatus: ...

    # --- documents (K8) -------------------------------------------------------------------------------------

    @abstractmethod
    def list_documents(self, patient_id: str) -> list[Document]:
        """Every printable document of the patient, ready or not, newest first."""

    @abstractmethod
    def get_document(self, kind: str, doc_no: str) -> Document | None: ...

    @abstractmethod
    def issue_invoice(self, order_ref: str, patient_id: str, title: str, lines: list[InvoiceLine],
                      now: datetime) -> Document:
        """Issue the e-invoice of a paid order (idempotent on ``order_ref``: the same invoice again)."""

    @abstractmethod
    def record_print(self, kind: str, doc_no: str, print_ref: str, limit: int) -> int:
        """Count one completed print; returns the count after it. Idempotent on ``print_ref``. Raises
        PrintLimitReached, counting nothing, when the document was already printed ``limit`` times, and
        DocumentNotFound for an unknown document."""

    # -- other ways to find a patient (K1) and new patient files (K2) --------------------------------------------
    # Not abstract: a hospital's HIS that lacks one of these still serves ID-card identification.

    #: Whether `create_patient` makes files; the kiosk offers 建档 only then.
    creates_patients: bool = False

    def find_patient_by_visit_code(self, visit_code: str) -> Patient | None:
        """The patient of the registration whose visit code (就诊码) this is."""
        return None

    def find_patients_by_ehealth_code(self, code: str) -> list[Patient]:
        """The patient files bound to this e-health card (电子健康卡) code; several when one phone account holds
        the cards of a family."""
        return []

    def create_patient(self, name: str, id_number: str, gender: str, birth: date,
                       phone: str | None) -> tuple[Patient, bool]:
        """建档: a new patient file, or the existing one for this ID number (``created`` False)."""
        raise NotImplementedError("this HIS does not create patient files")

    # -- cards (办卡绑卡, K2) -------------------------------------------------------------------------------------
    # Not abstract either: a HIS without them answers NotImplementedError and the kiosk sends the patient to a
    # counter, while every other service keeps working.

    def cards_on_file(self, patient_id: str) -> CardsOnFile:
        """What the patient holds: an e-health card (and whether this HIS can show it again), bound visit cards."""
        raise NotImplementedError("this HIS does not keep cards")

    def issue_ehealth_card(self, patient_id: str) -> EHealthCardIssue:
        """申领电子健康卡. Idempotent per patient: asked again, the card issued the first time. A patient who already
        holds a card issued elsewhere gets none (``code`` None): one person, one card."""
        raise NotImplementedError("this HIS does not issue e-health cards")

    def bind_visit_card(self, card_no: str, patient_id: str) -> bool:
        """绑卡: the visit card identifies this patient from now on. True when bound now, False when it already
        was bound to this patient (a retried request). Raises VisitCardTaken when another file holds it."""
        raise NotImplementedError("this HIS does not bind visit cards")

    def find_patient_by_visit_card(self, card_no: str) -> Patient | None:
        """The patient file a physical visit card (就诊卡) is bound to."""
        return None


class VisitCardTaken(HisError):
    """The visit card is bound to another patient file; only a counter, with both people's papers, can move it."""


@dataclass(frozen=True)
class CardsOnFile:
    #: "none"; "here" (issued through this HIS: it can be shown again); "elsewhere" (bound, code not known here).
    ehealth: str
    visit_cards: list[str] = field(default_factory=list)  # card numbers, for the caller to mask


@dataclass(frozen=True)
class EHealthCardIssue:
    code: str | None  # None: the patient holds a card issued elsewhere, which this HIS cannot give back
    created: bool

    def __repr__(self) -> str:  # the code is a credential
        return f"EHealthCardIssue(code={'<hidden>' if self.code else None}, created={self.created})"
