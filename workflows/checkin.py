"""Check-in (取号报到, K5): a patient with an appointment today joins the doctor's queue at the kiosk.

ID card → today's appointments (the records API's registration history: today, made on the platform, not
cancelled) → one → the server checks it in inside the HIS's window → the queue number, how many are ahead,
the estimated wait and where to wait, on the glass and on a slip (K12) → done.

Too early or too late is the HIS's rule, not the kiosk's: the server answers CHECKIN_TOO_EARLY / _TOO_LATE
with the window, and the patient sees it in words over the list. No money moves here, so leaving at any
point simply goes home; a printer fault keeps the check-in (it is the HIS's record, not the paper) and says so.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from transitions import EventData

from workflows.appointment_receipt import checkin_slip
from workflows.backend import BackendError, BackendUnavailable
from workflows.service_base import JournaledService, Session, ending_transitions, identification_transitions
from workflows.slips import print_slip
from workflows.view import View

log = logging.getLogger(__name__)

WORKFLOW = "checkin"

BEFORE_CHECKIN = ["reading_card", "identifying", "choosing_appointment"]
STATES = ["home", *BEFORE_CHECKIN, "checking_in", "printing", "done", "failed"]

TRANSITIONS: list[dict[str, Any]] = [
    *identification_transitions("choosing_appointment"),
    {"trigger": "pick_appointment", "source": "choosing_appointment", "dest": "checking_in",
     "prepare": "_keep_appointment", "conditions": "_appointment_chosen"},
    {"trigger": "refused", "source": "checking_in", "dest": "choosing_appointment"},
    {"trigger": "checked_in", "source": "checking_in", "dest": "printing"},
    {"trigger": "printed", "source": "printing", "dest": "done"},
    {"trigger": "cancel", "source": BEFORE_CHECKIN, "dest": "home"},
    {"trigger": "timeout", "source": BEFORE_CHECKIN, "dest": "home"},
    *ending_transitions(STATES),
]

BUSY_TEXT = {
    "identifying": ("正在查询您的预约…", "Looking up your appointments…"),
    "checking_in": ("正在为您报到…", "Checking you in…"),
    "printing": ("正在打印报到凭条…", "Printing your check-in slip…"),
}

IDLE = {"reading_card": "reading_card", "choosing_appointment": "choosing", "done": "done", "failed": "failed"}

NONE_TODAY = ("您今天没有需要报到的预约。当日挂号无需报到；预约在其他日期的，请于就诊当天办理",
              "You have no appointment to check in today. Same-day registrations need no check-in; for an "
              "appointment on another day, come back on that day.")
#: What a too-early or too-late answer's window becomes on the glass when the server gives times.
WINDOW_WORDS = {
    "CHECKIN_TOO_EARLY": ("还未到报到时间。请于 {opens} 至 {closes} 之间报到",
                          "Too early to check in. Please check in between {opens} and {closes}."),
    "CHECKIN_TOO_LATE": ("已超过报到时间（{opens} 至 {closes}），请到分诊台或人工窗口处理",
                         "The check-in time ({opens} to {closes}) has passed. Please ask at the triage desk."),
}


@dataclass
class CheckInVisit(Session):
    """One patient's session in this service; replaced on every return home (the wipe)."""

    appointments: list[dict[str, Any]] = field(default_factory=list)
    chosen: dict[str, Any] | None = None
    queue: dict[str, Any] | None = None
    print_failed: bool = False

    def journal_data(self) -> dict[str, Any]:
        """Identifiers only: no name, no ID number."""
        return {**super().journal_data(), "checkin_order_no": (self.chosen or {}).get("order_no"),
                "queue_no": (self.queue or {}).get("queue_no")}


class CheckIn(JournaledService):
    """取号报到. Call `handle(intent, **kw)` for patient and device events and `tick()` on a clock."""

    WORKFLOW = WORKFLOW
    STATES = STATES
    TRANSITIONS = TRANSITIONS
    REQUIRED_DEVICES = {"id_card": ("身份证读卡器", "ID-card reader"),
                        "receipt_printer": ("凭条打印机", "receipt printer")}
    BUSY_TEXT = BUSY_TEXT
    IDLE = IDLE
    CANCELLABLE = frozenset(BEFORE_CHECKIN)

    visit: CheckInVisit

    def new_session(self) -> CheckInVisit:
        return CheckInVisit()

    def _keep_appointment(self, event: EventData) -> None:
        wanted = str(event.kwargs.get("order_no"))
        self.visit.chosen = next((a for a in self.visit.appointments if str(a.get("order_no")) == wanted), None)

    def _appointment_chosen(self, event: EventData) -> bool:
        return self.visit.chosen is not None

    def _enter_choosing_appointment(self, event: EventData) -> None:
        v = self.visit
        if event.event.name == "refused":  # the window in words, over the list the patient chose from
            v.notice = (event.kwargs.get("message", ""), event.kwargs.get("message_en", ""))
        else:
            v.notice = ("", "")
        ok, history = self._load(lambda: self.backend.registration_history(v.patient["patient_id"]))
        if not ok:
            return
        today = self.now().date().isoformat()
        v.appointments = sorted((r for r in history or [] if r.get("order_no") and r.get("date") == today
                                 and r.get("status") in ("BOOKED", "CHECKED_IN")),
                                key=lambda r: r.get("start", ""))
        if not v.appointments and event.event.name != "refused":
            v.notice = NONE_TODAY

    def _enter_checking_in(self, event: EventData) -> None:
        v = self.visit
        try:
            # Checking in twice gives the same place in the queue: safe to ask again when an answer is lost.
            v.queue = self._retrying(lambda: self.backend.check_in(v.chosen["order_no"], v.patient["patient_id"]))
        except BackendError as exc:
            if exc.code in WINDOW_WORDS:
                zh, en = _window_words(exc)
                self._go("refused", message=zh, message_en=en)
            else:
                self._go("fail", message=exc.message, message_en=exc.message_en)
            return
        except BackendUnavailable:
            self._fail_offline()
            return
        self._go("checked_in")

    def _enter_printing(self, event: EventData) -> None:
        v = self.visit
        print_slip(self, lambda hospital: checkin_slip(hospital, v.queue, self.terminal_id, self.now()),
                   f"check-in {(v.queue or {}).get('order_no')}")

    def _view_for(self, state: str) -> View:
        v = self.visit
        if state == "home":
            return self._home_view()
        base = self._base_view(state)
        msg, msg_en = v.notice
        if state == "reading_card":
            return View("insert_card", **base)
        if state in BUSY_TEXT:
            zh, en = BUSY_TEXT[state]
            return View("busy", {"text": zh, "text_en": en}, **base)
        if state == "choosing_appointment":
            return View("checkin_list", {"appointments": v.appointments}, message=msg, message_en=msg_en, **base)
        if state == "done":
            return View("checkin_done", {"queue": v.queue, "print_failed": v.print_failed,
                                         "way_to": [str((v.queue or {}).get("location") or "")]}, **base)
        return View("error", {}, message=msg, message_en=msg_en, **base)


def _hhmm(moment: str | None) -> str:
    """'2026-11-24T13:00+08:00' → '11-24 13:00': the day matters when the window is not today."""
    if not moment or "T" not in moment:
        return ""
    day, time = moment.split("T", 1)
    return f"{day[5:]} {time[:5]}"


def _window_words(exc: BackendError) -> tuple[str, str]:
    opens, closes = _hhmm(exc.payload.get("opens_at")), _hhmm(exc.payload.get("closes_at"))
    if not (opens and closes):  # no window given: the server's own sentence
        return exc.message, exc.message_en
    zh, en = WINDOW_WORDS[exc.code]
    return zh.format(opens=opens, closes=closes), en.format(opens=opens, closes=closes)
