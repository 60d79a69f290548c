"""A4 lab-report printing: PDFs laid out by the kiosk, printed through a CUPS queue."""
from drivers.report.pdf import ReportFontError, lab_report_pdf, test_page_pdf
from drivers.report.printer import CupsReportPrinter, JobResult, ReportPrinterError, health_from_state

__all__ = ["CupsReportPrinter", "JobResult", "ReportFontError", "ReportPrinterError", "health_from_state",
           "lab_report_pdf", "test_page_pdf"]
