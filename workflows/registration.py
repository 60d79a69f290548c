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
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable

from transitions import EventData, Machine

from drivers.health import Health
from drivers.receipt.document import Block
from workflows.backend import Backend, BackendError, BackendUnavailable
from workflows.journal import Journal
from workflows.receipt import registration_slip
from workflows.view import View

if TYPE_CHECKING:
    from offline_queue.outbox import Outbox

log = logging.getLogger(__name__)

WORKFLOW = "same_day_registration"

# States in which no money has been asked for: Cancel and the idle timeout simply end the visit.
BEFORE_PAYMENT = ["reading_card", "identifying", "choosing_department", "choosing_doctor",
                  "choosing_slot", "confirming", "creating_order"]

STATES = ["home", *BEFORE_PAYMENT, "awaiting_payment", "paying_by_code", "cancelling", "fulfilling", "printing",
          "done", "failed"]

#: The payment method a scanned code pays with (drivers.scanner.classify kinds).
CODE_METHODS = {"wechat_pay": "wechat_code", "alipay": "alipay_code"}

TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "start", "source": "home", "dest": "reading_card", "conditions": "_devices_usable"},
    {"trigger": "card_read", "source": "reading_card", "dest": "identifying"},
    {"trigger": "identified", "source": "identifying", "dest": "choosing_department"},
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
    {"trigger": "fail", "source": [s for s in STATES if s not in ("home", "failed")], "dest": "failed"},
    {"trigger": "finish", "source": ["done", "failed"], "dest": "home"},
    {"trigger": "timeout", "source": ["done", "failed"], "dest": "home"},
]


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


@dataclass
class Timeouts:
    """Seconds of patient inactivity before a screen gives up. None: the state moves on by itself."""

    choosing: float = 90.0
    reading_card: float = 60.0
    awaiting_payment: float = 180.0
    done: float = 20.0
    failed: float = 30.0
    fulfilment: float = 90.0  # paid but the HIS has not confirmed: stop waiting at the screen
    poll_interval: float = 2.0
    # A create or pay request whose answer was lost is asked again with the same idempotency key: the server
    # returns what it did the first time. These are the pauses between tries before telling the patient.
    retry_delays: tuple[float, ...] = (0.5, 1.5)

    def idle_limit(self, state: str) -> float | None:
        if state in ("choosing_department", "choosing_doctor", "choosing_slot", "confirming"):
            return self.choosing
        return {"reading_card": self.reading_card, "awaiting_payment": self.awaiting_payment,
                "done": self.done, "failed": self.failed}.get(state)


@dataclass
class Visit:
    """One patient's session. Replaced by a fresh one on every return home: that is the wipe."""

    session: str = field(default_factory=lambda: uuid.uuid4().hex)
    patient: dict[str, Any] | None = None
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
    notice: tuple[str, str] = ("", "")
    paid_at: float | None = None
    print_failed: bool = False

    def journal_data(self) -> dict[str, Any]:
        """Identifiers needed to resume or compensate; no name, no ID number."""
        return {
            "patient_id": (self.patient or {}).get("patient_id"),
            "department": (self.department or {}).get("code"),
            "doctor": (self.doctor or {}).get("code"),
            "slot_id": (self.slot or {}).get("slot_id"),
            "order_key": self.order_key or None,
            "pay_key": self.pay_key or None,
            "code_key": self.code_key or None,
            "order_no": (self.order or {}).get("order_no"),
            "order_status": (self.order or {}).get("status"),
        }


class ReceiptPrinter:  # the part of the printer contract this workflow uses
    def print_document(self, blocks: list[Block]) -> None: ...


class SameDayRegistration:
    """The visit. Call `handle(intent, **kw)` for patient and device events and `tick()` on a clock."""

    state: str

    def __init__(self, backend: Backend, printer: ReceiptPrinter, journal: Journal,
                 publish: Callable[[View], None], terminal_id: str,
                 timeouts: Timeouts | None = None, clock: Callable[[], float] = time.monotonic,
                 now: Callable[[], datetime] = datetime.now, sleep: Callable[[float], None] = time.sleep,
                 outbox: Outbox | None = None):
        self.backend = backend
        self.outbox = outbox  # visit events for the server, written with the journal entry that caused them
        self.sleep = sleep
        self.printer = printer
        self.journal = journal
        self.publish = publish
        self.terminal_id = terminal_id
        self.timeouts = timeouts or Timeouts()
        self.clock = clock
        self.now = now
        self.visit = Visit()
        self.devices: dict[str, Health] = {}  # last health per device role, from the device threads
        self.hospital_name = ""
        self._last_activity = clock()
        self._last_poll = 0.0
        self._moved = False
        self.machine = Machine(
            model=self, states=STATES, transitions=TRANSITIONS, initial="home", send_event=True,
            queued=True, auto_transitions=False, ignore_invalid_triggers=True,
            before_state_change="_journal", after_state_change="_entered",
        )

    # ---- inputs -------------------------------------------------------------------------------------

    def handle(self, intent: str, **kwargs: Any) -> None:
        """A patient or device event. Intents that make no sense in the current state are ignored: a
        double tap or a card laid down on the payment screen must not move the visit."""
        if intent == "device_health":  # not the patient's doing: the idle clock keeps running
            self.devices[kwargs["device"]] = kwargs["health"]
            if self.state == "home":
                self.publish(self._view_for("home"))
            return
        self._last_activity = self.clock()
        if intent == "activity":
            return
        if intent not in self.machine.events:
            log.warning("unknown intent %r ignored", intent)
            return
        self.trigger(intent, **kwargs)

    def tick(self) -> None:
        """Clock: idle timeouts and polling of the order while money is in flight."""
        now = self.clock()
        limit = self.timeouts.idle_limit(self.state)
        if limit is not None and now - self._last_activity > limit:
            self.trigger("timeout")
            return
        if self.state in ("awaiting_payment", "cancelling", "fulfilling") \
                and now - self._last_poll >= self.timeouts.poll_interval:
            self._last_poll = now
            self._poll()

    def current_view(self) -> View:
        return self._view_for(self.state)

    # ---- journal ------------------------------------------------------------------------------------

    def _journal(self, event: EventData) -> None:
        data = self.visit.journal_data()
        with self.journal.transaction() as conn:
            entry = self.journal.record(self.visit.session, WORKFLOW, event.event.name, event.transition.source,
                                        event.transition.dest, data)
            if self.outbox is not None:
                self.outbox.enqueue(conn, "visit_event", {
                    "session": self.visit.session, "workflow": WORKFLOW, "event": event.event.name,
                    "source": event.transition.source, "dest": event.transition.dest, **data},
                    f"visit-{self.visit.session}-{entry}")

    def _entered(self, event: EventData) -> None:
        """Show the state, run its side effect, then show what it produced. A busy screen goes up first so
        the patient sees that something is happening while the server or printer works."""
        self._last_activity = self.clock()
        handler = getattr(self, f"_enter_{self.state}", None)
        if handler is None:
            self.publish(self._view_for(self.state))
            return
        if self.state not in BUSY_TEXT and self.state != "home":
            self.publish(self._busy_view(("正在加载…", "Loading…")))
        elif self.state in BUSY_TEXT:
            self.publish(self._view_for(self.state))
        self._moved = False
        handler(event)
        if not self._moved:
            self.publish(self._view_for(self.state))

    def _go(self, trigger: str, **kwargs: Any) -> None:
        """Fire the next trigger from inside a side effect (queued until the current transition ends)."""
        self._moved = True
        self.trigger(trigger, **kwargs)

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

    def availability(self) -> tuple[bool, str, str]:
        """Whether this service can start, and if not, why, in words for the patient."""
        broken = [names for role, names in REQUIRED_DEVICES.items()
                  if role in self.devices and not self.devices[role].usable]
        if not broken:
            return True, "", ""
        zh = "、".join(n[0] for n in broken)
        en = ", ".join(n[1] for n in broken)
        return (False, f"{zh}暂时故障，请到其他自助机或人工窗口办理",
                f"Out of order: {en}. Please use another kiosk or a counter.")

    def _devices_usable(self, event: EventData) -> bool:
        return self.availability()[0]

    def _choice_made(self, event: EventData) -> bool:
        name = event.event.name
        chosen = {"pick_department": self.visit.department, "pick_doctor": self.visit.doctor,
                  "pick_slot": self.visit.slot}[name]
        return chosen is not None

    def _payment_code(self, event: EventData) -> bool:
        return event.kwargs.get("kind") in CODE_METHODS and bool(event.kwargs.get("code"))

    def _new_code_key(self, event: EventData) -> None:
        self.visit.code_key = uuid.uuid4().hex

    def _new_keys(self, event: EventData) -> None:
        self.visit.order_key = uuid.uuid4().hex
        self.visit.pay_key = uuid.uuid4().hex

    # ---- side effects of entering a state -------------------------------------------------------------

    def _enter_home(self, event: EventData) -> None:
        self.visit = Visit()  # wipe: nothing of the last patient survives the return home

    def _enter_reading_card(self, event: EventData) -> None:
        self._fetch_hospital_name()  # for the slip, while the patient finds the card

    def _enter_identifying(self, event: EventData) -> None:
        card = event.kwargs.get("card")
        try:
            self.visit.patient = self.backend.identify_by_id_card(card.id_number, card.name)
        except BackendError as exc:
            self._go("fail", message=exc.message, message_en=exc.message_en)
            return
        except BackendUnavailable:
            self._fail_offline()
            return
        finally:
            del card  # the card's data is not kept beyond this call
        self._go("identified")

    def _enter_choosing_department(self, event: EventData) -> None:
        self._load(lambda: self.backend.departments(), "departments")

    def _enter_choosing_doctor(self, event: EventData) -> None:
        if self.visit.department is None:
            self._go("back")
            return
        self._load(lambda: self.backend.doctors(self.visit.department["code"]), "doctors")

    def _enter_choosing_slot(self, event: EventData) -> None:
        if event.event.name == "slot_taken":
            self.visit.slots = list(event.kwargs.get("slots") or [])
            self.visit.notice = (event.kwargs.get("message", ""), event.kwargs.get("message_en", ""))
            return
        if self.visit.doctor is None:
            self._go("back")
            return
        self._load(lambda: self.backend.slots(self.visit.department["code"], self.visit.doctor["code"]),
                   "slots")

    def _enter_confirming(self, event: EventData) -> None:
        if self.visit.slot is None:
            self._go("back")

    def _enter_creating_order(self, event: EventData) -> None:
        v = self.visit
        usable, why, why_en = self.availability()
        if not usable:  # a device broke during the choices: stop before any money is asked for
            self._go("fail", message=why, message_en=why_en)
            return
        try:
            v.order = self._retrying(lambda: self.backend.create_registration(
                v.patient["patient_id"], v.slot["slot_id"], v.order_key))
        except BackendError as exc:
            if exc.code == "SLOT_TAKEN":
                v.slot = None
                self._go("slot_taken", slots=exc.payload.get("slots", []), message=exc.message,
                             message_en=exc.message_en)
            else:
                self._go("fail", message=exc.message, message_en=exc.message_en)
            return
        except BackendUnavailable:
            # If the server made the order, no one can pay it (no QR was shown): the server closes it when
            # its slot lock expires, and a restarted kiosk cancels it at once (workflows.recovery).
            self._fail_offline()
            return
        self._go("order_created")

    def _enter_awaiting_payment(self, event: EventData) -> None:
        v = self.visit
        if event.event.name == "code_answered":  # back from a code charge: the QR is on screen already
            self._last_poll = self.clock()
            return
        v.notice = ("", "")
        try:
            v.order = self._retrying(lambda: self.backend.pay(v.order["order_no"], "wechat_native", v.pay_key))
        except BackendError as exc:
            self._go("fail", message=exc.message, message_en=exc.message_en)
        except BackendUnavailable:
            self._fail_offline()  # no QR was shown, so no one can have paid
        self._last_poll = self.clock()

    def _enter_paying_by_code(self, event: EventData) -> None:
        """Charge the code the patient showed. The server closes the QR's trade first, so the order cannot be
        paid twice; an answer that never came is asked again with the same key (it queries, never recharges)."""
        v = self.visit
        method = CODE_METHODS[event.kwargs["kind"]]
        code = event.kwargs["code"]  # money: never journaled, logged or kept on the visit
        try:
            v.order = self._retrying(lambda: self.backend.pay(v.order["order_no"], method, v.code_key,
                                                              auth_code=code))
        except BackendError as exc:
            v.notice = (exc.message, exc.message_en)
            self._go("code_answered")
            return
        except BackendUnavailable:
            v.notice = ("网络不稳定，正在确认付款结果，请勿重复付款", "Confirming the payment; please do not pay again")
            self._go("code_answered")
            return
        status = v.order.get("status")
        if status in ("PAID", "FULFILLED"):
            self._go("paid")
            return
        if (v.order.get("payment") or {}).get("state") == "USERPAYING":
            v.notice = ("请在手机上确认付款", "Please confirm the payment on your phone")
        else:
            v.notice = ("付款未成功，请重试或扫码支付", "The payment did not go through; try again or scan the QR")
        self._go("code_answered")

    def _enter_cancelling(self, event: EventData) -> None:
        self._close_order()

    def _enter_fulfilling(self, event: EventData) -> None:
        self.visit.paid_at = self.clock()
        self._apply_order_status()

    def _enter_printing(self, event: EventData) -> None:
        v = self.visit
        self._fetch_hospital_name()
        try:
            self.printer.print_document(registration_slip(self.hospital_name, v.order, self.terminal_id,
                                                          self.now()))
        except Exception:  # the registration stands; the slip can be reprinted at the counter
            log.exception("receipt printing failed for order %s", v.order.get("order_no"))
            v.print_failed = True
        self._go("printed")

    def _enter_failed(self, event: EventData) -> None:
        self.visit.notice = (event.kwargs.get("message", "办理未成功"),
                             event.kwargs.get("message_en", "The service could not be completed"))

    # ---- helpers ------------------------------------------------------------------------------------

    def _fetch_hospital_name(self) -> None:
        if not self.hospital_name:
            try:
                self.hospital_name = self.backend.hospital()["name"]
            except (BackendError, BackendUnavailable):
                pass  # asked again at the next visit; a slip without the header still serves the patient

    def _load(self, fetch: Callable[[], list[dict[str, Any]]], attr: str) -> None:
        try:
            setattr(self.visit, attr, fetch())
        except BackendError as exc:
            self._go("fail", message=exc.message, message_en=exc.message_en)
        except BackendUnavailable:
            self._fail_offline()

    def _retrying(self, call: Callable[[], Any]) -> Any:
        for delay in self.timeouts.retry_delays:
            try:
                return call()
            except BackendUnavailable as exc:
                log.warning("request outcome unknown (%s); asking again with the same key", exc)
                self.sleep(delay)
        return call()

    def _fail_offline(self) -> None:
        self._go("fail", message="网络连接中断，请稍后再试或到人工窗口办理",
                     message_en="The network is unavailable. Please try again later or go to a counter.")

    def _poll(self) -> None:
        if self.state == "cancelling":
            self._close_order()
            return
        try:
            self.visit.order = self.backend.order(self.visit.order["order_no"])
        except (BackendError, BackendUnavailable) as exc:
            log.warning("order poll failed: %s", exc)  # the next tick asks again
            return
        self._apply_order_status()

    def _close_order(self) -> None:
        try:
            self.visit.order = self.backend.cancel(self.visit.order["order_no"])
        except (BackendError, BackendUnavailable) as exc:
            log.warning("closing the order failed, retrying: %s", exc)  # never walk away unconfirmed
            return
        self._apply_order_status()

    def _apply_order_status(self) -> None:
        status = self.visit.order.get("status")
        if status in ("PAID", "FULFILLED") and self.state in ("awaiting_payment", "cancelling"):
            self._go("paid")
        elif status == "FULFILLED" and self.state == "fulfilling":
            self._go("fulfilled")
        elif status == "CLOSED":
            if self.state == "cancelling":
                self._go("closed")
            else:
                self._go("fail", message="支付已超时，订单已关闭，未产生扣款",
                             message_en="The payment timed out and the order was closed. Nothing was charged.")
        elif status in ("REFUND_PENDING", "REFUNDED"):
            self._go("fail", message="挂号未能完成，已支付的费用将原路退回",
                         message_en="The registration could not be completed. "
                                    "Your payment is being refunded to the original account.")
        elif self.state == "fulfilling" and self.clock() - (self.visit.paid_at or 0) > self.timeouts.fulfilment:
            no = self.visit.order.get("order_no", "")
            self._go("fail", message=f"您已支付成功，挂号确认较慢。请凭订单号 {no} 到人工窗口，无需重复支付",
                         message_en=f"Your payment succeeded but the registration is slow to confirm. "
                                    f"Please show order {no} at a counter; do not pay again.")

    # ---- view ---------------------------------------------------------------------------------------

    def _busy_view(self, text: tuple[str, str]) -> View:
        view = self._view_for(self.state)
        return View("busy", {"text": text[0], "text_en": text[1]}, patient=view.patient)

    def _view_for(self, state: str) -> View:
        v = self.visit
        patient = ""
        if v.patient:
            patient = "  ".join(str(x) for x in (v.patient.get("name_masked"), v.patient.get("gender"),
                                                 f"{v.patient['age']}岁" if v.patient.get("age") else "")
                                if x)
        base: dict[str, Any] = {"patient": patient,
                                "can_cancel": state in BEFORE_PAYMENT or state == "awaiting_payment"}
        limit = self.timeouts.idle_limit(state)
        if limit is not None:
            base["deadline"] = self._last_activity + limit
        msg, msg_en = v.notice
        if state == "home":
            usable, why, why_en = self.availability()
            return View("home", {"services": {"start": {"available": usable, "reason": why, "reason_en": why_en}}},
                        **base)
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
            return View("done", {"order": v.order, "print_failed": v.print_failed}, **base)
        return View("error", {}, message=msg, message_en=msg_en, **base)


def _find(items: list[dict[str, Any]], key: str, value: Any) -> dict[str, Any] | None:
    return next((item for item in items if str(item.get(key)) == str(value)), None)
