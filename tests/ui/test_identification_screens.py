"""The insert-card screen names every credential the kiosk takes (K1) and offers the passport / permit keyboard
and, with a working camera, 刷脸 with its consent; the new-file screen (建档, K2) takes an 11-digit mobile number
on its keypad and sends it only with the Create tap; a family's e-health account shows big tiles of masked
names; the document keyboard sends the number and the name only with the Look-up tap. Every one fits the
glass with large targets."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QPushButton

from ui import theme
from ui.screens.card import InsertCardScreen, NewFileScreen
from ui.screens.identify import ChoosePatientScreen, DocumentScreen
from ui.widgets import Tile
from ui.window import KioskWindow
from workflows.view import View

NEW_FILE = View("new_file", {"name_masked": "王**", "gender": "男"}, can_cancel=True,
                deadline=time.monotonic() + 80)
INSERT = View("insert_card", patient="", can_cancel=True, deadline=time.monotonic() + 50)
INSERT_FACE = View("insert_card", {"face": True}, can_cancel=True, deadline=time.monotonic() + 50,
                   message="多次未能看清您的面部，请使用身份证或扫码识别",
                   message_en="Your face could not be seen clearly. Please use your ID card or scan a code.")
FAMILY = [{"patient_id": "P0001", "name_masked": "李*英", "gender": "女", "age": 70},
          {"patient_id": "P0003", "name_masked": "李*明", "gender": "男", "age": 11},
          {"patient_id": "P0005", "name_masked": "欧**娜", "gender": "女", "age": 38}]
CHOOSE = View("choose_patient", {"patients": FAMILY}, can_cancel=True, deadline=time.monotonic() + 80)
DOCUMENT = View("document", {"tries_left": 2}, can_cancel=True, can_back=True, deadline=time.monotonic() + 80,
                message="姓名与档案不符，请按证件上的拼写重新输入",
                message_en="The name does not match the patient file. Please type it as spelt on the document.")
FACE = View("face_capture", {"text": "请正对摄像头，保持不动", "text_en": "Please look straight at the camera and hold still"},
            can_cancel=True)
SHOTS = Path(tempfile.gettempdir()) / "shots-identification"


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


@pytest.mark.parametrize("view", [NEW_FILE, INSERT, INSERT_FACE, CHOOSE, DOCUMENT, FACE],
                         ids=["new_file", "insert_card", "insert_card_face", "choose_patient", "document",
                              "face_capture"])
def test_identification_screens_fit_and_targets_are_large(window, view, qtbot):
    window.render(view)
    qtbot.wait(10)
    # This screen with the window's header, patient bar and footer around it (the stack's own hint is that of
    # its tallest screen, whichever that is).
    chrome = window.minimumSizeHint().height() - window.stack.minimumSizeHint().height()
    hint = window.stack.currentWidget().minimumSizeHint()
    assert hint.width() <= theme.SCREEN_W and hint.height() + chrome <= theme.SCREEN_H
    for btn in window.findChildren(QPushButton):
        if btn.isVisible():
            assert btn.height() >= theme.TOUCH_MIN, btn.text()
    for tile in window.findChildren(Tile):
        if tile.isVisible():
            assert tile.height() >= theme.TOUCH_MIN
    SHOTS.mkdir(exist_ok=True)
    assert window.grab().save(str(SHOTS / f"{view.screen}{'-face' if view.data.get('face') else ''}.png"))


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


def test_insert_card_offers_the_document_keyboard_and_face_only_with_a_camera(window, qtbot):
    window.render(INSERT)
    qtbot.wait(10)
    screen = window.screens["insert_card"]
    assert isinstance(screen, InsertCardScreen)
    assert screen.document.isVisible() and "护照" in screen.document.text() and "Passport" in screen.document.text()
    assert not screen.face.isVisible() and "照片" not in texts(window)
    qtbot.mouseClick(screen.document, Qt.MouseButton.LeftButton)
    assert window.sent == [("type_document", {})]

    window.render(INSERT_FACE)
    qtbot.wait(10)
    assert screen.face.isVisible() and "刷脸" in screen.face.text()
    shown = texts(window)
    assert "仅用于核验身份" in shown and "不会保存" in shown and "not kept" in shown  # the consent's terms
    assert "请使用身份证" in shown and "ID card" in shown  # the notice
    qtbot.mouseClick(screen.face, Qt.MouseButton.LeftButton)
    assert window.sent[-1] == ("scan_face", {})
    window.render(INSERT)
    assert not screen.notice.isVisible()


def test_choose_patient_shows_masked_names_in_big_tiles_and_sends_the_tapped_one(window, qtbot):
    window.render(CHOOSE)
    qtbot.wait(10)
    screen = window.screens["choose_patient"]
    assert isinstance(screen, ChoosePatientScreen)
    tiles = [t for t in screen.findChildren(Tile) if t.isVisible()]
    assert len(tiles) == 3 and all(t.height() >= 200 for t in tiles)
    shown = texts(window)
    for word in ("李*英", "李*明", "欧**娜", "70岁", "11岁", "Who is being seen"):
        assert word in shown, word
    qtbot.mouseClick(tiles[1], Qt.MouseButton.LeftButton)
    assert window.sent == [("pick_patient", {"patient_id": "P0003"})]
    assert window.cancel_btn.isVisible()


def test_the_document_keyboard_sends_number_and_name_only_with_look_up_and_forgets_them(window, qtbot):
    window.render(DOCUMENT)
    qtbot.wait(10)
    screen = window.screens["document"]
    assert isinstance(screen, DocumentScreen)
    assert "姓名与档案不符" in texts(window) and window.back_btn.isVisible() and window.cancel_btn.isVisible()

    def tap(*keys: str) -> None:
        for key in keys:
            qtbot.mouseClick(screen.keys[key], Qt.MouseButton.LeftButton)

    tap("E", "1", "2", "3")
    assert not screen.action.isEnabled() and "下一步" in screen.action.text()  # 4 characters: not a number yet
    qtbot.mouseClick(screen.name_field, Qt.MouseButton.LeftButton)
    assert screen.step == "number"  # the name waits for a number
    tap("4", "5", "6", "7", "9", "⌫", "8")
    assert screen.number == "E12345678" and screen.action.isEnabled()
    for _ in range(15):  # at most 20 characters
        tap("0")
    assert len(screen.number) == 20
    tap("清除 Clear", "E", "1", "2", "3", "4", "5", "6", "7", "8")
    qtbot.mouseClick(screen.action, Qt.MouseButton.LeftButton)
    assert screen.step == "name" and "查询" in screen.action.text() and not screen.action.isEnabled()
    assert not screen.keys["1"].isEnabled() and screen.keys["空格 Space"].isEnabled()  # names take no digits
    tap("空格 Space", "S", "M", "I", "T", "H", "空格 Space", "空格 Space", "J", "O", "H", "N")
    assert screen.name == "SMITH JOHN" and screen.action.isEnabled()
    assert "E12345678" in screen.number_field.value.text() and "SMITH JOHN" in screen.name_field.value.text()
    assert window.sent == []
    qtbot.mouseClick(screen.action, Qt.MouseButton.LeftButton)
    assert window.sent == [("look_up_document", {"document_number": "E12345678", "name": "SMITH JOHN"})]
    assert screen.number == "" and screen.name == "" and screen.step == "number"  # gone from the glass
    assert "E12345678" not in texts(window) and "SMITH" not in texts(window)


def test_the_face_screen_says_where_to_look_and_that_the_photo_is_not_kept(window, qtbot):
    window.render(FACE)
    qtbot.wait(10)
    shown = texts(window)
    assert "请正对摄像头，保持不动" in shown and "hold still" in shown and "不会保存" in shown
    assert window.cancel_btn.isVisible()
