"""满意度评价 screens (K13): a few questions, five large faces each, Submit or Skip; then thanks.

Faces rather than numbers: they need no reading and mean the same in Chinese and English. Each face is a
button of at least the kiosk's touch size, with its word under it.
"""
from __future__ import annotations

from typing import Any

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QGridLayout, QHBoxLayout, QPushButton

from ui import theme
from ui.screens.base import Screen, Send
from ui.screens.result import Badge
from ui.widgets import button, centered, label, title_block
from workflows.view import View

FACE_COLOURS = {1: "#D64541", 2: "#E98B3A", 3: "#E3B505", 4: "#7DB343", 5: theme.ACCENT}


class FaceButton(QPushButton):
    """One score: a face from frowning (1) to beaming (5) above its word; filled when chosen."""

    def __init__(self, score: int, text: str, text_en: str):
        super().__init__()
        self.score, self.text_zh, self.text_en = score, text, text_en
        self.chosen = False
        self.setMinimumSize(176, 120)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.setAccessibleName(f"{text} {text_en}")

    def set_chosen(self, chosen: bool) -> None:
        self.chosen = chosen
        self.update()

    def paintEvent(self, event: Any) -> None:  # noqa: N802
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        colour = QColor(FACE_COLOURS[self.score])
        r = QRectF(self.rect()).adjusted(2, 2, -2, -2)
        p.setPen(QPen(colour if self.chosen else QColor(theme.LINE), 4 if self.chosen else 2))
        p.setBrush(QColor(colour.lighter(185) if self.chosen else QColor(theme.CARD)))
        p.drawRoundedRect(r, 16, 16)
        d = min(r.height() - 44, 64)
        face = QRectF(r.center().x() - d / 2, r.top() + 8, d, d)
        p.setPen(QPen(colour.darker(120), 3))
        p.setBrush(colour)
        p.drawEllipse(face)
        p.setBrush(QColor("white"))
        p.setPen(Qt.PenStyle.NoPen)
        for dx in (-0.18, 0.18):
            p.drawEllipse(face.center() + (face.topRight() - face.topLeft()) * dx - (face.bottomLeft() - face.topLeft()) * 0.12,
                          d * 0.07, d * 0.07)
        curve = (self.score - 3) * 0.12  # frown … flat … smile
        mouth = QPainterPath()
        y = face.top() + d * 0.66
        mouth.moveTo(face.left() + d * 0.28, y - curve * d * 0.5)
        mouth.quadTo(face.center().x(), y + curve * d, face.right() - d * 0.28, y - curve * d * 0.5)
        p.setPen(QPen(QColor("white"), max(3.0, d * 0.07), Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawPath(mouth)
        p.setPen(QColor(theme.INK))
        font = p.font()
        font.setPixelSize(22)
        font.setBold(self.chosen)
        p.setFont(font)
        p.drawText(QRectF(r.left(), face.bottom() + 2, r.width(), r.bottom() - face.bottom() - 2),
                   Qt.AlignmentFlag.AlignCenter, self.text_zh)
        p.end()


class SurveyScreen(Screen):
    def __init__(self, send: Send):
        super().__init__(send)
        self.body.setSpacing(12)
        head = QHBoxLayout()
        head.addWidget(title_block("请您为本次服务评价（约 10 秒）",
                                   "Please rate our service (about 10 seconds). Every question is optional."), 1)
        head.addWidget(button("跳过  Skip", on_click=self.intent("skip"), min_width=300))
        self.body.addLayout(head)
        self.grid = QGridLayout()
        self.grid.setHorizontalSpacing(16)
        self.grid.setVerticalSpacing(12)
        self.body.addLayout(self.grid, 1)
        self.submit = button("提交评价  Submit", "primary", self.intent("submit"), 520)
        self.body.addLayout(centered(self.submit))
        self.faces: dict[tuple[str, int], FaceButton] = {}
        self._questions: list[str] = []

    def _build(self, questions: list[dict[str, Any]], scale: list[dict[str, Any]]) -> None:
        for row, q in enumerate(questions):
            self.grid.addWidget(label(q["text"], 32, True, wrap=True), row * 2, 0)
            self.grid.addWidget(label(q["text_en"], 20, color=theme.MUTED, wrap=True), row * 2 + 1, 0)
            for col, s in enumerate(scale, start=1):
                face = FaceButton(int(s["score"]), s["text"], s["text_en"])
                face.clicked.connect(self.intent("answer", question=q["id"], score=int(s["score"])))
                self.faces[(q["id"], int(s["score"]))] = face
                self.grid.addWidget(face, row * 2, col, 2, 1)
        self.grid.setColumnStretch(0, 1)
        self._questions = [q["id"] for q in questions]

    def render(self, view: View) -> None:
        questions = view.data.get("questions", [])
        if [q["id"] for q in questions] != self._questions:
            self._build(questions, view.data.get("scale", []))
        answers = view.data.get("answers", {})
        for (qid, score), face in self.faces.items():
            face.set_chosen(answers.get(qid) == score)
        self.submit.setEnabled(bool(answers))


class SurveyThanksScreen(Screen):
    def __init__(self, send: Send):
        super().__init__(send)
        self.body.addStretch(1)
        self.body.addLayout(centered(Badge("tick", theme.ACCENT, 160)))
        self.body.addWidget(label("感谢您的评价！", 56, True, theme.ACCENT, Qt.AlignmentFlag.AlignCenter))
        self.body.addWidget(label("Thank you for your feedback. It helps us serve you better.", 26,
                                  color=theme.MUTED, align=Qt.AlignmentFlag.AlignCenter))
        self.body.addStretch(1)
        self.body.addLayout(centered(button("返回首页  Home", "primary", self.intent("finish"), 420)))
        self.body.addStretch(1)
