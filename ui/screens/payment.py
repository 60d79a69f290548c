"""Payment: the WeChat Pay QR (or a payment code under the scanner), the amount, and time left. The kiosk
polls; the patient only scans or shows a code."""
from __future__ import annotations

import time

import qrcode
from PySide6.QtCore import QRectF, Qt, QTimer
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import QFrame, QHBoxLayout, QSizePolicy, QVBoxLayout, QWidget

from ui import theme
from ui.screens.base import Screen, Send
from ui.widgets import label, title_block, yuan
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
        self.qr = QrWidget(400)
        qr_box.addWidget(self.qr, 0, Qt.AlignmentFlag.AlignCenter)
        qr_box.addWidget(label("打开微信 → 扫一扫", 26, align=Qt.AlignmentFlag.AlignCenter))
        row.addWidget(qr_card, 0)
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
        self.deadline = view.deadline
        self._tick()

    def _tick(self) -> None:
        if self.deadline is None:
            self.countdown.setText("")
            return
        left = max(0, int(self.deadline - time.monotonic()))
        self.countdown.setText(f"请在 {left // 60}:{left % 60:02d} 内完成支付")
