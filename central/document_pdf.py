"""Print-ready A4 PDFs of a patient's documents: lab and imaging reports, medical-record summaries, e-invoices.

Lab reports use the report printer's own layout (``drivers.report.pdf``); the others share its embedded CJK font
(a TrueType subset in the file, so the printer's filters cannot drop the Chinese text) and its masking. The
patient's name is always printed masked (李秀英 -> 李*英) and the ID number never: a page left in the kiosk's
tray must not identify anyone (PIPL). The document number and the hospital identify the paper at the counter.
"""
from __future__ import annotations

import io
from typing import Any
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER, TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from central.his.adapter import Document, Patient
from drivers.report.pdf import MARGIN, PAGE_WIDTH, lab_report_pdf, printed_name, register_cjk_font

KIND_TITLES = {"lab": "检验报告 Lab report", "imaging": "检查报告 Imaging report",
               "record": "门诊病历摘要 Outpatient record summary", "invoice": "门诊电子票据 Outpatient e-invoice"}


def _age(patient: Patient, on: Any) -> int:
    return on.year - patient.birth.year - ((on.month, on.day) < (patient.birth.month, patient.birth.day))


def yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def document_pdf(document: Document, patient: Patient, hospital: str, tz: ZoneInfo) -> bytes:
    """The document as the A4 printer takes it; the name on it is masked whatever the caller passes."""
    stamp = lambda moment: moment.astimezone(tz).strftime("%Y-%m-%d %H:%M")  # noqa: E731
    if document.kind == "lab":
        return lab_report_pdf({
            "hospital": hospital, "title": f"{document.title} 检验报告单", "patient_name": patient.name,
            "sex": patient.gender, "age": _age(patient, document.created_at.astimezone(tz).date()),
            "report_no": document.doc_no, "department": document.dept_name, "specimen": document.detail,
            "sample_time": stamp(document.created_at), "report_time": stamp(document.ready_at),
            "items": [{"name": r.name, "result": r.value, "unit": r.unit, "range": r.reference_range,
                       "flag": r.flag} for r in document.results]})
    return _text_document_pdf(document, patient, hospital, tz)


def _text_document_pdf(document: Document, patient: Patient, hospital: str, tz: ZoneInfo) -> bytes:
    font = register_cjk_font()
    base = ParagraphStyle("base", fontName=font, fontSize=10.5, leading=16, wordWrap="CJK")
    centre = ParagraphStyle("centre", parent=base, fontSize=16, leading=22, alignment=TA_CENTER)
    heading = ParagraphStyle("heading", parent=base, fontSize=11.5, leading=18)
    right = ParagraphStyle("right", parent=base, alignment=TA_RIGHT)

    def p(text: Any, style: ParagraphStyle = base) -> Paragraph:
        return Paragraph(escape("" if text is None else str(text)), style)

    name = printed_name(patient.name)
    when = document.created_at.astimezone(tz).strftime("%Y-%m-%d %H:%M")
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(buffer, pagesize=A4, leftMargin=MARGIN, rightMargin=MARGIN, topMargin=MARGIN,
                            bottomMargin=20 * mm, title=KIND_TITLES[document.kind], author=hospital)
    width = PAGE_WIDTH - 2 * MARGIN
    story: list[Any] = [p(hospital, centre), p(KIND_TITLES[document.kind], centre), Spacer(1, 4 * mm)]
    info = [f"姓名 Name：{name}", f"性别 Sex：{patient.gender}",
            f"年龄 Age：{_age(patient, document.created_at.astimezone(tz).date())}",
            f"编号 No.：{document.doc_no}"]
    if document.kind == "imaging":
        info += [f"科室 Dept.：{document.dept_name}", f"检查类型 Modality：{document.detail}",
                 f"检查时间 Examined：{when}",
                 f"报告时间 Reported：{document.ready_at.astimezone(tz).strftime('%Y-%m-%d %H:%M')}"]
    elif document.kind == "record":
        info += [f"科室 Dept.：{document.dept_name}", f"医生 Doctor：{document.detail}", f"就诊时间 Visit：{when}", ""]
    else:
        info += [f"开票时间 Issued：{when}", f"订单 Order：{document.detail}", "", ""]
    rows = [[p(cell) for cell in info[i:i + 2]] for i in range(0, len(info), 2)]
    table = Table(rows, colWidths=[width * 0.5, width * 0.5])
    table.setStyle(TableStyle([("LINEABOVE", (0, 0), (-1, 0), 0.8, colors.black),
                               ("LINEBELOW", (0, -1), (-1, -1), 0.8, colors.black)]))
    story += [table, Spacer(1, 4 * mm)]
    if document.kind == "invoice":
        story.append(p(document.title, heading))
        lines = [[p("项目 Item"), p("类别 Category"), p("金额(元) Amount", right)]]
        lines += [[p(line.name), p(line.category), p(yuan(line.amount_fen), right)] for line in document.lines]
        lines.append([p("合计 Total"), p(""), p(yuan(document.amount_fen), right)])
        items = Table(lines, colWidths=[width * 0.5, width * 0.25, width * 0.25], repeatRows=1)
        items.setStyle(TableStyle([("LINEBELOW", (0, 0), (-1, 0), 0.6, colors.black),
                                   ("LINEABOVE", (0, -1), (-1, -1), 0.8, colors.black)]))
        story += [items, Spacer(1, 4 * mm),
                  p("本票据为电子票据的纸质打印件，与电子票据具有同等效力。"
                    "This is a printed copy of the e-invoice and has the same validity.")]
    else:
        story.append(p(document.title, heading))
        for title, text in document.sections:
            story += [Spacer(1, 2 * mm), p(title, heading), p(text)]
        story += [Spacer(1, 6 * mm), p("本报告仅供临床参考 For clinical reference only.")]
    doc.build(story)
    return buffer.getvalue()
