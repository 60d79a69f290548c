"""The insert-card screen names every credential the kiosk takes (K1); the new-file screen (建档, K2) fits the
glass, takes an 11-digit mobile number on its keypad and sends it only with the Create tap."""
from __future__ import annotations

import time

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QPushButton

from ui import theme
from ui.screens.card import NewFileScreen
from ui.window import KioskWindow
from workflows.view import View

NEW_FILE = View("new_file", {"name_masked": "王**", "gender": "男"}, can_cancel=True,
                deadline=time.monotonic() + 80)
INSERT = View("insert_card", patient="", can_cancel=True, deadline=time.monotonic() + 50)


@pytest.fixture
def window(qtbot):
    sent: list = []
    w = KioskWindow(lambda intent, **kw: sent.append((intent, kw)), "示范市人民医院", "KIOSK-001")
    qtbot.addWidget(w)
    w.resize(theme.SCREEN_W, theme.SCREEN_H)
    w.show()
    w.sent = sent
    return w


def texts(widget) -> str:
    return " ".join(lbl.text() for lbl in widget.findChildren(QLabel) if lbl.isVisible())


@pytest.mark.parametrize("view", [NEW_FILE, INSERT], ids=["new_file", "insert_card"])
def test_identification_screens_fit_and_targets_are_large(window, view, qtbot):
    window.render(view)
    qtbot.wait(10)
    hint = window.minimumSizeHint()
    assert hint.width() <= theme.SCREEN_W and hint.height() <= theme.SCREEN_H
    for btn in window.findChildren(QPushButton):
        if btn.isVisible():
            assert btn.height() >= theme.TOUCH_MIN, btn.text()


def test_insert_card_names_the_codes_it_takes(window, qtbot):
    window.render(INSERT)
    qtbot.wait(10)
    shown = texts(window)
    for word in ("身份证", "电子健康卡", "医保电子凭证", "就诊码", "建档"):
        assert word in shown, word


def test_new_file_sends_the_phone_only_when_complete(window, qtbot):
    window.render(NEW_FILE)
    qtbot.wait(10)
    screen = window.screens["new_file"]
    assert isinstance(screen, NewFileScreen) and "王**" in texts(window)
    keys = {b.text(): b for b in screen.findChildren(QPushButton)}
    assert not screen.create.isEnabled()
    for digit in "1391234567":
        qtbot.mouseClick(keys[digit], Qt.MouseButton.LeftButton)
    assert not screen.create.isEnabled() and window.sent == []
    qtbot.mouseClick(keys["8"], Qt.MouseButton.LeftButton)
    qtbot.mouseClick(keys["9"], Qt.MouseButton.LeftButton)  # a twelfth digit is not taken
    assert "139 1234 5678" in screen.number.text()
    qtbot.mouseClick(screen.create, Qt.MouseButton.LeftButton)
    assert window.sent == [("confirm_file", {"phone": "13912345678"})]
    assert screen.typed == ""  # the number does not stay on the glass
