"""办卡绑卡 screens (K2): the menu with what the patient holds, the visit card under the scanner, and the e-health
card's QR.

The menu puts the patient's cards in words on the left (an elderly patient first wants to know whether they
already have one) and the two things to do as large tiles on the right; a tile that cannot be used says why in
its own text. The scanner screen draws the card's back with its barcode going to the scanner's window, since
"barcode" is not a word every patient knows. The QR screen makes the QR the largest thing on the glass.
"""
from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPen, QPolygonF
from PySide6.QtWidgets import QFrame, QHBoxLayout, QSizePolicy, QVBoxLayout, QWidget

from ui import theme
from ui.screens.base import Screen, Send
from ui.screens.payment import QrWidget
from ui.screens.result import Badge
from ui.widgets import Tile, button, centered, label, notice_label, show_notice, title_block
from workflows.view import View

#: What the e-health tile and the status line say for each state of the patient's card.
EHEALTH_WORDS = {
    "none": ("未申领", "Not yet applied for"),
    "here": ("已申领", "Issued"),
    "elsewhere": ("已有电子健康卡（请在手机中出示）", "You have one: show it from your phone"),
}


def _clear(layout: QVBoxLayout | QHBoxLayout) -> None:
    while layout.count():
        item = layout.takeAt(0)
        if item.widget():
            item.widget().hide()
            item.widget().deleteLater()


class CardMenuScreen(Screen):
    """What the patient holds, and 申领电子健康卡 / 绑定就诊卡."""

    def __init__(self, send: Send):
        super().__init__(send)
        self.body.addWidget(title_block("办卡绑卡：请选择要办理的业务", "Cards: choose what you would like to do"))
        self.notice = notice_label()
        self.body.addWidget(self.notice)
        row = QHBoxLayout()
        row.setSpacing(40)
        status = QFrame()
        status.setObjectName("Card")
        box = QVBoxLayout(status)
        box.setContentsMargins(40, 28, 40, 28)
        box.setSpacing(8)
        box.addWidget(label("电子健康卡", 34, True))
        box.addWidget(label("E-health card", 22, color=theme.MUTED))
        self.ehealth = label("", 32, True, theme.PRIMARY, wrap=True)
        self.ehealth_en = label("", 22, color=theme.MUTED, wrap=True)
        box.addWidget(self.ehealth)
        box.addWidget(self.ehealth_en)
        box.addSpacing(24)
        box.addWidget(label("已绑定就诊卡", 34, True))
        box.addWidget(label("Bound visit cards", 22, color=theme.MUTED))
        self.cards = QVBoxLayout()
        self.cards.setSpacing(4)
        box.addLayout(self.cards)
        box.addStretch(1)
        row.addWidget(status, 2)
        self.actions = QVBoxLayout()
        self.actions.setSpacing(28)
        row.addLayout(self.actions, 3)
        self.body.addLayout(row, 1)
        self.body.addLayout(centered(button("完成，返回首页  Done", "primary", self.intent("finish"), 480)))

    def render(self, view: View) -> None:
        show_notice(self.notice, view)
        state = str(view.data.get("ehealth", "none"))
        zh, en = EHEALTH_WORDS.get(state, EHEALTH_WORDS["none"])
        self.ehealth.setText(zh)
        self.ehealth_en.setText(en)
        _clear(self.cards)
        numbers = list(view.data.get("visit_cards") or [])
        for number in numbers:
            self.cards.addWidget(label(f"就诊卡  {number}", 32, True))
        if not numbers:
            self.cards.addWidget(label("暂无  None", 28, color=theme.MUTED))
        _clear(self.actions)
        self.actions.addWidget(self._ehealth_tile(state), 1)
        self.actions.addWidget(self._bind_tile(view), 1)

    def _ehealth_tile(self, state: str) -> Tile:
        if state == "elsewhere":
            lines = [("申领电子健康卡", 44, True), ("Apply for an e-health card", 24, False),
                     ("您已有电子健康卡，无需重复申领", 24, False), ("You already have one", 20, False)]
            return Tile(lines, enabled=False)
        if state == "here":
            lines = [("出示电子健康卡", 44, True), ("Show my e-health card", 24, False),
                     ("在屏幕上显示二维码并补打凭条", 24, False), ("QR code on screen and a new slip", 20, False)]
        else:
            lines = [("申领电子健康卡", 44, True), ("Apply for an e-health card", 24, False),
                     ("立即生成二维码，下次扫码即可识别", 24, False),
                     ("A QR code you can show at the scanner next time", 20, False)]
        tile = Tile(lines, colors=(theme.PRIMARY, "white"))
        tile.clicked.connect(self.intent("apply_ehealth"))
        return tile

    def _bind_tile(self, view: View) -> Tile:
        lines = [("绑定就诊卡", 44, True), ("Bind a visit card", 24, False)]
        if not view.data.get("can_bind", True):
            lines += [(str(view.data.get("bind_reason", "")), 22, False),
                      (str(view.data.get("bind_reason_en", "")), 18, False)]
            return Tile(lines, enabled=False)
        lines += [("绑定后可直接扫就诊卡识别身份", 24, False), ("Then the card identifies you here", 20, False)]
        tile = Tile(lines, colors=(theme.PRIMARY, "white"))
        tile.clicked.connect(self.intent("bind_card"))
        return tile


class BarcodeToScanner(QWidget):
    """The back of a visit card, its barcode, and an arrow to the scanner's window."""

    def __init__(self) -> None:
        super().__init__()
        self.setMinimumSize(620, 430)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        w, h = self.width(), self.height()
        cx = w / 2
        card = QRectF(cx - 230, 10, 460, 250)
        p.setBrush(QColor("#E8F1FA"))
        p.setPen(QPen(QColor(theme.PRIMARY), 3))
        p.drawRoundedRect(card, 22, 22)
        font = QFont(theme.FONT_FAMILY)
        font.setPixelSize(26)
        p.setFont(font)
        p.setPen(QColor(theme.PRIMARY_DARK))
        p.drawText(QRectF(card.left(), card.top() + 22, card.width(), 40), Qt.AlignmentFlag.AlignCenter, "就诊卡 背面")
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor("black"))
        x = card.left() + 60
        widths = (3, 1, 2, 1, 3, 2, 1, 1, 3, 1, 2, 2, 1, 3, 1, 2, 1, 3, 2, 1, 1, 2, 3, 1, 2, 1, 3, 1, 1, 2)
        for i, bar in enumerate(widths):
            if i % 2 == 0:
                p.drawRect(QRectF(x, card.top() + 75, bar * 4, 110))
            x += bar * 4 + 3
        p.setPen(QColor(theme.INK))
        p.drawText(QRectF(card.left(), card.top() + 195, card.width(), 40), Qt.AlignmentFlag.AlignCenter,
                   "6 1 2 3 4 5 1 2 3 4")
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor(theme.PRIMARY))
        tip = h - 95  # the arrow ends just above the scanner, however tall the screen leaves the drawing
        p.drawRect(QRectF(cx - 14, card.bottom() + 12, 28, max(tip - 50 - card.bottom() - 12, 10)))
        p.drawPolygon(QPolygonF([QPointF(cx - 44, tip - 50), QPointF(cx + 44, tip - 50), QPointF(cx, tip)]))
        scanner = QRectF(cx - 240, h - 80, 480, 70)
        p.setBrush(QColor("#3A4756"))
        p.drawRoundedRect(scanner, 20, 20)
        p.setBrush(QColor("#FF5A5A"))
        p.drawRoundedRect(QRectF(cx - 170, h - 62, 340, 14), 6, 6)
        p.setPen(QColor("white"))
        p.drawText(scanner.adjusted(0, 18, 0, 0), Qt.AlignmentFlag.AlignCenter, "扫码口")
        p.end()


class ScanVisitCardScreen(Screen):
    def __init__(self, send: Send):
        super().__init__(send)
        self.body.addWidget(title_block("请将就诊卡背面的条码对准扫码口",
                                        "Hold the barcode on the back of your visit card under the scanner"))
        self.notice = notice_label()
        self.body.addWidget(self.notice)
        row = QHBoxLayout()
        row.addWidget(BarcodeToScanner(), 3)
        steps = QVBoxLayout()
        steps.addStretch(1)
        for zh, en in (("1  条码朝下，距扫码口约 10 厘米", "Barcode facing the scanner, about 10 cm away"),
                       ("2  听到提示音后即可移开", "Move it away after the beep"),
                       ("3  绑定后，下次放卡扫码即可识别身份", "From then on, the card identifies you")):
            steps.addWidget(label(zh, 34, True))
            steps.addWidget(label(en, 22, color=theme.MUTED))
            steps.addSpacing(8)
        steps.addWidget(label("一张就诊卡只能绑定一位就诊人", 28, True, theme.PRIMARY))
        steps.addWidget(label("A visit card belongs to one patient only", 22, color=theme.MUTED))
        steps.addStretch(1)
        row.addLayout(steps, 2)
        self.body.addLayout(row, 1)

    def render(self, view: View) -> None:
        show_notice(self.notice, view)


class EHealthCardScreen(Screen):
    """The card's QR, large, with what to do with it and whether the slip came out."""

    def __init__(self, send: Send):
        super().__init__(send)
        heading = QWidget()
        hl = QVBoxLayout(heading)
        hl.setContentsMargins(0, 0, 0, 0)
        self.title = label("", 52, True, theme.ACCENT)
        self.title_en = label("", 24, color=theme.MUTED)
        hl.addWidget(self.title)
        hl.addWidget(self.title_en)
        self.body.addLayout(centered(Badge("tick", theme.ACCENT, 84), heading))
        row = QHBoxLayout()
        row.setSpacing(60)
        row.addStretch(1)
        qr_card = QFrame()
        qr_card.setObjectName("Card")
        qr_box = QVBoxLayout(qr_card)
        qr_box.setContentsMargins(24, 16, 24, 16)
        self.qr = QrWidget(380)
        qr_box.addWidget(self.qr, 0, Qt.AlignmentFlag.AlignCenter)
        row.addWidget(qr_card, 0, Qt.AlignmentFlag.AlignVCenter)  # the card hugs the QR, never stretched
        words = QVBoxLayout()
        words.setSpacing(4)
        words.addStretch(1)
        for zh, en in (("就诊时在扫码口出示此二维码", "Show this QR code to the scanner when you come"),
                       ("即可识别身份，无需身份证", "It identifies you without your ID card"),
                       ("二维码即您的身份凭证，请勿转交他人", "The code is your identity: keep it to yourself")):
            words.addWidget(label(zh, 34, True))
            words.addWidget(label(en, 22, color=theme.MUTED))
            words.addSpacing(10)
        self.slip = label("", 30, True)  # two set lines: a wrapping label would ask for the height of many
        words.addWidget(self.slip)
        words.addStretch(1)
        row.addLayout(words)
        row.addStretch(1)
        self.body.addLayout(row, 1)
        self.body.addLayout(centered(button("‹ 返回办卡绑卡  Back", on_click=self.intent("back"), min_width=420),
                                     button("完成，返回首页  Done", "primary", self.intent("finish"), 480)))

    def render(self, view: View) -> None:
        created = bool(view.data.get("created"))
        self.title.setText("电子健康卡申领成功" if created else "您的电子健康卡")
        self.title_en.setText("Your e-health card has been issued" if created else "Your e-health card")
        self.qr.set_data(str(view.data.get("code") or ""))
        if view.data.get("print_failed"):
            self.slip.setStyleSheet(f"font-size: 30px; font-weight: bold; color: {theme.WARN};")
            self.slip.setText("凭条打印失败，电子健康卡已办好，可在此补打\n"
                              "The slip did not print. Your card is issued;\nyou can print it again here.")
        else:
            self.slip.setStyleSheet(f"font-size: 30px; font-weight: bold; color: {theme.INK};")
            self.slip.setText("请取走下方出口的凭条\nPlease take your slip below")


#: The screens of this service, by the View names the workflow publishes (ui.window registers them).
PATIENT_CARD_SCREENS: dict[str, type[Screen]] = {
    "card_menu": CardMenuScreen, "scan_visit_card": ScanVisitCardScreen, "ehealth_card": EHealthCardScreen,
}
