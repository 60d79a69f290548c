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

#: What the home screen shows before the hub has described the services (the first frame at start-up).
PLACEHOLDER = [{"id": "registration", "name": "当日挂号", "name_en": "Same-day registration", "built": True,
                "available": True}]


class HomeScreen(Screen):
    def __init__(self, send: Send):
        super().__init__(send)
        self.body.addWidget(title_block("欢迎使用自助服务，请选择业务", "Welcome. Please choose a service."))
        self.banner = label("", 40, True, "white", Qt.AlignmentFlag.AlignCenter, wrap=True)
        self.banner.setStyleSheet(f"background: {theme.WARN}; color: white; border-radius: 18px; padding: 28px;")
        self.banner.hide()
        self.body.addWidget(self.banner)
        self.grid = QGridLayout()
        self.grid.setSpacing(28)
        self.body.addLayout(self.grid, 1)
        self.body.addWidget(label("请携带身份证办理。如需帮助，请咨询导诊台工作人员。  "
                                  "Please have your ID card ready. Staff at the help desk can assist you.",
                                  22, color=theme.MUTED, align=Qt.AlignmentFlag.AlignCenter))
        self.tiles: dict[str, Tile] = {}
        self._shown: Any = None
        self._build(PLACEHOLDER, None)

    def render(self, view: View) -> None:
        services = view.data.get("services") or PLACEHOLDER
        maintenance = view.data.get("maintenance")
        if (services, maintenance) != self._shown:  # rebuild only on a change: health reports come often
            self._build(services, maintenance)

    def _build(self, services: list[dict[str, Any]], maintenance: dict[str, str] | None) -> None:
        while self.grid.count():
            item = self.grid.takeAt(0)
            if item.widget():
                item.widget().hide()  # gone from the glass now, not at the next idle moment
                item.widget().deleteLater()
        self.tiles = {}
        if maintenance:
            self.banner.setText(f"暂停服务  {maintenance.get('reason', '')}\n"
                                f"Out of service: {maintenance.get('reason_en', '')}\n"
                                "请到其他自助机或人工窗口办理  Please use another kiosk or a counter")
        self.banner.setVisible(bool(maintenance))
        columns = 3 if len(services) <= 6 else 4
        rows = -(-len(services) // columns)
        # Three rows of tiles, one of them out of order with its reason, must still leave the glass 1080 px high.
        height = 160 if maintenance else (240 if rows <= 2 else 180)
        for i, state in enumerate(services):
            built = bool(state.get("built"))
            available = built and bool(state.get("available")) and not maintenance
            lines = [(state["name"], 48 if columns == 3 else 40, True), (state.get("name_en", ""), 24, False)]
            if not built:
                lines.append(("暂未开放  Coming soon", 22, False))
            elif not available and not maintenance:
                lines += [("暂停服务  Unavailable", 24, True), (state.get("reason", ""), 20, False),
                          (state.get("reason_en", ""), 18, False)]
            tile = Tile(lines, enabled=available, colors=(theme.PRIMARY, "white"), min_height=height)
            tile.clicked.connect(self.intent("open_service", service=state["id"]))
            self.tiles[state["id"]] = tile
            self.grid.addWidget(tile, i // columns, i % columns)
            tile.show()  # now, not on the next pass of the event loop
        self._shown = (services, maintenance)
