"""Outpatient payment (门诊缴费) and item refunds (退费) screens.

Written for the two patients the lobby sees most: one in a hurry, one who is eighty. So each screen asks one
thing, the amount and the next step are the largest text on it, and after paying the screen (and the slip)
says where to go for each item: pharmacy window, lab, imaging.
"""
from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QGridLayout, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from ui import theme
from ui.screens.base import Screen, Send
from ui.screens.payment import PaymentScreen
from ui.screens.result import Badge, ShowWayButton
from ui.widgets import (PagedGrid, Tile, button, centered, label, notice_label, show_notice, title_block,
                        yuan)
from workflows.view import View

MAX_ROWS = 6  # item rows that fit a card at reading size; more are summarised in one line


def _card() -> tuple[QFrame, QGridLayout]:
    card = QFrame()
    card.setObjectName("Card")
    grid = QGridLayout(card)
    grid.setContentsMargins(48, 24, 48, 24)
    grid.setHorizontalSpacing(36)
    grid.setVerticalSpacing(12)
    return card, grid


def _clear(grid: QGridLayout) -> None:
    while grid.count():
        item = grid.takeAt(0)
        if item.widget():
            item.widget().hide()
            item.widget().deleteLater()


def _payable(order: dict[str, Any]) -> int:
    """What the patient pays themselves: the self-pay part once insurance has split the bill."""
    if (order.get("insurance") or {}).get("state") in ("PRESETTLED", "SUCCESS"):
        return int(order.get("self_pay_fen") or 0)
    return int(order.get("amount_fen") or 0)


class BillsScreen(Screen):
    """Several unpaid bills: one tile each (department, doctor, when, how many items, total)."""

    def __init__(self, send: Send):
        super().__init__(send)
        self.title = title_block("", "")
        self.body.addWidget(self.title)
        self.notice = notice_label()
        self.grid = PagedGrid(3, 2, self.make_tile)
        self.body.addWidget(self.grid, 1)
        self.empty = QWidget()
        box = QVBoxLayout(self.empty)
        box.addStretch(1)
        box.addLayout(centered(Badge("tick", theme.ACCENT, 140)))
        self.empty_text = label("", 48, True, align=Qt.AlignmentFlag.AlignCenter, wrap=True)
        self.empty_en = label("", 26, color=theme.MUTED, align=Qt.AlignmentFlag.AlignCenter, wrap=True)
        box.addWidget(self.empty_text)
        box.addWidget(self.empty_en)
        box.addSpacing(24)
        box.addLayout(centered(button("返回首页  Home", "primary", self.intent("finish"), 420)))
        box.addStretch(1)
        self.empty.hide()  # shown only when there is nothing to pay
        self.body.addWidget(self.empty, 1)
        self.body.addWidget(self.notice)
        self.body.addLayout(centered(button("我要退费（未取药、未检查的项目）  Refund items", on_click=self.intent(
            "open_refunds"), min_width=760)))

    def make_tile(self, bill: dict[str, Any]) -> Tile:
        dept = (bill.get("department") or {}).get("name", "")
        doctor = (bill.get("doctor") or {}).get("name", "")
        issued = str(bill.get("issued_at", ""))[:16].replace("T", " ")
        items = bill.get("items") or []
        names = "、".join(i.get("name", "") for i in items[:3]) + ("等" if len(items) > 3 else "")
        tile = Tile([(f"{dept}  {doctor}", 32, True), (f"开单时间 {issued}", 20, False),
                     (f"{len(items)} 项：{names}", 20, False), (yuan(int(bill.get("total_fen", 0))), 40, True)],
                    min_height=170)
        tile.clicked.connect(self.intent("pick_bill", bill_no=bill["bill_no"]))
        return tile

    def render(self, view: View) -> None:
        bills = view.data.get("bills") or []
        self.grid.set_items(bills)
        self.grid.setVisible(bool(bills))
        self.empty.setVisible(not bills)
        self.title.zh.setText("请点击要缴费的单据，查看明细后缴费" if bills else "门诊缴费")
        self.title.en.setText("Tap a bill to see its items and pay" if bills else "Outpatient payment")
        if bills:
            show_notice(self.notice, view)
        else:  # "no bills" is good news, said large, not as a warning
            self.notice.hide()
            self.empty_text.setText(view.message or "您目前没有待缴费用")
            self.empty_en.setText(view.message_en or "You have no bills to pay.")


class BillDetailScreen(Screen):
    """One bill: every item, its amount and where to go for it, then one big Pay button."""

    def __init__(self, send: Send):
        super().__init__(send)
        self.title = title_block("请核对缴费项目", "Please check the items on your bill")
        self.body.addWidget(self.title)
        self.card, self.grid = _card()
        self.body.addWidget(self.card, 1)
        row = QHBoxLayout()
        row.addWidget(button("我要退费  Refund items", on_click=self.intent("open_refunds"), min_width=360))
        row.addStretch(1)
        self.pay = button("", "primary", self.intent("confirm"), 640)
        row.addWidget(self.pay)
        self.body.addLayout(row)

    def render(self, view: View) -> None:
        bill = view.data.get("bill") or {}
        dept = (bill.get("department") or {}).get("name", "")
        doctor = (bill.get("doctor") or {}).get("name", "")
        self.title.zh.setText(f"请核对缴费项目  ·  {dept}  {doctor}".rstrip())
        _clear(self.grid)
        for col, (zh, en) in enumerate((("项目", "Item"), ("缴费后请到", "Then go to"), ("金额", "Amount"))):
            align = Qt.AlignmentFlag.AlignRight if col == 2 else Qt.AlignmentFlag.AlignLeft
            self.grid.addWidget(label(f"{zh}  {en}", 24, color=theme.MUTED, align=align), 0, col)
        items = bill.get("items") or []
        shown = items if len(items) <= MAX_ROWS else items[:MAX_ROWS - 1]
        for r, item in enumerate(shown, 1):
            self.grid.addWidget(label(item.get("name", ""), 32, True), r, 0)
            self.grid.addWidget(label(item.get("place", ""), 28, color=theme.PRIMARY_DARK), r, 1)
            self.grid.addWidget(label(yuan(int(item.get("amount_fen", 0))), 32, True,
                                      align=Qt.AlignmentFlag.AlignRight), r, 2)
        r = len(shown) + 1
        if len(shown) < len(items):
            rest = items[len(shown):]
            self.grid.addWidget(label(f"另有 {len(rest)} 项  and {len(rest)} more", 28, color=theme.MUTED), r, 0)
            self.grid.addWidget(label(yuan(sum(int(i.get("amount_fen", 0)) for i in rest)), 34, True,
                                      align=Qt.AlignmentFlag.AlignRight), r, 2)
            r += 1
        line = QFrame()
        line.setFixedHeight(2)
        line.setStyleSheet(f"background: {theme.LINE};")
        self.grid.addWidget(line, r, 0, 1, 3)
        self.grid.addWidget(label("合计  Total", 34, True), r + 1, 0)
        self.grid.addWidget(label(yuan(int(bill.get("total_fen", 0))), 52, True, theme.DANGER,
                                  Qt.AlignmentFlag.AlignRight), r + 1, 2)
        self.grid.setColumnStretch(1, 1)
        self.grid.setRowStretch(r + 2, 1)
        self.pay.setText(f"去缴费 {yuan(int(bill.get('total_fen', 0)))}  Pay")


class BillCheckoutScreen(Screen):
    """Before the QR: the amount, and the one chance to use medical insurance (scan the e-voucher)."""

    def __init__(self, send: Send):
        super().__init__(send)
        self.body.addWidget(title_block("请选择付款方式", "How would you like to pay?"))
        self.notice = notice_label()
        self.body.addWidget(self.notice)
        row = QHBoxLayout()
        row.setSpacing(40)
        amounts, self.amounts = _card()
        row.addWidget(amounts, 1)
        insurance = QFrame()
        insurance.setObjectName("Card")
        box = QVBoxLayout(insurance)
        box.setContentsMargins(40, 28, 40, 28)
        box.addWidget(label("使用医保？", 44, True, theme.PRIMARY))
        box.addWidget(label("Using medical insurance?", 24, color=theme.MUTED))
        box.addSpacing(12)
        box.addWidget(label("打开微信或支付宝里的「医保电子凭证」，\n把二维码对准下方扫描口。", 32, wrap=True))
        box.addWidget(label("Open your medical-insurance e-voucher in WeChat or Alipay and hold its QR code "
                            "under the scanner below.", 22, color=theme.MUTED, wrap=True))
        box.addStretch(1)
        # 社保卡 in the PC/SC reader, where the terminal has one (the view's "insurance_card").
        self.social_card = QWidget()
        social = QHBoxLayout(self.social_card)
        social.setContentsMargins(0, 0, 0, 0)
        words = QVBoxLayout()
        words.addWidget(label("或插入社保卡（芯片朝上）", 30, True))
        words.addWidget(label("Or insert your social-security card", 20, color=theme.MUTED))
        social.addLayout(words, 1)
        social.addWidget(button("读取社保卡  Read card", "", self.intent("use_insurance_card"), 340))
        box.addWidget(self.social_card)
        self.social_card.hide()  # until a view offers it
        box.addWidget(label("不使用医保，请直接点击下方按钮自费支付。\n"
                            "Not using insurance? Tap the button below.", 24, color=theme.MUTED, wrap=True))
        row.addWidget(insurance, 1)
        self.body.addLayout(row, 1)
        self.pay = button("", "primary", self.intent("pay"), 720)
        self.body.addLayout(centered(self.pay))

    def render(self, view: View) -> None:
        order = view.data.get("order") or {}
        insurance = order.get("insurance") or {}
        split = insurance.get("split") or {}
        show_notice(self.notice, view)
        self.social_card.setVisible(bool(view.data.get("insurance_card")))
        _clear(self.amounts)
        rows = [("合计  Total", int(order.get("amount_fen", 0)), 36, theme.INK)]
        if insurance.get("state") in ("PRESETTLED", "SUCCESS"):
            rows.append(("医保统筹  Insurance fund", int(split.get("fund_fen", 0)), 36, theme.ACCENT))
            if split.get("account_fen"):
                rows.append(("医保个人账户  Personal account", int(split["account_fen"]), 36, theme.ACCENT))
        payable = _payable(order)
        rows.append(("您需支付  You pay", payable, 64, theme.DANGER))
        if len(rows) == 2:  # no insurance: the total is what the patient pays, said once
            rows = rows[1:]
        for r, (text, fen, size, color) in enumerate(rows, 1):
            self.amounts.addWidget(label(text, 32, True), r, 0)
            self.amounts.addWidget(label(yuan(fen), size, True, color, Qt.AlignmentFlag.AlignRight), r, 1)
        for r in range(self.amounts.rowCount()):  # rows of an earlier render keep no stretch
            self.amounts.setRowStretch(r, 0)
        self.amounts.setRowStretch(0, 1)  # the amounts sit in the middle of the card
        self.amounts.setRowStretch(len(rows) + 1, 1)
        if insurance.get("state") in ("PRESETTLED", "SUCCESS"):
            self.pay.setText(f"支付自付部分 {yuan(payable)}  Pay my part")
        else:
            self.pay.setText(f"自费支付 {yuan(payable)}  Pay without insurance")


QR_BRANDS = {"wechat_native": ("请使用微信扫码支付，或出示付款码", "Scan the code with WeChat, or show your payment code",
                               "微信支付  WeChat Pay", "打开微信 → 扫一扫"),
             "alipay_native": ("请使用支付宝扫码支付，或出示付款码", "Scan the code with Alipay, or show your payment code",
                               "支付宝  Alipay", "打开支付宝 → 扫一扫"),
             "aggregate": ("请使用微信或支付宝扫码支付", "Scan the code with WeChat or Alipay",
                           "微信 / 支付宝  WeChat / Alipay", "打开微信或支付宝 → 扫一扫")}


class BillPaymentScreen(PaymentScreen):
    """The registration's payment screen, saying what a bill is and asking only the self-pay part."""

    def __init__(self, send: Send):
        super().__init__(send)
        self.title = self.body.itemAt(0).widget()
        self.brand = next(lbl for lbl in self.findChildren(QLabel) if "WeChat Pay" in lbl.text())
        self.hint = next(lbl for lbl in self.findChildren(QLabel) if "扫一扫" in lbl.text())
        self.due = next(lbl for lbl in self.findChildren(QLabel) if "Amount due" in lbl.text())

    def render(self, view: View) -> None:
        super().render(view)
        order = view.data.get("order") or {}
        zh, en, brand, hint = QR_BRANDS.get(view.data.get("channel", ""), QR_BRANDS["wechat_native"])
        self.title.zh.setText(zh)
        self.title.en.setText(en)
        self.brand.setText(brand)
        self.hint.setText(hint)
        self.qr.set_data(order.get("code_url") or (order.get("payment") or {}).get("code_url") or "")
        self.amount.setText(yuan(_payable(order)))
        insurance = order.get("insurance") or {}
        if insurance.get("state") == "SUCCESS":  # on the same line as the amount: the screen has no room to spare
            self.due.setText(f"医保已支付 {yuan(int(insurance.get('amount_fen', 0)))}，您还需支付  "
                             "Insurance paid; you pay")
        else:
            self.due.setText("应付金额  Amount due")
        items = order.get("items") or []
        dept = (order.get("department") or {}).get("name", "")
        self.what.setText(f"门诊缴费 · {dept} · 共 {len(items)} 项  Outpatient bill")


class BillDoneScreen(Screen):
    """Paid: where to go next for every item, as large as the screen allows."""

    def __init__(self, send: Send):
        super().__init__(send)
        heading = QWidget()
        hl = QVBoxLayout(heading)
        hl.addWidget(label("缴费成功", 60, True, theme.ACCENT))
        hl.addWidget(label("Payment complete", 26, color=theme.MUTED))
        self.body.addLayout(centered(Badge("tick", theme.ACCENT, 120), heading))
        self.body.addWidget(label("请按以下地点取药、检查或治疗   Where to go next", 34, True))
        self.card, self.grid = _card()
        self.body.addWidget(self.card, 1)
        self.slip = label("", 30, True, align=Qt.AlignmentFlag.AlignCenter, wrap=True)
        self.body.addWidget(self.slip)
        self.body.addLayout(centered(button("完成，返回首页  Done", "primary", self.intent("finish"), 480)))

    def render(self, view: View) -> None:
        _clear(self.grid)
        places = view.data.get("places") or []
        compact = len(places) > 3  # many places: smaller type, so every one still fits on the glass
        for r, group in enumerate(places[:5]):
            where = QWidget()
            box = QVBoxLayout(where)
            box.setContentsMargins(0, 0, 0, 0)
            box.setSpacing(0)
            box.addWidget(label(f"{r + 1}. {group['place']}", 30 if compact else 40, True, theme.PRIMARY))
            if group.get("place_en") and not compact:
                box.addWidget(label(group["place_en"], 20, color=theme.MUTED))
            way = next((w for w in view.data.get("ways") or [] if w.get("text") == group["place"]), None)
            if compact:  # two columns, the items under each place: five "Show the way" rows would not fit
                box.addWidget(label("、".join(group.get("items", [])), 24, wrap=True))
                row, col = divmod(r, 2)
                self.grid.addWidget(where, row, col * 2)
                if way is not None:
                    self.grid.addWidget(ShowWayButton(self.send, way, 0, short=True), row, col * 2 + 1)
                continue
            self.grid.addWidget(where, r, 0)
            self.grid.addWidget(label("、".join(group.get("items", [])), 30, wrap=True), r, 1)
            if way is not None:  # the map knows this place: its route is one tap away
                self.grid.addWidget(ShowWayButton(self.send, way, 360), r, 2)
        for column, stretch in enumerate((int(compact), int(not compact), int(compact), 0)):
            self.grid.setColumnStretch(column, stretch)
        order = view.data.get("order") or {}
        if view.data.get("print_failed"):
            self.slip.setStyleSheet(f"font-size: 30px; font-weight: bold; color: {theme.WARN};")
            self.slip.setText(f"缴费已成功，但凭条未能打印。请凭订单号 {order.get('order_no', '')} "
                              "到人工收费窗口补打（也可拍照保存本页）。\n"
                              "You have paid, but the slip could not be printed. "
                              "Show this order number at a cashier's counter for a copy.")
        else:
            self.slip.setStyleSheet(f"font-size: 32px; font-weight: bold; color: {theme.INK};")
            self.slip.setText("请取走下方出口的缴费凭条   Please take your slip below")


class RefundsScreen(Screen):
    """Today's paid items that can still be given back: tap to tick, then one button."""

    def __init__(self, send: Send):
        super().__init__(send)
        self.body.addWidget(title_block("请选择要退费的项目（可多选）", "Tap the items you want refunded"))
        self.body.addWidget(label("只能退还未取药、未检查、未治疗的项目，费用原路退回。  "
                                  "Only items not yet dispensed or performed; money goes back the way it came.",
                                  24, color=theme.MUTED, wrap=True))
        self.notice = notice_label()
        self.body.addWidget(self.notice)
        self.grid = PagedGrid(4, 2, self.make_tile)
        self.body.addWidget(self.grid, 1)
        row = QHBoxLayout()
        self.total = label("", 36, True, theme.DANGER)
        row.addWidget(self.total)
        row.addStretch(1)
        self.go = button("申请退费  Refund", "primary", self.intent("request_refund"), 480)
        row.addWidget(self.go)
        self.bottom = QWidget()
        self.bottom.setLayout(row)
        self.body.addWidget(self.bottom)
        self.selected: list[str] = []
        self.order_no = ""

    def make_tile(self, entry: tuple[dict[str, Any], dict[str, Any]]) -> Tile:
        order, item = entry
        ticked = order.get("order_no") == self.order_no and item.get("item_id") in self.selected
        refundable = item.get("status") == "PAID"
        state = {"REFUNDED": "已退费  Refunded", "REFUND_PENDING": "退费处理中  In progress"}.get(
            item.get("status", ""), "✓ 已选择  Selected" if ticked else "点击选择  Tap to select")
        colors = (theme.PRIMARY, "white") if ticked else (theme.CARD, theme.INK)
        tile = Tile([(item.get("name", ""), 32, True), (yuan(int(item.get("amount_fen", 0))), 30, True),
                     (state, 22, ticked)], enabled=refundable, colors=colors, min_height=130)
        tile.clicked.connect(self.intent("toggle_item", order_no=order.get("order_no"), item_id=item.get("item_id")))
        return tile

    def render(self, view: View) -> None:
        self.selected = list(view.data.get("selected") or [])
        self.order_no = view.data.get("order_no") or ""
        entries = [(o, i) for o in view.data.get("orders") or [] for i in o.get("items", [])]
        self.grid.items = entries
        self.grid.show_page(self.grid.page)  # a tick keeps the patient on the page they were on
        self.grid.setVisible(bool(entries))
        self.bottom.setVisible(bool(entries))
        show_notice(self.notice, view)
        total = int(view.data.get("total_fen") or 0)
        self.total.setText(f"已选 {len(self.selected)} 项，共 {yuan(total)}" if self.selected
                           else "请点击上方项目进行选择  Tap items above")
        self.go.setEnabled(bool(self.selected))


class RefundConfirmScreen(Screen):
    def __init__(self, send: Send):
        super().__init__(send)
        self.body.addWidget(title_block("请确认退费项目", "Please confirm the refund"))
        self.card, self.grid = _card()
        self.body.addWidget(self.card, 1)
        self.body.addWidget(label("退费将原路退回：微信、支付宝退回原账户，医保部分退回医保。\n"
                                  "The money goes back the way it was paid; the insurance part goes back to "
                                  "insurance.", 28, wrap=True))
        self.go = button("确认退费  Confirm refund", "primary", self.intent("confirm_refund"), 620)
        self.body.addLayout(centered(self.go))

    def render(self, view: View) -> None:
        _clear(self.grid)
        items = view.data.get("items") or []
        shown = items if len(items) <= MAX_ROWS - 1 else items[:MAX_ROWS - 2]
        for r, item in enumerate(shown):
            self.grid.addWidget(label(item.get("name", ""), 32, True), r, 0)
            self.grid.addWidget(label(yuan(int(item.get("amount_fen", 0))), 32, True,
                                      align=Qt.AlignmentFlag.AlignRight), r, 1)
        r = len(shown)
        if len(shown) < len(items):
            self.grid.addWidget(label(f"另有 {len(items) - r} 项  and {len(items) - r} more", 28,
                                      color=theme.MUTED), r, 0)
            r += 1
        self.grid.addWidget(label("退费合计  Refund total", 34, True), r, 0)
        self.grid.addWidget(label(yuan(int(view.data.get("total_fen") or 0)), 52, True, theme.DANGER,
                                  Qt.AlignmentFlag.AlignRight), r, 1)
        self.grid.setRowStretch(r + 1, 1)
        self.go.setText(f"确认退费 {yuan(int(view.data.get('total_fen') or 0))}  Confirm refund")


class RefundDoneScreen(Screen):
    """The refund's outcome; items the kiosk may not refund are named with where to go instead."""

    def __init__(self, send: Send):
        super().__init__(send)
        self.body.addStretch(1)
        self.badges = {"tick": Badge("tick", theme.ACCENT, 150), "!": Badge("!", theme.WARN, 150)}
        self.body.addLayout(centered(*self.badges.values()))
        self.heading = label("", 52, True, align=Qt.AlignmentFlag.AlignCenter, wrap=True)
        self.detail = label("", 34, align=Qt.AlignmentFlag.AlignCenter, wrap=True)
        self.detail_en = label("", 24, color=theme.MUTED, align=Qt.AlignmentFlag.AlignCenter, wrap=True)
        for w in (self.heading, self.detail, self.detail_en):
            self.body.addWidget(w)
        self.body.addStretch(1)
        self.body.addLayout(centered(button("完成，返回首页  Done", "primary", self.intent("finish"), 480)))
        self.body.addStretch(1)

    def render(self, view: View) -> None:
        data = view.data
        counter = data.get("at_counter") or []
        refunded = data.get("refunded") or []
        pending = data.get("pending") or []
        ok = not counter
        self.badges["tick"].setVisible(ok)
        self.badges["!"].setVisible(not ok)
        if counter:
            self.heading.setText("以下项目不能在本机退费，请到人工窗口办理")
            self.detail.setText("、".join(counter) + "\n（已取药或已检查的项目，需由窗口核实后退费）")
            self.detail_en.setText("These items were already dispensed or performed, so a counter must refund "
                                   "them. Nothing was refunded here.")
        else:
            fen = sum(int(i.get("amount_fen", 0)) for i in refunded + pending)
            names = "、".join(i.get("name", "") for i in refunded + pending)
            self.heading.setText(f"退费成功  {yuan(fen)}" if not pending else f"退费已受理  {yuan(fen)}")
            self.detail.setText(f"{names}\n费用将原路退回，到账时间以银行或支付平台为准（一般 1–7 个工作日）")
            self.detail_en.setText("Refund accepted. The money goes back the way it was paid, usually within "
                                   "1–7 working days.")
