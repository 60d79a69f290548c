"""就诊导航 screens (K12): the list of places, and the floor map with the route and the way in words.

The map is drawn with QPainter from `workflows.hospital_map` (no picture to keep in step with the building): the
floor where the patient stands on top with "您在这里 You are here", the destination's floor below it when the
lift is needed, the route as one thick orange line with an arrow, the destination in green. Words beside it
say the same thing step by step, so a guide can read them out and a patient who cannot read maps need not.
"""
from __future__ import annotations

import math
from typing import Any

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPainterPath, QPen, QPolygonF
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget

from ui import theme
from ui.screens.base import Screen, Send
from ui.widgets import PagedGrid, Tile, button, label, title_block
from workflows.hospital_map import BUILDINGS, OPD_OUTLINE, ROOMS, SHEETS, Rect
from workflows.view import View

ROUTE = "#F28C00"  # one colour for "the way", strong on white and on grey, not red (red means danger)
HERE = "#D64541"
DEST = theme.ACCENT


class GuidancePlacesScreen(Screen):
    """Headings on the left (common places first), the places of the chosen heading as large tiles."""

    def __init__(self, send: Send):
        super().__init__(send)
        self.body.addWidget(title_block("您要去哪里？请点选地点", "Where do you want to go? Tap a place."))
        row = QHBoxLayout()
        row.setSpacing(24)
        self.groups_box = QVBoxLayout()
        self.groups_box.setSpacing(14)
        groups_host = QWidget()
        groups_host.setLayout(self.groups_box)
        groups_host.setFixedWidth(360)
        row.addWidget(groups_host)
        self.grid = PagedGrid(3, 4, self.make_tile)
        row.addWidget(self.grid, 1)
        self.body.addLayout(row, 1)
        self.group_buttons: dict[str, QPushButton] = {}

    def make_tile(self, place: dict[str, Any]) -> Tile:
        tile = Tile([(place["name"], 32, True), (place.get("where", ""), 22, False),
                     (place.get("name_en", ""), 17, False)], min_height=110)
        tile.clicked.connect(self.intent("pick_place", place=place["id"]))
        return tile

    def render(self, view: View) -> None:
        groups = view.data.get("groups", [])
        if [g["id"] for g in groups] != list(self.group_buttons):
            while self.groups_box.count():
                item = self.groups_box.takeAt(0)
                if item.widget():
                    item.widget().hide()
                    item.widget().deleteLater()
            self.group_buttons = {}
            for g in groups:
                btn = button(f"{g['name']}\n{g['name_en']}", on_click=self.intent("pick_group", group=g["id"]),
                             min_width=340)
                btn.setMinimumHeight(112)
                self.group_buttons[g["id"]] = btn
                self.groups_box.addWidget(btn)
            self.groups_box.addStretch(1)
        for gid, btn in self.group_buttons.items():
            chosen = gid == view.data.get("group")
            btn.setStyleSheet(f"font-size: 28px; background: {theme.PRIMARY}; color: white; border: none;"
                              if chosen else "font-size: 28px;")
        self.grid.set_items(view.data.get("places", []))


class FloorMap(QWidget):
    """Draws a route's legs, one panel per floor, stacked in walking order."""

    def __init__(self) -> None:
        super().__init__()
        self.route: dict[str, Any] | None = None
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(600, 400)

    def set_route(self, route: dict[str, Any] | None) -> None:
        self.route = route
        self.update()

    def paintEvent(self, event: Any) -> None:  # noqa: N802
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.fillRect(self.rect(), QColor(theme.CARD))
        legs = (self.route or {}).get("legs") or []
        if not legs:
            p.end()
            return
        gap = 16
        height = (self.height() - gap * (len(legs) - 1)) / len(legs)
        for i, leg in enumerate(legs):
            panel = QRectF(0, i * (height + gap), self.width(), height)
            self._draw_leg(p, panel, leg, i, len(legs))
        p.end()

    # -- one floor -----------------------------------------------------------------------------------------

    def _extent(self, leg: dict[str, Any]) -> Rect:
        """What to show of the sheet: the buildings the route walks through (the whole ground floor would make
        a short walk tiny)."""
        sheet = SHEETS[leg["sheet"]]
        if len(sheet.outlines) == 1:
            return sheet.outlines[0][1]
        pts = [tuple(pt) for pt in leg["points"]]
        used = [rect for _, rect in sheet.outlines
                if any(rect[0] - 2 <= x <= rect[0] + rect[2] + 2 and rect[1] - 2 <= y <= rect[1] + rect[3] + 2
                       for x, y in pts)] or [OPD_OUTLINE]
        x0 = min(r[0] for r in used)
        y0 = min(r[1] for r in used)
        x1 = max(r[0] + r[2] for r in used)
        y1 = max(r[1] + r[3] for r in used)
        return (x0, y0, x1 - x0, y1 - y0)

    def _draw_leg(self, p: QPainter, panel: QRectF, leg: dict[str, Any], index: int, count: int) -> None:
        route = self.route or {}
        first, last = index == 0, index == count - 1
        p.save()
        p.setClipRect(panel)
        # the floor's name in a column on the left, where the wide, low plan leaves room
        side = QRectF(panel.left() + 12, panel.top() + 8, 230, panel.height() - 16)
        p.setPen(QColor(theme.INK))
        p.setFont(_font(30, True))
        number = f"{'①②③'[index]} " if count > 1 else ""
        p.drawText(side.adjusted(0, 0, 0, -side.height() / 2), int(Qt.AlignmentFlag.AlignLeft |
                   Qt.AlignmentFlag.AlignBottom | Qt.TextFlag.TextWordWrap), f"{number}{leg['title']}")
        p.setPen(QColor(theme.MUTED))
        p.setFont(_font(20))
        p.drawText(side.adjusted(0, side.height() / 2 + 4, 0, 0), int(Qt.AlignmentFlag.AlignLeft |
                   Qt.AlignmentFlag.AlignTop | Qt.TextFlag.TextWordWrap), leg["title_en"])
        tag = ("您在这里", "You are here", HERE) if first else ("目的地", "Destination", DEST)
        _bubble(p, QPointF(side.left() + 80, side.top() + side.height() / 2 + 64), tag[0], tag[1], tag[2],
                above=False, bounds=panel)
        area = QRectF(panel.left() + 260, panel.top() + 34, panel.width() - 280, panel.height() - 44)
        ex = self._extent(leg)
        scale = min(area.width() / ex[2], area.height() / ex[3])
        ox = area.left() + (area.width() - ex[2] * scale) / 2 - ex[0] * scale
        oy = area.top() + (area.height() - ex[3] * scale) / 2 - ex[1] * scale

        def at(x: float, y: float) -> QPointF:
            return QPointF(ox + x * scale, oy + y * scale)

        def box(r: Rect) -> QRectF:
            return QRectF(ox + r[0] * scale, oy + r[1] * scale, r[2] * scale, r[3] * scale)

        sheet = SHEETS[leg["sheet"]]
        for building, outline in sheet.outlines:
            p.setPen(QPen(QColor(theme.MUTED), 3))
            p.setBrush(QColor("#F4F7FA"))
            p.drawRect(box(outline))
            name = BUILDINGS[building]
            p.setPen(QColor(theme.MUTED))
            p.setFont(_font(18, True))
            p.drawText(box(outline).adjusted(0, -26, 0, 0).topLeft() + QPointF(2, 20),
                       f"{name.name} {name.name_en}")
        p.setPen(QPen(QColor("#E3E9EF"), 5 * scale, Qt.PenStyle.SolidLine, Qt.PenCapStyle.FlatCap))
        for a, b in sheet.corridors:
            p.drawLine(at(*a), at(*b))
        dest_id = route.get("destination", {}).get("id")
        for room in ROOMS.values():
            if room.sheet != sheet.id:
                continue
            r = box(room.rect).adjusted(2, 2, -2, -2)
            is_dest = room.id == dest_id and last
            fill, ink = {True: (DEST, "white")}.get(is_dest, _room_colours(room.kind))
            p.setPen(QPen(QColor(theme.LINE if not is_dest else DEST), 2))
            p.setBrush(QColor(fill))
            p.drawRoundedRect(r, 6, 6)
            text = room.label or room.name
            if room.kind == "lobby":  # the kiosk stands here: keep the middle free for "您在这里"
                text, r = f"{text} · 正门 Main entrance ↓", r.adjusted(0, r.height() * 0.6, 0, 0)
            _fit_text(p, r.adjusted(4, 2, -4, -2), text, ink, bold=is_dest or room.kind == "lift",
                      largest=30 if is_dest else 24)
        pts = [at(*pt) for pt in leg["points"]]
        if len(pts) >= 2:
            pen = QPen(QColor(ROUTE), max(8.0, 1.6 * scale), Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap,
                       Qt.PenJoinStyle.RoundJoin)
            p.setPen(pen)
            p.setBrush(Qt.BrushStyle.NoBrush)
            path = QPainterPath(pts[0])
            for q in pts[1:]:
                path.lineTo(q)
            p.drawPath(path)
            _arrow(p, pts[-2], pts[-1], max(22.0, 3.2 * scale))
        if not last and pts:
            nxt = (self.route or {}).get("legs", [])[index + 1]
            _bubble(p, pts[-1], f"乘电梯到 {nxt['floor']} 层", f"Lift to {nxt['floor']}F", theme.PRIMARY,
                    bounds=panel)
        elif last and pts:
            if not first:
                _bubble(p, pts[0], "出电梯", "Leave the lift", theme.PRIMARY, bounds=panel)
            _dot(p, pts[-1], DEST)
        if first:
            here = route.get("here", {}).get("point")
            if here:
                _dot(p, at(*here), HERE)
                _bubble(p, at(*here), "您在这里", "You are here", HERE, above=False, bounds=panel)
        p.restore()


def _room_colours(kind: str) -> tuple[str, str]:
    return {"lift": ("#DCEBF7", theme.PRIMARY_DARK), "toilet": ("#EEF1F4", theme.MUTED),
            "lobby": ("#FBFCFD", theme.MUTED), "desk": ("#FFF3E0", "#8A4B00"),
            "emergency": ("#FDECEA", theme.DANGER)}.get(kind, ("white", theme.INK))


def _font(px: int, bold: bool = False) -> QFont:
    f = QFont(theme.FONT_FAMILY)
    f.setPixelSize(px)
    f.setBold(bold)
    return f


def _fit_text(p: QPainter, r: QRectF, text: str, ink: str, bold: bool = False, largest: int = 24) -> None:
    """The largest type (down to 13 px) at which the label fits its room, wrapped on two lines if needed."""
    flags = int(Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap)
    for px in range(largest, 12, -1):
        font = _font(px, bold)
        used = QFontMetrics(font).boundingRect(r.toRect(), flags, text)
        if used.width() <= r.width() and used.height() <= r.height():
            break
    p.setFont(font)
    p.setPen(QColor(ink))
    p.drawText(r, flags, text)


def _arrow(p: QPainter, a: QPointF, b: QPointF, size: float) -> None:
    angle = math.atan2(b.y() - a.y(), b.x() - a.x())
    left = QPointF(b.x() - size * math.cos(angle - 0.5), b.y() - size * math.sin(angle - 0.5))
    right = QPointF(b.x() - size * math.cos(angle + 0.5), b.y() - size * math.sin(angle + 0.5))
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(QColor(ROUTE))
    p.drawPolygon(QPolygonF([b, left, right]))


def _bubble(p: QPainter, at: QPointF, zh: str, en: str, colour: str, above: bool = True,
            bounds: QRectF | None = None) -> QRectF:
    """A label with a coloured background above or below a point, kept inside `bounds` (its floor's panel)."""
    bounds = bounds or QRectF(0, 0, p.device().width(), p.device().height())
    font_zh, font_en = _font(24, True), _font(16)
    w = max(QFontMetrics(font_zh).horizontalAdvance(zh), QFontMetrics(font_en).horizontalAdvance(en)) + 24
    h = 58
    x = min(max(at.x() - w / 2, bounds.left() + 4), bounds.right() - w - 4)
    y = at.y() - h - 18 if above else at.y() + 18
    y = min(max(y, bounds.top() + 4), bounds.bottom() - h - 4)
    r = QRectF(x, y, w, h)
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(QColor(colour))
    p.drawRoundedRect(r, 10, 10)
    p.setPen(QColor("white"))
    p.setFont(font_zh)
    p.drawText(r.adjusted(0, 2, 0, -22), Qt.AlignmentFlag.AlignCenter, zh)
    p.setFont(font_en)
    p.drawText(r.adjusted(0, 32, 0, -2), Qt.AlignmentFlag.AlignCenter, en)
    return r


def _dot(p: QPainter, at: QPointF, colour: str) -> None:
    p.setPen(QPen(QColor("white"), 4))
    p.setBrush(QColor(colour))
    p.drawEllipse(at, 16, 16)


class GuidanceMapScreen(Screen):
    """The map on the left, the way in words on the right, and the two things one does next."""

    def __init__(self, send: Send):
        super().__init__(send)
        self.body.setContentsMargins(40, 12, 40, 8)
        self.body.setSpacing(10)
        head = QHBoxLayout()
        self.title = label("", 46, True)
        self.where = label("", 34, True, theme.PRIMARY)
        head.addWidget(self.title)
        head.addSpacing(24)
        head.addWidget(self.where)
        head.addStretch(1)
        self.summary = label("", 26, color=theme.MUTED)
        head.addWidget(self.summary)
        self.body.addLayout(head)
        self.notice = QLabel()
        self.notice.setObjectName("Notice")
        self.notice.setWordWrap(True)
        self.notice.hide()
        self.body.addWidget(self.notice)
        row = QHBoxLayout()
        row.setSpacing(20)
        frame = QFrame()
        frame.setObjectName("Card")
        fl = QVBoxLayout(frame)
        fl.setContentsMargins(8, 8, 8, 8)
        self.map = FloorMap()
        fl.addWidget(self.map)
        row.addWidget(frame, 3)
        steps_card = QFrame()
        steps_card.setObjectName("Card")
        self.steps_box = QVBoxLayout(steps_card)
        self.steps_box.setContentsMargins(24, 16, 24, 16)
        self.steps_box.setSpacing(10)
        steps_card.setFixedWidth(640)
        row.addWidget(steps_card)
        self.body.addLayout(row, 1)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.rate_btn = button("评价本次服务  Rate us", on_click=self.intent("rate"), min_width=400)
        buttons.addWidget(self.rate_btn)
        buttons.addSpacing(24)
        buttons.addWidget(button("知道了，返回首页  Done", "primary", self.intent("finish"), 480))
        self.body.addLayout(buttons)

    def render(self, view: View) -> None:
        route = view.data.get("route") or {}
        dest = route.get("destination") or {}
        self.title.setText(f"去 {dest.get('name', '')}")
        self.where.setText(route.get("where", ""))
        self.summary.setText(f"步行约 {route.get('minutes', '?')} 分钟  about {route.get('minutes', '?')} min"
                             if route else "")
        self.notice.setText(f"{view.message}\n{view.message_en}".strip())
        self.notice.setVisible(bool(view.message))
        self.map.set_route(route or None)
        self.rate_btn.setVisible(bool(view.data.get("can_rate")))
        while self.steps_box.count():
            item = self.steps_box.takeAt(0)
            if item.widget():
                item.widget().hide()  # gone from the glass now, not at the next idle moment
                item.widget().deleteLater()
        self.steps_box.addWidget(label("怎么走  How to get there", 30, True, theme.PRIMARY))
        for n, (zh, en) in enumerate(route.get("steps", [])):
            number = "" if n == 0 else f"{n}. "
            zh_label = label(f"{number}{zh}", 28, n == len(route.get("steps", [])) - 1,
                             HERE if n == 0 else theme.INK, wrap=True)
            self.steps_box.addWidget(zh_label)
            self.steps_box.addWidget(label(en, 18, color=theme.MUTED, wrap=True))
        self.steps_box.addStretch(1)
