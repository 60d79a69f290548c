"""A4 report printer behind a CUPS queue, through pycups.

CUPS owns the printer: the kiosk submits a PDF to a named queue and follows the job until CUPS says it
completed. Paper, jam and cover state come from the queue's printer-state-reasons, which every CUPS
backend and driver reports in the same vocabulary, so one mapping serves whatever model the site bought.
"""
from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Iterable

import cups

from drivers.health import Health

# printer-state (RFC 8011)
PRINTER_IDLE, PRINTER_PROCESSING, PRINTER_STOPPED = 3, 4, 5
# job-state (RFC 8011)
JOB_PENDING, JOB_HELD, JOB_PROCESSING, JOB_STOPPED = 3, 4, 5, 6
JOB_CANCELED, JOB_ABORTED, JOB_COMPLETED = 7, 8, 9
JOB_STATE_NAMES = {3: "pending", 4: "held", 5: "processing", 6: "stopped", 7: "canceled", 8: "aborted",
                   9: "completed"}

IPP_NOT_FOUND = 0x0406

# Reason keywords (without their -error/-warning/-report suffix), most serious first. The first match wins.
FAULT_REASONS: tuple[tuple[str, str, str], ...] = (
    ("media-empty", "paper_out", "纸张用完 / the printer is out of paper"),
    ("media-needed", "paper_out", "需要装纸 / the printer needs paper"),
    ("media-jam", "jam", "卡纸 / paper jam"),
    ("door-open", "cover_open", "机门打开 / a printer door is open"),
    ("cover-open", "cover_open", "机盖打开 / the printer cover is open"),
    ("offline", "offline", "打印机离线 / the printer is offline"),
    ("connecting-to-device", "offline", "正在连接打印机 / CUPS cannot reach the printer yet"),
    ("shutdown", "offline", "打印机已关机 / the printer is shut down"),
    ("paused", "offline", "队列已暂停 / the print queue is paused (stopped)"),
    ("toner-empty", "toner_out", "墨粉用完 / the printer is out of toner"),
    ("marker-supply-empty", "toner_out", "耗材用完 / a marker supply is empty"),
)
DEGRADED_REASONS: tuple[tuple[str, str, str], ...] = (
    ("media-low", "paper_low", "纸张不足 / paper is running low"),
    ("toner-low", "toner_low", "墨粉不足 / toner is running low"),
    ("marker-supply-low", "toner_low", "耗材不足 / a marker supply is running low"),
)
REASON_SUFFIXES = ("-error", "-warning", "-report")


class ReportPrinterError(Exception):
    """The report was not printed: the workflow tells the patient to collect it at the lab counter.

    `result` carries the job's last known state when CUPS took the job, so the workflow and the fleet
    report can tell "aborted by the printer" from "cancelled after a timeout" without parsing the message.
    """

    def __init__(self, message: str, result: "JobResult | None" = None) -> None:
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class JobResult:
    job_id: int
    state: int
    reasons: tuple[str, ...] = ()
    message: str = ""
    pages: int | None = None

    @property
    def state_name(self) -> str:
        return JOB_STATE_NAMES.get(self.state, str(self.state))


def _keyword(reason: str) -> str:
    for suffix in REASON_SUFFIXES:
        if reason.endswith(suffix):
            return reason[: -len(suffix)]
    return reason


def health_from_state(state: int | None, reasons: Iterable[str], message: str = "",
                      accepting: bool = True) -> Health:
    """Map a queue's printer-state, printer-state-reasons and printer-state-message to a `Health`.

    A pure function so the mapping can be checked against the reason lists real printers send, which
    cannot be provoked on a test queue. Hardware faults outrank a stopped queue, since "paper out" tells
    the technician more than "stopped" when both are true.
    """
    keywords = [_keyword(r) for r in reasons if r and r != "none"]
    suffix = f" ({message})" if message else ""
    for wanted, code, text in FAULT_REASONS:
        if wanted in keywords:
            return Health.fault(code, text + suffix)
    if state == PRINTER_STOPPED:
        return Health.fault("offline", "打印队列已停止 / the print queue is stopped" + suffix)
    if not accepting:
        return Health.fault("offline", "打印队列拒绝作业 / the print queue is rejecting jobs" + suffix)
    for wanted, code, text in DEGRADED_REASONS:
        if wanted in keywords:
            return Health.degraded(code, text + suffix)
    return Health.ok()


class CupsReportPrinter:
    """One CUPS queue as a kiosk `Device`.

    Health faults are "no_queue" (CUPS answers but has no such queue), "cups_unavailable" (the scheduler
    does not answer) and the hardware codes of `health_from_state`; CUPS itself reconnects to the printer,
    so the driver only re-creates its HTTP connection when a call fails.
    """

    def __init__(self, queue: str, server: str | None = None, job_timeout: float = 60,
                 poll_interval: float = 0.5) -> None:
        self.queue = queue
        self.server = server  # "host", "host:port" or a domain socket path; None uses the client default
        self.job_timeout = job_timeout
        self.poll_interval = poll_interval
        self._conn: cups.Connection | None = None

    def open(self) -> None:
        self._connection()

    def close(self) -> None:
        self._conn = None  # pycups closes the HTTP connection when the object goes away

    def health(self) -> Health:
        try:
            attrs = self._printer_attributes()
        except ReportPrinterError as exc:
            return Health.fault("cups_unavailable", str(exc))
        if attrs is None:
            return Health.fault("no_queue", f"打印队列不存在 / CUPS has no queue named {self.queue!r}")
        return health_from_state(attrs.get("printer-state"), _as_list(attrs.get("printer-state-reasons")),
                                 str(attrs.get("printer-state-message", "") or ""),
                                 bool(attrs.get("printer-is-accepting-jobs", True)))

    def self_test(self) -> Health:
        """Print the test page and follow it to the end: a queue can look idle and still fail every job."""
        health = self.health()
        if not health.usable:
            return health
        try:
            from drivers.report.pdf import test_page_pdf  # reportlab (~0.15 s) only when a page is drawn

            job_id = self.print_pdf(test_page_pdf(os.uname().nodename), "自检 Self-test")
            self.wait_for_job(job_id)
        except ReportPrinterError as exc:
            return Health.fault("self_test_failed", str(exc))
        return self.health()

    def print_pdf(self, pdf: bytes, title: str) -> int:
        """Submit a PDF and return the CUPS job id without waiting for the paper.

        The bytes go through a temporary file because `printFile` is the pycups call every CUPS version
        accepts; CUPS copies the document into its spool during the call, so the file is removed at once.
        """
        if not pdf.startswith(b"%PDF"):
            raise ReportPrinterError("不是 PDF 文档 / the document to print is not a PDF")
        conn = self._connection()
        fd, path = tempfile.mkstemp(prefix="kiosk-report-", suffix=".pdf")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(pdf)
            try:
                return int(conn.printFile(self.queue, path, title, {"document-format": "application/pdf"}))
            except cups.IPPError as exc:
                status, text = _ipp_error(exc)
                if status == IPP_NOT_FOUND:
                    raise ReportPrinterError(f"打印队列不存在 / CUPS has no queue named {self.queue!r}") from exc
                raise ReportPrinterError(f"打印提交失败 / CUPS refused the job on {self.queue!r}: {text}") from exc
            except RuntimeError as exc:
                self._conn = None
                raise ReportPrinterError(f"打印服务不可用 / CUPS is unreachable: {exc}") from exc
        finally:
            try:
                os.unlink(path)
            except OSError:
                pass

    def wait_for_job(self, job_id: int, timeout: float | None = None) -> JobResult:
        """Follow a job until CUPS finishes it.

        A job that has not finished by the timeout is cancelled: a lab report that comes out of the tray
        minutes after the patient walked away is a privacy leak, not a late success.
        """
        deadline = time.monotonic() + (self.job_timeout if timeout is None else timeout)
        while True:
            result = self._job_result(job_id)
            if result.state == JOB_COMPLETED:
                return result
            if result.state in (JOB_CANCELED, JOB_ABORTED):
                why = result.message or ", ".join(result.reasons) or "no reason given"
                raise ReportPrinterError(f"打印失败 / job {job_id} on {self.queue!r} was {result.state_name}: "
                                         f"{why}", result)
            if time.monotonic() >= deadline:
                health = self.health()
                self._cancel(job_id)
                why = health.detail if not health.usable else (result.message or result.state_name)
                raise ReportPrinterError(f"打印超时 / job {job_id} on {self.queue!r} did not finish in time "
                                         f"and was cancelled: {why}", result)
            time.sleep(self.poll_interval)

    def _job_result(self, job_id: int) -> JobResult:
        try:
            attrs = self._connection().getJobAttributes(job_id, requested_attributes=[
                "job-state", "job-state-reasons", "job-printer-state-message", "job-media-sheets-completed"])
        except cups.IPPError as exc:
            raise ReportPrinterError(f"查询打印作业失败 / cannot read job {job_id}: {_ipp_error(exc)[1]}") from exc
        except RuntimeError as exc:
            self._conn = None
            raise ReportPrinterError(f"打印服务不可用 / CUPS is unreachable: {exc}") from exc
        sheets = attrs.get("job-media-sheets-completed")
        return JobResult(job_id=job_id, state=int(attrs.get("job-state", 0)),
                         reasons=tuple(_as_list(attrs.get("job-state-reasons"))),
                         message=str(attrs.get("job-printer-state-message", "") or ""),
                         pages=int(sheets) if isinstance(sheets, int) else None)

    def _cancel(self, job_id: int) -> None:
        try:
            self._connection().cancelJob(job_id, purge_job=False)
        except (cups.IPPError, RuntimeError, ReportPrinterError):
            pass  # the job may have finished meanwhile; the caller already reports the failure

    def _printer_attributes(self) -> dict[str, Any] | None:
        """The queue's attributes, or None when CUPS answers but has no such queue."""
        for attempt in range(2):  # a cached connection may have gone stale when cupsd restarted
            try:
                return self._connection().getPrinterAttributes(self.queue, requested_attributes=[
                    "printer-state", "printer-state-reasons", "printer-state-message",
                    "printer-is-accepting-jobs"])
            except cups.IPPError as exc:
                status, text = _ipp_error(exc)
                if status == IPP_NOT_FOUND:
                    return None
                self._conn = None
                if attempt:
                    raise ReportPrinterError(f"打印服务不可用 / CUPS did not answer for {self.queue!r}: "
                                             f"{text}") from exc
            except RuntimeError as exc:
                self._conn = None
                if attempt:
                    raise ReportPrinterError(f"打印服务不可用 / CUPS is unreachable: {exc}") from exc
        return None  # unreachable: the loop either returns or raises

    def _connection(self) -> cups.Connection:
        if self._conn is None:
            try:
                self._conn = cups.Connection(**self._server_args())
            except RuntimeError as exc:
                raise ReportPrinterError(f"打印服务不可用 / CUPS is unreachable at "
                                         f"{self.server or cups.getServer()}: {exc}") from exc
        return self._conn

    def _server_args(self) -> dict[str, Any]:
        if not self.server:
            return {}
        if self.server.startswith("/"):
            return {"host": self.server}
        host, sep, port = self.server.rpartition(":")
        if sep and port.isdigit() and host and not host.endswith(":"):
            return {"host": host, "port": int(port)}
        return {"host": self.server}


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [str(value)]


def _ipp_error(exc: cups.IPPError) -> tuple[int | None, str]:
    args = exc.args
    if len(args) >= 2:
        return int(args[0]), str(args[1])
    return None, str(exc)
