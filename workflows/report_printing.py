"""Report printing (报告打印, K8): lab and imaging reports, e-invoices and medical-record summaries on the A4
report printer.

ID card → the patient's documents, grouped (检验报告, 检查报告, 电子发票, 病历), each with its state: ready, not ready
yet (with the time it is expected) or already printed as often as a kiosk may (reprints at the counter) → the
patient ticks documents (those printable now are ticked for them) → each is printed in turn: fetch the PDF,
print it on the report printer's own thread, follow the CUPS job to the end, and only when CUPS says
"completed" tell the server to count it → a result screen that names every document printed or not, and why.

Why counting waits for "completed": a print limit that a jammed printer can use up would cost the patient a
trip to the counter for paper they never got. So:

* each document's idempotency key is made in the `print` transition and journaled with it, before the first
  job starts; every later document starts with its own journaled transition (`next_document`), so the journal
  says which job was in flight if the kiosk dies;
* a job CUPS aborted or cancelled is "not printed" and not counted;
* a job whose outcome the kiosk lost (CUPS stopped answering while it ran) is "outcome unknown": not counted,
  and the patient is told to check the tray and ask at the counter if a copy is missing;
* a printer fault before or during printing stops the batch: what was not printed is named, with where else
  to print it (another kiosk, the counter) or to come back later.

The journal holds document kinds, numbers, keys and outcomes; never a name, a title or a report's content.
"""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

from transitions import EventData

from drivers.health import Health
from workflows.backend import BackendError, BackendUnavailable
from workflows.service_base import (OFFLINE, JournaledService, Session, ending_transitions,
                                    identification_transitions)
from workflows.view import View

log = logging.getLogger(__name__)

WORKFLOW = "reports"

#: (kind, Chinese, English), in the order the screen groups them.
GROUPS: list[tuple[str, str, str]] = [
    ("lab", "检验报告", "Lab reports"),
    ("imaging", "检查报告", "Imaging reports"),
    ("invoice", "电子发票", "E-invoices"),
    ("record", "病历", "Medical records"),
]

STATES = ["home", "reading_card", "identifying", "choosing_documents", "printing", "done", "failed"]

TRANSITIONS: list[dict[str, Any]] = [
    *identification_transitions("choosing_documents"),
    {"trigger": "print", "source": "choosing_documents", "dest": "printing", "conditions": "_documents_ticked",
     "prepare": "_queue_jobs"},
    # One journaled step per document: its key is on disk before its job is submitted.
    {"trigger": "next_document", "source": "printing", "dest": "printing", "prepare": "_advance"},
    {"trigger": "all_done", "source": "printing", "dest": "done"},
    {"trigger": "cancel", "source": ["reading_card", "identifying", "choosing_documents"], "dest": "home"},
    {"trigger": "timeout", "source": ["reading_card", "choosing_documents"], "dest": "home"},
    {"trigger": "finish", "source": "choosing_documents", "dest": "home"},
    *ending_transitions(STATES),
]

BUSY_TEXT = {"identifying": ("正在查询您的报告和票据…", "Looking up your reports and invoices…"),
             "printing": ("正在打印，请在出纸口等候…", "Printing… please wait at the printer")}
IDLE = {"reading_card": "reading_card", "choosing_documents": "choosing", "done": "done", "failed": "failed"}

NOTHING = ("暂无可查询的报告、发票或病历", "There are no reports, invoices or records for you yet.")
COUNTER = ("门诊楼一楼服务台", "the service desk, outpatient building 1F")
PRINT_LATER = (f"报告打印机暂时无法使用。未打印的报告可稍后再来打印，或到其他自助机、{COUNTER[0]}打印",
               f"The report printer is out of order. Come back later to print what is missing, or print it at "
               f"another kiosk or {COUNTER[1]}.")

# Outcomes of one document, as the result screen and the journal name them.
QUEUED, PRINTED, NOT_PRINTED, UNKNOWN, REFUSED, SKIPPED = (
    "queued", "printed", "not_printed", "unknown", "refused", "skipped")


class ReportPrinter(Protocol):
    """The part of the report-printer contract this service uses (drivers.report.printer.CupsReportPrinter,
    reached through a DeviceProxy so every call runs on the printer's own thread)."""

    def health(self) -> Health: ...
    def print_pdf(self, pdf: bytes, title: str) -> int: ...
    def wait_for_job(self, job_id: int, timeout: float | None = None) -> Any: ...


@dataclass
class PrintJob:
    """One ticked document on its way to paper. `title` is for the screen only and never journaled."""

    kind: str
    doc_no: str
    title: str
    key: str = field(default_factory=lambda: uuid.uuid4().hex)
    status: str = QUEUED
    counted: bool = False  # the server acknowledged the print (POST printed)
    message: str = ""
    message_en: str = ""

    def journal_data(self) -> dict[str, Any]:
        return {"kind": self.kind, "doc_no": self.doc_no, "key": self.key, "status": self.status,
                "counted": self.counted}


@dataclass
class ReportsVisit(Session):
    """One patient's session; replaced on every return home (the wipe)."""

    documents: list[dict[str, Any]] = field(default_factory=list)
    selected: list[tuple[str, str]] = field(default_factory=list)  # (kind, doc_no)
    jobs: list[PrintJob] = field(default_factory=list)
    current: int = -1  # index of the job in flight
    printer_fault: bool = False

    def journal_data(self) -> dict[str, Any]:
        """Kinds, numbers, keys and outcomes only: no name, no document title, no content."""
        return {**super().journal_data(), "jobs": [j.journal_data() for j in self.jobs] or None,
                "current": self.current if self.jobs else None}


class ReportPrinting(JournaledService):
    """报告打印. `report_printer` is the A4 printer (a DeviceProxy in the kiosk); `printer` (the receipt printer)
    is unused here but part of every service's constructor."""

    WORKFLOW = WORKFLOW
    STATES = STATES
    TRANSITIONS = TRANSITIONS
    REQUIRED_DEVICES = {"id_card": ("身份证读卡器", "ID-card reader"),
                        "report_printer": ("报告打印机", "report printer")}
    BUSY_TEXT = BUSY_TEXT
    IDLE = IDLE
    CANCELLABLE = frozenset(["reading_card", "choosing_documents"])

    visit: ReportsVisit

    def __init__(self, *args: Any, report_printer: ReportPrinter, **kwargs: Any):
        self.report_printer = report_printer
        super().__init__(*args, **kwargs)

    def new_session(self) -> ReportsVisit:
        return ReportsVisit()

    # ---- inputs -------------------------------------------------------------------------------------

    def handle(self, intent: str, **kwargs: Any) -> None:
        if intent == "toggle_document":  # a tick: the visit's selection, nothing journaled
            self._last_activity = self.clock()
            if self.state == "choosing_documents":
                self._toggle(str(kwargs.get("kind", "")), str(kwargs.get("doc_no", "")))
                self.publish(self._view_for(self.state))
            return
        super().handle(intent, **kwargs)

    def _toggle(self, kind: str, doc_no: str) -> None:
        v = self.visit
        doc = self._document(kind, doc_no)
        if doc is None or not doc.get("can_print"):
            return
        if (kind, doc_no) in v.selected:
            v.selected.remove((kind, doc_no))
        else:
            v.selected.append((kind, doc_no))

    def _document(self, kind: str, doc_no: str) -> dict[str, Any] | None:
        return next((d for d in self.visit.documents if d.get("kind") == kind and d.get("doc_no") == doc_no), None)

    # ---- conditions and prepare callbacks (run before the journal entry) ----------------------------

    def _documents_ticked(self, event: EventData) -> bool:
        return bool(self.visit.selected)

    def _queue_jobs(self, event: EventData) -> None:
        """Every ticked document gets its key now, so all keys are journaled with the `print` transition."""
        v = self.visit
        order = {kind: i for i, (kind, _, _) in enumerate(GROUPS)}
        chosen = sorted(v.selected, key=lambda s: (order.get(s[0], 9), s[1]))
        v.jobs = [PrintJob(kind, doc_no, str((self._document(kind, doc_no) or {}).get("title", "")))
                  for kind, doc_no in chosen]
        v.current = 0
        v.printer_fault = False

    def _advance(self, event: EventData) -> None:
        """The next document becomes the one in flight before the journal entry, so the entry names it."""
        self.visit.current += 1

    # ---- side effects -------------------------------------------------------------------------------

    def _enter_choosing_documents(self, event: EventData) -> None:
        v = self.visit
        v.notice = ("", "")
        ok, docs = self._load(lambda: self.backend.documents(v.patient["patient_id"]))
        if not ok:
            return
        v.documents = list(docs or [])
        # What can be printed now is ticked for the patient: most come for exactly that (K14: fewer steps).
        v.selected = [(d["kind"], d["doc_no"]) for d in v.documents if d.get("can_print")]
        if not v.documents:
            v.notice = NOTHING

    def _enter_printing(self, event: EventData) -> None:
        v = self.visit
        job = v.jobs[v.current]
        self._print_one(job)
        if v.printer_fault:  # the printer cannot go on: the rest waits for another kiosk or later
            for rest in v.jobs[v.current + 1:]:
                rest.status, rest.message, rest.message_en = (SKIPPED, "打印机故障，本份未开始打印", "Not started: the printer is out of order")
            self._go("all_done")
        elif v.current + 1 < len(v.jobs):
            self._go("next_document")
        else:
            self._go("all_done")

    def _enter_done(self, event: EventData) -> None:
        if self.visit.printer_fault:
            self.visit.notice = PRINT_LATER

    def _print_one(self, job: PrintJob) -> None:
        """One document: printer check, PDF, job, wait for the end, then count it. Sets `job.status`."""
        v = self.visit
        usable, _why, _why_en = self.availability()
        health = self._printer_health()
        if not usable or not health.usable:
            log.warning("report printer unusable before a %s print: %s", job.kind, health.reason)
            self._printer_broke(job, "打印机故障，未打印", "The printer is out of order; not printed")
            return
        try:
            pdf = self._retrying(lambda: self.backend.document_pdf(v.patient["patient_id"], job.kind, job.doc_no))
        except BackendError as exc:  # not ready after all, or printed elsewhere meanwhile (limit reached)
            job.status, job.message, job.message_en = REFUSED, exc.message, exc.message_en
            return
        except BackendUnavailable:
            job.status, job.message, job.message_en = NOT_PRINTED, OFFLINE[0], OFFLINE[1]
            return
        try:
            job_id = self.report_printer.print_pdf(pdf, f"{job.kind}-{job.doc_no}")
        except Exception as exc:  # CUPS refused or did not answer: nothing was submitted
            log.warning("report print not submitted (%s): %s", job.kind, type(exc).__name__)
            self._printer_broke(job, "打印机无法接收打印任务，未打印", "The printer did not take the job; not printed")
            return
        del pdf  # the report's content is not kept beyond the job
        try:
            self.report_printer.wait_for_job(job_id)
        except Exception as exc:
            self._job_failed(job, exc)
            return
        job.status, job.message, job.message_en = PRINTED, "已打印", "Printed"
        self._count(job)

    def _job_failed(self, job: PrintJob, exc: Exception) -> None:
        """CUPS aborted or cancelled the job (a definite "no"), or the kiosk lost sight of it (unknown)."""
        result = getattr(exc, "result", None)
        if result is None:  # CUPS stopped answering mid-job, or the device thread did not come back in time
            log.warning("report print outcome unknown (%s): %s", job.kind, type(exc).__name__)
            job.status = UNKNOWN
            job.message = "打印结果未知，未计入打印次数。请查看出纸口；如未取到，请到服务台补打"
            job.message_en = ("The outcome is unknown and it was not counted. Check the tray; if there is no copy, "
                              "ask at the service desk.")
            self.visit.printer_fault = True  # a printer that lost its jobs is not trusted with the next one
            return
        log.warning("report print job %s ended %s (%s)", result.job_id, result.state_name, job.kind)
        self._printer_broke(job, "打印未完成（打印机故障），未计入打印次数",
                            "Not printed completely (printer fault); not counted")

    def _printer_broke(self, job: PrintJob, message: str, message_en: str) -> None:
        job.status, job.message, job.message_en = NOT_PRINTED, message, message_en
        self.visit.printer_fault = True

    def _count(self, job: PrintJob) -> None:
        """Tell the server a copy came out, under the journaled key: asked again after a lost answer, the
        server counts it once."""
        v = self.visit
        try:
            self._retrying(lambda: self.backend.record_printed(v.patient["patient_id"], job.kind, job.doc_no,
                                                               job.key))
            job.counted = True
        except (BackendError, BackendUnavailable) as exc:
            # The paper is in the patient's hand; the count stays owed under the key the journal holds.
            log.warning("completed %s print not counted yet: %s", job.kind, type(exc).__name__)

    def _printer_health(self) -> Health:
        try:
            return self.report_printer.health()
        except Exception as exc:  # a health check that fails is a printer that cannot be trusted
            return Health.fault("health_check_failed", type(exc).__name__)

    # ---- view ---------------------------------------------------------------------------------------

    def _groups(self) -> list[dict[str, Any]]:
        docs = self.visit.documents
        return [{"kind": kind, "name": zh, "name_en": en, "documents": [d for d in docs if d.get("kind") == kind]}
                for kind, zh, en in GROUPS if any(d.get("kind") == kind for d in docs)]

    def _view_for(self, state: str) -> View:
        v = self.visit
        if state == "home":
            return self._home_view()
        base = self._base_view(state)
        msg, msg_en = v.notice
        if state == "reading_card":
            return View("insert_card", **base)
        if state == "printing":
            job = v.jobs[v.current]
            n, total = v.current + 1, len(v.jobs)
            return View("busy", {"text": f"正在打印第 {n} / {total} 份：{job.title}",
                                 "text_en": f"Printing {n} of {total}… please wait at the printer"}, **base)
        if state in BUSY_TEXT:
            text = BUSY_TEXT[state]
            return View("busy", {"text": text[0], "text_en": text[1]}, **base)
        if state == "choosing_documents":
            return View("documents", {"groups": self._groups(),
                                      "selected": [list(s) for s in v.selected]},
                        message=msg, message_en=msg_en, **base)
        if state == "done":
            return View("print_result", {"jobs": [{"kind": j.kind, "doc_no": j.doc_no, "title": j.title,
                                                   "status": j.status, "message": j.message,
                                                   "message_en": j.message_en} for j in v.jobs],
                                         "printer_fault": v.printer_fault,
                                         "way_to": [COUNTER[0]] if any(j.status != PRINTED for j in v.jobs) else []},
                        message=msg, message_en=msg_en, **base)
        return View("error", {}, message=msg, message_en=msg_en, **base)
