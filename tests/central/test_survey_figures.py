"""Survey answers (K13) arrive through the kiosks' outbox route like any other message and are counted per day,
service and question; a repeat is counted once, a malformed answer not at all."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from central.api import outbox
from central.app import create_app
from central.config import Settings
from central.db import Base
from central.models import KioskMessage
from central.services import Services
from central.survey import survey_figures
from tests.central.conftest import Kiosk, provision
from workflows.survey import SurveyForm, answer_message

URL = "/api/v1/kiosk/outbox"
TZ = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def outbox_client(settings: Settings, svc: Services) -> Iterator[TestClient]:
    Base.metadata.create_all(svc.engine, tables=[KioskMessage.__table__])
    app = create_app(settings, svc)
    if not any(getattr(route, "path", "") == URL for route in app.routes):
        app.include_router(outbox.router)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def send(client: TestClient, kiosk: Kiosk, service: str, at: datetime, **scores: int) -> str:
    """What the kiosk's deliverer sends for one submitted survey (the kiosk's own message builder)."""
    form = SurveyForm()
    for question, score in scores.items():
        assert form.answer(question, score)
    kind, payload, key = answer_message(form, kiosk.terminal_id, service, at)
    reply = client.post(URL, json={"kind": kind, "payload": payload, "created_at": at.isoformat()},
                        auth=kiosk.auth, headers={"Idempotency-Key": key})
    assert reply.status_code == 201, reply.text
    return key


def test_survey_answers_are_accepted_and_counted_per_question_service_and_day(outbox_client: TestClient,
                                                                              kiosk: Kiosk, svc: Services) -> None:
    other = provision(svc, "KIOSK-002")
    monday = datetime(2026, 11, 23, 9, 30, tzinfo=TZ)
    tuesday = datetime(2026, 11, 24, 0, 10, tzinfo=TZ)  # just after midnight: the hospital's day, not UTC's
    key = send(outbox_client, kiosk, "guidance", monday, overall=5, ease=4)
    send(outbox_client, other, "guidance", monday, overall=2)
    send(outbox_client, kiosk, "outpatient_payment", monday, overall=3, speed=1)
    send(outbox_client, kiosk, "guidance", tuesday, overall=4)
    # the deliverer sends a message again after a lost answer: stored and counted once
    first = survey_figures(svc.sessions)
    again = {"kind": "survey_answer", "created_at": monday.isoformat(),
             "payload": answer_message(SurveyForm({"overall": 5, "ease": 4}), kiosk.terminal_id, "guidance",
                                       monday)[1]}
    assert outbox_client.post(URL, json=again, auth=kiosk.auth,
                              headers={"Idempotency-Key": key}).json()["duplicate"] is True
    figures = survey_figures(svc.sessions)
    assert figures == first
    rows = {(r.day, r.service, r.question): (r.count, r.average) for r in figures.rows}
    assert rows == {
        ("2026-11-23", "guidance", "overall"): (2, 3.5),
        ("2026-11-23", "guidance", "ease"): (1, 4.0),
        ("2026-11-23", "outpatient_payment", "overall"): (1, 3.0),
        ("2026-11-23", "outpatient_payment", "speed"): (1, 1.0),
        ("2026-11-24", "guidance", "overall"): (1, 4.0),
    }
    assert figures.surveys == 4 and figures.rejected == 0
    only = survey_figures(svc.sessions, first=date(2026, 11, 24), service="guidance")
    assert [(r.day, r.question, r.count) for r in only.rows] == [("2026-11-24", "overall", 1)]


def test_malformed_answers_are_left_out_and_counted_as_rejected(outbox_client: TestClient, kiosk: Kiosk,
                                                                svc: Services) -> None:
    at = "2026-11-23T09:00:00+08:00"
    bad = [{"version": 1, "service": "guidance", "day": "2026-11-23", "answers": {"overall": 9}},
           {"version": 1, "service": "guidance", "day": "2026-11-23", "answers": {"overall": True}},
           {"version": 2, "service": "guidance", "day": "2026-11-23", "answers": {"overall": 5}},
           {"service": "guidance", "answers": {"overall": 5}}]
    for n, payload in enumerate(bad):
        reply = outbox_client.post(URL, json={"kind": "survey_answer", "payload": payload, "created_at": at},
                                   auth=kiosk.auth, headers={"Idempotency-Key": f"survey-bad-{n}"})
        assert reply.status_code == 201
    send(outbox_client, kiosk, "guidance", datetime(2026, 11, 23, 9, 0, tzinfo=TZ), overall=1)
    figures = survey_figures(svc.sessions)
    assert figures.rejected == 4 and figures.surveys == 1
    assert [(r.question, r.count, r.average) for r in figures.rows] == [("overall", 1, 1.0)]
