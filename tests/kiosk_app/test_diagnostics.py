"""Diagnostic mode on the real kiosk window with the device simulators: the hidden gesture, the PIN, every
device's state, self-tests that reach the device, and patients' visits kept apart from it."""
from __future__ import annotations

import time

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QLabel, QPushButton

from drivers.idcard.simulator import demo_card
from drivers.receipt.render import printed_text
from kiosk_app.app import Kiosk
from kiosk_app.config import Credentials, KioskConfig
from kiosk_app.pin import hash_pin
from kiosk_app.scripted import click_button, wait_for_screen, wait_until
from kiosk_app.simulated import SimulatedDevices

PIN = "246810"


@pytest.fixture
def kiosk(tmp_path, qapp):
    sims = SimulatedDevices(tmp_path / "devices")
    devices = sims.start()
    # No server: diagnostics need none, and a dead backend must not stop the technician.
    config = KioskConfig(credentials=Credentials("K-DIAG", "s", "http://127.0.0.1:9"), data_dir=tmp_path / "kiosk",
                         devices=devices, fullscreen=False, device_poll_seconds=0.5,
                         technician_pin_hash=hash_pin(PIN, iterations=1000))
    k = Kiosk(config, qapp)
    k.window.resize(1920, 1080)
    k.start(show=True)
    yield k, sims
    k.stop()
    sims.stop()


def tap_header(qtbot, window, times: int) -> None:
    header = window.findChild(QLabel).parentWidget()
    for _ in range(times):
        qtbot.mouseClick(header, Qt.MouseButton.LeftButton, pos=QPoint(5, 5))


def type_pin(qtbot, window, pin: str) -> None:
    screen = window.screens["diag_pin"]
    for digit in pin:
        key = next(b for b in screen.keys if b.text() == digit)
        qtbot.mouseClick(key, Qt.MouseButton.LeftButton)


def texts(window) -> str:
    return " ".join(w.text() for w in window.findChildren(QLabel) if w.isVisible())


def enter(qtbot, qapp, k) -> None:
    wait_for_screen(qapp, k.window, "home")
    tap_header(qtbot, k.window, 5)
    wait_for_screen(qapp, k.window, "diag_pin")
    type_pin(qtbot, k.window, PIN)
    wait_for_screen(qapp, k.window, "diag")


def test_four_taps_do_nothing_five_ask_for_the_pin_and_a_wrong_pin_is_refused(kiosk, qapp, qtbot):
    k, _ = kiosk
    wait_for_screen(qapp, k.window, "home")
    tap_header(qtbot, k.window, 4)
    qtbot.wait(100)
    assert k.window.view.screen == "home"
    tap_header(qtbot, k.window, 1)
    wait_for_screen(qapp, k.window, "diag_pin")
    type_pin(qtbot, k.window, "000000")
    wait_until(qapp, lambda: "密码错误" in texts(k.window), 5, "the wrong-PIN message")
    assert k.window.view.screen == "diag_pin"
    click_button(k.window, "返回")
    wait_for_screen(qapp, k.window, "home")


def test_device_panel_shows_each_device_and_a_fault_as_it_happens(kiosk, qapp, qtbot, tmp_path):
    k, sims = kiosk
    enter(qtbot, qapp, k)
    wait_until(qapp, lambda: {d["role"] for d in k.window.view.data["devices"]} >= {"id_card", "receipt_printer"},
               5, "both devices listed")
    assert all(d["status"] == "ok" for d in k.window.view.data["devices"])
    sims.printer.paper_out = True
    wait_until(qapp, lambda: k.health["receipt_printer"].reason == "paper_out", 5, "the printer report")
    click_button(k.window, "刷新")
    wait_until(qapp, lambda: "paper_out" in texts(k.window), 5, "paper_out on the panel")
    k.window.grab().save(str(tmp_path / "diag.png"))
    assert "故障 Fault" in texts(k.window)


def test_printer_self_test_prints_and_card_test_reads_masked_without_starting_a_visit(kiosk, qapp, qtbot):
    k, sims = kiosk
    enter(qtbot, qapp, k)
    rows = {b: b for b in k.window.findChildren(QPushButton) if b.isVisible() and "自检" in b.text()}
    assert len(rows) >= 2
    k.diagnostics.handle("diag_self_test", role="receipt_printer")
    assert "self-test" in printed_text(sims.printer.wait_for_job(10))
    wait_until(qapp, lambda: "ok" in " ".join(k.window.view.data["result"].get("lines", [])), 10, "the result")

    k.diagnostics.handle("diag_self_test", role="id_card")
    wait_until(qapp, lambda: "身份证" in texts(k.window), 5, "the lay-a-card prompt")
    sims.id_card.insert(demo_card("王小明", "110101199003074514"))
    wait_until(qapp, lambda: "读卡成功" in texts(k.window), 10, "the card on the panel")
    shown = texts(k.window)
    assert "王*明" in shown and "王小明" not in shown and "110101199003074514" not in shown
    assert k.workflow.state == "home" and k.workflow.visit.patient is None  # no visit was started
    click_button(k.window, "退出维护")
    wait_for_screen(qapp, k.window, "home")


def test_diagnostics_left_idle_close_themselves(kiosk, qapp, qtbot, monkeypatch):
    k, _ = kiosk
    enter(qtbot, qapp, k)
    monkeypatch.setattr(k.diagnostics, "clock", lambda: time.monotonic() + 301)
    wait_for_screen(qapp, k.window, "home", timeout=5)
    assert not k.diagnostics.active


def test_log_tail_reaches_the_panel(kiosk, qapp, qtbot):
    import logging
    k, _ = kiosk
    enter(qtbot, qapp, k)
    logging.getLogger("kiosk.test").warning("printer door slammed")
    click_button(k.window, "刷新")
    wait_until(qapp, lambda: "printer door slammed" in k.window.screens["diag"].log.toPlainText(), 5, "the log")


def test_camera_test_shows_the_frame_with_the_detection_box(kiosk, qapp, qtbot, tmp_path):
    k, _ = kiosk
    enter(qtbot, qapp, k)
    k.diagnostics.handle("diag_self_test", role="camera")
    wait_until(qapp, lambda: k.window.screens["diag"].image.isVisible(), 15, "the camera preview")
    assert "face quality ok" in texts(k.window)
    k.window.grab().save(str(tmp_path / "diag-camera.png"))


def test_scanner_test_says_what_the_code_was_taken_for(kiosk, qapp, qtbot):
    k, sims = kiosk
    enter(qtbot, qapp, k)
    wait_until(qapp, lambda: k.health.get("scanner") is not None and k.health["scanner"].usable, 5, "the scanner")
    k.diagnostics.handle("diag_self_test", role="scanner")
    wait_until(qapp, lambda: "请扫描" in texts(k.window), 5, "the scan prompt")
    sims.scanner.scan("http://example.com/free-gift")
    wait_until(qapp, lambda: "扫码成功" in texts(k.window), 10, "the scan on the panel")
    assert "unknown" in texts(k.window) and "free-gift" not in texts(k.window)


def test_pin_pad_self_test_reports_a_tampered_pad(kiosk, qapp, qtbot):
    k, sims = kiosk
    enter(qtbot, qapp, k)
    sims.pinpad.tampered = True
    k.diagnostics.handle("diag_self_test", role="pinpad")
    wait_until(qapp, lambda: "tampered" in texts(k.window), 10, "the tamper report")


@pytest.mark.parametrize("profile, expect", [("bank", "622"), ("social_security", "card_number")])
def test_card_reader_test_reads_the_card_masked(kiosk, qapp, qtbot, profile, expect):
    from drivers.pcsc.vcard import BANK
    k, sims = kiosk
    enter(qtbot, qapp, k)
    k.diagnostics.handle("diag_self_test", role="pcsc")
    sims.insert_card(profile)  # tapped Test, then inserted the card
    wait_until(qapp, lambda: "读卡成功" in texts(k.window) or "失败" in texts(k.window), 15, "the card read")
    shown = texts(k.window)
    assert "读卡成功" in shown and expect in shown, shown
    assert BANK.pan not in shown
