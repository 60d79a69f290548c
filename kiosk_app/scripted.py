"""Drive the real kiosk window the way a finger does: find a tile or button by its text and click it.

Used by the headless demo and the end-to-end tests, so both go through the same widgets a patient touches.
"""
from __future__ import annotations

import time
from typing import Callable

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QLabel, QPushButton, QWidget

from ui.widgets import Tile
from ui.window import KioskWindow


class ScriptError(Exception):
    pass


def wait_until(app: QApplication, condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        app.processEvents()
        if condition():
            return
        time.sleep(0.02)
    raise ScriptError(f"timed out after {timeout:.0f} s waiting for {what}")


def wait_for_screen(app: QApplication, window: KioskWindow, screen: str, timeout: float = 20.0) -> None:
    wait_until(app, lambda: window.view.screen == screen, timeout, f"the {screen!r} screen "
               f"(showing {window.view.screen!r}: {window.view.message})")
    app.processEvents()


def visible_tiles(window: KioskWindow) -> list[tuple[Tile, str]]:
    screen = window.stack.currentWidget()
    tiles = []
    for tile in screen.findChildren(Tile):
        if tile.isVisible() and tile.isEnabled():
            text = " ".join(lbl.text() for lbl in tile.findChildren(QLabel))
            tiles.append((tile, text))
    return tiles


def click(widget: QWidget) -> None:
    QTest.mouseClick(widget, Qt.MouseButton.LeftButton)


def click_tile(window: KioskWindow, contains: str = "") -> str:
    """Click the first enabled tile whose text contains `contains`; return its text."""
    for tile, text in visible_tiles(window):
        if contains in text:
            click(tile)
            return text
    raise ScriptError(f"no enabled tile with {contains!r} on {window.view.screen!r}")


def click_button(window: KioskWindow, contains: str) -> None:
    for btn in window.findChildren(QPushButton):
        if btn.isVisible() and btn.isEnabled() and contains in btn.text():
            click(btn)
            return
    raise ScriptError(f"no button with {contains!r} on {window.view.screen!r}")


def press_key(window: KioskWindow, key: str) -> None:
    """A key of the on-screen letter keyboard, by its exact label (other buttons may contain the letter)."""
    for btn in window.findChildren(QPushButton):
        if btn.isVisible() and btn.isEnabled() and btn.text() == key:
            click(btn)
            return
    raise ScriptError(f"no key {key!r} on {window.view.screen!r}")


def has_button(window: KioskWindow, contains: str) -> bool:
    return any(btn.isVisible() and btn.isEnabled() and contains in btn.text()
               for btn in window.findChildren(QPushButton))


def leave_after_visit(app: QApplication, window: KioskWindow) -> None:
    """Done on a result screen, then skip the satisfaction survey the kiosk offers after a visit that served
    (K13), back to the home screen."""
    click_button(window, "返回首页")
    wait_for_screen(app, window, "survey")
    click_button(window, "跳过")
    wait_for_screen(app, window, "home")
