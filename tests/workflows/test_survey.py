"""满意度评价 (K13): a submitted survey goes to the offline queue in the same local transaction as its journal
entry, carries nothing that could identify the patient or the visit, and "skip" stores nothing."""
from __future__ import annotations

import json

import pytest

from offline_queue.outbox import Outbox
from workflows import guidance as guidance_module
from workflows.guidance import Guidance
from workflows.journal import Journal
from workflows.service_base import Timeouts
from workflows.survey import QUESTIONS, SurveyForm

from .fakes import Clock, FakeBackend, RecordingPrinter


@pytest.fixture
def env(tmp_path):
    journal = Journal(tmp_path / "journal.db")
    outbox = Outbox(tmp_path / "journal.db")
    views = []
    wf = Guidance(FakeBackend(journal), RecordingPrinter(), journal, views.append, "KIOSK-T01", Timeouts(),
                  clock=Clock(), outbox=outbox)
    wf.handle("start")
    wf.handle("pick_place", place="OPD3-B")
    wf.handle("rate")
    assert wf.state == "surveying" and views[-1].screen == "survey"
    return wf, views, journal, outbox


def surveys(outbox):
    return [m for m in outbox.messages() if m.kind == "survey_answer"]


def test_the_answers_go_to_the_outbox_with_the_journal_entry_that_submitted_them(env):
    wf, views, journal, outbox = env
    wf.handle("answer", question="overall", score=5)
    wf.handle("answer", question="ease", score=2)
    wf.handle("answer", question="ease", score=3)  # changed her mind: the last tap counts
    assert views[-1].data["answers"] == {"overall": 5, "ease": 3}
    wf.handle("submit")
    assert wf.state == "thanks" and views[-1].screen == "survey_thanks"
    [message] = surveys(outbox)
    body = message.body()
    assert body["answers"] == {"overall": 5, "ease": 3}
    assert body["service"] == "guidance" and body["terminal_id"] == "KIOSK-T01" and body["version"] == 1
    submit = [e for e in journal.entries() if e["event"] == "submit"]
    assert len(submit) == 1
    # one transaction: the submit's visit_event and the answer sit next to each other in the outbox
    events = [m for m in outbox.messages() if m.kind == "visit_event"]
    assert events[-1].body()["event"] == "submit" and message.id == events[-1].id + 1
    wf.handle("finish")
    assert wf.state == "home" and not wf.visit.survey.answered


def test_a_failing_enqueue_rolls_the_journal_entry_back_too(env, monkeypatch):
    wf, views, journal, outbox = env
    wf.handle("answer", question="overall", score=4)
    before = len(journal.entries())

    def broken(*args, **kwargs):
        return ("survey answer", {}, "survey-key-0001")  # a kind the outbox refuses

    monkeypatch.setattr(guidance_module, "answer_message", broken)
    with pytest.raises(ValueError):
        wf.handle("submit")
    assert len(journal.entries()) == before and surveys(outbox) == []
    assert wf.state == "surveying"


def test_nothing_personal_and_nothing_that_ties_the_answer_to_the_visit(env):
    wf, views, journal, outbox = env
    session = wf.visit.session
    wf.handle("answer", question="overall", score=1)
    wf.handle("submit")
    [message] = surveys(outbox)
    body = message.body()
    assert set(body) == {"version", "terminal_id", "service", "day", "answered_at", "answers"}
    assert session not in message.payload and session not in message.key
    assert "OPD3-B" not in message.payload  # not even where the person was going
    assert len(body["answered_at"]) == len("2026-11-23T09:30")  # to the minute, no finer
    # and the scores stay out of the journal
    assert all("answers" not in json.dumps(e["data"]) for e in journal.entries())


def test_skip_stores_nothing_and_goes_home(env):
    wf, views, journal, outbox = env
    wf.handle("answer", question="overall", score=5)
    wf.handle("skip")
    assert wf.state == "home" and views[-1].screen == "home"
    assert surveys(outbox) == []


def test_submit_needs_an_answer_and_odd_answers_are_ignored(env):
    wf, views, journal, outbox = env
    wf.handle("submit")
    assert wf.state == "surveying" and surveys(outbox) == []
    for question, score in (("overall", 0), ("overall", 6), ("name", 5), ("overall", "5")):
        wf.handle("answer", question=question, score=score)
    assert views[-1].data["answers"] == {}
    wf.handle("back")
    assert wf.state == "showing_route"


def test_the_form_knows_its_questions():
    form = SurveyForm()
    assert 3 <= len(QUESTIONS) <= 5
    assert all(form.answer(q.id, 3) for q in QUESTIONS)
    assert not form.answer("overall", 7) and form.answers["overall"] == 3
