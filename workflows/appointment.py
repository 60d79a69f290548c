"""Appointments (预约挂号, K3) and their cancellation (取消预约), as one journaled service.

Booking: ID card → departments, grouped as general, special-needs (特需) and MDT clinics, or a doctor found by
pinyin initials typed on the screen's letter keyboard (a doctor who sits in several departments shows once per
department) → doctor → a day of the booking window, with the places left → a time slot → confirm (the keys
are made and journaled here) → the order → pay by the terminal's QR (`payment_qr`) or a payment code → the
HIS confirms → the slip → done. A slot taken meanwhile brings back the doctor's fresh slots of that day; a
daily limit of the hospital's sends the patient back to the days with the HIS's words.

Cancelling: the patient's upcoming appointments (the records API's registration history: booked, not yet
seen) → one → confirm → the server gives the place back and the money back along its route (退号退费), or,
after the HIS's cut-off, says so and the patient goes to the counter.

Money rules are the registration's (docs/money-safety.md, workflows.payment_steps): before the order exists,
Cancel and the idle timeout go straight home; once it exists, leaving asks the server to close it and the
server's answer decides. The kiosk decides nothing about money: whether a cancellation refunds is the server's
and the HIS's answer, shown as it comes.
"""
from __future__ import annotations

import logging
import string
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from transitions import EventData

from workflows.appointment_receipt import appointment_slip
from workflows.backend import BackendError, BackendUnavailable
from workflows.card_payment import CARD_STATES, card_transitions
from workflows.payment_steps import PaymentSteps
from workflows.service_base import (JournaledService, Session, ending_transitions,
                                    identification_transitions)
from workflows.slips import print_slip
from workflows.view import View
from workflows.wayfinding import order_places

log = logging.getLogger(__name__)

WORKFLOW = "appointment"

#: The clinic groups the department screen offers, in the order a patient looks for them.
CLINIC_TYPES: list[tuple[str, str, str]] = [("general", "普通门诊", "General clinics"),
                                            ("special", "特需门诊", "Special-needs clinics"),
                                            ("mdt", "MDT 多学科门诊", "MDT clinics")]
#: Keys on the letter keyboard; pinyin initials are letters only.
LETTERS = frozenset(string.ascii_uppercase)
MAX_QUERY = 20  # the server's limit on a search text

# No order exists: Cancel and the idle timeout simply end the visit.
BEFORE_ORDER = ["reading_card", "identifying", "choosing_department", "searching_doctor", "choosing_doctor",
                "choosing_date", "choosing_slot", "confirming", "creating_order", "choosing_cancel",
                "confirming_cancel"]

STATES = ["home", *BEFORE_ORDER, "awaiting_payment", "paying_by_code", "cancelling", "fulfilling", "printing",
          "cancelling_appointment", "done", "failed"]

TRANSITIONS: list[dict[str, Any]] = [
    *identification_transitions("choosing_department"),
    {"trigger": "pick_department", "source": "choosing_department", "dest": "choosing_doctor",
     "prepare": "_keep_department", "conditions": "_department_chosen"},
    {"trigger": "open_search", "source": "choosing_department", "dest": "searching_doctor"},
    {"trigger": "back", "source": "searching_doctor", "dest": "choosing_department"},
    {"trigger": "pick_found", "source": "searching_doctor", "dest": "choosing_date", "prepare": "_keep_found",
     "conditions": "_doctor_chosen"},
    {"trigger": "pick_doctor", "source": "choosing_doctor", "dest": "choosing_date", "prepare": "_keep_doctor",
     "conditions": "_doctor_chosen"},
    {"trigger": "back", "source": "choosing_doctor", "dest": "choosing_department"},
    {"trigger": "pick_date", "source": "choosing_date", "dest": "choosing_slot", "prepare": "_keep_date",
     "conditions": "_date_chosen"},
    {"trigger": "back", "source": "choosing_date", "dest": "searching_doctor", "conditions": "_via_search"},
    {"trigger": "back", "source": "choosing_date", "dest": "choosing_doctor", "unless": "_via_search"},
    {"trigger": "pick_slot", "source": "choosing_slot", "dest": "confirming", "prepare": "_keep_slot",
     "conditions": "_slot_chosen"},
    {"trigger": "back", "source": "choosing_slot", "dest": "choosing_date"},
    {"trigger": "back", "source": "confirming", "dest": "choosing_slot"},
    {"trigger": "confirm", "source": "confirming", "dest": "creating_order", "prepare": "_new_keys"},
    {"trigger": "slot_taken", "source": "creating_order", "dest": "choosing_slot"},
    {"trigger": "limit_reached", "source": "creating_order", "dest": "choosing_date"},
    {"trigger": "order_created", "source": "creating_order", "dest": "awaiting_payment"},
    {"trigger": "cancel", "source": BEFORE_ORDER, "dest": "home"},
    {"trigger": "timeout", "source": BEFORE_ORDER, "dest": "home"},
    {"trigger": "cancel", "source": "awaiting_payment", "dest": "cancelling"},
    {"trigger": "timeout", "source": "awaiting_payment", "dest": "cancelling"},
    {"trigger": "closed", "source": "cancelling", "dest": "home"},
    {"trigger": "code_scanned", "source": "awaiting_payment", "dest": "paying_by_code",
     "prepare": "_new_code_key", "conditions": "_payment_code"},
    {"trigger": "code_answered", "source": "paying_by_code", "dest": "awaiting_payment"},
    {"trigger": "paid", "source": ["awaiting_payment", "paying_by_code", "cancelling"], "dest": "fulfilling"},
    {"trigger": "fulfilled", "source": "fulfilling", "dest": "printing"},
    {"trigger": "printed", "source": "printing", "dest": "done"},
    # 取消预约
    {"trigger": "open_cancel", "source": "choosing_department", "dest": "choosing_cancel"},
    {"trigger": "back", "source": "choosing_cancel", "dest": "choosing_department"},
    {"trigger": "pick_appointment", "source": "choosing_cancel", "dest": "confirming_cancel",
     "prepare": "_keep_appointment", "conditions": "_appointment_chosen"},
    {"trigger": "back", "source": "confirming_cancel", "dest": "choosing_cancel"},
    {"trigger": "confirm_cancel", "source": "confirming_cancel", "dest": "cancelling_appointment"},
    {"trigger": "appointment_cancelled", "source": "cancelling_appointment", "dest": "done"},
    *ending_transitions(STATES),
]
# 银行卡 (K6): the bank-card steps every paying service shares (workflows.card_payment).
STATES += CARD_STATES
TRANSITIONS += card_transitions()

BUSY_TEXT = {
    "identifying": ("正在查询您的就诊信息…", "Looking up your patient record…"),
    "creating_order": ("正在为您锁定号源…", "Reserving your appointment…"),
    "cancelling": ("正在取消订单…", "Cancelling the order…"),
    "paying_by_code": ("正在扣款，请稍候…", "Charging your payment code…"),
    "fulfilling": ("支付成功，正在为您办理预约…", "Paid. Completing your appointment…"),
    "printing": ("正在打印预约凭条…", "Printing your appointment slip…"),
    "cancelling_appointment": ("正在为您取消预约…", "Cancelling your appointment…"),
}

IDLE = {state: "choosing" for state in ("choosing_department", "searching_doctor", "choosing_doctor",
                                        "choosing_date", "choosing_slot", "confirming", "choosing_cancel",
                                        "confirming_cancel")}
IDLE.update({"reading_card": "reading_card", "awaiting_payment": "awaiting_payment", "done": "done",
             "failed": "failed"})

NO_UPCOMING = ("您没有可以取消的预约", "You have no upcoming appointment to cancel.")
CANCEL_UNKNOWN = ("网络连接中断，取消结果未知。请到人工窗口查询，请勿重复申请",
                  "The network is unavailable and the cancellation's outcome is unknown. Please ask at a "
                  "counter; do not request it again.")
SEARCH_OFFLINE = ("暂时无法查询医生，请稍后再试或按科室选择", "Doctor search is not available now; try again "
                  "or choose by department.")


@dataclass
class AppointmentVisit(Session):
    """One patient's session in this service; replaced on every return home (the wipe)."""

    departments: list[dict[str, Any]] = field(default_factory=list)
    clinic_type: str = "general"
    department: dict[str, Any] | None = None
    query: str = ""
    found: list[dict[str, Any]] = field(default_factory=list)  # one entry per doctor and department
    via_search: bool = False
    doctors: list[dict[str, Any]] = field(default_factory=list)
    doctor: dict[str, Any] | None = None
    window: tuple[str, str] = ("", "")
    dates: list[dict[str, Any]] = field(default_factory=list)
    day: str = ""
    slots: list[dict[str, Any]] = field(default_factory=list)
    slot: dict[str, Any] | None = None
    order_key: str = ""
    pay_key: str = ""
    code_key: str = ""  # the payment-code charge, new for every code shown
    order: dict[str, Any] | None = None
    paid_at: float | None = None
    print_failed: bool = False
    upcoming: list[dict[str, Any]] = field(default_factory=list)
    to_cancel: dict[str, Any] | None = None
    cancelled: dict[str, Any] | None = None  # the server's answer to the cancellation

    def journal_data(self) -> dict[str, Any]:
        """Identifiers only: no name, no ID number, no payment code, not even the search text."""
        return {
            **super().journal_data(),
            "department": (self.department or {}).get("code"),
            "doctor": (self.doctor or {}).get("code"),
            "date": self.day or None,
            "slot_id": (self.slot or {}).get("slot_id"),
            "order_key": self.order_key or None,
            "pay_key": self.pay_key or None,
            "code_key": self.code_key or None,
            "order_no": (self.order or {}).get("order_no"),
            "order_status": (self.order or {}).get("status"),
            # Named apart from order_no: recovery closes an open `order_no`, never an appointment being given back.
            "cancel_order_no": (self.to_cancel or {}).get("order_no"),
            "cancel_status": (self.cancelled or {}).get("status"),
        }


class AppointmentBooking(PaymentSteps, JournaledService):
    """预约挂号 with 取消预约. `qr_channel` is the method whose QR the kiosk shows (the terminal's `payment_qr`)."""

    WORKFLOW = WORKFLOW
    STATES = STATES
    TRANSITIONS = TRANSITIONS
    REQUIRED_DEVICES = {"id_card": ("身份证读卡器", "ID-card reader"),
                        "receipt_printer": ("凭条打印机", "receipt printer")}
    BUSY_TEXT = BUSY_TEXT
    IDLE = IDLE
    CANCELLABLE = frozenset([*BEFORE_ORDER, "awaiting_payment"])
    PAYMENT_TEXT = {
        "closed": ("支付已超时，订单已关闭，未产生扣款，号源已释放",
                   "The payment timed out and the order was closed. Nothing was charged."),
        "refunded": ("预约未能完成，已支付的费用将原路退回", "The appointment could not be completed. "
                     "Your payment is being refunded to the original account."),
        "slow": ("您已支付成功，预约确认较慢。请凭订单号 {no} 到人工窗口，无需重复支付",
                 "Your payment succeeded but the appointment is slow to confirm. "
                 "Please show order {no} at a counter; do not pay again."),
    }

    visit: AppointmentVisit

    def new_session(self) -> AppointmentVisit:
        return AppointmentVisit()

    # ---- inputs that change only what is on the glass (not journaled) ---------------------------------

    def handle(self, intent: str, **kwargs: Any) -> None:
        if intent == "pick_clinic_type" and self.state == "choosing_department":
            self._last_activity = self.clock()
            if kwargs.get("clinic_type") in {c for c, _, _ in CLINIC_TYPES}:
                self.visit.clinic_type = kwargs["clinic_type"]
            self.publish(self._view_for(self.state))
            return
        if intent in ("key", "backspace", "clear_query") and self.state == "searching_doctor":
            self._last_activity = self.clock()
            self._edit_query(intent, str(kwargs.get("letter", "")).upper())
            self.publish(self._view_for(self.state))
            return
        super().handle(intent, **kwargs)

    def _edit_query(self, intent: str, letter: str) -> None:
        v = self.visit
        if intent == "key" and letter in LETTERS and len(v.query) < MAX_QUERY:
            v.query += letter
        elif intent == "backspace":
            v.query = v.query[:-1]
        elif intent == "clear_query":
            v.query = ""
        v.notice = ("", "")
        if not v.query:
            v.found = []
            return
        try:
            doctors = self.backend.search_doctors(v.query)
        except BackendError as exc:
            v.found, v.notice = [], (exc.message, exc.message_en)
            return
        except BackendUnavailable:
            v.found, v.notice = [], SEARCH_OFFLINE
            return
        # A doctor who sits in several departments is booked in one of them: one tile per pair.
        v.found = [{**{k: d.get(k) for k in ("code", "name", "title", "specialty", "fee_fen", "initials")},
                    "department": dept} for d in doctors for dept in d.get("departments") or []]

    # ---- conditions and prepare callbacks (run before the journal entry, so it carries what they decide) ----

    def _keep_department(self, event: EventData) -> None:
        self.visit.department = _find(self.visit.departments, "code", event.kwargs.get("code"))
        self.visit.via_search = False

    def _department_chosen(self, event: EventData) -> bool:
        return self.visit.department is not None

    def _keep_found(self, event: EventData) -> None:
        code, dept = str(event.kwargs.get("code")), str(event.kwargs.get("department"))
        hit = next((f for f in self.visit.found if str(f["code"]) == code
                    and str(f["department"].get("code")) == dept), None)
        self.visit.doctor = None if hit is None else {k: v for k, v in hit.items() if k != "department"}
        self.visit.department = None if hit is None else dict(hit["department"])
        self.visit.via_search = True

    def _keep_doctor(self, event: EventData) -> None:
        self.visit.doctor = _find(self.visit.doctors, "code", event.kwargs.get("code"))

    def _doctor_chosen(self, event: EventData) -> bool:
        return self.visit.doctor is not None and self.visit.department is not None

    def _via_search(self, event: EventData) -> bool:
        return self.visit.via_search

    def _keep_date(self, event: EventData) -> None:
        day = str(event.kwargs.get("date", ""))
        ok = any(d.get("date") == day and int(d.get("remaining", 0)) > 0 for d in self.visit.dates)
        self.visit.day = day if ok else ""

    def _date_chosen(self, event: EventData) -> bool:
        return bool(self.visit.day)

    def _keep_slot(self, event: EventData) -> None:
        self.visit.slot = _find(self.visit.slots, "slot_id", event.kwargs.get("slot_id"))

    def _slot_chosen(self, event: EventData) -> bool:
        return self.visit.slot is not None

    def _new_keys(self, event: EventData) -> None:
        self.visit.order_key = uuid.uuid4().hex
        self.visit.pay_key = uuid.uuid4().hex

    def _keep_appointment(self, event: EventData) -> None:
        self.visit.to_cancel = _find(self.visit.upcoming, "order_no", event.kwargs.get("order_no"))

    def _appointment_chosen(self, event: EventData) -> bool:
        return self.visit.to_cancel is not None

    # ---- choosing -----------------------------------------------------------------------------------

    def _enter_choosing_department(self, event: EventData) -> None:
        v = self.visit
        v.notice = ("", "")
        if v.departments:  # back from a later screen: the list and the group as the patient left them
            return
        ok, departments = self._load(lambda: self.backend.appointment_departments())
        if ok:
            v.departments = list(departments or [])

    def _enter_searching_doctor(self, event: EventData) -> None:
        self.visit.notice = ("", "")  # the letters typed so far stay: back from the dates keeps the search

    def _enter_choosing_doctor(self, event: EventData) -> None:
        if self.visit.department is None:
            self._go("back")
            return
        self._load_into(lambda: self.backend.appointment_doctors(self.visit.department["code"]), "doctors")

    def _enter_choosing_date(self, event: EventData) -> None:
        v = self.visit
        if event.event.name == "limit_reached":  # the HIS's words, over the days to choose another from
            v.notice = (event.kwargs.get("message", ""), event.kwargs.get("message_en", ""))
        else:
            v.notice = ("", "")
        v.day, v.slot = "", None
        ok, answer = self._load(lambda: self.backend.appointment_dates(v.department["code"], v.doctor["code"]))
        if ok:
            v.dates = list(answer.get("dates") or [])
            v.window = (answer.get("first", ""), answer.get("last", ""))

    def _enter_choosing_slot(self, event: EventData) -> None:
        v = self.visit
        if event.event.name == "slot_taken":
            v.slots = list(event.kwargs.get("slots") or [])
            v.notice = (event.kwargs.get("message", ""), event.kwargs.get("message_en", ""))
            return
        v.notice = ("", "")
        self._load_into(lambda: self.backend.appointment_slots(v.department["code"], v.doctor["code"], v.day),
                        "slots")

    def _enter_confirming(self, event: EventData) -> None:
        if self.visit.slot is None:
            self._go("back")

    # ---- booking and paying -------------------------------------------------------------------------

    def _enter_creating_order(self, event: EventData) -> None:
        v = self.visit
        self._create_order(lambda: self.backend.book_appointment(v.patient["patient_id"], v.slot["slot_id"],
                                                                 v.order_key), self._booking_refused)

    def _booking_refused(self, exc: BackendError) -> bool:
        if exc.code in ("BOOKING_LIMIT_DEPARTMENT", "BOOKING_LIMIT_DAY"):
            self._go("limit_reached", message=f"{exc.message}，请选择其他日期",
                     message_en=f"{exc.message_en}. Please choose another day.")
            return True
        return self._slot_taken(exc)

    def _enter_printing(self, event: EventData) -> None:
        v = self.visit
        print_slip(self, lambda hospital: appointment_slip(hospital, v.order, self.terminal_id, self.now()),
                   f"order {v.order.get('order_no')}")

    # ---- 取消预约 -------------------------------------------------------------------------------------

    def _enter_choosing_cancel(self, event: EventData) -> None:
        v = self.visit
        v.notice, v.to_cancel = ("", ""), None
        ok, history = self._load(lambda: self.backend.registration_history(v.patient["patient_id"]))
        if not ok:
            return
        today = self.now().date().isoformat()
        # Booked on the platform, not yet seen, today or later: the ones the server may give back.
        v.upcoming = sorted((r for r in history or [] if r.get("order_no") and r.get("status") == "BOOKED"
                             and str(r.get("date", "")) >= today),
                            key=lambda r: (r.get("date", ""), r.get("start", "")))
        if not v.upcoming:
            v.notice = NO_UPCOMING

    def _enter_cancelling_appointment(self, event: EventData) -> None:
        v = self.visit
        try:
            # Safe to ask again: the server carries on a cancellation already under way, never refunds twice.
            v.cancelled = self._retrying(lambda: self.backend.cancel_appointment(v.to_cancel["order_no"],
                                                                                 v.patient["patient_id"]))
        except BackendError as exc:  # CANCEL_AT_COUNTER and the like: the HIS's words, then the counter
            self._go("fail", message=exc.message, message_en=exc.message_en)
            return
        except BackendUnavailable:
            self._go("fail", message=CANCEL_UNKNOWN[0], message_en=CANCEL_UNKNOWN[1])
            return
        self._go("appointment_cancelled")

    # ---- helpers ------------------------------------------------------------------------------------

    def _load_into(self, fetch: Callable[[], list[dict[str, Any]]], attr: str) -> None:
        ok, value = self._load(fetch)
        if ok:
            setattr(self.visit, attr, list(value or []))

    # ---- view ---------------------------------------------------------------------------------------

    def _view_for(self, state: str) -> View:
        v = self.visit
        if state == "home":
            return self._home_view()
        base = self._base_view(state)
        msg, msg_en = v.notice
        notice = {"message": msg, "message_en": msg_en}
        if state == "reading_card":
            return View("insert_card", **base)
        if state in BUSY_TEXT:
            zh, en = BUSY_TEXT[state]
            return View("busy", {"text": zh, "text_en": en}, **base)
        if state == "choosing_department":
            groups = [{"id": c, "name": zh, "name_en": en,
                       "count": sum(1 for d in v.departments if d.get("clinic_type", "general") == c)}
                      for c, zh, en in CLINIC_TYPES]
            shown = [d for d in v.departments if d.get("clinic_type", "general") == v.clinic_type]
            return View("appt_departments", {"groups": groups, "clinic_type": v.clinic_type,
                                             "departments": shown}, **notice, **base)
        if state == "searching_doctor":
            return View("doctor_search", {"query": v.query, "found": v.found}, can_back=True, **notice, **base)
        if state == "choosing_doctor":
            return View("appt_doctors", {"department": v.department, "doctors": v.doctors}, can_back=True, **base)
        if state == "choosing_date":
            return View("appt_dates", {"department": v.department, "doctor": v.doctor, "dates": v.dates,
                                       "first": v.window[0], "last": v.window[1]},
                        can_back=True, **notice, **base)
        if state == "choosing_slot":
            return View("appt_slots", {"doctor": v.doctor, "date": v.day, "slots": v.slots},
                        can_back=True, **notice, **base)
        if state == "confirming":
            return View("appt_confirm", {"department": v.department, "doctor": v.doctor, "slot": v.slot,
                                         "date": v.day}, can_back=True, **base)
        if state == "awaiting_payment":
            return View("appt_payment", {"order": v.order, "channel": self.qr_channel}, **notice, **base)
        if state == "choosing_cancel":
            return View("appt_cancel_list", {"appointments": v.upcoming}, can_back=True, **notice, **base)
        if state == "confirming_cancel":
            return View("appt_cancel_confirm", {"appointment": v.to_cancel}, can_back=True, **base)
        if state == "done" and v.cancelled is not None:
            return View("appt_cancelled", {"appointment": v.to_cancel, "order": v.cancelled}, **base)
        if state == "done":
            return View("appt_done", {"order": v.order, "print_failed": v.print_failed,
                                      "way_to": order_places(v.order)}, **base)
        return View("error", {}, **notice, **base)


def _find(items: list[dict[str, Any]], key: str, value: Any) -> dict[str, Any] | None:
    return next((item for item in items if str(item.get(key)) == str(value)), None)


__all__ = ["AppointmentBooking", "AppointmentVisit", "CLINIC_TYPES"]
