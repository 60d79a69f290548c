"""满意度评价 (K13): a short survey any service can show at the end of a visit, stored anonymously.

Why this shape:
* four questions, five faces each, one tap per question and a "skip" that stores nothing: a patient in a hurry
  loses one tap, an elderly patient meets nothing to type;
* the answer carries the terminal, the service, the day and the time, and the scores: no patient id, no
  session id, no order number. A survey is for the hospital's statistics, and a score that could be joined to a
  visit would make patients less honest and would be personal data (PIPL: collect the minimum);
* it travels through the offline queue (kind `survey_answer`) in the same local transaction as the journal entry
  of the transition that submitted it (`journal_with_messages`), so a power cut never keeps one without the
  other, and a server that is down loses no answers. The server counts them per question, service and day
  (`central/survey.py`).

Services use `SurveyForm` for the answers on screen, `survey_view` for the screen's data and
`answer_message` + `journal_with_messages` in their `_journal` (see `workflows.guidance`).
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from transitions import EventData

if TYPE_CHECKING:
    from workflows.service_base import JournaledService

KIND = "survey_answer"
VERSION = 1  # bump when the questions change, so the server never averages two different questions


@dataclass(frozen=True)
class Question:
    id: str
    text: str
    text_en: str


QUESTIONS: tuple[Question, ...] = (
    Question("overall", "您对今天的自助服务满意吗？", "How satisfied are you with the self-service today?"),
    Question("ease", "自助机用起来简单吗？", "Was the kiosk easy to use?"),
    Question("speed", "办理快不快？", "Was it quick?"),
    Question("wayfinding", "找科室、找窗口清楚吗？", "Was it easy to find where to go?"),
)
#: 1 … 5, worst to best, as the faces on the screen say them.
SCALE: tuple[tuple[int, str, str], ...] = (
    (1, "很不满意", "Very poor"), (2, "不满意", "Poor"), (3, "一般", "OK"), (4, "满意", "Good"),
    (5, "很满意", "Very good"))


@dataclass
class SurveyForm:
    """The answers given so far on the screen; a question left out is simply not answered."""

    answers: dict[str, int] = field(default_factory=dict)

    def answer(self, question: str, score: int) -> bool:
        """Record a tap; False (and nothing kept) for a question or score the survey does not have."""
        if question not in {q.id for q in QUESTIONS} or not isinstance(score, int) or not 1 <= score <= 5:
            return False
        self.answers[question] = score
        return True

    @property
    def answered(self) -> bool:
        return bool(self.answers)


def survey_view(form: SurveyForm) -> dict[str, Any]:
    return {"questions": [{"id": q.id, "text": q.text, "text_en": q.text_en} for q in QUESTIONS],
            "scale": [{"score": s, "text": t, "text_en": e} for s, t, e in SCALE],
            "answers": dict(form.answers)}


def answer_message(form: SurveyForm, terminal_id: str, service: str, at: datetime) -> tuple[str, dict[str, Any], str]:
    """(kind, payload, idempotency key) of one submitted survey. The key is random: derived from the visit's
    session it would tie the answer to the visit's other messages."""
    payload = {"version": VERSION, "terminal_id": terminal_id, "service": service, "day": at.date().isoformat(),
               "answered_at": at.isoformat(timespec="minutes"),
               "answers": {q.id: form.answers[q.id] for q in QUESTIONS if q.id in form.answers}}
    return KIND, payload, f"survey-{uuid.uuid4().hex}"


def journal_with_messages(service: JournaledService, event: EventData,
                          extra: list[tuple[str, dict[str, Any], str]]) -> None:
    """`JournaledService._journal` plus more outbox messages in the same transaction.

    The service base offers no hook for messages of a service's own, so a service that has some (a survey
    answer) journals through this instead; it writes the same journal entry and `visit_event` as the base."""
    data = service.visit.journal_data()
    with service.journal.transaction() as conn:
        entry = service.journal.record(service.visit.session, service.WORKFLOW, event.event.name,
                                       event.transition.source, event.transition.dest, data)
        if service.outbox is not None:
            service.outbox.enqueue(conn, "visit_event", {
                "session": service.visit.session, "workflow": service.WORKFLOW, "event": event.event.name,
                "source": event.transition.source, "dest": event.transition.dest, **data},
                f"visit-{service.visit.session}-{entry}")
            for kind, payload, key in extra:
                service.outbox.enqueue(conn, kind, payload, key)
