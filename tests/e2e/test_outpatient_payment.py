"""Outpatient payment (门诊缴费) and an item refund (退费) through the real Qt app, a real kiosk-central process
(reference HIS, WeChat Pay sandbox), the ID-card reader simulator on a serial pty pair and the TCP receipt
printer: the demo patient pays her bill by QR, the slip says where to go for each item, then she gives an
item back and the money goes back along the trade."""
from __future__ import annotations

import json
import sqlite3

import pytest
from PySide6.QtWidgets import QLabel

from central.his.seed import DEMO_PATIENT, DEMO_PATIENT_ID
from drivers.receipt.render import printed_text
from kiosk_app.phone import qr_on_screen
from kiosk_app.scripted import click_button, click_tile, leave_after_visit, wait_for_screen, wait_until
from kiosk_app.app import Kiosk
from kiosk_app.config import KioskConfig
from kiosk_app.local_central import LocalCentral
from kiosk_app.simulated import SimulatedDevices, card_for
from tests.e2e.conftest import api

pytestmark = pytest.mark.e2e


@pytest.fixture
def terminal_id() -> str:
    return "KIOSK-E2E-MZ"


def identify(app, k, sims):
    wait_for_screen(app, k.window, "home")
    click_tile(k.window, "门诊缴费")
    wait_for_screen(app, k.window, "insert_card")
    sims.id_card.insert(card_for(DEMO_PATIENT))
    wait_until(app, lambda: k.window.view.screen in ("bills", "bill_detail", "error"), 20, "the bills")
    assert "李*英" in k.window.patient.text() and DEMO_PATIENT["name"] not in k.window.patient.text()


def test_pay_a_bill_by_qr_then_refund_an_item(central, kiosk, qapp):
    k, sims = kiosk
    bills = api(central, k, f"/patients/{DEMO_PATIENT_ID}/bills")["bills"]
    assert len(bills) == 1, "the demo patient has one pending bill"
    bill = bills[0]

    identify(qapp, k, sims)
    assert k.window.view.screen == "bill_detail", k.window.view.message  # one bill: its items at once
    for item in bill["items"]:
        assert item["place"] in " ".join(lbl.text() for lbl in k.window.screens["bill_detail"].findChildren(QLabel)
                                         if lbl.isVisible())
    click_button(k.window, "去缴费")
    wait_for_screen(qapp, k.window, "bill_checkout")
    click_button(k.window, "自费支付")
    wait_for_screen(qapp, k.window, "bill_payment")
    code_url = qr_on_screen(k.window)
    assert code_url.startswith("weixin://wxpay/bizpayurl")
    order_no = k.window.view.data["order"]["order_no"]
    assert k.window.screens["bill_payment"].amount.text() == f"¥{bill['total_fen'] / 100:.2f}"

    central.pay_as_phone(code_url)
    wait_until(qapp, lambda: k.window.view.screen in ("bill_done", "error"), 60, "the result")
    assert k.window.view.screen == "bill_done", k.window.view.message

    order = api(central, k, f"/orders/{order_no}")
    assert order["status"] == "FULFILLED" and {i["status"] for i in order["items"]} == {"PAID"}
    with sqlite3.connect(central.data_dir / "central.db") as db:  # the reference HIS's own record
        (status,) = db.execute("SELECT status FROM his_bills WHERE bill_no = ?", (bill["bill_no"],)).fetchone()
    assert status == "PAID"
    text = printed_text(sims.printer.wait_for_job(15))
    assert "门诊缴费凭条" in text and "李*英" in text and DEMO_PATIENT["name"] not in text
    for item in order["items"]:  # every item and where to go for it
        assert item["name"] in text and item["place"] in text, item
    assert f"{order['amount_fen'] / 100:.2f}" in text and order_no in text

    leave_after_visit(qapp, k.window)
    assert k.window.patient_bar.isHidden()

    # 退费: the bill is paid, so nothing is due; the refund entry lists what was paid here today.
    identify(qapp, k, sims)
    assert k.window.view.screen == "bills" and k.window.view.message == "您目前没有待缴费用"
    click_button(k.window, "我要退费")
    wait_for_screen(qapp, k.window, "refunds")
    first = order["items"][0]
    click_tile(k.window, first["name"])
    wait_until(qapp, lambda: k.window.view.data.get("selected") == [first["item_id"]], 10, "the tick")
    click_button(k.window, "申请退费")
    wait_for_screen(qapp, k.window, "refund_confirm")
    click_button(k.window, "确认退费")
    wait_until(qapp, lambda: k.window.view.screen in ("refund_done", "error"), 30, "the refund")
    assert k.window.view.screen == "refund_done", k.window.view.message
    assert [i["item_id"] for i in k.window.view.data["refunded"]] == [first["item_id"]]

    after = api(central, k, f"/orders/{order_no}")
    assert next(i for i in after["items"] if i["item_id"] == first["item_id"])["status"] == "REFUNDED"
    with sqlite3.connect(central.data_dir / "central.db") as db:
        events = [e for (e,) in db.execute(
            "SELECT e.event FROM order_events e JOIN orders o ON o.id = e.order_id WHERE o.order_no = ?",
            (order_no,))]
    assert "ITEMS_REFUNDED" in events
    leave_after_visit(qapp, k.window)

    # The journal and the outbox carry identifiers only.
    k.deliverer.wake()
    wait_until(qapp, lambda: k.outbox.depth() == 0, 20, "the outbox to drain")
    journal = json.dumps(k.journal.entries(), ensure_ascii=False)
    assert DEMO_PATIENT["name"] not in journal and DEMO_PATIENT["id_number"] not in journal
    assert f'"refund_items": ["{first["item_id"]}"]' in journal


@pytest.fixture
def own_central(tmp_path_factory):
    """A server of its own: the demo patient's one bill is still unpaid here."""
    server = LocalCentral(tmp_path_factory.mktemp("central-insurance")).start()
    yield server
    server.stop()


def test_insurance_e_voucher_under_the_scanner_then_the_self_pay_part_by_qr(own_central, tmp_path, qapp):
    from central.payments.insurance_sandbox import demo_persons
    voucher = next(p for p in demo_persons() if p.name == "王五").e_voucher
    sims = SimulatedDevices(tmp_path / "devices")
    config = KioskConfig(credentials=own_central.provision("KIOSK-E2E-YB"), data_dir=tmp_path / "kiosk",
                         devices=sims.start(), fullscreen=False)
    k = Kiosk(config, qapp)
    k.window.resize(1920, 1080)
    k.start(show=True)
    try:
        identify(qapp, k, sims)
        click_button(k.window, "去缴费")
        wait_for_screen(qapp, k.window, "bill_checkout")
        sims.scanner.scan(voucher)  # the 医保电子凭证 on the patient's phone, through the real scanner driver
        wait_until(qapp, lambda: (k.window.view.data.get("order") or {}).get("insurance") is not None
                   or bool(k.window.view.message), 30, "the insurance split")
        order = k.window.view.data["order"]
        assert order["insurance"]["state"] == "PRESETTLED", k.window.view.message
        split = order["insurance"]["split"]
        assert split["fund_fen"] + split["account_fen"] + split["self_pay_fen"] == order["amount_fen"]
        assert split["self_pay_fen"] > 0, "the demo bill leaves a part for the patient (王五's account holds 10 yuan)"
        click_button(k.window, "支付自付部分")
        wait_for_screen(qapp, k.window, "bill_payment")
        assert k.window.screens["bill_payment"].amount.text() == f"¥{split['self_pay_fen'] / 100:.2f}"
        own_central.pay_as_phone(qr_on_screen(k.window))
        wait_until(qapp, lambda: k.window.view.screen in ("bill_done", "error"), 60, "the result")
        assert k.window.view.screen == "bill_done", k.window.view.message
        text = printed_text(sims.printer.wait_for_job(15))
        assert "医保支付" in text and f"{split['self_pay_fen'] / 100:.2f}" in text
        journal = json.dumps(k.journal.entries(), ensure_ascii=False)
        assert voucher not in journal  # a credential is never journaled
    finally:
        k.stop()
        sims.stop()
