"""Report printing (报告打印) and queries (信息查询) screens.

Report printing: every document is a tile that says its state in its own words (ready, expected at, printed
already and where to reprint), so a patient never taps something that cannot print and wonders why. The result
screen names each document printed or not, and when the printer failed, where else to print.

Queries: four large tabs across the top; each tab is a paged list of cards, read-only. Amounts, queue
positions and waits are the largest text, since that is what the patient came to read.
"""
from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QPushButton, QWidget

from ui import theme
from ui.screens.base import Screen, Send
from ui.screens.bills import _card, _clear
from ui.screens.result import Badge, ShowWayButton
from ui.widgets import (PagedGrid, Tile, button, centered, label, notice_label, show_notice, title_block,
                        yuan)
from workflows.view import View

KIND_NAMES = {"lab": ("检验报告", "Lab report"), "imaging": ("检查报告", "Imaging report"),
              "invoice": ("电子发票", "E-invoice"), "record": ("病历", "Medical record")}


def _when(value: Any) -> str:
    """'2026-11-24T16:00+08:00' → '11-24 16:00': the date and time a patient reads, no zone."""
    text = str(value or "")
    return text[5:16].replace("T", " ") if len(text) >= 16 else text


# ---- report printing ------------------------------------------------------------------------------------------

class DocumentsScreen(Screen):
    """The patient's documents, grouped by kind; printable ones toggle, the rest say why they cannot."""

    def __init__(self, send: Send):
        super().__init__(send)
        self.body.addWidget(title_block("请选择要打印的报告和票据", "Tap to select what to print (A4)"))
        self.summary = label("", 24, color=theme.MUTED, wrap=True)
        self.body.addWidget(self.summary)
        self.notice = notice_label()
        self.body.addWidget(self.notice)
        self.grid = PagedGrid(4, 2, self.make_tile)
        self.body.addWidget(self.grid, 1)
        row = QHBoxLayout()
        self.count = label("", 34, True, theme.PRIMARY)
        row.addWidget(self.count)
        row.addStretch(1)
        self.go = button("打印  Print", "primary", self.intent("print"), 520)
        row.addWidget(self.go)
        self.bottom = QWidget()
        self.bottom.setLayout(row)
        self.body.addWidget(self.bottom)
        self.home = button("返回首页  Home", "primary", self.intent("finish"), 420)
        self.body.addLayout(centered(self.home))
        self.selected: set[tuple[str, str]] = set()

    def make_tile(self, doc: dict[str, Any]) -> Tile:
        kind = doc.get("kind", "")
        key = (kind, doc.get("doc_no", ""))
        ticked = key in self.selected
        zh, en = KIND_NAMES.get(kind, (kind, kind))
        if doc.get("can_print"):
            state = "✓ 已选择打印  Selected" if ticked else "可打印，点击选择  Tap to select"
        elif not doc.get("ready"):
            state = f"未出报告，预计 {_when(doc.get('expected_at'))} 可取"
        else:
            state = "已打印过，补打请到服务台  Printed; reprint at the desk"
        colors = (theme.PRIMARY, "white") if ticked else (theme.CARD, theme.INK)
        tile = Tile([(f"{zh}  {en}", 20, False), (doc.get("title", ""), 32, True),
                     (f"{doc.get('department', '')}  {_when(doc.get('created_at'))}", 20, False),
                     (state, 22, True)], enabled=bool(doc.get("can_print")), colors=colors, min_height=140)
        tile.clicked.connect(self.intent("toggle_document", kind=key[0], doc_no=key[1]))
        return tile

    def render(self, view: View) -> None:
        self.selected = {tuple(s) for s in view.data.get("selected") or []}  # type: ignore[misc]
        groups = view.data.get("groups") or []
        docs = [d for g in groups for d in g.get("documents", [])]
        for stale in self.grid.grid_host.findChildren(Tile):  # the last render's tiles go at once
            stale.hide()
        self.grid.items = docs
        self.grid.show_page(self.grid.page if self.grid.page < self.grid.pages else 0)
        self.grid.setVisible(bool(docs))
        self.bottom.setVisible(bool(docs))
        self.home.setVisible(not docs)
        self.summary.setText("    ".join(f"{g['name']} {len(g['documents'])} 份" for g in groups)
                             + ("    每份自助打印 1 次，补打请到服务台  One copy each at a kiosk" if docs else ""))
        show_notice(self.notice, view)
        n = len(self.selected)
        self.count.setText(f"已选 {n} 份  {n} selected" if n else "请点击上方报告进行选择  Tap documents above")
        self.go.setText(f"打印 {n} 份  Print" if n else "打印  Print")
        self.go.setEnabled(bool(n))


STATUS_TEXT = {"printed": ("已打印", "Printed", theme.ACCENT), "refused": ("未打印", "Not printed", theme.WARN),
               "not_printed": ("未打印", "Not printed", theme.DANGER), "skipped": ("未打印", "Not printed", theme.DANGER),
               "unknown": ("结果未知", "Unknown", theme.WARN)}


class PrintResultScreen(Screen):
    """What came out and what did not, one row per document; a printer fault says where else to print."""

    def __init__(self, send: Send):
        super().__init__(send)
        head = QHBoxLayout()
        self.badges = {"tick": Badge("tick", theme.ACCENT, 110), "!": Badge("!", theme.WARN, 110)}
        for badge in self.badges.values():
            head.addWidget(badge)
        self.heading = title_block("", "")
        head.addWidget(self.heading, 1)
        self.body.addLayout(head)
        self.notice = notice_label()
        self.body.addWidget(self.notice)
        self.card, self.grid = _card()
        self.body.addWidget(self.card, 1)
        self.show_way = ShowWayButton(send)
        self.body.addLayout(centered(self.show_way, button("完成，返回首页  Done", "primary", self.intent("finish"), 480)))

    def render(self, view: View) -> None:
        self.show_way.render(view)
        jobs = view.data.get("jobs") or []
        printed = sum(1 for j in jobs if j.get("status") == "printed")
        ok = printed == len(jobs)
        self.badges["tick"].setVisible(ok)
        self.badges["!"].setVisible(not ok)
        if ok:
            self.heading.zh.setText(f"打印完成，共 {printed} 份，请取走出纸口的报告")
            self.heading.en.setText("Done. Please take your documents from the tray.")
        else:
            self.heading.zh.setText(f"已打印 {printed} 份，{len(jobs) - printed} 份未打印")
            self.heading.en.setText(f"{printed} printed, {len(jobs) - printed} not printed: see below")
        show_notice(self.notice, view)
        _clear(self.grid)
        compact = len(jobs) > 6
        for r, job in enumerate(jobs[:9]):
            zh, en, color = STATUS_TEXT.get(job.get("status", ""), ("", "", theme.MUTED))
            kind = KIND_NAMES.get(job.get("kind", ""), ("", ""))[0]
            self.grid.addWidget(label(f"{kind}  {job.get('title', '')}", 26 if compact else 30, True), r, 0)
            self.grid.addWidget(label(f"{zh}  {en}", 26 if compact else 30, True, color), r, 1)
            why = "" if job.get("status") == "printed" else job.get("message", "")
            self.grid.addWidget(label(why, 20 if compact else 22, color=theme.MUTED, wrap=True), r, 2)
        self.grid.setColumnStretch(2, 1)
        self.grid.setRowStretch(min(len(jobs), 9), 1)


# ---- queries ----------------------------------------------------------------------------------------------------

STATUS_WORDS = {"BOOKED": "已预约", "REGISTERED": "已挂号", "CHECKED_IN": "已报到", "CALLED": "已叫号",
                "SEEN": "已就诊", "DONE": "已就诊", "CANCELLED": "已退号", "WAITING": "候诊中", "NOT_CHECKED_IN": "未报到",
                "FULFILLED": "已缴费", "PAID": "已缴费", "REFUNDED": "已退费", "REFUND_PENDING": "退费中",
                "PENDING": "待缴费", "DISPENSED": "已发药", "EXECUTED": "已执行", "DUE": "待缴费"}
METHODS = {"wechat_native": "微信", "wechat_code": "微信", "alipay_native": "支付宝", "alipay_code": "支付宝",
           "aggregate": "聚合码", "unionpay": "银行卡", "insurance": "医保"}


def _word(status: Any) -> str:
    return STATUS_WORDS.get(str(status), str(status or ""))


class RecordsScreen(Screen):
    """Four tabs; the chosen tab's rows as cards. Bills open to their items."""

    def __init__(self, send: Send):
        super().__init__(send)
        tabs = QHBoxLayout()
        tabs.setSpacing(18)
        self.tabs: dict[str, QPushButton] = {}
        for tab, zh, en in (("registrations", "挂号记录", "Registrations"), ("payments", "缴费记录", "Payments"),
                            ("bills", "费用明细", "Bills"), ("queue", "排队进度", "Queue")):
            btn = button(f"{zh}  {en}", on_click=self.intent("show_tab", tab=tab), min_width=380)
            self.tabs[tab] = btn
            tabs.addWidget(btn)
        self.body.addLayout(tabs)
        self.notice = notice_label()
        self.body.addWidget(self.notice)
        self.grid = PagedGrid(2, 3, self.make_tile)
        self.body.addWidget(self.grid, 1)
        self.tab = ""

    def make_tile(self, row: dict[str, Any]) -> Tile:
        if self.tab == "registrations":
            dept, doc = (row.get("department") or {}), (row.get("doctor") or {})
            lines = [(f"{row.get('date', '')}  {row.get('start', '')}-{row.get('end', '')}   {_word(row.get('status'))}",
                      22, False), (f"{dept.get('name', '')}  {doc.get('name', '')}", 30, True),
                     (f"{row.get('location', '')}   {row.get('queue_no') or '-'} 号   挂号费 "
                      f"{yuan(int(row.get('fee_fen') or 0))}", 22, False)]
        elif self.tab == "payments":
            refunded = int(row.get("refunded_fen") or 0)
            parts = [f"自付 {yuan(int(row.get('self_pay_fen') or 0))}"]
            if int(row.get("insurance_fen") or 0):
                parts.insert(0, f"医保 {yuan(int(row['insurance_fen']))}")
            if refunded:
                parts.append(f"已退 {yuan(refunded)}")
            kind = "挂号费" if row.get("kind") != "bill" else "门诊缴费"
            method = METHODS.get(str(row.get("payment_method") or ""), "")
            lines = [(f"{_when(row.get('paid_at') or row.get('created_at'))}  {kind}  {row.get('department') or ''}"
                      f"   {_word(row.get('status'))}", 22, False),
                     (f"{yuan(int(row.get('amount_fen') or 0))}   {method}", 34, True),
                     ("   ".join(parts), 24, bool(refunded))]
        elif self.tab == "bills":
            items = row.get("items") or []
            names = "、".join(i.get("name", "") for i in items[:3]) + ("等" if len(items) > 3 else "")
            lines = [(f"{_when(row.get('issued_at'))}  {(row.get('department') or {}).get('name', '')}   "
                      f"{_word(row.get('status'))}", 22, False),
                     (yuan(int(row.get("total_fen") or 0)), 34, True),
                     (f"{len(items)} 项：{names}  ›  查看明细", 22, False)]
        else:  # queue
            ahead = row.get("ahead")
            wait = row.get("estimated_wait_minutes")
            big = (f"前面还有 {ahead} 人  约 {wait} 分钟" if ahead is not None
                   else f"{_word(row.get('status'))}：请先报到")
            lines = [(f"{row.get('department', '')}  {row.get('doctor', '')}   {row.get('start', '')}-"
                      f"{row.get('end', '')}", 24, False), (big, 36, True),
                     (f"{row.get('queue_no')} 号   {row.get('location', '')}", 24, False)]
        tile = Tile(lines, min_height=150, align=Qt.AlignmentFlag.AlignLeft)
        if self.tab == "bills":
            tile.clicked.connect(self.intent("open_bill", bill_no=row.get("bill_no")))
        else:
            tile.setCursor(Qt.CursorShape.ArrowCursor)
        return tile

    def render(self, view: View) -> None:
        self.tab = view.data.get("tab", "")
        for tab, btn in self.tabs.items():
            on = tab == self.tab
            btn.setStyleSheet(f"background: {theme.PRIMARY}; color: white; border: none; font-weight: bold;"
                              if on else "")
        rows = view.data.get("rows") or []
        for stale in self.grid.grid_host.findChildren(Tile):  # the last tab's cards go at once, not at deletion
            stale.hide()
        self.grid.set_items(rows)
        self.grid.setVisible(bool(rows))
        show_notice(self.notice, view)


class RecordBillScreen(Screen):
    """One bill's items: name, quantity, amount and state (paid, dispensed, refunded)."""

    def __init__(self, send: Send):
        super().__init__(send)
        self.title = title_block("费用明细", "Bill details")
        self.body.addWidget(self.title)
        self.notice = notice_label()
        self.body.addWidget(self.notice)
        self.card, self.grid = _card()
        self.body.addWidget(self.card, 1)

    def render(self, view: View) -> None:
        bill = view.data.get("bill") or {}
        dept = (bill.get("department") or {}).get("name", "")
        doctor = (bill.get("doctor") or {}).get("name", "")
        self.title.zh.setText(f"费用明细  ·  {dept}  {doctor}  ·  {_word(bill.get('status'))}")
        self.title.en.setText(f"Bill {bill.get('bill_no', '')}  issued {_when(bill.get('issued_at'))}")
        show_notice(self.notice, view)
        _clear(self.grid)
        heads = (("项目", "Item"), ("数量", "Qty"), ("状态", "State"), ("金额", "Amount"))
        for col, (zh, en) in enumerate(heads):
            align = Qt.AlignmentFlag.AlignRight if col == 3 else Qt.AlignmentFlag.AlignLeft
            self.grid.addWidget(label(f"{zh}  {en}", 22, color=theme.MUTED, align=align), 0, col)
        items = bill.get("items") or []
        compact = len(items) > 6
        for r, item in enumerate(items[:10], 1):
            size = 24 if compact else 30
            self.grid.addWidget(label(item.get("name", ""), size, True), r, 0)
            qty = f"{item.get('quantity') or ''}{item.get('unit') or ''}"
            self.grid.addWidget(label(qty, size - 4), r, 1)
            self.grid.addWidget(label(_word(item.get("status")), size - 4, color=theme.MUTED), r, 2)
            self.grid.addWidget(label(yuan(int(item.get("amount_fen") or 0)), size, True,
                                      align=Qt.AlignmentFlag.AlignRight), r, 3)
        r = min(len(items), 10) + 1
        if len(items) > 10:
            self.grid.addWidget(label(f"另有 {len(items) - 10} 项  and {len(items) - 10} more", 22,
                                      color=theme.MUTED), r, 0)
            r += 1
        self.grid.addWidget(label("合计  Total", 32, True), r, 0)
        self.grid.addWidget(label(yuan(int(bill.get("total_fen") or 0)), 44, True, theme.PRIMARY,
                                  Qt.AlignmentFlag.AlignRight), r, 3)
        self.grid.setColumnStretch(0, 1)
        self.grid.setRowStretch(r + 1, 1)

