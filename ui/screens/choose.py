"""The three choices of a registration: department, doctor, time slot. Each is a paged grid of tiles."""
from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel

from ui import theme
from ui.screens.base import Screen, Send
from ui.widgets import PagedGrid, Tile, title_block, yuan
from workflows.view import View


class _ChoiceScreen(Screen):
    columns, rows = 4, 4

    def __init__(self, send: Send, zh: str, en: str):
        super().__init__(send)
        self.title = title_block(zh, en)
        self.body.addWidget(self.title)
        self.notice = QLabel()
        self.notice.setObjectName("Notice")
        self.notice.setWordWrap(True)
        self.notice.hide()
        self.body.addWidget(self.notice)
        self.grid = PagedGrid(self.columns, self.rows, self.make_tile)
        self.body.addWidget(self.grid, 1)
        self.empty = QLabel()
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setStyleSheet(f"font-size: 32px; color: {theme.MUTED};")
        self.empty.hide()
        self.body.addWidget(self.empty, 1)

    def make_tile(self, item: Any) -> Tile:
        raise NotImplementedError

    def show_items(self, items: list[Any], empty_text: str) -> None:
        self.grid.set_items(items)
        self.grid.setVisible(bool(items))
        self.empty.setText(empty_text)
        self.empty.setVisible(not items)

    def show_notice(self, view: View) -> None:
        self.notice.setText(f"{view.message}\n{view.message_en}".strip())
        self.notice.setVisible(bool(view.message))


class DepartmentsScreen(_ChoiceScreen):
    columns, rows = 5, 4

    def __init__(self, send: Send):
        super().__init__(send, "请选择挂号科室", "Choose a department")

    def make_tile(self, d: dict[str, Any]) -> Tile:
        free = int(d.get("remaining", 0))
        tile = Tile([(d["name"], 32, True), (d.get("name_en", ""), 17, False),
                     (f"余号 {free}" if free else "今日已满  Full", 20, False)], enabled=free > 0,
                    min_height=100)
        tile.clicked.connect(self.intent("pick_department", code=d["code"]))
        return tile

    def render(self, view: View) -> None:
        self.show_items(view.data.get("departments", []), "今日暂无可挂号科室\nNo departments open today")


class DoctorsScreen(_ChoiceScreen):
    columns, rows = 4, 3

    def __init__(self, send: Send):
        super().__init__(send, "请选择医生", "Choose a doctor")

    def make_tile(self, d: dict[str, Any]) -> Tile:
        free = int(d.get("remaining", 0))
        specialty = d.get("specialty") or ""
        if len(specialty) > 14:
            specialty = specialty[:13] + "…"
        tile = Tile([(d["name"], 36, True), (d.get("title", ""), 24, False),
                     (f"挂号费 {yuan(d.get('fee_fen', 0))}    余号 {free}", 22, False),
                     (specialty, 18, False)], enabled=free > 0, min_height=150)
        tile.clicked.connect(self.intent("pick_doctor", code=d["code"]))
        return tile

    def render(self, view: View) -> None:
        dept = view.data.get("department") or {}
        self.title.zh.setText(f"{dept.get('name', '')} · 请选择医生")
        self.title.en.setText(f"{dept.get('name_en', '')} · Choose a doctor".strip(" ·"))
        self.show_items(view.data.get("doctors", []), "该科室今日号源已满\nNo doctor has free places today")


class SlotsScreen(_ChoiceScreen):
    columns, rows = 5, 3

    def __init__(self, send: Send):
        super().__init__(send, "请选择就诊时段", "Choose a time")

    def make_tile(self, s: dict[str, Any]) -> Tile:
        tile = Tile([(f"{s['start']} - {s['end']}", 34, True), (f"余号 {s.get('remaining', 0)}", 22, False)],
                    min_height=110)
        tile.clicked.connect(self.intent("pick_slot", slot_id=s["slot_id"]))
        return tile

    def render(self, view: View) -> None:
        doctor = view.data.get("doctor") or {}
        self.title.zh.setText(f"{doctor.get('name', '')} {doctor.get('title', '')} · 请选择就诊时段")
        self.show_notice(view)
        self.show_items(view.data.get("slots", []), "该医生今日已无剩余号源，请返回选择其他医生\n"
                                                    "No free time left today. Go back to choose another doctor.")
