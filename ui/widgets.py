"""Building blocks shared by the screens: labels with fixed type sizes, touch tiles, a paged grid."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import (QFrame, QGridLayout, QHBoxLayout, QLabel, QPushButton, QSizePolicy,
                               QVBoxLayout, QWidget)

from ui import theme

if TYPE_CHECKING:
    from workflows.view import View


def label(text: str = "", size: int = 28, bold: bool = False, color: str = theme.INK,
          align: Qt.AlignmentFlag = Qt.AlignmentFlag.AlignLeft, wrap: bool = False) -> QLabel:
    lbl = QLabel(text)
    weight = "bold" if bold else "normal"
    lbl.setStyleSheet(f"font-size: {size}px; font-weight: {weight}; color: {color}; background: transparent;")
    lbl.setAlignment(align | Qt.AlignmentFlag.AlignVCenter)
    lbl.setWordWrap(wrap)
    return lbl


def notice_label() -> QLabel:
    """The warning strip a screen shows above its content (styled by the theme's ``#Notice``); hidden until a
    view brings a message."""
    notice = QLabel()
    notice.setObjectName("Notice")
    notice.setWordWrap(True)
    notice.hide()
    return notice


def show_notice(notice: QLabel, view: View) -> None:
    notice.setText(f"{view.message}\n{view.message_en}".strip())
    notice.setVisible(bool(view.message))


def button(text: str, kind: str = "", on_click: Callable[[], None] | None = None,
           min_width: int = 260) -> QPushButton:
    btn = QPushButton(text)
    if kind:
        btn.setProperty("kind", kind)
    btn.setMinimumWidth(min_width)
    btn.setCursor(Qt.CursorShape.PointingHandCursor)
    btn.setFocusPolicy(Qt.FocusPolicy.NoFocus)
    if on_click is not None:
        btn.clicked.connect(on_click)
    return btn


class Tile(QFrame):
    """A large touch target holding a few lines of text. Disabled tiles say why in their own text."""

    clicked = Signal()

    def __init__(self, lines: Sequence[tuple[str, int, bool]], enabled: bool = True,
                 colors: tuple[str, str] = (theme.CARD, theme.INK), min_height: int = 150,
                 align: Qt.AlignmentFlag = Qt.AlignmentFlag.AlignCenter):
        super().__init__()
        bg, ink = colors if enabled else (theme.DISABLED_BG, theme.DISABLED_INK)
        border = theme.LINE if enabled and bg == theme.CARD else bg
        self.setObjectName("Tile")
        self.setStyleSheet(f"#Tile {{ background: {bg}; border-radius: 18px; border: 2px solid {border}; }}")
        self.setMinimumHeight(max(min_height, theme.TOUCH_MIN))
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setEnabled(enabled)
        if enabled:
            self.setCursor(Qt.CursorShape.PointingHandCursor)
        box = QVBoxLayout(self)
        box.setContentsMargins(20, 12, 20, 12)
        box.setSpacing(4)
        box.addStretch(1)
        for text, size, bold in lines:
            lbl = label(text, size, bold, ink, align, wrap=True)
            lbl.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
            box.addWidget(lbl)
        box.addStretch(1)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if self.isEnabled() and self.rect().contains(event.position().toPoint()):
            self.clicked.emit()
        super().mouseReleaseEvent(event)


class PagedGrid(QWidget):
    """A grid of tiles with big previous/next buttons: kiosk screens page, they don't scroll."""

    def __init__(self, columns: int, rows: int, make_tile: Callable[[Any], Tile]):
        super().__init__()
        self.columns, self.rows, self.make_tile = columns, rows, make_tile
        self.items: list[Any] = []
        self.page = 0
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(18)
        self.grid_host = QWidget()
        self.grid = QGridLayout(self.grid_host)
        self.grid.setSpacing(18)
        self.grid.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.grid_host, 1)
        nav = QHBoxLayout()
        self.prev_btn = button("‹ 上一页", on_click=lambda: self.show_page(self.page - 1))
        self.next_btn = button("下一页 ›", on_click=lambda: self.show_page(self.page + 1))
        self.page_label = label("", 26, color=theme.MUTED, align=Qt.AlignmentFlag.AlignCenter)
        nav.addWidget(self.prev_btn)
        nav.addStretch(1)
        nav.addWidget(self.page_label)
        nav.addStretch(1)
        nav.addWidget(self.next_btn)
        self.nav = QWidget()
        self.nav.setLayout(nav)
        outer.addWidget(self.nav)

    @property
    def per_page(self) -> int:
        return self.columns * self.rows

    @property
    def pages(self) -> int:
        return max(1, -(-len(self.items) // self.per_page))

    def set_items(self, items: list[Any]) -> None:
        self.items = list(items)
        self.show_page(0)

    def show_page(self, page: int) -> None:
        self.page = max(0, min(page, self.pages - 1))
        while self.grid.count():
            item = self.grid.takeAt(0)
            if item.widget():
                item.widget().deleteLater()
        chunk = self.items[self.page * self.per_page:(self.page + 1) * self.per_page]
        for i, data in enumerate(chunk):
            self.grid.addWidget(self.make_tile(data), i // self.columns, i % self.columns)
        for i in range(len(chunk), self.per_page):  # keep tile sizes equal on a short last page
            spacer = QWidget()
            spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
            self.grid.addWidget(spacer, i // self.columns, i % self.columns)
        self.nav.setVisible(self.pages > 1)
        self.prev_btn.setEnabled(self.page > 0)
        self.next_btn.setEnabled(self.page < self.pages - 1)
        self.page_label.setText(f"第 {self.page + 1} / {self.pages} 页")


def centered(*widgets: QWidget) -> QHBoxLayout:
    """A row that keeps its widgets in the middle of the screen, where both hands reach."""
    row = QHBoxLayout()
    row.addStretch(1)
    for widget in widgets:
        row.addWidget(widget)
    row.addStretch(1)
    return row


def title_block(zh: str, en: str) -> QWidget:
    host = QWidget()
    box = QVBoxLayout(host)
    box.setContentsMargins(0, 0, 0, 0)
    box.setSpacing(2)
    host.zh = label(zh, 44, True)  # type: ignore[attr-defined]
    host.en = label(en, 22, color=theme.MUTED)  # type: ignore[attr-defined]
    box.addWidget(host.zh)  # type: ignore[attr-defined]
    box.addWidget(host.en)  # type: ignore[attr-defined]
    return host


def yuan(fen: int) -> str:
    return f"¥{fen / 100:.2f}"
