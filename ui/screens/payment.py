"""Payment: the WeChat Pay QR (or a payment code under the scanner), the amount, and time left. The kiosk
polls; the patient only scans or shows a code. Where the terminal has a card reader and a PIN pad, "银行卡"
next to the QR leads to the bank-card screen (`BankCardScreen`): insert the card, type the PIN on the pad,
take the card back."""
from __future__ import annotations

import time

import qrcode
from PySide6.QtCore import QPointF, QRectF, Qt, QTimer
from PySide6.QtGui import QColor, QFont, QPainter, QPen, QPolygonF
from PySide6.QtWidgets import QFrame, QHBoxLayout, QSizePolicy, QVBoxLayout, QWidget

from ui import theme
from ui.screens.base import Screen, Send
from ui.widgets import button, label, title_block, yuan
from workflows.view import View

WECHAT_GREEN = "#07C160"


class QrWidget(QWidget):
    """Draws a QR code crisply at any size straight from its module matrix."""

    def __init__(self, size: int = 440):
        super().__init__()
        self.setFixedSize(size, size)
        self.matrix: list[list[bool]] = []

    def set_data(self, data: str) -> None:
        qr = qrcode.QRCode(border=2, error_correction=qrcode.constants.ERROR_CORRECT_M)
        qr.add_data(data)
        qr.make(fit=True)
        self.matrix = qr.get_matrix() if data else []
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802
        p = QPainter(self)
        p.fillRect(self.rect(), QColor("white"))
        if self.matrix:
            n = len(self.matrix)
            cell = self.width() / n
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(QColor("black"))
            for y, row in enumerate(self.matrix):
                for x, dark in enumerate(row):
                    if dark:
                        p.drawRect(QRectF(x * cell, y * cell, cell + 0.5, cell + 0.5))
        p.end()


class PaymentScreen(Screen):
    def __init__(self, send: Send):
        super().__init__(send)
        self.body.addWidget(title_block("请使用微信扫码支付，或出示付款码",
                                        "Scan the code with WeChat, or show your payment code"))
        row = QHBoxLayout()
        row.setSpacing(60)
        qr_card = QFrame()
        qr_card.setObjectName("Card")
        qr_box = QVBoxLayout(qr_card)
        qr_box.setContentsMargins(40, 20, 40, 20)
        qr_box.addWidget(label("微信支付  WeChat Pay", 32, True, WECHAT_GREEN, Qt.AlignmentFlag.AlignCenter))
        self.qr = QrWidget(360)
        qr_box.addWidget(self.qr, 0, Qt.AlignmentFlag.AlignCenter)
        qr_box.addWidget(label("打开微信 → 扫一扫", 26, align=Qt.AlignmentFlag.AlignCenter))
        left = QVBoxLayout()
        left.setSpacing(16)
        left.addWidget(qr_card, 0)
        # Next to the QR, where the terminal's card reader and PIN pad both work (the view's "bank_card").
        self.bank_card = button("银行卡支付  Pay by bank card", "", self.intent("pay_by_card"), 420)
        self.bank_card.hide()
        left.addWidget(self.bank_card)
        left.addStretch(1)
        row.addLayout(left, 0)
        info = QVBoxLayout()
        info.setSpacing(16)
        info.addStretch(1)
        info.addWidget(label("应付金额  Amount due", 30, color=theme.MUTED))
        self.amount = label("", 88, True, theme.DANGER)
        info.addWidget(self.amount)
        self.what = label("", 32, wrap=True)
        info.addWidget(self.what)
        self.order_no = label("", 24, color=theme.MUTED)
        info.addWidget(self.order_no)
        info.addSpacing(20)
        self.countdown = label("", 34, True, theme.WARN)
        info.addWidget(self.countdown)
        self.notice = label("", 30, True, theme.WARN, wrap=True)
        info.addWidget(self.notice)
        info.addWidget(label("也可打开微信或支付宝付款码，对准下方扫描口。\n"
                             "Or hold a WeChat / Alipay payment code under the scanner below.", 26, wrap=True))
        info.addWidget(label("支付成功后将自动办理并打印凭条，请勿离开。\n"
                             "After paying, please wait here for your slip.", 26, color=theme.MUTED, wrap=True))
        info.addStretch(1)
        holder = QWidget()
        holder.setLayout(info)
        holder.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        row.addWidget(holder, 1)
        self.body.addLayout(row, 1)
        self.deadline: float | None = None
        self.timer = QTimer(self)
        self.timer.timeout.connect(self._tick)
        self.timer.start(500)

    def render(self, view: View) -> None:
        order = view.data.get("order") or {}
        payment = order.get("payment") or {}
        self.qr.set_data(payment.get("code_url", ""))
        self.amount.setText(yuan(order.get("amount_fen", 0)))
        dept, doctor, slot = (order.get(k) or {} for k in ("department", "doctor", "slot"))
        self.what.setText(f"{dept.get('name', '')}  {doctor.get('name', '')}  "
                          f"{slot.get('start', '')}-{slot.get('end', '')}")
        self.order_no.setText(f"订单号 Order  {order.get('order_no', '')}")
        self.notice.setText(f"{view.message}\n{view.message_en}" if view.message else "")
        self.notice.setVisible(bool(view.message))
        self.bank_card.setVisible(bool(view.data.get("bank_card")))
        self.deadline = view.deadline
        self._tick()

    def _tick(self) -> None:
        if self.deadline is None:
            self.countdown.setText("")
            return
        left = max(0, int(self.deadline - time.monotonic()))
        self.countdown.setText(f"请在 {left // 60}:{left % 60:02d} 内完成支付")


def payable(order: dict) -> int:
    """What the patient pays now: the self-pay part once insurance has split the order."""
    if (order.get("insurance") or {}).get("state") in ("PRESETTLED", "SUCCESS"):
        return int(order.get("self_pay_fen") or 0)
    return int(order.get("amount_fen") or 0)


class CardIntoSlot(QWidget):
    """The kiosk's card slot with a bank card going in, chip first and up, or coming back out: a drawing says
    it faster than a sentence to a patient who has never used this kiosk."""

    def __init__(self) -> None:
        super().__init__()
        self.setMinimumSize(520, 420)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.out = False  # the arrow points out of the slot: "take your card"

    def set_out(self, out: bool) -> None:
        self.out = out
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        w, h = self.width(), self.height()
        cx = w / 2
        # The kiosk's front with the slot, at the bottom.
        front = QRectF(cx - 250, h - 150, 500, 130)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor("#3A4756"))
        p.drawRoundedRect(front, 22, 22)
        p.setBrush(QColor("#111821"))
        p.drawRoundedRect(QRectF(cx - 170, h - 120, 340, 22), 8, 8)
        p.setBrush(QColor("#5CC8FF"))
        p.drawRoundedRect(QRectF(cx - 170, h - 92, 340, 6), 3, 3)
        font = QFont(theme.FONT_FAMILY)
        font.setPixelSize(24)
        p.setFont(font)
        p.setPen(QColor("white"))
        p.drawText(QRectF(front.left(), h - 78, front.width(), 50), Qt.AlignmentFlag.AlignCenter, "插卡口  Card slot")
        # The card, upright above the slot, chip at its lower end.
        card = QRectF(cx - 150, 20, 300, 190)
        p.setPen(QPen(QColor("#0B4F86"), 3))
        p.setBrush(QColor("#1A7FC9"))
        p.drawRoundedRect(card, 18, 18)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor("#E9C46A"))
        p.drawRoundedRect(QRectF(card.left() + 34, card.bottom() - 78, 58, 44), 8, 8)
        p.setBrush(QColor("#D9E8F5"))
        for i in range(3):
            p.drawRoundedRect(QRectF(card.left() + 120, card.top() + 40 + i * 28, 140 - i * 30, 12), 5, 5)
        p.setPen(QColor("white"))
        font.setPixelSize(26)
        font.setBold(True)
        p.setFont(font)
        p.drawText(QRectF(card.left(), card.top() + 6, card.width() - 20, 30),
                   Qt.AlignmentFlag.AlignRight, "银联 UnionPay")
        # The arrow: into the slot, or out of it.
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor(theme.ACCENT if self.out else theme.PRIMARY))
        top, bottom = card.bottom() + 16, h - 160
        p.drawRect(QRectF(cx - 14, top + (24 if self.out else 0), 28, bottom - top - 24))
        if self.out:
            p.drawPolygon(QPolygonF([QPointF(cx - 40, top + 30), QPointF(cx + 40, top + 30), QPointF(cx, top)]))
        else:
            p.drawPolygon(QPolygonF([QPointF(cx - 40, bottom - 30), QPointF(cx + 40, bottom - 30),
                                     QPointF(cx, bottom)]))
        p.end()


class PinDots(QWidget):
    """●●●○○○: how many digits the PIN pad has taken. The pad tells the kiosk a count, never a digit."""

    def __init__(self) -> None:
        super().__init__()
        self.setFixedHeight(90)
        self.setMinimumWidth(560)
        self.count, self.length = 0, 6

    def set_count(self, count: int, length: int) -> None:
        self.count, self.length = count, max(1, length)
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        step = 90
        x0 = 8.0
        for i in range(self.length):
            filled = i < self.count
            p.setPen(QPen(QColor(theme.PRIMARY), 4))
            p.setBrush(QColor(theme.PRIMARY if filled else "white"))
            p.drawEllipse(QRectF(x0 + i * step, 15, 60, 60))
        p.end()


#: Per step: the title (Chinese, English) and the words under the drawing.
CARD_STEPS: dict[str, tuple[str, str, list[tuple[str, str]]]] = {
    "insert": ("请插入银行卡", "Please insert your bank card",
               [("1  芯片朝上，芯片一端先插入", "Chip up, chip end first"),
                ("2  插到底，听到提示音后松手", "Push it all the way in"),
                ("3  然后在密码键盘上输入密码", "Then enter your PIN on the PIN pad")]),
    "reading": ("正在读卡，请勿拔卡…", "Reading your card; please leave it in…", []),
    "pin": ("请在密码键盘上输入密码", "Enter your PIN on the PIN pad",
            [("输入6位密码后按「确认」键", "Type your 6-digit PIN, then press Enter"),
             ("请用手遮挡键盘，保护密码安全", "Shield the keypad with your hand"),
             ("如需取消，请按键盘上的「取消」键", "To cancel, press Cancel on the PIN pad")]),
    "paying": ("正在支付，请勿拔卡…", "Paying; please leave your card in…", []),
    "take": ("支付成功，请取回银行卡", "Paid. Please take your bank card",
             [("取卡后将自动办理并打印凭条", "Your slip is printed after you take the card")]),
}


class BankCardScreen(Screen):
    """银行卡: one screen for the card's steps (insert, reading, PIN, paying, take the card). The amount stays
    in view; after a decline the bank's words, "再试一次" and "改用扫码支付"."""

    def __init__(self, send: Send):
        super().__init__(send)
        self.title = title_block("", "")
        self.body.addWidget(self.title)
        row = QHBoxLayout()
        row.setSpacing(40)
        self.drawing = CardIntoSlot()
        row.addWidget(self.drawing, 3)
        side = QVBoxLayout()
        side.setSpacing(14)
        side.addStretch(1)
        self.due = label("应付金额  Amount due", 30, color=theme.MUTED)
        side.addWidget(self.due)
        self.amount = label("", 80, True, theme.DANGER)
        side.addWidget(self.amount)
        self.order_no = label("", 24, color=theme.MUTED)
        side.addWidget(self.order_no)
        self.dots = PinDots()
        side.addWidget(self.dots)
        self.steps = QVBoxLayout()
        self.steps.setSpacing(4)
        side.addLayout(self.steps)
        self.notice = label("", 30, True, theme.WARN, wrap=True)
        side.addWidget(self.notice)
        choices = QHBoxLayout()
        choices.setSpacing(24)
        self.retry = button("再试一次  Try again", "primary", self.intent("card_retry"), 400)
        self.to_qr = button("改用扫码支付  Pay by QR code", "", self.intent("back"), 460)
        self.retry.hide()
        self.notice.hide()
        choices.addWidget(self.retry)
        choices.addWidget(self.to_qr)
        choices.addStretch(1)
        side.addLayout(choices)
        self.countdown = label("", 30, True, theme.WARN)
        side.addWidget(self.countdown)
        side.addStretch(1)
        holder = QWidget()
        holder.setLayout(side)
        holder.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        row.addWidget(holder, 4)
        self.body.addLayout(row, 1)
        self.deadline: float | None = None
        self.timer = QTimer(self)
        self.timer.timeout.connect(self._tick)
        self.timer.start(500)

    def render(self, view: View) -> None:
        step = str(view.data.get("step", "insert"))
        zh, en, lines = CARD_STEPS.get(step, CARD_STEPS["insert"])
        self.title.zh.setText(zh)
        self.title.en.setText(en)
        order = view.data.get("order") or {}
        self.amount.setText(yuan(payable(order)))
        self.due.setText("已支付  Paid" if step == "take" else "应付金额  Amount due")
        self.order_no.setText(f"订单号 Order  {order.get('order_no', '')}")
        self.drawing.set_out(step == "take")
        self.dots.setVisible(step == "pin")
        self.dots.set_count(int(view.data.get("digits", 0)), int(view.data.get("pin_length", 6)))
        while self.steps.count():
            item = self.steps.takeAt(0)
            if item.widget():
                item.widget().deleteLater()
        for line_zh, line_en in ([] if view.message else lines):  # after a decline its words take the room
            self.steps.addWidget(label(line_zh, 32, True))
            self.steps.addWidget(label(line_en, 22, color=theme.MUTED))
        self.notice.setText(f"{view.message}\n{view.message_en}" if view.message else "")
        self.notice.setVisible(bool(view.message))
        waiting = step == "insert"
        self.retry.setVisible(waiting and bool(view.message))
        self.to_qr.setVisible(waiting and bool(view.data.get("qr_back", True)))
        self.deadline = view.deadline if waiting else None
        self._tick()

    def _tick(self) -> None:
        if self.deadline is None:
            self.countdown.setText("")
            return
        left = max(0, int(self.deadline - time.monotonic()))
        self.countdown.setText(f"请在 {left // 60}:{left % 60:02d} 内完成支付")
