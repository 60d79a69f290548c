"""The home screen: every service as a large tile. Services not built yet say so instead of pretending, and
a service whose device is broken says which device and where to go instead."""
from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGridLayout

from ui import theme
from ui.screens.base import Screen, Send
from ui.widgets import Tile, label, title_block
from workflows.view import View

SERVICES = [
    # (intent or None, Chinese, English)
    ("start", "当日挂号", "Same-day registration"),
    (None, "预约挂号", "Appointments"),
    (None, "取号报到", "Check-in"),
    (None, "门诊缴费", "Outpatient payment"),
    (None, "报告打印", "Print reports"),
    (None, "住院服务", "Inpatient services"),
]


class HomeScreen(Screen):
    def __init__(self, send: Send):
        super().__init__(send)
        self.body.addWidget(title_block("欢迎使用自助服务，请选择业务", "Welcome. Please choose a service."))
        self.grid = QGridLayout()
        self.grid.setSpacing(28)
        self.body.addLayout(self.grid, 1)
        self.body.addWidget(label("请携带身份证办理。如需帮助，请咨询导诊台工作人员。  "
                                  "Please have your ID card ready. Staff at the help desk can assist you.",
                                  22, color=theme.MUTED, align=Qt.AlignmentFlag.AlignCenter))
        self.tiles: dict[str, Tile] = {}
        self._shown: dict[str, Any] | None = None
        self._build({})

    def render(self, view: View) -> None:
        services = view.data.get("services", {})
        if services != self._shown:  # rebuild only on a change: health reports arrive every few seconds
            self._build(services)

    def _build(self, services: dict[str, Any]) -> None:
        while self.grid.count():
            item = self.grid.takeAt(0)
            if item.widget():
                item.widget().hide()  # gone from the glass now, not at the next idle moment
                item.widget().deleteLater()
        self.tiles = {}
        for i, (intent, zh, en) in enumerate(SERVICES):
            state = services.get(intent, {}) if intent else {}
            available = intent is not None and state.get("available", True)
            lines = [(zh, 48, True), (en, 24, False)]
            if intent is None:
                lines.append(("暂未开放  Coming soon", 22, False))
            elif not available:
                lines += [("暂停服务  Unavailable", 24, True), (state.get("reason", ""), 20, False),
                          (state.get("reason_en", ""), 18, False)]
            tile = Tile(lines, enabled=available, colors=(theme.PRIMARY, "white"), min_height=240)
            if intent:
                tile.clicked.connect(self.intent(intent))
                self.tiles[intent] = tile
            self.grid.addWidget(tile, i // 3, i % 3)
            tile.show()  # now, not on the next pass of the event loop
        self._shown = services
