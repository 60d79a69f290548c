"""Satisfaction survey figures (K13, A "statistics: satisfaction"): counts and averages per question, service, day.

Kiosks send each submitted survey through their offline queue as a `survey_answer` message (see
`workflows/survey.py`): terminal, service, day, time and scores, nothing about the patient. The outbox route
stores it once per key in `kiosk_messages`; this reads those rows. No table of its own: the messages are the
record, and an answer delivered twice is one row already.

Messages of another survey version, or with scores outside 1–5, are skipped and counted in `rejected` rather
than averaged in: a kiosk with a bug must not move the hospital's figures.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from central.models import KioskMessage

KIND = "survey_answer"
VERSION = 1


@dataclass(frozen=True)
class QuestionFigures:
    day: str  # YYYY-MM-DD, the hospital's day as the kiosk saw it
    service: str
    question: str
    count: int
    average: float  # of the scores 1–5, rounded to two places


@dataclass(frozen=True)
class SurveyFigures:
    rows: list[QuestionFigures]
    surveys: int  # survey_answer messages counted
    rejected: int  # messages skipped for their shape


def survey_figures(sessions: sessionmaker[Session], first: date | None = None, last: date | None = None,
                   service: str | None = None) -> SurveyFigures:
    """Counts and averages per (day, service, question), ordered by day, service, question."""
    totals: dict[tuple[str, str, str], list[int]] = {}
    surveys = rejected = 0
    with sessions() as session:
        payloads = session.scalars(select(KioskMessage.payload).where(KioskMessage.kind == KIND)
                                   .order_by(KioskMessage.id))
        for text in payloads:
            try:
                body = json.loads(text)
                day = date.fromisoformat(str(body["day"]))
                svc = str(body["service"])
                answers = body["answers"]
                ok = body.get("version") == VERSION and isinstance(answers, dict) and all(
                    isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 5 for v in answers.values())
            except (ValueError, KeyError, TypeError):
                ok = False
            if not ok:
                rejected += 1
                continue
            if (first and day < first) or (last and day > last) or (service and svc != service):
                continue
            surveys += 1
            for question, score in answers.items():
                sums = totals.setdefault((day.isoformat(), svc, str(question)), [0, 0])
                sums[0] += 1
                sums[1] += score
    rows = [QuestionFigures(d, s, q, n, round(total / n, 2)) for (d, s, q), (n, total) in sorted(totals.items())]
    return SurveyFigures(rows, surveys, rejected)
