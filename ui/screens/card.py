"""Insert-card screen: a drawing of where the card goes beats any sentence for a first-time patient."""
from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPen, QPolygonF
from PySide6.QtWidgets import QHBoxLayout, QSizePolicy, QVBoxLayout, QWidget

from ui import theme
from ui.screens.base import Screen, Send
from ui.widgets import label, title_block
from workflows.view import View


class CardOnReader(QWidget):
    def __init__(self) -> None:
        super().__init__()
        self.setMinimumSize(620, 560)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        w, h = self.width(), self.height()
        cx = w / 2
        reader = QRectF(cx - 260, h - 200, 520, 150)
        p.setBrush(QColor("#3A4756"))
        p.setPen(Qt.PenStyle.NoPen)
        p.drawRoundedRect(reader, 24, 24)
        p.setBrush(QColor("#5CC8FF"))
        p.drawRoundedRect(QRectF(cx - 180, h - 175, 360, 24), 10, 10)
        p.setPen(QColor("white"))
        font = QFont(theme.FONT_FAMILY)
        font.setPixelSize(26)
        p.setFont(font)
        p.drawText(reader.adjusted(0, 40, 0, 0), Qt.AlignmentFlag.AlignCenter, "身份证读卡区")
        card = QRectF(cx - 210, 40, 420, 260)
        p.setBrush(QColor("#F7F2E6"))
        p.setPen(QPen(QColor("#B8A878"), 3))
        p.drawRoundedRect(card, 22, 22)
        p.setBrush(QColor("#D9CDB0"))
        p.setPen(Qt.PenStyle.NoPen)
        p.drawRoundedRect(QRectF(card.right() - 130, card.top() + 40, 100, 130), 10, 10)
        for i in range(4):
            p.drawRoundedRect(QRectF(card.left() + 30, card.top() + 45 + i * 40, 200 - i * 25, 16), 6, 6)
        p.setBrush(QColor(theme.PRIMARY))
        ax = cx
        p.drawRect(QRectF(ax - 14, 320, 28, 70))
        p.drawPolygon(QPolygonF([QPointF(ax - 44, 385), QPointF(ax + 44, 385), QPointF(ax, 440)]))
        p.end()


class InsertCardScreen(Screen):
    def __init__(self, send: Send):
        super().__init__(send)
        self.body.addWidget(title_block("请将身份证放在读卡区", "Place your ID card on the reader"))
        row = QHBoxLayout()
        row.addWidget(CardOnReader(), 3)
        steps = QVBoxLayout()
        steps.addStretch(1)
        for zh, en in (("1  身份证正面朝上，平放在读卡区", "Lay the card flat, photo side up"),
                       ("2  听到提示音前请勿移动", "Keep it still until you hear the beep"),
                       ("3  读卡成功后请取回身份证", "Take your card back after reading")):
            steps.addWidget(label(zh, 34, True))
            steps.addWidget(label(en, 22, color=theme.MUTED))
            steps.addSpacing(24)
        steps.addStretch(1)
        row.addLayout(steps, 2)
        self.body.addLayout(row, 1)

    def render(self, view: View) -> None:
        pass
