"""Insert-card screen: a drawing of where the card goes beats any sentence for a first-time patient; it also
names the codes the scanner takes instead and offers the other ways in (K1): a passport or permit number typed
on the glass, and 刷脸 where the kiosk has a working camera. The new-file screen (建档, K2) asks for the phone
number."""
from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPen, QPolygonF
from PySide6.QtWidgets import QGridLayout, QHBoxLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from ui import theme
from ui.screens.base import Screen, Send
from ui.widgets import button, centered, label, title_block
from workflows.view import View


class CardOnReader(QWidget):
    """Drawn on a 620 × 640 canvas and scaled to the space left, so the screen's buttons always fit below."""

    W, H = 620, 640

    def __init__(self) -> None:
        super().__init__()
        self.setMinimumSize(400, 400)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        scale = min(self.width() / self.W, self.height() / self.H)
        p.translate((self.width() - self.W * scale) / 2, (self.height() - self.H * scale) / 2)
        p.scale(scale, scale)
        w, h = self.W, self.H
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
    """The face button shows only when the view says the camera works (`data["face"]`); tapping it is the
    patient's consent, so the consent's terms stand next to it."""

    def __init__(self, send: Send):
        super().__init__(send)
        self.body.addWidget(title_block("请将身份证放在读卡区，或扫码识别",
                                        "Place your ID card on the reader, or scan a code"))
        self.notice = QLabel()
        self.notice.setObjectName("Notice")
        self.notice.setWordWrap(True)
        self.notice.hide()
        self.body.addWidget(self.notice)
        row = QHBoxLayout()
        row.addWidget(CardOnReader(), 3)
        steps = QVBoxLayout()
        steps.setSpacing(2)
        steps.addStretch(1)
        for zh, en in (("1  身份证正面朝上，平放在读卡区", "Lay the card flat, photo side up"),
                       ("2  听到提示音前请勿移动", "Keep it still until you hear the beep"),
                       ("3  读卡成功后请取回身份证", "Take your card back after reading")):
            steps.addWidget(label(zh, 34, True))
            steps.addWidget(label(en, 22, color=theme.MUTED))
            steps.addSpacing(14)
        steps.addWidget(label("没带身份证？插入社保卡，或在扫码口出示：", 30, True, theme.PRIMARY))
        steps.addWidget(label("No ID card? Insert a social-security card, or scan:", 22, color=theme.MUTED))
        for zh, en in (("电子健康卡（码）", "E-health card QR"), ("医保电子凭证", "Medical-insurance e-voucher"),
                       ("就诊码 / 就诊卡", "Visit code or visit card")):
            steps.addWidget(label(f"•  {zh}   {en}", 24))
        steps.addWidget(label("没有档案？放入身份证即可自助建档  No file? Your ID card creates one", 22,
                              color=theme.MUTED))
        steps.addStretch(1)
        row.addLayout(steps, 2)
        self.body.addLayout(row, 1)
        others = QHBoxLayout()
        others.setSpacing(24)
        others.addWidget(label("其他方式\nOther ways", 26, True, theme.PRIMARY))
        self.document = button("护照 / 港澳台通行证  Passport or permit", on_click=self.intent("type_document"),
                               min_width=620)
        others.addWidget(self.document)
        self.face = button("刷脸识别  Face", "primary", self.intent("scan_face"), 360)
        others.addWidget(self.face)
        self.consent = label("点击“刷脸识别”即表示同意拍照，照片仅用于核验身份，不会保存\n"
                             "Tapping Face means you agree to one photo, used only to verify who you are "
                             "and not kept", 20, color=theme.MUTED, wrap=True)
        others.addWidget(self.consent, 1)
        self.body.addLayout(others)

    def render(self, view: View) -> None:
        face = bool(view.data.get("face"))
        self.face.setVisible(face)
        self.consent.setVisible(face)
        self.notice.setText(f"{view.message}\n{view.message_en}".strip())
        self.notice.setVisible(bool(view.message))


class NewFileScreen(Screen):
    """建档: the masked name from the ID card, a keypad for the mobile number, Create. The digits stay in this
    widget and leave it only with the Create tap."""

    LENGTH = 11

    def __init__(self, send: Send):
        super().__init__(send)
        self.typed = ""
        self.body.addWidget(title_block("未找到您的就诊档案，是否现在建档？",
                                        "No patient file found. Create one now?"))
        row = QHBoxLayout()
        left = QVBoxLayout()
        left.addStretch(1)
        self.who = label("", 40, True, align=Qt.AlignmentFlag.AlignCenter)
        left.addWidget(self.who)
        left.addWidget(label("请输入您的手机号码", 32, align=Qt.AlignmentFlag.AlignCenter))
        left.addWidget(label("Enter your mobile number", 22, color=theme.MUTED, align=Qt.AlignmentFlag.AlignCenter))
        self.number = label("", 56, True, theme.PRIMARY, Qt.AlignmentFlag.AlignCenter)
        left.addWidget(self.number)
        self.message = label("", 26, True, theme.DANGER, Qt.AlignmentFlag.AlignCenter, wrap=True)
        left.addWidget(self.message)
        self.create = button("建档并继续  Create and continue", "primary", self._confirm, 560)
        left.addLayout(centered(self.create))
        left.addStretch(1)
        row.addLayout(left, 3)
        pad = QGridLayout()
        pad.setSpacing(14)
        for i, key in enumerate(["1", "2", "3", "4", "5", "6", "7", "8", "9", "清除", "0", "⌫"]):
            btn = button(key, min_width=180)
            btn.clicked.connect(lambda _checked=False, k=key: self._press(k))
            pad.addWidget(btn, i // 3, i % 3)
        row.addLayout(pad, 2)
        self.body.addLayout(row, 1)

    def render(self, view: View) -> None:
        self.typed = ""
        self.who.setText(f"{view.data.get('name_masked', '')}  {view.data.get('gender', '')}")
        self.message.setText(f"{view.message}  {view.message_en}".strip())
        self._show()

    def _press(self, key: str) -> None:
        if key == "清除":
            self.typed = ""
        elif key == "⌫":
            self.typed = self.typed[:-1]
        elif len(self.typed) < self.LENGTH:
            self.typed += key
        self._show()

    def _confirm(self) -> None:
        phone, self.typed = self.typed, ""
        self._show()
        self.send("confirm_file", phone=phone)

    def _show(self) -> None:
        shown = self.typed + "_" * (self.LENGTH - len(self.typed))
        self.number.setText(f"{shown[:3]} {shown[3:7]} {shown[7:]}")
        self.create.setEnabled(len(self.typed) == self.LENGTH)
