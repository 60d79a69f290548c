"""A4 lab-report printing: PDFs laid out by the kiosk, printed through a CUPS queue.

The names are imported on first use (PEP 562): the kiosk opens the printer at start-up, and the PDF layout's
reportlab (~0.15 s) is imported only when a page is drawn.
"""
from __future__ import annotations

import importlib
from typing import Any

_HOMES = {"ReportFontError": "drivers.report.pdf", "lab_report_pdf": "drivers.report.pdf",
          "test_page_pdf": "drivers.report.pdf", "CupsReportPrinter": "drivers.report.printer",
          "JobResult": "drivers.report.printer", "ReportPrinterError": "drivers.report.printer",
          "health_from_state": "drivers.report.printer"}

__all__ = ["CupsReportPrinter", "JobResult", "ReportFontError", "ReportPrinterError", "health_from_state",
           "lab_report_pdf", "test_page_pdf"]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
