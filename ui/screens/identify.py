"""The other ways in besides the ID card (K1): choosing the patient of a family's e-health account, typing a
passport or HK-Macao-Taiwan permit number, and 刷脸.

The typed number and name live in the document screen's widget only until the Look-up tap, like the phone
number of the new-file screen: a patient who walks away leaves nothing on the glass for the next one.
"""
from __future__ import annotations

from typing import Any

from PySide6.QtCore import QRectF, Qt, QTimer
from PySide6.QtGui import QColor, QMouseEvent, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QFrame, QGridLayout, QHBoxLayout, QSizePolicy, QVBoxLayout, QWidget

from ui import theme
from ui.screens.base import Screen, Send
from ui.widgets import PagedGrid, Tile, button, centered, label, notice_label, show_notice, title_block
from workflows.view import View


class ChoosePatientScreen(Screen):
    """One big tile per patient of the account, with the masked name, gender and age the server sent: enough
    for a parent to tell their child from their mother, nothing a passer-by could use."""

    def __init__(self, send: Send):
        super().__init__(send)
        self.body.addWidget(title_block("该电子健康卡绑定了多位就诊人，请选择本次就诊的人",
                                        "This e-health card holds several patients. Who is being seen today?"))
        self.notice = notice_label()
        self.body.addWidget(self.notice)
        self.grid = PagedGrid(3, 2, self.make_tile)
        self.body.addWidget(self.grid, 1)

    def make_tile(self, patient: dict[str, Any]) -> Tile:
        age = patient.get("age")
        details = "  ".join(x for x in (str(patient.get("gender") or ""), f"{age}岁" if age not in (None, "") else "")
                            if x)
        tile = Tile([(str(patient.get("name_masked") or ""), 64, True), (details, 34, False),
                     ("点击选择  Tap to choose", 22, False)], min_height=240)
        tile.clicked.connect(self.intent("pick_patient", patient_id=patient["patient_id"]))
        return tile

    def render(self, view: View) -> None:
        self.grid.set_items(view.data.get("patients", []))
        show_notice(self.notice, view)


class _Field(QFrame):
    """A typed value with its caption; tapping it makes it the one the keyboard types into."""

    def __init__(self, caption: str, on_tap: Any):
        super().__init__()
        self.on_tap = on_tap
        self.setMinimumHeight(theme.TOUCH_MIN + 20)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        box = QVBoxLayout(self)
        box.setContentsMargins(24, 8, 24, 8)
        box.setSpacing(0)
        box.addWidget(label(caption, 22, color=theme.MUTED))
        self.value = label("", 44, True)
        box.addWidget(self.value)
        self.set_active(False)

    def set_active(self, active: bool) -> None:
        border = theme.PRIMARY if active else theme.LINE
        self.setObjectName("Field")
        self.setStyleSheet(f"#Field {{ background: {theme.CARD}; border-radius: 14px; "
                           f"border: {4 if active else 2}px solid {border}; }}")

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt naming)
        if self.rect().contains(event.position().toPoint()):
            self.on_tap()
        super().mouseReleaseEvent(event)


class DocumentScreen(Screen):
    """Passport or permit: the number first (letters and digits, 5–20), then the name as on the document,
    then Look up. Both stay in this widget until the tap sends them, and are wiped by it."""

    NUMBER_MIN, NUMBER_MAX, NAME_MAX = 5, 20, 50
    ROWS = ("1234567890", "QWERTYUIOP", "ASDFGHJKL", "ZXCVBNM")

    def __init__(self, send: Send):
        super().__init__(send)
        self.number = ""
        self.name = ""
        self.step = "number"
        self.body.addWidget(title_block("请输入护照或港澳台通行证号码及姓名",
                                        "Type your passport or HK / Macao / Taiwan permit number and your name"))
        self.notice = notice_label()
        self.body.addWidget(self.notice)
        fields = QHBoxLayout()
        fields.setSpacing(18)
        self.number_field = _Field("① 证件号码（字母或数字）  Document number", lambda: self._switch("number"))
        self.name_field = _Field("② 姓名，按证件上的英文拼写，空格可省略  Name as spelt on the document",
                                 lambda: self._switch("name"))
        fields.addWidget(self.number_field, 2)
        fields.addWidget(self.name_field, 3)
        self.action = button("", "primary", self._act, 320)
        fields.addWidget(self.action)
        self.body.addLayout(fields)
        keys = QGridLayout()
        keys.setSpacing(12)
        self.keys: dict[str, Any] = {}
        for r, row in enumerate(self.ROWS):
            for c, key in enumerate(row):
                self._add_key(keys, key, r, c)
        last = len(self.ROWS) - 1
        self._add_key(keys, "空格 Space", last, len(self.ROWS[last]), 1)
        self._add_key(keys, "⌫", last, len(self.ROWS[last]) + 1, 1)
        self._add_key(keys, "清除 Clear", last, len(self.ROWS[last]) + 2, 1)
        for col in range(max(len(row) for row in self.ROWS)):
            keys.setColumnStretch(col, 1)
        self.body.addLayout(keys)
        self.body.addStretch(1)

    def _add_key(self, grid: QGridLayout, key: str, row: int, col: int, span: int = 1) -> None:
        btn = button(key, min_width=120)
        btn.setStyleSheet("padding: 0 8px;")  # equal keys: the wide labels must not widen their column
        btn.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        btn.clicked.connect(lambda _checked=False, k=key: self._press(k))
        grid.addWidget(btn, row, col, 1, span)
        self.keys[key] = btn

    def render(self, view: View) -> None:
        self.number, self.name, self.step = "", "", "number"
        show_notice(self.notice, view)
        self._show()

    def _switch(self, step: str) -> None:
        if step == "name" and not self._number_ok():
            return
        self.step = step
        self._show()

    def _number_ok(self) -> bool:
        return self.NUMBER_MIN <= len(self.number) <= self.NUMBER_MAX

    def _press(self, key: str) -> None:
        value = self.number if self.step == "number" else self.name
        if key == "清除 Clear":
            value = ""
        elif key == "⌫":
            value = value[:-1]
        elif key == "空格 Space":
            if self.step == "name" and value and not value.endswith(" ") and len(value) < self.NAME_MAX:
                value += " "
        elif self.step == "number" and len(value) < self.NUMBER_MAX:
            value += key
        elif self.step == "name" and key.isalpha() and len(value) < self.NAME_MAX:
            value += key
        if self.step == "number":
            self.number = value
        else:
            self.name = value
        self._show()

    def _act(self) -> None:
        if self.step == "number":
            self._switch("name")
            return
        number, name = self.number, self.name.strip()
        self.number, self.name, self.step = "", "", "number"  # the glass forgets them with the tap
        self._show()
        self.send("look_up_document", document_number=number, name=name)

    def _show(self) -> None:
        on_number = self.step == "number"
        self.number_field.value.setText(self.number + ("_" if on_number else "") or " ")
        self.name_field.value.setText(self.name + ("" if on_number else "_") or " ")
        self.number_field.set_active(on_number)
        self.name_field.set_active(not on_number)
        self.action.setText("下一步  Next" if on_number else "查询  Look up")
        self.action.setEnabled(self._number_ok() if on_number else bool(self.name.strip()) and self._number_ok())
        for key, btn in self.keys.items():
            btn.setEnabled(not (key.isdigit() and not on_number) and not (key.startswith("空格") and on_number))


class FaceFrame(QWidget):
    """An oval to put one's face in: the patient knows where to look without reading."""

    def __init__(self) -> None:
        super().__init__()
        self.setFixedSize(360, 420)

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        w, h = self.width(), self.height()
        oval = QRectF(20, 10, w - 40, h - 20)
        inside = QPainterPath()
        inside.addEllipse(oval)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor("#DCEBF7"))
        p.drawEllipse(oval)
        p.save()
        p.setClipPath(inside)
        p.setBrush(QColor("#9FB7CC"))
        p.drawEllipse(QRectF(w / 2 - 70, 90, 140, 170))
        shoulders = QPainterPath()
        shoulders.moveTo(w / 2 - 150, h)
        shoulders.cubicTo(w / 2 - 140, 270, w / 2 + 140, 270, w / 2 + 150, h)
        p.drawPath(shoulders)
        p.restore()
        p.setPen(QPen(QColor(theme.PRIMARY), 10, Qt.PenStyle.DashLine, Qt.PenCapStyle.RoundCap))
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawEllipse(oval)
        p.end()


class FaceCaptureScreen(Screen):
    """While the camera looks: where to look, that the photo is not kept, and that something is happening."""

    def __init__(self, send: Send):
        super().__init__(send)
        self.body.addStretch(1)
        self.body.addLayout(centered(FaceFrame()))
        self.text = label("", 52, True, align=Qt.AlignmentFlag.AlignCenter)
        self.text_en = label("", 26, color=theme.MUTED, align=Qt.AlignmentFlag.AlignCenter)
        self.dots = label("", 48, True, theme.PRIMARY, Qt.AlignmentFlag.AlignCenter)
        for widget in (self.text, self.text_en, self.dots):
            self.body.addWidget(widget)
        self.body.addWidget(label("照片仅用于核验您的身份，不会保存  The photo is used only to verify who you are and is "
                                  "not kept", 22, color=theme.MUTED, align=Qt.AlignmentFlag.AlignCenter))
        self.body.addStretch(1)
        self._n = 0
        timer = QTimer(self)
        timer.timeout.connect(self._spin)
        timer.start(400)

    def _spin(self) -> None:
        self._n = (self._n + 1) % 4
        self.dots.setText("● " * self._n + "○ " * (3 - self._n))

    def render(self, view: View) -> None:
        self.text.setText(view.data.get("text", "请正对摄像头，保持不动"))
        self.text_en.setText(view.data.get("text_en", "Please look straight at the camera and hold still"))


#: Screen names for ui.window.SCREENS.
IDENTIFY_SCREENS: dict[str, type[Screen]] = {"choose_patient": ChoosePatientScreen, "document": DocumentScreen,
                                             "face_capture": FaceCaptureScreen}
