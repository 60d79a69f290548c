"""What every journaled kiosk service shares, so a new service writes only its own states and screens.

Taken from the same-day registration (workflows.registration), which proved the rules in production tests:

* every transition is committed to the local journal, together with its outbox message, *before* the entered
  state's side effect runs; a restarted kiosk reads the journal to resume or compensate (workflows.recovery);
* entering a state shows a busy screen first, then runs the side effect (ask the server, print), which may
  fire the next trigger with `_go`; the state's own screen is published only if nothing moved on;
* every waiting state has an idle limit; a request whose answer was lost is asked again with the same
  idempotency key (`_retrying`); "server unreachable" is a clear message, never a guess;
* a service names the devices it cannot do without (REQUIRED_DEVICES): while one is in fault the home screen
  says why and the service refuses to start;
* identification (reading_card → identifying) is the same everywhere: an ID card, or a scanned e-health card,
  visit code or medical-insurance e-voucher (K1); the card's data or the code lives only for the one call that
  sends it to the server. A patient without a file who laid down a resident ID card is offered one (建档, K2):
  identifying → offering_file (phone number typed) → creating_file → the service's first state. The card's data
  waits for that in the session, never in the journal, and goes with the session on the way home.

The journal holds identifiers only (patient id, order number, keys), never a name, an ID number, an insurance
credential or a payment code: `Session.journal_data` is the one place that decides what goes in.

Subclasses set the class attributes below and write `_enter_<state>` methods and `_view_for`.
"""
from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, ClassVar

from transitions import EventData, Machine

from drivers.health import Health
from drivers.idcard.idnumber import birth_date, is_valid
from drivers.receipt.document import Block
from workflows.backend import Backend, BackendError, BackendUnavailable
from workflows.journal import Journal
from workflows.peripherals import Peripherals
from workflows.view import View

if TYPE_CHECKING:
    from offline_queue.outbox import Outbox

log = logging.getLogger(__name__)

OFFLINE = ("网络连接中断，请稍后再试或到人工窗口办理",
           "The network is unavailable. Please try again later or go to a counter.")
LOADING = ("正在加载…", "Loading…")

#: Scanned code kinds (drivers.scanner.classify.ScanKind values) that identify a patient, with the server's
#: name for each identification method.
IDENTITY_CODES: dict[str, str] = {"e_health_card": "e_health_code", "visit_code": "visit_code",
                                  "insurance_voucher": "insurance_voucher"}
#: States the base adds to every service that identifies patients, for a new patient file.
FILE_STATES = ("offering_file", "creating_file")
FAMILY = ("该电子健康卡绑定了多位就诊人，请使用身份证或就诊码",
          "This e-health card holds several patients. Please use an ID card or a visit code.")


@dataclass
class Timeouts:
    """Seconds of patient inactivity before a screen gives up, and the pacing of polls and retries. The same
    fields as the registration's Timeouts, so one configuration serves every service."""

    choosing: float = 90.0
    reading_card: float = 60.0
    awaiting_payment: float = 180.0
    done: float = 20.0
    failed: float = 30.0
    fulfilment: float = 90.0  # paid but the HIS has not confirmed: stop waiting at the screen
    poll_interval: float = 2.0
    # Pauses between asking again with the same idempotency key before telling the patient.
    retry_delays: tuple[float, ...] = (0.5, 1.5)


@dataclass
class Session:
    """One patient's session. Replaced by a fresh one on every return home: that is the wipe."""

    session: str = field(default_factory=lambda: uuid.uuid4().hex)
    patient: dict[str, Any] | None = None
    notice: tuple[str, str] = ("", "")
    #: The ID card read of a patient without a file, kept only until the file is made or the visit ends.
    new_file: dict[str, Any] | None = field(default=None, repr=False)

    def journal_data(self) -> dict[str, Any]:
        """Identifiers needed to resume or compensate; no name, no ID number. Subclasses extend it."""
        return {"patient_id": (self.patient or {}).get("patient_id")}


class ReceiptPrinter:  # the part of the printer contract services use
    def print_document(self, blocks: list[Block]) -> None: ...


def identification_transitions(first_state: str) -> list[dict[str, Any]]:
    """home → reading_card → identifying → `first_state`: how every service for a known patient begins; with
    the detour offering_file → creating_file for a patient who has no file yet."""
    return [
        {"trigger": "start", "source": "home", "dest": "reading_card", "conditions": "_devices_usable"},
        {"trigger": "card_read", "source": "reading_card", "dest": "identifying"},
        {"trigger": "code_scanned", "source": "reading_card", "dest": "identifying", "conditions": "_identity_code"},
        # A social-security card's number as the PC/SC reader read it from the chip.
        {"trigger": "social_card_read", "source": "reading_card", "dest": "identifying", "conditions": "_has_number"},
        {"trigger": "identified", "source": "identifying", "dest": first_state},
        {"trigger": "file_offered", "source": "identifying", "dest": "offering_file"},
        {"trigger": "confirm_file", "source": "offering_file", "dest": "creating_file", "conditions": "_phone_given"},
        {"trigger": "file_created", "source": "creating_file", "dest": first_state},
        {"trigger": "cancel", "source": "offering_file", "dest": "home"},
        {"trigger": "timeout", "source": "offering_file", "dest": "home"},
        {"trigger": "fail", "source": list(FILE_STATES), "dest": "failed"},
    ]


def ending_transitions(states: list[str]) -> list[dict[str, Any]]:
    """Any state can fail; done and failed go home on a tap or when left idle."""
    return [
        {"trigger": "fail", "source": [s for s in states if s not in ("home", "failed")], "dest": "failed"},
        {"trigger": "finish", "source": ["done", "failed"], "dest": "home"},
        {"trigger": "timeout", "source": ["done", "failed"], "dest": "home"},
    ]


class JournaledService:
    """Call `handle(intent, **kw)` for patient and device events and `tick()` on a clock (one thread)."""

    WORKFLOW: ClassVar[str] = ""
    STATES: ClassVar[list[str]] = []
    TRANSITIONS: ClassVar[list[dict[str, Any]]] = []
    #: role → (Chinese, English) name of a device this service cannot do without.
    REQUIRED_DEVICES: ClassVar[dict[str, tuple[str, str]]] = {}
    #: states whose side effect makes the patient wait, with what to tell them meanwhile.
    BUSY_TEXT: ClassVar[dict[str, tuple[str, str]]] = {}
    #: state → the Timeouts field that limits idleness there; states not listed move on by themselves.
    IDLE: ClassVar[dict[str, str]] = {}
    #: states where the screen offers Cancel.
    CANCELLABLE: ClassVar[frozenset[str]] = frozenset()

    state: str

    def __init__(self, backend: Backend, printer: ReceiptPrinter, journal: Journal,
                 publish: Callable[[View], None], terminal_id: str, timeouts: Timeouts | None = None,
                 clock: Callable[[], float] = time.monotonic, now: Callable[[], datetime] = datetime.now,
                 sleep: Callable[[float], None] = time.sleep, outbox: Outbox | None = None,
                 peripherals: Peripherals | None = None):
        self.backend = backend
        self.printer = printer
        self.journal = journal
        self.publish = publish
        self.terminal_id = terminal_id
        self.timeouts = timeouts or Timeouts()
        self.clock = clock
        self.now = now
        self.sleep = sleep
        self.outbox = outbox  # visit events for the server, written with the journal entry that caused them
        self.peripherals = peripherals or Peripherals()  # camera, card reader, PIN pad: None where absent
        self.visit = self.new_session()
        self.devices: dict[str, Health] = {}  # last health per device role, from the device threads
        self.hospital_name = ""
        self._last_activity = clock()
        self._moved = False
        uses_files = any(t.get("dest") in FILE_STATES for t in self.TRANSITIONS)
        states = [*self.STATES, *(s for s in FILE_STATES if uses_files and s not in self.STATES)]
        self.machine = Machine(
            model=self, states=states, transitions=self.TRANSITIONS, initial="home", send_event=True,
            queued=True, auto_transitions=False, ignore_invalid_triggers=True,
            before_state_change="_journal", after_state_change="_entered",
        )

    def new_session(self) -> Session:
        return Session()

    # ---- inputs -------------------------------------------------------------------------------------

    def handle(self, intent: str, **kwargs: Any) -> None:
        """A patient or device event. Intents that make no sense in the current state are ignored: a double
        tap or a card laid down at the wrong moment must not move the visit."""
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
        """Clock: idle timeouts, then whatever the current state polls (`_poll`)."""
        limit = self.idle_limit(self.state)
        if limit is not None and self.clock() - self._last_activity > limit:
            self.trigger("timeout")
            return
        self._poll()

    def _poll(self) -> None:
        """Called on every tick that did not time out; services with money in flight ask the server here."""

    def idle_limit(self, state: str) -> float | None:
        name = self.IDLE.get(state) or ("choosing" if state == "offering_file" else None)
        return None if name is None else float(getattr(self.timeouts, name))

    def current_view(self) -> View:
        return self._screen(self.state)

    def _screen(self, state: str) -> View:
        """The view of a state: the base draws its own (the new-file detour), the service the rest."""
        if state == "offering_file":
            return self._offer_file_view()
        if state == "creating_file":
            return self._busy_view(("正在为您建档…", "Creating your patient file…"))
        return self._view_for(state)

    def availability(self) -> tuple[bool, str, str]:
        """Whether this service can start, and if not, why, in words for the patient."""
        broken = [names for role, names in self.REQUIRED_DEVICES.items()
                  if role in self.devices and not self.devices[role].usable]
        if not broken:
            return True, "", ""
        zh = "、".join(n[0] for n in broken)
        en = ", ".join(n[1] for n in broken)
        return (False, f"{zh}暂时故障，请到其他自助机或人工窗口办理",
                f"Out of order: {en}. Please use another kiosk or a counter.")

    def _devices_usable(self, event: EventData) -> bool:
        return self.availability()[0]

    # ---- journal and state entry --------------------------------------------------------------------

    def _journal(self, event: EventData) -> None:
        data = self.visit.journal_data()
        with self.journal.transaction() as conn:
            entry = self.journal.record(self.visit.session, self.WORKFLOW, event.event.name,
                                        event.transition.source, event.transition.dest, data)
            if self.outbox is not None:
                self.outbox.enqueue(conn, "visit_event", {
                    "session": self.visit.session, "workflow": self.WORKFLOW, "event": event.event.name,
                    "source": event.transition.source, "dest": event.transition.dest, **data},
                    f"visit-{self.visit.session}-{entry}")

    def _entered(self, event: EventData) -> None:
        """Show the state, run its side effect, then show what it produced. A busy screen goes up first so
        the patient sees that something is happening while the server or printer works."""
        self._last_activity = self.clock()
        handler = getattr(self, f"_enter_{self.state}", None)
        if handler is None:
            self.publish(self._screen(self.state))
            return
        if self.state in self.BUSY_TEXT or self.state == "creating_file":
            self.publish(self._screen(self.state))
        elif self.state != "home":
            self.publish(self._busy_view(LOADING))
        self._moved = False
        handler(event)
        if not self._moved:
            self.publish(self._screen(self.state))

    def _go(self, trigger: str, **kwargs: Any) -> None:
        """Fire the next trigger from inside a side effect (queued until the current transition ends)."""
        self._moved = True
        self.trigger(trigger, **kwargs)

    # ---- shared side effects ------------------------------------------------------------------------

    def _enter_home(self, event: EventData) -> None:
        self.visit = self.new_session()  # wipe: nothing of the last patient survives the return home

    def _enter_reading_card(self, event: EventData) -> None:
        self._fetch_hospital_name()  # for the slip, while the patient finds the card

    def _identity_code(self, event: EventData) -> bool:
        """Only codes that name a patient identify one; a payment code on the insert-card screen does not."""
        return event.kwargs.get("kind") in IDENTITY_CODES and bool(event.kwargs.get("code"))

    def _has_number(self, event: EventData) -> bool:
        return bool(event.kwargs.get("card_number"))

    def _phone_given(self, event: EventData) -> bool:
        phone = str(event.kwargs.get("phone") or "")
        if len(phone) == 11 and phone.isdigit() and phone[0] == "1" and phone[1] in "3456789":
            return True
        self.visit.notice = ("请输入11位手机号码", "Please enter an 11-digit mobile number")
        self.publish(self._screen(self.state))
        return False

    def _enter_identifying(self, event: EventData) -> None:
        card = event.kwargs.get("card")
        kind, code = event.kwargs.get("kind"), event.kwargs.get("code")
        try:
            if card is not None:
                answer = self.backend.identify_by_id_card(card.id_number, card.name)
            elif event.event.name == "social_card_read":
                answer = self.backend.identify_by_code("social_security_card", str(event.kwargs["card_number"]))
            else:
                answer = self.backend.identify_by_code(IDENTITY_CODES[str(kind)], str(code))
        except BackendError as exc:
            if (exc.code == "PATIENT_NOT_FOUND" and exc.payload.get("can_create") is True and card is not None
                    and is_valid(card.id_number)):
                self.visit.new_file = _file_from_card(card)
                self._go("file_offered")
                return
            self._go("fail", message=exc.message, message_en=exc.message_en)
            return
        except BackendUnavailable:
            self._fail_offline()
            return
        finally:
            del card, code  # the card's data and the code are not kept beyond this call
        if "patient_id" not in answer:  # an e-health account holding a family's cards
            family = answer.get("patients") or []
            if len(family) != 1:
                self._go("fail", message=FAMILY[0], message_en=FAMILY[1])
                return
            answer = family[0]
        self.visit.patient = answer
        self._go("identified")

    def _enter_offering_file(self, event: EventData) -> None:
        self.visit.notice = ("", "")

    def _enter_creating_file(self, event: EventData) -> None:
        data = self.visit.new_file or {}
        phone = str(event.kwargs.get("phone"))
        try:
            self.visit.patient = self._retrying(lambda: self.backend.create_patient(
                data["id_number"], data["name"], data["gender"], data["birth"], phone))
        except BackendError as exc:
            self._go("fail", message=exc.message, message_en=exc.message_en)
            return
        except BackendUnavailable:
            self._fail_offline()
            return
        finally:
            self.visit.new_file = None  # the file exists (or the visit ends): the card's data is not kept
        self._go("file_created")

    def _enter_failed(self, event: EventData) -> None:
        self.visit.notice = (event.kwargs.get("message", "办理未成功"),
                             event.kwargs.get("message_en", "The service could not be completed"))

    # ---- helpers ------------------------------------------------------------------------------------

    def _retrying(self, call: Callable[[], Any]) -> Any:
        """A write whose answer was lost is asked again; the caller's key makes the server answer with what
        it did the first time."""
        for delay in self.timeouts.retry_delays:
            try:
                return call()
            except BackendUnavailable as exc:
                log.warning("request outcome unknown (%s); asking again with the same key", exc)
                self.sleep(delay)
        return call()

    def _load(self, fetch: Callable[[], Any]) -> tuple[bool, Any]:
        """A read for the screen; on failure the visit ends with the server's words or the offline message."""
        try:
            return True, fetch()
        except BackendError as exc:
            self._go("fail", message=exc.message, message_en=exc.message_en)
        except BackendUnavailable:
            self._fail_offline()
        return False, None

    def _fail_offline(self) -> None:
        self._go("fail", message=OFFLINE[0], message_en=OFFLINE[1])

    def _fetch_hospital_name(self) -> None:
        if not self.hospital_name:
            try:
                self.hospital_name = self.backend.hospital()["name"]
            except (BackendError, BackendUnavailable):
                pass  # asked again at the next visit; a slip without the header still serves the patient

    # ---- view ---------------------------------------------------------------------------------------

    def patient_banner(self) -> str:
        p = self.visit.patient
        if not p:
            return ""
        return "  ".join(str(x) for x in (p.get("name_masked"), p.get("gender"),
                                          f"{p['age']}岁" if p.get("age") else "") if x)

    def _base_view(self, state: str) -> dict[str, Any]:
        """What every view of this service carries: the masked banner, Cancel, the idle deadline."""
        base: dict[str, Any] = {"patient": self.patient_banner(), "can_cancel": state in self.CANCELLABLE}
        limit = self.idle_limit(state)
        if limit is not None:
            base["deadline"] = self._last_activity + limit
        return base

    def _busy_view(self, text: tuple[str, str]) -> View:
        return View("busy", {"text": text[0], "text_en": text[1]}, patient=self.patient_banner())

    def _offer_file_view(self) -> View:
        data = self.visit.new_file or {}
        name = str(data.get("name", ""))
        masked = name[:1] + "*" * max(1, len(name) - 1) if name else ""
        return View("new_file", {"name_masked": masked, "gender": data.get("gender", "")},
                    message=self.visit.notice[0], message_en=self.visit.notice[1], can_cancel=True,
                    deadline=self._last_activity + (self.idle_limit("offering_file") or 0.0))

    def _home_view(self) -> View:
        usable, why, why_en = self.availability()
        return View("home", {"services": {"start": {"available": usable, "reason": why, "reason_en": why_en}}})

    def _view_for(self, state: str) -> View:
        raise NotImplementedError


def _file_from_card(card: Any) -> dict[str, Any]:
    """What a new patient file takes from a resident ID card; gender and birth follow from the number."""
    number = str(card.id_number).upper()
    born = birth_date(number)
    return {"id_number": number, "name": str(card.name).strip(), "gender": "男" if int(number[16]) % 2 else "女",
            "birth": born.isoformat() if born else ""}
