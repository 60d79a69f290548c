"""Same-day registration (K1 by ID card, K4, K6 by QR or payment code, K8 receipt) as a journaled state machine.

The machine is driven from one thread (see workflows.runner): patient intents, device events and clock ticks
arrive as triggers; entering a state runs that state's side effect (ask the server, print) and fires the
next trigger. Two rules keep money safe:

* before the order is paid for, Cancel and the idle timeout go straight home and wipe the session;
* once a payment QR is on screen, leaving means asking the server to close the order, and the server's
  answer decides: a payment that arrived meanwhile is honoured (the registration goes ahead), never dropped.

Every transition is committed to the journal (with the order number and idempotency keys, never personal
data) before the entered state's side effect runs.
"""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from transitions import EventData

from workflows.card_payment import CARD_STATES, card_transitions
from workflows.payment_steps import PaymentSteps
from workflows.receipt import registration_slip
from workflows.service_base import (JournaledService, Session, Timeouts, ending_transitions,
                                    identification_transitions)
from workflows.slips import print_slip
from workflows.view import View
from workflows.wayfinding import order_places

__all__ = ["SameDayRegistration", "Timeouts", "Visit"]

log = logging.getLogger(__name__)

WORKFLOW = "same_day_registration"

# States in which no money has been asked for: Cancel and the idle timeout simply end the visit.
BEFORE_PAYMENT = ["reading_card", "identifying", "choosing_department", "choosing_doctor",
                  "choosing_slot", "confirming", "creating_order"]

STATES = ["home", *BEFORE_PAYMENT, "awaiting_payment", "paying_by_code", "cancelling", "fulfilling", "printing",
          "done", "failed"]



TRANSITIONS: list[dict[str, Any]] = [
    *identification_transitions("choosing_department"),
    {"trigger": "pick_department", "source": "choosing_department", "dest": "choosing_doctor",
     "prepare": "_keep_choice",
     "conditions": "_choice_made"},
    {"trigger": "pick_doctor", "source": "choosing_doctor", "dest": "choosing_slot", "prepare": "_keep_choice",
     "conditions": "_choice_made"},
    {"trigger": "pick_slot", "source": "choosing_slot", "dest": "confirming", "prepare": "_keep_choice",
     "conditions": "_choice_made"},
    {"trigger": "back", "source": "choosing_doctor", "dest": "choosing_department"},
    {"trigger": "back", "source": "choosing_slot", "dest": "choosing_doctor"},
    {"trigger": "back", "source": "confirming", "dest": "choosing_slot"},
    {"trigger": "confirm", "source": "confirming", "dest": "creating_order", "prepare": "_new_keys"},
    {"trigger": "slot_taken", "source": "creating_order", "dest": "choosing_slot"},
    {"trigger": "order_created", "source": "creating_order", "dest": "awaiting_payment"},
    {"trigger": "cancel", "source": BEFORE_PAYMENT, "dest": "home"},
    {"trigger": "timeout", "source": BEFORE_PAYMENT, "dest": "home"},
    {"trigger": "cancel", "source": "awaiting_payment", "dest": "cancelling"},
    {"trigger": "timeout", "source": "awaiting_payment", "dest": "cancelling"},
    {"trigger": "closed", "source": "cancelling", "dest": "home"},
    # The patient shows a payment code instead of scanning the QR: charged once, its outcome from the server.
    {"trigger": "code_scanned", "source": "awaiting_payment", "dest": "paying_by_code", "prepare": "_new_code_key",
     "conditions": "_payment_code"},
    {"trigger": "code_answered", "source": "paying_by_code", "dest": "awaiting_payment"},
    {"trigger": "paid", "source": ["awaiting_payment", "paying_by_code", "cancelling"], "dest": "fulfilling"},
    {"trigger": "fulfilled", "source": "fulfilling", "dest": "printing"},
    {"trigger": "printed", "source": "printing", "dest": "done"},
    *ending_transitions(STATES),
]
# 银行卡 (K6): the bank-card steps every paying service shares (workflows.card_payment).
STATES += CARD_STATES
TRANSITIONS += card_transitions()


# The devices this service cannot do without, with their names for the patient.
REQUIRED_DEVICES = {"id_card": ("身份证读卡器", "ID-card reader"),
                    "receipt_printer": ("凭条打印机", "receipt printer")}

BUSY_TEXT = {
    "identifying": ("正在查询您的就诊信息…", "Looking up your patient record…"),
    "creating_order": ("正在为您锁定号源…", "Reserving your time slot…"),
    "cancelling": ("正在取消订单…", "Cancelling the order…"),
    "paying_by_code": ("正在扣款，请稍候…", "Charging your payment code…"),
    "fulfilling": ("支付成功，正在为您办理挂号…", "Paid. Completing your registration…"),
    "printing": ("正在打印挂号凭条…", "Printing your registration slip…"),
}


IDLE = {"choosing_department": "choosing", "choosing_doctor": "choosing", "choosing_slot": "choosing",
        "confirming": "choosing", "reading_card": "reading_card", "awaiting_payment": "awaiting_payment",
        "done": "done", "failed": "failed"}


@dataclass
class Visit(Session):
    """One patient's session. Replaced by a fresh one on every return home: that is the wipe."""

    departments: list[dict[str, Any]] = field(default_factory=list)
    department: dict[str, Any] | None = None
    doctors: list[dict[str, Any]] = field(default_factory=list)
    doctor: dict[str, Any] | None = None
    slots: list[dict[str, Any]] = field(default_factory=list)
    slot: dict[str, Any] | None = None
    order_key: str = ""
    pay_key: str = ""
    code_key: str = ""  # the payment-code charge, new for every code shown
    order: dict[str, Any] | None = None
    paid_at: float | None = None
    print_failed: bool = False

    def journal_data(self) -> dict[str, Any]:
        """Identifiers needed to resume or compensate; no name, no ID number."""
        return {
            **super().journal_data(),
            "department": (self.department or {}).get("code"),
            "doctor": (self.doctor or {}).get("code"),
            "slot_id": (self.slot or {}).get("slot_id"),
            "order_key": self.order_key or None,
            "pay_key": self.pay_key or None,
            "code_key": self.code_key or None,
            "order_no": (self.order or {}).get("order_no"),
            "order_status": (self.order or {}).get("status"),
        }


class SameDayRegistration(PaymentSteps, JournaledService):
    """The visit. Call `handle(intent, **kw)` for patient and device events and `tick()` on a clock."""

    WORKFLOW = WORKFLOW
    STATES = STATES
    TRANSITIONS = TRANSITIONS
    REQUIRED_DEVICES = REQUIRED_DEVICES
    BUSY_TEXT = BUSY_TEXT
    IDLE = IDLE
    CANCELLABLE = frozenset([*BEFORE_PAYMENT, "awaiting_payment"])
    PAYMENT_TEXT = {
        "closed": ("支付已超时，订单已关闭，未产生扣款", "The payment timed out and the order was closed. Nothing was charged."),
        "refunded": ("挂号未能完成，已支付的费用将原路退回", "The registration could not be completed. "
                     "Your payment is being refunded to the original account."),
        "slow": ("您已支付成功，挂号确认较慢。请凭订单号 {no} 到人工窗口，无需重复支付",
                 "Your payment succeeded but the registration is slow to confirm. "
                 "Please show order {no} at a counter; do not pay again."),
    }

    visit: Visit

    def new_session(self) -> Visit:
        return Visit()

    # ---- prepare callbacks (run before the journal entry, so it carries what they decide) -------------

    def _keep_choice(self, event: EventData) -> None:
        name = event.event.name
        key = event.kwargs.get("code") if name != "pick_slot" else event.kwargs.get("slot_id")
        if name == "pick_department":
            self.visit.department = _find(self.visit.departments, "code", key)
        elif name == "pick_doctor":
            self.visit.doctor = _find(self.visit.doctors, "code", key)
        else:
            self.visit.slot = _find(self.visit.slots, "slot_id", key)

    def _choice_made(self, event: EventData) -> bool:
        name = event.event.name
        chosen = {"pick_department": self.visit.department, "pick_doctor": self.visit.doctor,
                  "pick_slot": self.visit.slot}[name]
        return chosen is not None

    def _new_keys(self, event: EventData) -> None:
        self.visit.order_key = uuid.uuid4().hex
        self.visit.pay_key = uuid.uuid4().hex

    # ---- side effects of entering a state -------------------------------------------------------------

    def _enter_choosing_department(self, event: EventData) -> None:
        self._load_into(lambda: self.backend.departments(), "departments")

    def _enter_choosing_doctor(self, event: EventData) -> None:
        if self.visit.department is None:
            self._go("back")
            return
        self._load_into(lambda: self.backend.doctors(self.visit.department["code"]), "doctors")

    def _enter_choosing_slot(self, event: EventData) -> None:
        if event.event.name == "slot_taken":
            self.visit.slots = list(event.kwargs.get("slots") or [])
            self.visit.notice = (event.kwargs.get("message", ""), event.kwargs.get("message_en", ""))
            return
        if self.visit.doctor is None:
            self._go("back")
            return
        self._load_into(lambda: self.backend.slots(self.visit.department["code"], self.visit.doctor["code"]),
                   "slots")

    def _enter_confirming(self, event: EventData) -> None:
        if self.visit.slot is None:
            self._go("back")

    def _enter_creating_order(self, event: EventData) -> None:
        v = self.visit
        self._create_order(lambda: self.backend.create_registration(v.patient["patient_id"], v.slot["slot_id"],
                                                                    v.order_key), self._slot_taken)

    def _enter_printing(self, event: EventData) -> None:
        v = self.visit
        print_slip(self, lambda hospital: registration_slip(hospital, v.order, self.terminal_id, self.now()),
                   f"order {v.order.get('order_no')}")

    # ---- helpers ------------------------------------------------------------------------------------

    def _load_into(self, fetch: Callable[[], list[dict[str, Any]]], attr: str) -> None:
        ok, value = self._load(fetch)
        if ok:
            setattr(self.visit, attr, value)

    # ---- view ---------------------------------------------------------------------------------------

    def _view_for(self, state: str) -> View:
        v = self.visit
        base = self._base_view(state)
        msg, msg_en = v.notice
        if state == "home":
            return self._home_view()
        if state == "reading_card":
            return View("insert_card", **base)
        if state in BUSY_TEXT:
            text = BUSY_TEXT[state]
            return View("busy", {"text": text[0], "text_en": text[1]}, **base)
        if state == "choosing_department":
            return View("departments", {"departments": v.departments}, **base)
        if state == "choosing_doctor":
            return View("doctors", {"department": v.department, "doctors": v.doctors}, can_back=True, **base)
        if state == "choosing_slot":
            return View("slots", {"department": v.department, "doctor": v.doctor, "slots": v.slots},
                        message=msg, message_en=msg_en, can_back=True, **base)
        if state == "confirming":
            return View("confirm", {"department": v.department, "doctor": v.doctor, "slot": v.slot,
                                    "date": self.now().date().isoformat()}, can_back=True, **base)
        if state == "awaiting_payment":
            return View("payment", {"order": v.order}, message=msg, message_en=msg_en, **base)
        if state == "done":
            return View("done", {"order": v.order, "print_failed": v.print_failed,
                                 "way_to": order_places(v.order)}, **base)
        return View("error", {}, message=msg, message_en=msg_en, **base)


def _find(items: list[dict[str, Any]], key: str, value: Any) -> dict[str, Any] | None:
    return next((item for item in items if str(item.get(key)) == str(value)), None)
