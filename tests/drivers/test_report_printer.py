"""The A4 report printer against a real cupsd and a real cups-pdf queue (see drivers/report/testbed.py).

The print path is the one a hospital printer sees: PDF -> pdftopdf -> pdftops -> backend. cups-pdf turns
the PostScript back into a PDF with Ghostscript, which keeps the embedded glyphs but drops the ToUnicode
maps of reportlab's font subsets, so `pdftotext` of the printed file reads Latin text but not Chinese.
Chinese is therefore checked three ways: the submitted PDF's text (masking), the printed file's embedded
CJK font, and printed pages for two different names rendering differently (lost or tofu glyphs would not).
"""
from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from drivers.device import Device
from drivers.health import Health, Status
from drivers.report.pdf import lab_report_pdf, printed_name
from drivers.report.printer import (DEGRADED_REASONS, FAULT_REASONS, JOB_ABORTED, JOB_CANCELED, JOB_COMPLETED,
                                    PRINTER_IDLE, PRINTER_PROCESSING, PRINTER_STOPPED, CupsReportPrinter,
                                    ReportPrinterError, health_from_state)
from drivers.report.testbed import CupsTestbed, TestbedError

POPPLER_TOOLS = ("pdftotext", "pdffonts", "pdftoppm")


def _report(name: str) -> dict[str, object]:
    return {
        "hospital": "示例人民医院 Example Hospital",
        "title": "血常规检验报告单 CBC",
        "patient_name": name,
        "sex": "女 F",
        "age": "45",
        "report_no": "R20260101001",
        "department": "内科 Internal Medicine",
        "specimen": "全血 Whole blood",
        "sample_time": "2026-01-01 08:00",
        "report_time": "2026-01-01 10:00",
        "items": [
            {"name": "白细胞计数 WBC", "result": "11.2", "unit": "10^9/L", "range": "3.5-9.5", "flag": "H"},
            {"name": "血红蛋白 HGB", "result": "128", "unit": "g/L", "range": "115-150", "flag": ""},
            {"name": "血小板计数 PLT", "result": "90", "unit": "10^9/L", "range": "125-350", "flag": "L"},
        ],
    }


def _run(*args: str) -> str:
    return subprocess.run(args, capture_output=True, text=True, check=True, timeout=60).stdout


def _render(pdf: Path, dpi: int = 100) -> np.ndarray:
    prefix = pdf.with_suffix("")
    _run("pdftoppm", "-gray", "-r", str(dpi), "-f", "1", "-l", "1", "-singlefile", "-png", str(pdf),
         str(prefix))
    return np.asarray(Image.open(f"{prefix}.png").convert("L"), dtype=float)


@pytest.fixture(scope="module")
def testbed() -> Iterator[CupsTestbed]:
    """A private cupsd for the module. Missing CUPS is a failure, not a skip: the printer must be tested."""
    missing = [tool for tool in POPPLER_TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"poppler-utils is not installed ({', '.join(missing)} missing): apt-get install "
                    "poppler-utils", pytrace=False)
    bed = CupsTestbed()
    try:
        bed.start()
    except TestbedError as exc:
        pytest.fail(f"cannot run the CUPS testbed: {exc}", pytrace=False)
    try:
        yield bed
    finally:
        bed.stop()


def _printer(bed: CupsTestbed, queue: str | None = None, **kwargs: float) -> CupsReportPrinter:
    printer = CupsReportPrinter(queue or bed.queue, server=bed.server, poll_interval=0.1, **kwargs)
    printer.open()
    return printer


def _fault_queue(bed: CupsTestbed, reasons: str | tuple[str, ...], action: str) -> str:
    return bed.add_fault_queue(f"Fault{uuid.uuid4().hex[:8]}", reasons, action)  # type: ignore[arg-type]


def _print_report(bed: CupsTestbed, name: str, tmp_path: Path) -> tuple[Path, Path]:
    """Print a lab report; returns (the PDF sent, a copy of the PDF cups-pdf wrote)."""
    sent = tmp_path / f"sent-{uuid.uuid4().hex[:6]}.pdf"
    sent.write_bytes(lab_report_pdf(_report(name)))
    printer = _printer(bed)
    job_id = printer.print_pdf(sent.read_bytes(), "lab report")
    result = printer.wait_for_job(job_id, timeout=60)
    assert result.state == JOB_COMPLETED, result
    printed = tmp_path / f"printed-{job_id}.pdf"
    shutil.copy(bed.output_for_job(job_id), printed)
    return sent, printed


# --- the mapping from printer-state-reasons to Health --------------------------------------------------

@pytest.mark.parametrize(("keyword", "code"), [(k, c) for k, c, _ in FAULT_REASONS])
@pytest.mark.parametrize("suffix", ["", "-error", "-warning", "-report"])
def test_fault_reasons_map_to_fault(keyword: str, code: str, suffix: str) -> None:
    health = health_from_state(PRINTER_IDLE, [keyword + suffix])
    assert health.status is Status.FAULT and health.reason == code


@pytest.mark.parametrize(("keyword", "code"), [(k, c) for k, c, _ in DEGRADED_REASONS])
@pytest.mark.parametrize("suffix", ["", "-warning", "-report"])
def test_low_supply_reasons_map_to_degraded(keyword: str, code: str, suffix: str) -> None:
    health = health_from_state(PRINTER_IDLE, [keyword + suffix])
    assert health.status is Status.DEGRADED and health.reason == code and health.usable


@pytest.mark.parametrize("keyword", ["media-empty", "media-needed", "media-jam", "door-open", "cover-open",
                                     "offline", "paused", "media-low", "toner-low", "marker-supply-low"])
def test_every_keyword_in_the_brief_is_mapped(keyword: str) -> None:
    assert health_from_state(PRINTER_IDLE, [f"{keyword}-error"]).status is not Status.OK


def test_idle_queue_without_reasons_is_ok() -> None:
    assert health_from_state(PRINTER_IDLE, ["none"]) == Health.ok()
    assert health_from_state(PRINTER_PROCESSING, []) == Health.ok()


def test_stopped_or_rejecting_queue_is_a_fault() -> None:
    assert health_from_state(PRINTER_STOPPED, []).reason == "offline"
    assert health_from_state(PRINTER_IDLE, [], accepting=False).reason == "offline"


def test_hardware_fault_outranks_stopped_and_low_supplies() -> None:
    health = health_from_state(PRINTER_STOPPED, ["toner-low-report", "paused", "media-jam-error"], "Jammed")
    assert (health.status, health.reason) == (Status.FAULT, "jam")
    assert "Jammed" in health.detail


def test_unknown_reasons_do_not_raise_the_alarm() -> None:
    """Vendors add their own keywords (e.g. com.hp-...); only known ones may take a kiosk out of service."""
    assert health_from_state(PRINTER_IDLE, ["com.example-calibrating-report", "cups-waiting-for-job-completed"]
                             ) == Health.ok()


REASON_WORDS = st.sampled_from([k for k, _, _ in FAULT_REASONS + DEGRADED_REASONS] + ["none", "other", ""])
REASONS = st.lists(st.one_of(
    st.builds(lambda k, s: k + s, REASON_WORDS, st.sampled_from(["", "-error", "-warning", "-report"])),
    st.text(max_size=40)), max_size=8)


@settings(max_examples=300, deadline=None)
@given(state=st.one_of(st.none(), st.integers(-5, 10)), reasons=REASONS, message=st.text(max_size=60),
       accepting=st.booleans())
def test_any_reason_list_gives_a_health(state: int | None, reasons: list[str], message: str,
                                        accepting: bool) -> None:
    health = health_from_state(state, reasons, message, accepting)
    assert isinstance(health, Health) and isinstance(health.status, Status)
    if health.status is not Status.OK:
        assert health.reason  # a technician always gets a code to act on


# --- paper: what the patient takes home ----------------------------------------------------------------

@pytest.mark.parametrize(("raw", "shown"), [("李秀英", "李*英"), ("张三", "张*"), ("欧阳娜娜", "欧**娜"),
                                            ("李*英", "李*英"), ("Smith", "S***"), ("", ""), (None, "")])
def test_names_are_masked_on_paper(raw: str | None, shown: str) -> None:
    assert printed_name(raw) == shown


def test_lab_report_shows_only_the_masked_name(tmp_path: Path) -> None:
    sent = tmp_path / "report.pdf"
    sent.write_bytes(lab_report_pdf(_report("李秀英")))
    text = _run("pdftotext", str(sent), "-")
    assert "李*英" in text
    assert "李秀英" not in text and "秀" not in text


# --- the real print path -------------------------------------------------------------------------------

def test_printer_is_a_device(testbed: CupsTestbed) -> None:
    assert isinstance(_printer(testbed), Device)


def test_lab_report_prints_with_embedded_font_and_latin_after_chinese(testbed: CupsTestbed,
                                                                      tmp_path: Path) -> None:
    sent, printed = _print_report(testbed, "李秀英", tmp_path)
    assert printed.read_bytes().startswith(b"%PDF")

    fonts = _run("pdffonts", str(printed)).splitlines()[2:]
    assert fonts, "the printed PDF has no fonts: the text was rasterised or lost"
    assert any("WenQuanYi" in line for line in fonts), fonts
    for line in fonts:
        # columns: name type encoding emb sub uni object-id generation; Type 3 fonts have no name
        emb = line.split()[-5]
        assert emb == "yes", f"a font is not embedded in the printed file: {line}"

    text = _run("pdftotext", str(printed), "-")
    # Latin text that follows Chinese in the same run: what the non-embedded STSong-Light lost in print.
    for latin in ("Example Hospital", "CBC", "Name", "Report No.", "R20260101001", "Internal", "Medicine", "WBC",
                  "HGB", "10^9/L", "g/L", "3.5-9.5", "Page 1 of 1"):
        assert latin in text, f"{latin!r} is missing from the printed report:\n{text}"
    assert "*" in text  # the mask itself reached paper

    sent_text = _run("pdftotext", str(sent), "-")
    assert "姓名 Name：李*英" in sent_text and "李秀英" not in sent_text


def test_chinese_glyphs_survive_printing(testbed: CupsTestbed, tmp_path: Path) -> None:
    """Two names that differ only in Chinese print differently, and only where the name is printed.

    Dropped glyphs or tofu boxes would make both pages alike; a shifted layout would differ everywhere.
    """
    _, first = _print_report(testbed, "李秀英", tmp_path)
    _, second = _print_report(testbed, "王秀英", tmp_path)
    a, b = _render(first), _render(second)
    assert a.shape == b.shape
    assert (a < 128).sum() > 5000, "the printed page is (nearly) blank"
    changed_rows = np.nonzero(np.abs(a - b).max(axis=1) > 64)[0]
    assert changed_rows.size > 0, "names that differ in Chinese printed identically: CJK glyphs were lost"
    assert changed_rows.size < a.shape[0] * 0.08, "more than the name lines changed between the two prints"


def test_idle_queue_is_healthy_and_self_test_prints(testbed: CupsTestbed) -> None:
    printer = _printer(testbed)
    assert printer.health() == Health.ok()
    before = set(testbed.output_dir.iterdir())
    assert printer.self_test() == Health.ok()
    assert set(testbed.output_dir.iterdir()) - before, "the self-test page did not reach the printer"


def test_paused_queue_is_a_fault(testbed: CupsTestbed) -> None:
    printer = _printer(testbed)
    testbed.pause()
    try:
        health = printer.health()
        assert health.status is Status.FAULT and health.reason == "offline", health
        assert printer.self_test() == health  # no test page is sent into a stopped queue
    finally:
        testbed.resume()
    assert printer.health() == Health.ok()


def test_missing_queue_is_no_queue(testbed: CupsTestbed) -> None:
    printer = _printer(testbed, "NoSuchQueue")
    health = printer.health()
    assert (health.status, health.reason) == (Status.FAULT, "no_queue")
    with pytest.raises(ReportPrinterError, match="NoSuchQueue"):
        printer.print_pdf(lab_report_pdf(_report("李秀英")), "lab report")


def test_removed_queue_becomes_no_queue(testbed: CupsTestbed) -> None:
    queue = _fault_queue(testbed, (), "ok")
    printer = _printer(testbed, queue)
    assert printer.health() == Health.ok()
    testbed.remove_queue(queue)
    assert printer.health().reason == "no_queue"


def test_unreachable_cups_is_cups_unavailable(tmp_path: Path) -> None:
    printer = CupsReportPrinter("KioskPDF", server=str(tmp_path / "no-cupsd.sock"))
    health = printer.health()
    assert (health.status, health.reason) == (Status.FAULT, "cups_unavailable")
    with pytest.raises(ReportPrinterError, match="unreachable"):
        printer.print_pdf(b"%PDF-1.4\n", "x")


def test_not_a_pdf_is_refused(testbed: CupsTestbed) -> None:
    with pytest.raises(ReportPrinterError, match="not a PDF"):
        _printer(testbed).print_pdf(b"hello", "x")


def test_paper_out_shows_in_health_and_the_job_is_cancelled_on_timeout(testbed: CupsTestbed) -> None:
    queue = _fault_queue(testbed, "media-empty-error", "hang")
    printer = _printer(testbed, queue)
    job_id = printer.print_pdf(lab_report_pdf(_report("李秀英")), "lab report")
    deadline = time.monotonic() + 15
    while printer.health().reason != "paper_out" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert printer.health().reason == "paper_out"

    started = time.monotonic()
    with pytest.raises(ReportPrinterError) as failure:
        printer.wait_for_job(job_id, timeout=2)
    assert time.monotonic() - started < 10
    message = str(failure.value)
    assert "did not finish in time" in message and "cancelled" in message and "out of paper" in message
    assert failure.value.result is not None and failure.value.result.job_id == job_id

    deadline = time.monotonic() + 15
    while printer._job_result(job_id).state != JOB_CANCELED and time.monotonic() < deadline:
        time.sleep(0.1)
    assert printer._job_result(job_id).state == JOB_CANCELED, "the timed-out job is still queued"


@pytest.mark.parametrize(("reasons", "code"), [("media-jam-error", "jam"), ("cover-open-error", "cover_open"),
                                                ("door-open-warning", "cover_open")])
def test_hardware_fault_reported_by_the_backend(testbed: CupsTestbed, reasons: str, code: str) -> None:
    queue = _fault_queue(testbed, reasons, "fail")
    printer = _printer(testbed, queue)
    job_id = printer.print_pdf(lab_report_pdf(_report("李秀英")), "lab report")
    with pytest.raises(ReportPrinterError):
        printer.wait_for_job(job_id, timeout=30)
    health = printer.health()
    assert (health.status, health.reason) == (Status.FAULT, code)


def test_failing_printer_aborts_the_job_with_a_clear_error(testbed: CupsTestbed) -> None:
    queue = _fault_queue(testbed, (), "fail")
    printer = _printer(testbed, queue)
    job_id = printer.print_pdf(lab_report_pdf(_report("李秀英")), "lab report")
    with pytest.raises(ReportPrinterError) as failure:
        printer.wait_for_job(job_id, timeout=30)
    assert failure.value.result is not None and failure.value.result.state == JOB_ABORTED
    assert f"job {job_id}" in str(failure.value) and "aborted" in str(failure.value)
    assert "simulated printer failure" in str(failure.value)  # the backend's own words reach the log


def test_paper_low_is_degraded_but_prints(testbed: CupsTestbed) -> None:
    queue = _fault_queue(testbed, "media-low-report", "ok")
    printer = _printer(testbed, queue)
    job_id = printer.print_pdf(lab_report_pdf(_report("李秀英")), "lab report")
    assert printer.wait_for_job(job_id, timeout=30).state == JOB_COMPLETED
    health = printer.health()
    assert (health.status, health.reason) == (Status.DEGRADED, "paper_low")
