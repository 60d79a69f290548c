"""Screens that end or pause a visit: working, success, and failure. Each says what to do next.

A result that names a place (the clinic, the pharmacy window, the help desk) offers "查看路线 Show the way"
(`ShowWayButton`) for each place the map knows: the hub puts them in the view as `ways`. With no `ways` the
button is hidden, so a place the map does not know never leads to a wrong map.
"""
from __future__ import annotations

from typing import Any

from PySide6.QtCore import QRectF, Qt, QTimer
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QFrame, QGridLayout, QPushButton, QWidget

from ui import theme
from ui.screens.base import Screen, Send
from ui.widgets import button, centered, label
from workflows.view import View


class Badge(QWidget):
    """A round symbol: a tick for success, an exclamation mark for a problem."""

    def __init__(self, symbol: str, color: str, size: int = 180):
        super().__init__()
        self.symbol, self.color = symbol, color
        self.setFixedSize(size, size)

    def paintEvent(self, event) -> None:  # noqa: N802
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setBrush(QColor(self.color))
        p.setPen(Qt.PenStyle.NoPen)
        p.drawEllipse(QRectF(4, 4, self.width() - 8, self.height() - 8))
        p.setPen(QPen(QColor("white"), self.width() / 12, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
        w = self.width()
        if self.symbol == "tick":
            p.drawLine(int(w * .28), int(w * .52), int(w * .45), int(w * .68))
            p.drawLine(int(w * .45), int(w * .68), int(w * .74), int(w * .36))
        else:
            p.drawLine(int(w * .5), int(w * .26), int(w * .5), int(w * .58))
            p.drawPoint(int(w * .5), int(w * .74))
        p.end()


SHOW_WAY = "查看路线  Show the way"
SHOW_WAY_SHORT = "查看路线  Route"  # where several places share a row


class ShowWayButton(QPushButton):
    """"查看路线 Show the way" to one place: the map with the route from this kiosk opens on a tap.

    `render(view)` takes the first of the view's `ways` and hides the button when there is none; a screen
    listing several places gives each row its own button with `way` instead."""

    def __init__(self, send: Send, way: dict[str, Any] | None = None, min_width: int = 420, short: bool = False):
        super().__init__(SHOW_WAY_SHORT if short else SHOW_WAY)
        self.send = send
        self.setMinimumWidth(min_width)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.place = ""
        self.clicked.connect(self._tapped)
        self._take(way)

    def render(self, view: View) -> None:
        ways = view.data.get("ways") or []
        self._take(ways[0] if ways else None)

    def _take(self, way: dict[str, Any] | None) -> None:
        self.place = str((way or {}).get("place") or "")
        if way:
            self.setAccessibleName(f"{SHOW_WAY}: {way.get('name', '')} {way.get('where', '')}")
        self.setVisible(bool(self.place))

    def _tapped(self) -> None:
        if self.place:
            self.send("show_way", place=self.place)


class BusyScreen(Screen):
    def __init__(self, send: Send):
        super().__init__(send)
        self.body.addStretch(2)
        self.text = label("", 48, True, align=Qt.AlignmentFlag.AlignCenter)
        self.text_en = label("", 26, color=theme.MUTED, align=Qt.AlignmentFlag.AlignCenter)
        self.dots = label("", 60, True, theme.PRIMARY, Qt.AlignmentFlag.AlignCenter)
        for w in (self.text, self.text_en, self.dots):
            self.body.addWidget(w)
        self.body.addStretch(3)
        self._n = 0
        timer = QTimer(self)
        timer.timeout.connect(self._spin)
        timer.start(400)

    def _spin(self) -> None:
        self._n = (self._n + 1) % 4
        self.dots.setText("● " * self._n + "○ " * (3 - self._n))

    def render(self, view: View) -> None:
        self.text.setText(view.data.get("text", "请稍候…"))
        self.text_en.setText(view.data.get("text_en", "Please wait…"))


class DoneScreen(Screen):
    def __init__(self, send: Send):
        super().__init__(send)
        heading = QWidget()
        hl = QGridLayout(heading)
        hl.addWidget(label("挂号成功", 60, True, theme.ACCENT), 0, 0)
        hl.addWidget(label("Registration complete", 26, color=theme.MUTED), 1, 0)
        self.body.addLayout(centered(Badge("tick", theme.ACCENT, 120), heading))
        card = QFrame()
        card.setObjectName("Card")
        grid = QGridLayout(card)
        grid.setContentsMargins(60, 20, 60, 20)
        grid.setVerticalSpacing(14)
        grid.addWidget(label("就诊序号  Queue number", 28, color=theme.MUTED, align=Qt.AlignmentFlag.AlignCenter), 0, 0, 1, 2)
        self.queue = label("", 96, True, theme.PRIMARY, Qt.AlignmentFlag.AlignCenter)
        grid.addWidget(self.queue, 1, 0, 1, 2)
        self.rows = {}
        for r, (key, zh) in enumerate((("where", "就诊地点"), ("doctor", "科室 / 医生"), ("time", "就诊时间")), 2):
            grid.addWidget(label(zh, 30, color=theme.MUTED), r, 0)
            self.rows[key] = label("", 34, True)
            grid.addWidget(self.rows[key], r, 1)
        grid.setColumnStretch(1, 1)
        self.body.addWidget(card, 1)
        self.slip = label("", 32, True, theme.INK, Qt.AlignmentFlag.AlignCenter, wrap=True)
        self.body.addWidget(self.slip)
        self.show_way = ShowWayButton(send)
        self.body.addLayout(centered(self.show_way, button("完成，返回首页  Done", "primary", self.intent("finish"), 480)))

    def render(self, view: View) -> None:
        self.show_way.render(view)
        order = view.data.get("order") or {}
        reg = order.get("registration") or {}
        dept, doctor, slot = (order.get(k) or {} for k in ("department", "doctor", "slot"))
        self.queue.setText(f"{reg.get('queue_no', '')} 号")
        self.rows["where"].setText(reg.get("location") or dept.get("location", ""))
        self.rows["doctor"].setText(f"{dept.get('name', '')}  {doctor.get('name', '')} {doctor.get('title', '')}")
        self.rows["time"].setText(f"{slot.get('date', '')}  {slot.get('start', '')} - {slot.get('end', '')}")
        if view.data.get("print_failed"):
            self.slip.setStyleSheet(f"font-size: 30px; font-weight: bold; color: {theme.WARN};")
            self.slip.setText("凭条打印失败，请拍照记录本页信息，或到人工窗口补打凭条。\n"
                              "The slip could not be printed. Please note this screen or ask at a counter.")
        else:
            self.slip.setStyleSheet(f"font-size: 32px; font-weight: bold; color: {theme.INK};")
            self.slip.setText("请取走下方出口的挂号凭条   Please take your slip below")


class ErrorScreen(Screen):
    def __init__(self, send: Send):
        super().__init__(send)
        self.body.addStretch(1)
        self.body.addLayout(centered(Badge("!", theme.WARN, 160)))
        self.message = label("", 42, True, align=Qt.AlignmentFlag.AlignCenter, wrap=True)
        self.message_en = label("", 24, color=theme.MUTED, align=Qt.AlignmentFlag.AlignCenter, wrap=True)
        self.body.addWidget(self.message)
        self.body.addWidget(self.message_en)
        self.body.addStretch(1)
        self.body.addLayout(centered(button("返回首页  Home", "primary", self.intent("finish"), 420)))
        self.body.addStretch(1)

    def render(self, view: View) -> None:
        self.message.setText(view.message or "办理未成功")
        self.message_en.setText(view.message_en)
