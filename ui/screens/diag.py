"""Diagnostic mode screens: the technician's PIN pad and the device panel.

Written for a technician standing at the terminal: every device on one screen with its state in colour and
words, one big button per device to test it, what the test found, and the log tail beside it.
"""
from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import QFrame, QGridLayout, QHBoxLayout, QLabel, QPlainTextEdit, QSizePolicy, QVBoxLayout, QWidget

from ui import theme
from ui.screens.base import Screen, Send
from ui.widgets import button, label, title_block
from workflows.view import View

STATUS_STYLE = {"ok": ("正常 OK", theme.ACCENT), "degraded": ("注意 Degraded", theme.WARN),
                "fault": ("故障 Fault", theme.DANGER)}


def _no_width_demand(widget: QLabel) -> QLabel:
    """A device path or a serial number has no place to wrap; it must not push the screen wider."""
    widget.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    return widget


class DiagPinScreen(Screen):
    """Six digits on a keypad; the digits typed stay in this widget and leave it only as the attempt."""

    def __init__(self, send: Send):
        super().__init__(send)
        self.length = 6
        self.typed = ""
        top = QHBoxLayout()
        top.addWidget(title_block("维护模式", "Technician mode: enter the PIN"), 1)
        top.addWidget(button("返回  Exit", "danger", self.intent("diag_exit"), 300))
        self.body.addLayout(top)
        self.dots = label("", 64, True, align=Qt.AlignmentFlag.AlignCenter)
        self.body.addWidget(self.dots)
        self.message = label("", 28, True, theme.DANGER, Qt.AlignmentFlag.AlignCenter)
        self.body.addWidget(self.message)
        pad = QGridLayout()
        pad.setSpacing(16)
        keys = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "清除", "0", "⌫"]
        self.keys = []
        for i, key in enumerate(keys):
            btn = button(key, min_width=220)
            btn.clicked.connect(lambda _checked=False, k=key: self._press(k))
            self.keys.append(btn)
            pad.addWidget(btn, i // 3, i % 3)
        host = QWidget()
        host.setLayout(pad)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(host)
        row.addStretch(1)
        self.body.addLayout(row)
        self.body.addStretch(1)

    def render(self, view: View) -> None:
        self.length = int(view.data.get("length", 6))
        self.typed = ""
        locked = bool(view.data.get("locked"))
        for key in self.keys:
            key.setEnabled(not locked)
        self.message.setText(f"{view.message}  {view.message_en}".strip())
        self._show()

    def _press(self, key: str) -> None:
        if key == "清除":
            self.typed = ""
        elif key == "⌫":
            self.typed = self.typed[:-1]
        elif len(self.typed) < self.length:
            self.typed += key
        self._show()
        if len(self.typed) == self.length:
            pin, self.typed = self.typed, ""
            self.send("diag_pin", pin=pin)

    def _show(self) -> None:
        self.dots.setText("●" * len(self.typed) + "○" * (self.length - len(self.typed)))


class DiagScreen(Screen):
    def __init__(self, send: Send):
        super().__init__(send)
        top = QHBoxLayout()
        top.addWidget(title_block("设备诊断", "Device diagnostics"), 1)
        top.addWidget(button("刷新  Refresh", on_click=self.intent("diag_refresh"), min_width=240))
        top.addWidget(button("退出维护  Exit", "danger", self.intent("diag_exit"), 300))
        self.body.addLayout(top)
        columns = QHBoxLayout()
        columns.setSpacing(24)
        self.devices = QVBoxLayout()
        self.devices.setSpacing(6)
        self.devices.setContentsMargins(0, 0, 0, 0)
        left = QWidget()
        left.setLayout(self.devices)
        columns.addWidget(left, 3)
        right = QVBoxLayout()
        self.result_title = label("自检结果  Test result", 26, True)
        right.addWidget(self.result_title)
        self.result = label("选择一台设备进行自检。  Choose a device to test.", 22, wrap=True)
        self.result.setTextInteractionFlags(Qt.TextInteractionFlag.NoTextInteraction)
        _no_width_demand(self.result)
        right.addWidget(self.result)
        self.image = QLabel()
        self.image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.image.hide()
        right.addWidget(self.image)
        right.addWidget(label("日志  Log", 26, True))
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setStyleSheet("font-family: monospace; font-size: 15px; background: white;")
        right.addWidget(self.log, 1)
        columns.addLayout(right, 2)
        self.body.addLayout(columns, 1)

    def render(self, view: View) -> None:
        while self.devices.count():
            item = self.devices.takeAt(0)
            if item.widget():
                item.widget().hide()
                item.widget().deleteLater()
        for device in view.data.get("devices", []):
            row = self._row(device)
            self.devices.addWidget(row)
            row.show()  # now, not on the next pass of the event loop
        self.devices.addStretch(1)
        self.devices.activate()
        result: dict[str, Any] = view.data.get("result") or {}
        self.result.setText("\n".join(result.get("lines", [])) or "选择一台设备进行自检。  Choose a device to test.")
        image = result.get("image")
        if image:
            pixmap = QPixmap()
            pixmap.loadFromData(image)
            self.image.setPixmap(pixmap.scaled(480, 360, Qt.AspectRatioMode.KeepAspectRatio))
            self.image.show()
        else:
            self.image.hide()
        self.log.setPlainText("\n".join(view.data.get("log", [])))
        self.log.verticalScrollBar().setValue(self.log.verticalScrollBar().maximum())

    def _row(self, device: dict[str, Any]) -> QFrame:
        row = QFrame()
        row.setObjectName("Card")
        row.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        box = QHBoxLayout(row)
        box.setContentsMargins(20, 0, 0, 0)
        names = QVBoxLayout()
        names.setSpacing(0)
        names.addWidget(label(device["name"], 26, True))
        names.addWidget(label(device["name_en"], 16, color=theme.MUTED))
        box.addLayout(names, 3)
        text, colour = STATUS_STYLE.get(device["status"], (device["status"], theme.MUTED))
        box.addWidget(label(text, 24, True, colour), 2)
        why = device["reason"] + (f"\n{device['detail']}" if device["detail"] else "")
        box.addWidget(_no_width_demand(label(why, 16, color=theme.MUTED, wrap=True)), 4)
        box.addWidget(button("自检  Test", on_click=self.intent("diag_self_test", role=device["role"]),
                             min_width=180))
        return row
