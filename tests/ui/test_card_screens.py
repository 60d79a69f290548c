"""The bank-card steps (银行卡) and the cards offered on the payment and checkout screens: they fit the glass with
large targets, say the next step in Chinese and English, send their intents, and never show a card number."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from PySide6.QtWidgets import QLabel, QPushButton

from ui import theme
from ui.window import KioskWindow
from workflows.view import View

PATIENT = "李*英  女  70岁"
ORDER = {"order_no": "R20261123001", "amount_fen": 5000, "department": {"name": "心血管内科"},
         "doctor": {"name": "王建国"}, "slot": {"start": "14:00", "end": "14:30"},
         "payment": {"code_url": "weixin://wxpay/bizpayurl?pr=abc", "card": "622202*********0128"}}
BILL_ORDER = {"order_no": "MZ1", "kind": "bill", "amount_fen": 16036, "self_pay_fen": 6414,
              "department": {"name": "呼吸与危重症医学科"}, "code_url": "weixin://wxpay/bizpayurl?pr=abc",
              "insurance": {"state": "PRESETTLED", "amount_fen": 9622,
                            "split": {"fund_fen": 8622, "account_fen": 1000, "self_pay_fen": 6414}},
              "payment": None, "items": []}


def card_view(step: str, **kw) -> View:
    waiting = step == "insert"
    return View("bank_card", {"order": kw.pop("order", ORDER), "step": step, "digits": kw.pop("digits", 0),
                              "pin_length": 6}, patient=PATIENT, can_cancel=waiting,
                deadline=time.monotonic() + 170 if waiting else None, **kw)


CARD_VIEWS = {
    "qr_with_card": View("payment", {"order": ORDER, "bank_card": True}, patient=PATIENT, can_cancel=True,
                         deadline=time.monotonic() + 170),
    "bill_qr_with_card": View("bill_payment", {"order": BILL_ORDER, "channel": "wechat_native", "bank_card": True},
                              message="请取回银行卡", message_en="Please take your bank card", patient=PATIENT,
                              can_cancel=True, deadline=time.monotonic() + 170),
    "appt_qr_with_card": View("appt_payment", {"order": ORDER, "channel": "aggregate", "bank_card": True},
                              patient=PATIENT, can_cancel=True, deadline=time.monotonic() + 170),
    "insert": card_view("insert"),
    "declined": card_view("insert", message="密码错误，请重新输入", message_en="Wrong PIN; please try again"),
    "declined_qr_left": View("bank_card", {"order": ORDER, "step": "insert", "digits": 0, "pin_length": 6,
                                           "qr_back": False}, message="卡内余额不足，请换卡或选择其他支付方式",
                             message_en="Insufficient funds", patient=PATIENT, can_cancel=True,
                             deadline=time.monotonic() + 170),
    "reading": card_view("reading"),
    "pin": card_view("pin", digits=3),
    "paying": card_view("paying"),
    "take": card_view("take", order=BILL_ORDER),
    "checkout_social_card": View("bill_checkout", {"order": dict(BILL_ORDER, insurance=None), "insurance_card": True},
                                 patient=PATIENT, can_cancel=True),
}
SHOTS = Path(os.environ.get("KIOSK_SHOTS", "/tmp/shots-pay"))


@pytest.fixture
def window(qtbot):
    sent: list = []
    w = KioskWindow(lambda intent, **kw: sent.append((intent, kw)), "示范市人民医院", "KIOSK-001")
    qtbot.addWidget(w)
    w.resize(theme.SCREEN_W, theme.SCREEN_H)
    w.show()
    w.sent = sent
    return w


def shown(window) -> str:
    return " ".join(lbl.text() for lbl in window.findChildren(QLabel) if lbl.isVisible())


def buttons(window) -> dict[str, QPushButton]:
    return {b.text(): b for b in window.findChildren(QPushButton) if b.isVisible()}


@pytest.mark.parametrize("name", list(CARD_VIEWS))
def test_card_screens_fit_with_large_targets_and_are_saved(window, qtbot, name):
    window.render(CARD_VIEWS[name])
    qtbot.wait(20)
    SHOTS.mkdir(parents=True, exist_ok=True)
    assert window.grab().save(str(SHOTS / f"{name}.png"))
    hint = window.minimumSizeHint()
    assert hint.width() <= theme.SCREEN_W and hint.height() <= theme.SCREEN_H
    assert window.size().toTuple() == (theme.SCREEN_W, theme.SCREEN_H)
    for btn in buttons(window).values():
        assert btn.height() >= theme.TOUCH_MIN, btn.text()
    assert "6222021234567890128" not in shown(window)


def test_bank_card_button_only_when_offered_and_sends_pay_by_card(window, qtbot):
    from kiosk_app.scripted import click_button
    window.render(View("payment", {"order": ORDER}, patient=PATIENT, can_cancel=True))
    assert not any("银行卡" in t for t in buttons(window))
    window.render(CARD_VIEWS["qr_with_card"])
    click_button(window, "银行卡")
    assert window.sent[-1] == ("pay_by_card", {})


def test_card_steps_say_what_to_do_and_offer_retry_and_qr_after_a_decline(window, qtbot):
    from kiosk_app.scripted import click_button
    window.render(CARD_VIEWS["insert"])
    assert "请插入银行卡" in shown(window) and "Please insert your bank card" in shown(window)
    assert "¥50.00" in shown(window) and "再试一次  Try again" not in buttons(window)
    assert window.cancel_btn.text() == "取消支付  Cancel payment"
    window.render(CARD_VIEWS["declined"])
    assert "密码错误" in shown(window)
    click_button(window, "再试一次")
    assert window.sent[-1] == ("card_retry", {})
    click_button(window, "改用扫码支付")
    assert window.sent[-1] == ("back", {})
    window.render(CARD_VIEWS["declined_qr_left"])  # a card sale left the QR's method: another card, or Cancel
    assert "再试一次  Try again" in buttons(window) and "改用扫码支付  Pay by QR code" not in buttons(window)
    assert window.cancel_btn.isVisible()
    window.render(CARD_VIEWS["pin"])
    assert "请在密码键盘上输入密码" in shown(window) and window.screens["bank_card"].dots.count == 3
    assert not window.cancel_btn.isVisible() and not buttons(window).get("改用扫码支付  Pay by QR code")
    window.render(CARD_VIEWS["take"])
    assert "请取回银行卡" in shown(window) and "¥64.14" in shown(window)  # the self-pay part after insurance


def test_checkout_offers_the_social_security_card_only_with_a_reader(window, qtbot):
    from kiosk_app.scripted import click_button
    window.render(View("bill_checkout", {"order": BILL_ORDER}, patient=PATIENT, can_cancel=True))
    assert "社保卡" not in shown(window)
    window.render(CARD_VIEWS["checkout_social_card"])
    assert "社保卡" in shown(window)
    click_button(window, "读取")
    assert window.sent[-1] == ("use_insurance_card", {})


def test_a_device_notice_shows_over_the_screen_and_goes(window, qtbot):
    window.render(View("insert_card", can_cancel=True))
    window.show_notice("无法读取该卡，请确认插入的是社保卡", "This card cannot be read.", seconds=1.0)
    assert window._notice.isVisible() and "社保卡" in window._notice.text()
    SHOTS.mkdir(parents=True, exist_ok=True)
    window.grab().save(str(SHOTS / "insert_card_notice.png"))
    qtbot.waitUntil(lambda: not window._notice.isVisible(), timeout=4000)
