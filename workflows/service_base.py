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
  waits for that in the session, never in the journal, and goes with the session on the way home;
* the rest of K1 is here too: an e-health account holding a family's cards lets the patient choose who is
  being seen (choosing_patient); a passport or HK-Macao-Taiwan permit number is typed with the name
  (typing_document → identifying); 刷脸 takes one photo on the patient's tap (capturing_face), which goes to
  the server and nowhere else.

The journal holds identifiers only (patient id, order number, keys), never a name, an ID number, an insurance
credential or a payment code: `Session.journal_data` is the one place that decides what goes in.

Subclasses set the class attributes below and write `_enter_<state>` methods and `_view_for`.
"""
from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field, replace
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
                                  "insurance_voucher": "insurance_voucher",
                                  "visit_card": "visit_card"}  # a bound 就诊卡 (workflows.patient_cards)
#: States the base adds to every service that identifies patients, for a new patient file.
FILE_STATES = ("offering_file", "creating_file")
#: States the base adds for a family on one e-health account, a typed document number and 刷脸.
ID_STATES = ("choosing_patient", "typing_document", "capturing_face")
FAMILY = ("该电子健康卡绑定了多位就诊人，请使用身份证或就诊码",
          "This e-health card holds several patients. Please use an ID card or a visit code.")
#: The camera looks this long for one good frame; the patient stands still meanwhile.
FACE_SECONDS = 4.0
#: Failed looks (no good frame) before the face button gives way to the ID card.
FACE_TRIES = 3
#: Document numbers or names the server did not match before the patient is sent to a counter: a typo is
#: forgiven, guessing names for a number is not.
DOCUMENT_TRIES = 3
FACE_HOLD_STILL = ("请正对摄像头，保持不动", "Please look straight at the camera and hold still")
FACE_AGAIN = ("未能看清您的面部，请正对摄像头后再试一次", "Your face was not seen clearly. Please face the camera and try again.")
FACE_GIVE_UP = ("多次未能看清您的面部，请使用身份证或扫码识别",
                "Your face could not be seen clearly. Please use your ID card or scan a code.")
CAMERA_DOWN = ("摄像头暂不可用，请使用身份证", "The camera is not available. Please use your ID card.")
DOCUMENT_NUMBER_WANTED = ("请输入5至20位证件号码（字母或数字）", "Please enter the 5 to 20 letters or digits of the number")
DOCUMENT_NAME_WANTED = ("请按证件上的拼写输入姓名（英文字母）", "Please enter your name as spelt on the document")
DOCUMENT_NOT_MATCHED = {
    "PATIENT_NOT_FOUND": ("未找到该证件号码的就诊档案，请核对号码后重新输入",
                          "No patient file has this document number. Please check it and type it again."),
    "NAME_MISMATCH": ("姓名与档案不符，请按证件上的拼写重新输入",
                      "The name does not match the patient file. Please type it as spelt on the document."),
}
DOCUMENT_GIVE_UP = ("未能核实您的证件信息，请到人工窗口办理",
                    "Your document could not be matched to a patient file. Please go to a service counter.")


#: Idle limits (Timeouts fields) of the waiting states the base adds; a service's IDLE may override them.
BASE_IDLE: dict[str, str] = {"offering_file": "choosing", "choosing_patient": "choosing",
                             "typing_document": "choosing"}


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
    #: The patients of one e-health account (masked names, ids) while the patient chooses who is seen.
    family: list[dict[str, Any]] | None = field(default=None, repr=False)
    face_tries: int = 0  # looks without a good frame in this visit
    face_broken: bool = False  # the camera failed in this visit: the face button stays off
    document_tries: int = 0  # typed document numbers the server did not match in this visit

    def journal_data(self) -> dict[str, Any]:
        """Identifiers needed to resume or compensate; no name, no ID number. Subclasses extend it."""
        return {"patient_id": (self.patient or {}).get("patient_id")}


class ReceiptPrinter:  # the part of the printer contract services use
    def print_document(self, blocks: list[Block]) -> None: ...


def identification_transitions(first_state: str) -> list[dict[str, Any]]:
    """home → reading_card → identifying → `first_state`: how every service for a known patient begins; with
    the detour offering_file → creating_file for a patient who has no file yet, choosing_patient for a family's
    e-health account, typing_document for a passport or permit and capturing_face for 刷脸."""
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
        # A family on one e-health account (by code or by face): the patient taps who is being seen.
        {"trigger": "family_found", "source": ["identifying", "capturing_face"], "dest": "choosing_patient"},
        {"trigger": "pick_patient", "source": "choosing_patient", "dest": first_state, "conditions": "_patient_chosen"},
        # A passport or HK-Macao-Taiwan permit: number and name typed, then looked up like any credential.
        {"trigger": "type_document", "source": "reading_card", "dest": "typing_document"},
        {"trigger": "look_up_document", "source": "typing_document", "dest": "identifying",
         "conditions": "_document_given"},
        {"trigger": "document_retry", "source": "identifying", "dest": "typing_document"},
        {"trigger": "back", "source": "typing_document", "dest": "reading_card"},
        # 刷脸: the tap is the consent; one photo, then the server's answer.
        {"trigger": "scan_face", "source": "reading_card", "dest": "capturing_face", "conditions": "_face_chosen"},
        {"trigger": "identified", "source": "capturing_face", "dest": first_state},
        {"trigger": "face_retry", "source": "capturing_face", "dest": "reading_card"},
        {"trigger": "cancel", "source": list(ID_STATES), "dest": "home"},
        {"trigger": "timeout", "source": ["choosing_patient", "typing_document"], "dest": "home"},
        {"trigger": "fail", "source": [*FILE_STATES, *ID_STATES], "dest": "failed"},
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
        uses_ids = any(t.get("dest") in ID_STATES for t in self.TRANSITIONS)
        states = [*self.STATES, *(s for s in FILE_STATES if uses_files and s not in self.STATES),
                  *(s for s in ID_STATES if uses_ids and s not in self.STATES)]
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
        name = self.IDLE.get(state) or BASE_IDLE.get(state)
        return None if name is None else float(getattr(self.timeouts, name))

    def current_view(self) -> View:
        return self._screen(self.state)

    def _screen(self, state: str) -> View:
        """The view of a state: the base draws its own (the identification detours), the service the rest;
        the base adds its buttons and notices to the service's insert-card view."""
        if state == "offering_file":
            return self._offer_file_view()
        if state == "creating_file":
            return self._busy_view(("正在为您建档…", "Creating your patient file…"))
        if state == "choosing_patient":
            return self._choose_patient_view()
        if state == "typing_document":
            return self._document_view()
        if state == "capturing_face":
            return View("face_capture", {"text": FACE_HOLD_STILL[0], "text_en": FACE_HOLD_STILL[1]},
                        can_cancel=True)
        view = self._view_for(state)
        if state == "reading_card" and view.screen == "insert_card":
            view = replace(view, data={**view.data, "face": self.face_offered()},
                           message=view.message or self.visit.notice[0],
                           message_en=view.message_en or self.visit.notice[1])
        return view

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
        if self.state in self.BUSY_TEXT or self.state in ("creating_file", "capturing_face"):
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
        by_document = event.event.name == "look_up_document"
        try:
            if card is not None:
                answer = self.backend.identify_by_id_card(card.id_number, card.name)
            elif by_document:
                answer = self.backend.identify_by_document(_document_number(event.kwargs.get("document_number")),
                                                           _document_name(event.kwargs.get("name")))
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
            if by_document and exc.code in DOCUMENT_NOT_MATCHED:
                self._document_not_matched(exc.code)
                return
            self._go("fail", message=exc.message, message_en=exc.message_en)
            return
        except BackendUnavailable:
            self._fail_offline()
            return
        finally:
            del card, code  # the card's data, the code and the typed document are not kept beyond this call
            event.kwargs.pop("document_number", None)
            event.kwargs.pop("name", None)
        self._take_answer(answer)

    def _take_answer(self, answer: dict[str, Any]) -> None:
        """The server's answer to any credential: one patient goes on to the service; a family's e-health
        account lists its patients to choose from (a list of one needs no choosing)."""
        if "patient_id" not in answer:
            family = [p for p in answer.get("patients") or [] if p.get("patient_id")]
            if not family:
                self._go("fail", message=FAMILY[0], message_en=FAMILY[1])
                return
            if len(family) > 1:
                self.visit.family = family
                self._go("family_found")
                return
            answer = family[0]
        self.visit.patient = answer
        self.visit.notice = ("", "")
        self._go("identified")

    def _patient_chosen(self, event: EventData) -> bool:
        """The tapped patient must be one the server listed; the choice is the patient the journal records."""
        chosen = next((p for p in self.visit.family or [] if p["patient_id"] == event.kwargs.get("patient_id")),
                      None)
        if chosen is None:
            return False
        self.visit.patient, self.visit.family, self.visit.notice = chosen, None, ("", "")
        return True

    def _enter_choosing_patient(self, event: EventData) -> None:
        self.visit.notice = ("", "")

    # ---- a passport or HK-Macao-Taiwan permit, typed ----------------------------------------------------

    def _enter_typing_document(self, event: EventData) -> None:
        if event.event.name == "type_document":  # a retry keeps the notice that says what to correct
            self.visit.notice = ("", "")

    def _document_given(self, event: EventData) -> bool:
        """What the screen sent must be a document number and a name before anything goes to the server."""
        number = _document_number(event.kwargs.get("document_number"))
        name = _document_name(event.kwargs.get("name"))
        if not (5 <= len(number) <= 20 and number.isascii() and number.isalnum()):
            self.visit.notice = DOCUMENT_NUMBER_WANTED
        elif not (name and len(name) <= 50):
            self.visit.notice = DOCUMENT_NAME_WANTED
        else:
            return True
        self.publish(self._screen(self.state))
        return False

    def _document_not_matched(self, code: str) -> None:
        """A mistyped number or name is typed again; after DOCUMENT_TRIES misses the counter takes over."""
        self.visit.document_tries += 1
        if self.visit.document_tries >= DOCUMENT_TRIES:
            self._go("fail", message=DOCUMENT_GIVE_UP[0], message_en=DOCUMENT_GIVE_UP[1])
            return
        self.visit.notice = DOCUMENT_NOT_MATCHED[code]
        self._go("document_retry")

    # ---- 刷脸 ---------------------------------------------------------------------------------------------

    def face_offered(self) -> bool:
        """The face button shows where there is a camera whose last report was good, until it failed in this
        visit or the patient's tries are used up."""
        health = self.devices.get("camera")
        return (self.peripherals.face_camera is not None and health is not None and health.usable
                and not self.visit.face_broken and self.visit.face_tries < FACE_TRIES)

    def _face_chosen(self, event: EventData) -> bool:
        if self.face_offered():
            return True
        self.visit.notice = CAMERA_DOWN
        self.publish(self._screen(self.state))
        return False

    def _enter_capturing_face(self, event: EventData) -> None:
        """One good frame in FACE_SECONDS, sent to the server once. The photo lives in this call only: it is
        neither kept in the session nor journaled nor logged."""
        self.visit.notice = ("", "")
        try:
            jpeg = self.peripherals.face_camera.capture_face_jpeg(seconds=FACE_SECONDS)
        except Exception as exc:  # noqa: BLE001 - the camera runs on its own thread; any failure ends the look
            self._face_failed(exc)
            return
        try:
            answer = self.backend.identify_by_face(jpeg)
        except BackendError as exc:
            self._go("fail", message=exc.message, message_en=exc.message_en)
            return
        except BackendUnavailable:
            self._fail_offline()
            return
        finally:
            del jpeg
        self._take_answer(answer)

    def _face_failed(self, exc: Exception) -> None:
        """No good frame: say what to change and let the patient try again (FACE_TRIES in all). Anything else
        is the camera's fault: the ID card is the way on."""
        if _is_face_not_captured(exc):
            self.visit.face_tries += 1
            if self.visit.face_tries >= FACE_TRIES:
                self.visit.notice = FACE_GIVE_UP
            else:
                self.visit.notice = (str(getattr(exc, "prompt_zh", "") or FACE_AGAIN[0]),
                                     str(getattr(exc, "prompt_en", "") or FACE_AGAIN[1]))
        else:
            log.warning("face camera failed: %s", type(exc).__name__)
            self.visit.face_broken = True
            self.visit.notice = CAMERA_DOWN
        self._go("face_retry")

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

    def _choose_patient_view(self) -> View:
        """Masked names only, as the server sent them: who is seen is chosen, nobody is named in full."""
        family = [{k: p.get(k) for k in ("patient_id", "name_masked", "gender", "age")}
                  for p in self.visit.family or []]
        return View("choose_patient", {"patients": family}, message=self.visit.notice[0],
                    message_en=self.visit.notice[1], can_cancel=True,
                    deadline=self._last_activity + (self.idle_limit("choosing_patient") or 0.0))

    def _document_view(self) -> View:
        return View("document", {"tries_left": DOCUMENT_TRIES - self.visit.document_tries},
                    message=self.visit.notice[0], message_en=self.visit.notice[1], can_cancel=True, can_back=True,
                    deadline=self._last_activity + (self.idle_limit("typing_document") or 0.0))

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


def _document_number(value: Any) -> str:
    """Passport and permit numbers are printed in capitals; the keyboard's case does not matter."""
    return str(value or "").strip().upper()


def _document_name(value: Any) -> str:
    return " ".join(str(value or "").split())


def _is_face_not_captured(exc: BaseException) -> bool:
    """drivers.camera's FaceNotCapturedError, known by name: importing the camera driver here would pull
    OpenCV into every service, and the class only needs to say what the patient should change."""
    return any(cls.__name__ == "FaceNotCapturedError" for cls in type(exc).__mro__)
