"""Lab reports as A4 PDFs for the report printer.

The CJK font is embedded (a TrueType subset taken from a system .ttc) rather than referenced as one of
reportlab's built-in CID fonts such as STSong-Light: a referenced font is left to the printer's filter chain
to resolve, and on the print path Latin text following Chinese text (units like 10^9/L, item codes) came
out missing. An embedded subset prints exactly what the PDF shows, on any printer.
"""
from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping, Sequence

from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle
from xml.sax.saxutils import escape

from drivers.idcard.idnumber import mask_name

FONT_NAME = "KioskCJK"
# Checked in order; the first that exists is embedded. TrueType collections need a face index: 0 is the
# regular face in each of these.
CJK_FONT_CANDIDATES: tuple[tuple[str, int], ...] = (
    ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", 0),
    ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 0),
    ("/usr/share/fonts/truetype/arphic/uming.ttc", 0),
    ("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf", 0),
)

FLAG_MARKS = {"H": "↑", "HIGH": "↑", "↑": "↑", "L": "↓", "LOW": "↓", "↓": "↓", "": "", "N": ""}

PAGE_WIDTH, PAGE_HEIGHT = A4
MARGIN = 18 * mm


class ReportFontError(RuntimeError):
    """No CJK TrueType font on this terminal: a report printed without one would lose its Chinese text."""


def find_cjk_font(candidates: Sequence[tuple[str, int]] = CJK_FONT_CANDIDATES) -> tuple[str, int]:
    for path, index in candidates:
        if Path(path).is_file():
            return path, index
    tried = ", ".join(path for path, _ in candidates)
    raise ReportFontError(f"no CJK TrueType font found for report PDFs (install fonts-wqy-zenhei); tried: "
                          f"{tried}")


def register_cjk_font() -> str:
    """Register the embedded font once per process; reportlab keeps registrations globally."""
    if FONT_NAME not in pdfmetrics.getRegisteredFontNames():
        path, index = find_cjk_font()
        pdfmetrics.registerFont(TTFont(FONT_NAME, path, subfontIndex=index))
    return FONT_NAME


def _styles(font: str) -> dict[str, ParagraphStyle]:
    base = ParagraphStyle("base", fontName=font, fontSize=10, leading=14, wordWrap="CJK")
    return {
        "base": base,
        "hospital": ParagraphStyle("hospital", parent=base, fontSize=16, leading=22, alignment=TA_CENTER),
        "title": ParagraphStyle("title", parent=base, fontSize=14, leading=20, alignment=TA_CENTER),
        "cell": ParagraphStyle("cell", parent=base, fontSize=9.5, leading=12.5),
        "head": ParagraphStyle("head", parent=base, fontSize=9.5, leading=12.5),
        "flag": ParagraphStyle("flag", parent=base, fontSize=10, leading=12.5, alignment=TA_CENTER),
        "note": ParagraphStyle("note", parent=base, fontSize=8.5, leading=12),
    }


def _p(text: Any, style: ParagraphStyle) -> Paragraph:
    return Paragraph(escape("" if text is None else str(text)), style)


def printed_name(name: Any) -> str:
    """The name as it may appear on paper. Masking here, not only upstream, means no caller can forget it;
    a name that already carries a mask is left alone so masking twice cannot eat more characters."""
    text = "" if name is None else str(name).strip()
    return text if "*" in text else mask_name(text)


def _flag(value: Any) -> str:
    key = "" if value is None else str(value).strip().upper()
    return FLAG_MARKS.get(key, key)


def _numbered_canvas(footer: str, font: str) -> type[Canvas]:
    """A canvas that defers each page so the footer can say "page n of N" once N is known."""

    class NumberedCanvas(Canvas):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._pages: list[dict[str, Any]] = []

        def showPage(self) -> None:  # noqa: N802 - reportlab's name
            self._pages.append(dict(self.__dict__))
            self._startPage()

        def save(self) -> None:
            total = len(self._pages)
            for number, state in enumerate(self._pages, start=1):
                self.__dict__.update(state)
                self.setFont(font, 8)
                self.setFillColor(colors.grey)
                self.line(MARGIN, 14 * mm, PAGE_WIDTH - MARGIN, 14 * mm)
                self.drawString(MARGIN, 10 * mm, footer)
                self.drawRightString(PAGE_WIDTH - MARGIN, 10 * mm, f"第 {number} 页 / 共 {total} 页  "
                                                                   f"Page {number} of {total}")
                super().showPage()
            super().save()

    return NumberedCanvas


def lab_report_pdf(report: Mapping[str, Any]) -> bytes:
    """Lay out one lab report.

    Keys: ``hospital``, ``title``, ``patient_name`` (masked here, 李秀英 -> 李*英, unless it already carries
    a ``*``: the kiosk never prints a full name on a page that may be left in the tray), ``sex``, ``age``, ``sample_time``, ``report_time``,
    ``items`` (each with ``name``, ``result``, ``unit``, ``range``, ``flag`` "H"/"L"/"↑"/"↓"/""), and
    optionally ``report_no``, ``department``, ``specimen``, ``note``. The item table repeats its header
    on every page, so a long panel stays readable when it runs onto a second sheet.
    """
    font = register_cjk_font()
    st = _styles(font)
    patient = printed_name(report.get("patient_name"))
    buffer = io.BytesIO()
    title = str(report.get("title", ""))
    doc = SimpleDocTemplate(buffer, pagesize=A4, leftMargin=MARGIN, rightMargin=MARGIN, topMargin=MARGIN,
                            bottomMargin=20 * mm, title=title, author=str(report.get("hospital", "")),
                            subject="检验报告 / lab report")
    width = PAGE_WIDTH - 2 * MARGIN

    story: list[Any] = [_p(report.get("hospital", ""), st["hospital"]), _p(title, st["title"]),
                        Spacer(1, 4 * mm)]

    info = [
        ("姓名 Name", patient), ("性别 Sex", report.get("sex", "")),
        ("年龄 Age", report.get("age", "")), ("报告单号 Report No.", report.get("report_no", "")),
        ("科室 Dept.", report.get("department", "")), ("标本 Specimen", report.get("specimen", "")),
        ("采样时间 Sampled", report.get("sample_time", "")), ("报告时间 Reported", report.get("report_time", "")),
    ]
    cells = [_p(f"{label}：{value}", st["base"]) for label, value in info]
    info_rows = [cells[i:i + 3] + [""] * (3 - len(cells[i:i + 3])) for i in range(0, 6, 3)]
    info_rows.append([cells[6], cells[7], ""])
    info_table = Table(info_rows, colWidths=[width * 0.3, width * 0.3, width * 0.4])
    info_table.setStyle(TableStyle([
        ("SPAN", (1, 2), (2, 2)),
        ("LINEBELOW", (0, -1), (-1, -1), 0.8, colors.black),
        ("LINEABOVE", (0, 0), (-1, 0), 0.8, colors.black),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("TOPPADDING", (0, 0), (-1, -1), 2), ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
    ]))
    story += [info_table, Spacer(1, 3 * mm)]

    header = [_p(h, st["head"]) for h in ("序号 No.", "项目 Item", "结果 Result", "", "单位 Unit",
                                          "参考范围 Reference")]
    rows: list[list[Any]] = [header]
    flagged: list[int] = []
    for number, item in enumerate(report.get("items", []), start=1):
        mark = _flag(item.get("flag"))
        if mark:
            flagged.append(number)
        rows.append([_p(number, st["cell"]), _p(item.get("name", ""), st["cell"]),
                     _p(item.get("result", ""), st["cell"]), _p(mark, st["flag"]),
                     _p(item.get("unit", ""), st["cell"]), _p(item.get("range", ""), st["cell"])])
    col = [0.09, 0.35, 0.13, 0.05, 0.16, 0.22]
    items_table = Table(rows, colWidths=[width * c for c in col], repeatRows=1)
    style = [
        ("LINEBELOW", (0, 0), (-1, 0), 0.6, colors.black),
        ("LINEBELOW", (0, -1), (-1, -1), 0.8, colors.black),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ("TOPPADDING", (0, 0), (-1, -1), 2), ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
    ]
    for number in flagged:  # abnormal rows stand out without colour: most report printers are mono
        style.append(("BACKGROUND", (0, number), (-1, number), colors.Color(0.9, 0.9, 0.9)))
    items_table.setStyle(TableStyle(style))
    story += [items_table, Spacer(1, 4 * mm)]

    note = report.get("note") or "↑ 高于参考范围 above range；↓ 低于参考范围 below range。本报告仅对所检标本负责 " \
                                 "The results relate only to the specimen tested."
    story.append(_p(note, st["note"]))

    footer = f"{report.get('hospital', '')}  {title}  {patient}"
    doc.build(story, canvasmaker=_numbered_canvas(footer, font))
    return buffer.getvalue()


def test_page_pdf(terminal_id: str) -> bytes:
    """A one-page self-test sheet: Chinese and Latin on one line, so a missing font shows at a glance."""
    now = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    report = {
        "hospital": "自助终端打印测试 Kiosk printer test",
        "title": "测试页 Test page",
        "patient_name": "测试者",  # printed masked (测*者): the self-test shows masking works
        "sex": "-",
        "age": "-",
        "report_no": terminal_id,
        "department": "设备自检 Self-test",
        "specimen": "-",
        "sample_time": now,
        "report_time": now,
        "items": [
            {"name": "中文字体 CJK font 汉字", "result": "正常 OK", "unit": "-", "range": "-", "flag": ""},
            {"name": "白细胞计数 WBC", "result": "6.5", "unit": "10^9/L", "range": "3.5-9.5", "flag": ""},
            {"name": "高值标记 High flag", "result": "12.0", "unit": "10^9/L", "range": "3.5-9.5", "flag": "H"},
            {"name": "低值标记 Low flag", "result": "2.0", "unit": "10^9/L", "range": "3.5-9.5", "flag": "L"},
        ],
        "note": f"终端 Terminal {terminal_id}  {now}",
    }
    return lab_report_pdf(report)


test_page_pdf.__test__ = False  # type: ignore[attr-defined]  # not a pytest test despite the name
