"""Report printing (报告打印) driven without Qt or network: every outcome a patient can meet, and the counting
rule (key journaled before the job, counted only after CUPS says completed, unknown outcomes never counted)."""
from __future__ import annotations

import json

import pytest

from drivers.health import Health
from workflows.journal import Journal
from workflows.report_printing import ReportPrinting
from workflows.service_base import Timeouts

from .fakes import Clock, FakeCard, FakeRecordsBackend, FakeReportPrinter, RecordingPrinter


@pytest.fixture
def env(tmp_path):
    journal = Journal(tmp_path / "journal.db")
    backend = FakeRecordsBackend(journal)
    report = FakeReportPrinter()
    views = []
    clock = Clock()
    wf = ReportPrinting(backend, RecordingPrinter(), journal, views.append, "KIOSK-T01", Timeouts(),
                        clock=clock, sleep=lambda s: None, report_printer=report)
    return wf, backend, report, views, journal, clock


def identify(wf):
    wf.handle("start")
    assert wf.state == "reading_card"
    wf.handle("card_read", card=FakeCard())
    assert wf.state == "choosing_documents"


def outcomes(view):
    return {j["doc_no"]: j["status"] for j in view.data["jobs"]}


def test_documents_grouped_with_their_states_then_printed_and_counted(env):
    wf, backend, report, views, journal, clock = env
    identify(wf)
    docs = views[-1]
    assert docs.screen == "documents" and docs.patient.startswith("李*英") and "李秀英" not in docs.patient
    assert [g["name"] for g in docs.data["groups"]] == ["检验报告", "检查报告", "电子发票", "病历"]
    # printable documents come ticked; not-ready and used-up ones cannot be
    assert sorted(tuple(s) for s in docs.data["selected"]) == sorted(
        [("lab", "LAB001"), ("imaging", "IMG001"), ("invoice", "INV001"), ("record", "REC001")])
    wf.handle("toggle_document", kind="imaging", doc_no="IMG002")  # not ready: no tick
    wf.handle("toggle_document", kind="lab", doc_no="LAB002")  # printed already: no tick
    wf.handle("toggle_document", kind="record", doc_no="REC001")  # untick
    assert len(views[-1].data["selected"]) == 3
    wf.handle("print")
    assert wf.state == "done"
    result = views[-1]
    assert result.screen == "print_result" and not result.data["printer_fault"]
    assert outcomes(result) == {"LAB001": "printed", "IMG001": "printed", "INV001": "printed"}
    assert len(report.jobs) == 3 and report.completed == [1, 2, 3]
    assert [backend.docs[k]["printed_count"] for k in (("lab", "LAB001"), ("record", "REC001"))] == [1, 0]
    # Each key was journaled (with its document) before the document's PDF was fetched, and counted with it.
    for name, args, last in backend.calls:
        if name == "document_pdf":
            jobs = last["data"]["jobs"]
            assert last["dest"] == "printing" and jobs[last["data"]["current"]]["doc_no"] == args[2]
        if name == "record_printed":
            assert args[3] in {j["key"] for j in last["data"]["jobs"]}
    clock.t += Timeouts().done + 1
    wf.tick()
    assert wf.state == "home" and wf.visit.patient is None and wf.visit.jobs == []


def test_the_journal_holds_no_personal_data(env):
    wf, backend, report, views, journal, clock = env
    identify(wf)
    wf.handle("print")
    dump = json.dumps(journal.entries(), ensure_ascii=False)
    for secret in ("李秀英", "李*英", FakeCard.id_number, "血常规", "门诊病历", "PDF"):
        assert secret not in dump, secret
    assert "LAB001" in dump  # identifiers are what the journal is for


def test_a_report_not_ready_or_printed_meanwhile_is_refused_with_the_servers_words(env):
    wf, backend, report, views, journal, clock = env
    identify(wf)
    backend.docs[("lab", "LAB001")]["printed_count"] = 1  # printed at another kiosk while the patient chose
    backend.docs[("imaging", "IMG001")].update(ready=False, note="报告尚未出具，预计 16:00 可取", note_en="16:00")
    wf.handle("print")
    result = outcomes(views[-1])
    assert result["LAB001"] == "refused" and result["IMG001"] == "refused" and result["INV001"] == "printed"
    jobs = {j["doc_no"]: j for j in views[-1].data["jobs"]}
    assert "服务台" in jobs["LAB001"]["message"] and "16:00" in jobs["IMG001"]["message"]
    assert len(report.jobs) == 2  # nothing was sent to the printer for the refused ones


def test_printer_out_of_paper_before_printing_prints_nothing_and_says_print_later(env):
    wf, backend, report, views, journal, clock = env
    identify(wf)
    report.health_now = Health.fault("paper_out", "纸张用完")
    wf.handle("print")
    result = views[-1]
    assert wf.state == "done" and result.data["printer_fault"]
    assert set(outcomes(result).values()) == {"not_printed", "skipped"} and report.jobs == []
    assert "稍后" in result.message and "其他自助机" in result.message and "服务台" in result.message
    assert not any(name == "record_printed" for name, _, _ in backend.calls)


def test_paper_runs_out_during_printing_the_rest_waits_and_nothing_unprinted_is_counted(env):
    wf, backend, report, views, journal, clock = env
    identify(wf)
    report.fail_on[2] = "paper_out"
    wf.handle("print")
    result = views[-1]
    assert outcomes(result) == {"LAB001": "printed", "IMG001": "not_printed", "INV001": "skipped",
                                "REC001": "skipped"}
    counted = [args[2] for name, args, _ in backend.calls if name == "record_printed"]
    assert counted == ["LAB001"]
    assert result.data["printer_fault"] and "其他自助机" in result.message
    last = journal.entries()[-1]["data"]["jobs"]
    assert [j["status"] for j in last] == ["printed", "not_printed", "skipped", "skipped"]
    assert [j["counted"] for j in last] == [True, False, False, False]


def test_a_job_whose_outcome_is_lost_is_not_counted_and_says_so(env):
    wf, backend, report, views, journal, clock = env
    identify(wf)
    report.fail_on[1] = "lost"
    wf.handle("print")
    jobs = {j["doc_no"]: j for j in views[-1].data["jobs"]}
    assert jobs["LAB001"]["status"] == "unknown" and "未计入" in jobs["LAB001"]["message"]
    assert not any(name == "record_printed" for name, _, _ in backend.calls)
    assert backend.docs[("lab", "LAB001")]["printed_count"] == 0


def test_cups_refusing_the_job_is_not_printed(env):
    wf, backend, report, views, journal, clock = env
    identify(wf)
    report.fail_on[1] = "refused"
    wf.handle("print")
    assert outcomes(views[-1])["LAB001"] == "not_printed" and views[-1].data["printer_fault"]


def test_server_unreachable_when_counting_asks_again_with_the_same_key(env):
    wf, backend, report, views, journal, clock = env
    identify(wf)
    wf.handle("toggle_document", kind="imaging", doc_no="IMG001")
    wf.handle("toggle_document", kind="invoice", doc_no="INV001")
    wf.handle("toggle_document", kind="record", doc_no="REC001")
    real = backend.record_printed
    answers = iter([ConnectionError, None])

    def flaky(*args):
        real(*args)  # the server counted it, but the answer is lost the first time
        if next(answers):
            from workflows.backend import BackendUnavailable
            raise BackendUnavailable("timeout")
        return {"printed_count": 1}
    backend.record_printed = flaky
    wf.handle("print")
    keys = [args[3] for name, args, _ in backend.calls if name == "record_printed"]
    assert len(keys) == 2 and keys[0] == keys[1]
    assert backend.docs[("lab", "LAB001")]["printed_count"] == 1  # counted once
    assert outcomes(views[-1]) == {"LAB001": "printed"}


def test_server_unreachable_while_listing_ends_with_the_offline_message(env):
    wf, backend, report, views, journal, clock = env
    backend.offline.add("documents")
    wf.handle("start")
    wf.handle("card_read", card=FakeCard())
    assert wf.state == "failed" and "网络" in views[-1].message


def test_server_unreachable_for_a_pdf_leaves_that_document_unprinted(env):
    wf, backend, report, views, journal, clock = env
    identify(wf)
    backend.offline.add("document_pdf")
    wf.handle("print")
    assert set(outcomes(views[-1]).values()) == {"not_printed"} and report.jobs == []
    assert not views[-1].data["printer_fault"]


def test_idle_on_the_list_goes_home_and_wipes(env):
    wf, backend, report, views, journal, clock = env
    identify(wf)
    clock.t += Timeouts().choosing + 1
    wf.tick()
    assert wf.state == "home" and wf.visit.patient is None and wf.visit.documents == []
    assert views[-1].screen == "home"


def test_nothing_ticked_prints_nothing(env):
    wf, backend, report, views, journal, clock = env
    identify(wf)
    for kind, no in (("lab", "LAB001"), ("imaging", "IMG001"), ("invoice", "INV001"), ("record", "REC001")):
        wf.handle("toggle_document", kind=kind, doc_no=no)
    wf.handle("print")
    assert wf.state == "choosing_documents" and report.jobs == []


def test_a_broken_report_printer_switches_the_service_off(env):
    wf, backend, report, views, journal, clock = env
    wf.handle("device_health", device="report_printer", health=Health.fault("paper_out", "纸张用完"))
    usable, why, why_en = wf.availability()
    assert not usable and "报告打印机" in why and "report printer" in why_en
    wf.handle("start")
    assert wf.state == "home"
