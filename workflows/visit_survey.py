"""满意度评价 after a visit (K13): the short survey the hub offers when a service has served a patient.

The hub (`workflows.hub`) starts this service with the id of the service that just served the patient; it is
never a tile of its own. States: `home → surveying (→ thanks) → home`. "Skip" is one tap and stores nothing;
the idle timeout goes home too, because a patient who walked away has answered nothing.

Anonymous by construction: the session here is a fresh one, not the visit's, and its journal entries hold only
the id of the service that served ("registration", "checkin", ...). The answer itself carries the terminal, that
service id, the day, the time and the scores (`workflows.survey.answer_message`), and it is journaled and
enqueued in one transaction with the entry of the "submit" that stored it (`journal_with_messages`), exactly as
the guidance service does with its own survey.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, ClassVar

from transitions import EventData

from workflows.service_base import JournaledService, Session
from workflows.survey import SurveyForm, answer_message, journal_with_messages, survey_view
from workflows.view import View

log = logging.getLogger(__name__)


@dataclass
class SurveySession(Session):
    service: str = ""  # the service that served the patient: what the statistics are about
    survey: SurveyForm = field(default_factory=SurveyForm)

    def journal_data(self) -> dict[str, Any]:
        """The service rated, nothing else: no patient, no order, and the scores stay out of the journal."""
        return {"rated_service": self.service or None}


class VisitSurvey(JournaledService):
    WORKFLOW = "survey"
    STATES = ["home", "surveying", "thanks"]
    TRANSITIONS: ClassVar[list[dict[str, Any]]] = [
        {"trigger": "start", "source": "home", "dest": "surveying", "prepare": "_take_service",
         "conditions": "_service_named"},
        {"trigger": "submit", "source": "surveying", "dest": "thanks", "conditions": "_survey_answered"},
        {"trigger": "skip", "source": "surveying", "dest": "home"},
        {"trigger": "cancel", "source": "surveying", "dest": "home"},
        {"trigger": "finish", "source": "thanks", "dest": "home"},
        {"trigger": "timeout", "source": ["surveying", "thanks"], "dest": "home"},
    ]
    # The short "done" limit: the survey stands between the patient and the next one at the glass, and every
    # tap on a face restarts the clock.
    IDLE = {"surveying": "done", "thanks": "done"}

    visit: SurveySession

    def new_session(self) -> SurveySession:
        return SurveySession()

    def handle(self, intent: str, **kwargs: Any) -> None:
        """Tapping a face changes only the glass: it keeps the idle clock alive but is not a transition."""
        if intent == "answer" and self.state == "surveying":
            self._last_activity = self.clock()
            self.visit.survey.answer(str(kwargs.get("question", "")), kwargs.get("score"))  # type: ignore[arg-type]
            self.publish(self._view_for(self.state))
            return
        super().handle(intent, **kwargs)

    def _take_service(self, event: EventData) -> None:
        self.visit.service = str(event.kwargs.get("service") or "")[:40]

    def _service_named(self, event: EventData) -> bool:
        return bool(self.visit.service)

    def _survey_answered(self, event: EventData) -> bool:
        return self.visit.survey.answered

    def _journal(self, event: EventData) -> None:
        extra = []
        if event.event.name == "submit":
            extra.append(answer_message(self.visit.survey, self.terminal_id, self.visit.service, self.now()))
            if self.outbox is None:
                log.warning("survey answer not stored: this kiosk has no outbox")
        journal_with_messages(self, event, extra)

    def _view_for(self, state: str) -> View:
        if state == "home":
            return self._home_view()
        base = self._base_view(state)
        if state == "surveying":
            return View("survey", survey_view(self.visit.survey), **base)
        return View("survey_thanks", {}, **base)
