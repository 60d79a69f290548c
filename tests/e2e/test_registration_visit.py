"""One full same-day registration through the real Qt app, a real kiosk-central process (reference HIS,
WeChat Pay sandbox), the ID-card reader simulator on a serial pty pair and the TCP receipt printer."""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from central.his.seed import DEMO_PATIENT
from drivers.receipt.render import decode_qr_codes, printed_text
from kiosk_app.phone import qr_on_screen
from kiosk_app.scripted import click_button, click_tile, wait_for_screen, wait_until
from kiosk_app.simulated import card_for
from tests.e2e.conftest import api

pytestmark = pytest.mark.e2e




def walk_to_payment(app, k, sims, card_first=False):
    wait_for_screen(app, k.window, "home")
    if card_first:  # laid on the reader before the patient touches the service
        sims.id_card.insert(card_for(DEMO_PATIENT))
        wait_until(app, lambda: sims.id_card.requests.count(b"\x30\x01") >= 1, 10, "the card to be read")
    click_tile(k.window, "当日挂号")
    wait_for_screen(app, k.window, "insert_card")
    if not card_first:
        sims.id_card.insert(card_for(DEMO_PATIENT))
    wait_for_screen(app, k.window, "departments")
    assert "李*英" in k.window.patient.text() and DEMO_PATIENT["name"] not in k.window.patient.text()
    click_tile(k.window, "余号")
    wait_for_screen(app, k.window, "doctors")
    click_tile(k.window)
    wait_for_screen(app, k.window, "slots")
    click_tile(k.window)
    wait_for_screen(app, k.window, "confirm")
    click_button(k.window, "确认挂号并支付")
    wait_for_screen(app, k.window, "payment")


def test_full_visit_prints_the_visit_code_the_his_issued(central, kiosk, qapp):
    k, sims = kiosk
    walk_to_payment(qapp, k, sims)
    code_url = qr_on_screen(k.window)
    assert code_url.startswith("weixin://wxpay/bizpayurl")
    order_no = k.window.view.data["order"]["order_no"]

    central.pay_as_phone(code_url)
    wait_until(qapp, lambda: k.window.view.screen in ("done", "error"), 60, "the result")
    assert k.window.view.screen == "done", k.window.view.message

    his_order = api(central, k, f"/orders/{order_no}")
    assert his_order["status"] == "FULFILLED"
    visit_code = his_order["registration"]["visit_code"]
    with sqlite3.connect(central.data_dir / "central.db") as db:  # the reference HIS's own record
        rows = db.execute("SELECT visit_code, queue_no FROM his_registrations WHERE slot_id = ?",
                          (his_order["slot"]["slot_id"],)).fetchall()
    assert (visit_code, his_order["registration"]["queue_no"]) in rows
    receipt = sims.printer.wait_for_job(15)
    assert decode_qr_codes(receipt) == [visit_code]
    text = printed_text(receipt)
    assert "李*英" in text and DEMO_PATIENT["name"] not in text
    assert his_order["department"]["name"] in text and his_order["doctor"]["name"] in text
    assert f"{his_order['registration']['queue_no']} 号" in text
    assert receipt.rfind(b"\x1dV") > receipt.rfind(b"\x1dv0")  # cut after the QR code

    click_button(k.window, "返回首页")
    wait_for_screen(qapp, k.window, "survey")  # offered after a visit that served (K13): one tap skips it
    assert k.window.patient_bar.isHidden() and k.workflow.visit.patient is None
    click_button(k.window, "跳过")
    wait_for_screen(qapp, k.window, "home")

    # Every transition of the visit also went through the offline queue to the server, once each.
    k.deliverer.wake()
    wait_until(qapp, lambda: k.outbox.depth() == 0, 20, "the outbox to drain")
    with sqlite3.connect(central.data_dir / "central.db") as db:
        events = [json.loads(p)["dest"] for (p,) in db.execute(
            "SELECT payload FROM kiosk_messages WHERE terminal_id = ? AND kind = 'visit_event' ORDER BY id",
            (k.config.credentials.terminal_id,))]
    assert events[:2] == ["reading_card", "identifying"] and "done" in events and events[-1] == "home"


def test_cancel_on_the_payment_screen_closes_the_order(central, kiosk, qapp):
    k, sims = kiosk
    walk_to_payment(qapp, k, sims, card_first=True)
    code_url = qr_on_screen(k.window)
    order_no = k.window.view.data["order"]["order_no"]
    click_button(k.window, "取消支付")
    wait_for_screen(qapp, k.window, "home")
    assert api(central, k, f"/orders/{order_no}")["status"] == "CLOSED"
    with pytest.raises(httpx.HTTPStatusError):
        central.pay_as_phone(code_url)  # the closed trade can no longer be paid
    assert not sims.printer.jobs


def test_headless_demo_command(tmp_path):
    out = tmp_path / "demo"
    kiosk_bin = Path(sys.executable).with_name("kiosk")
    result = subprocess.run([str(kiosk_bin), "demo", "--headless", "--out", str(out)], capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    names = {p.name for p in out.iterdir()}
    for screen in ("home", "insert_card", "departments", "doctors", "slots", "confirm", "payment", "done",
                   "diag_pin", "diag"):
        assert any(n.endswith(f"-{screen}.png") for n in names), screen
    # every service's walk, its screens named after the service
    for service, screen in (("registration", "done"), ("registration", "guidance_map"),
                            ("appointment", "appt_done"), ("appointment", "appt_cancelled"),
                            ("survey", "survey_thanks"), ("outpatient_payment", "bill_done"),
                            ("reports", "print_result"), ("queries", "records"), ("guidance", "guidance_map"),
                            ("cards", "card_menu"), ("cards", "scan_visit_card"), ("cards", "records")):
        assert any(n.endswith(f"-{service}-{screen}.png") for n in names), (service, screen)
    assert any(n.endswith(("-checkin-checkin_done.png", "-checkin-checkin_list.png")) for n in names)
    walks = json.loads((out / "visit.json").read_text())["walks"]
    assert {"registration", "appointment", "checkin", "outpatient_payment", "reports", "queries", "guidance",
            "cards", "technician"} <= set(walks) and all(w["ok"] for w in walks.values()), walks
    assert {"receipt.bin", "receipt.png"} <= names
    assert decode_qr_codes((out / "receipt.bin").read_bytes())


def test_printer_out_of_paper_switches_registration_off_and_refill_switches_it_on(central, kiosk, qapp):
    from kiosk_app.scripted import ScriptError
    k, sims = kiosk
    wait_for_screen(qapp, k.window, "home")
    wait_until(qapp, lambda: k.health.get("receipt_printer") is not None, 10, "the first printer check")
    sims.printer.paper_out = True
    poll = k.config.device_poll_seconds
    wait_until(qapp, lambda: not k.window.screens["home"].tiles["registration"].isEnabled(), poll + 2,
               "the service to switch off within one poll")
    assert k.health["receipt_printer"].reason == "paper_out"
    assert "凭条打印机" in next(t for t in k.window.view.data["services"] if t["id"] == "registration")["reason"]
    with pytest.raises(ScriptError):
        click_tile(k.window, "当日挂号")
    sims.printer.paper_out = False
    wait_until(qapp, lambda: k.window.screens["home"].tiles["registration"].isEnabled(), poll + 2,
               "the service to come back within one poll")
    click_tile(k.window, "当日挂号")
    wait_for_screen(qapp, k.window, "insert_card")


def test_id_card_reader_unplugged_switches_registration_off(central, kiosk, qapp):
    k, sims = kiosk
    wait_for_screen(qapp, k.window, "home")
    wait_until(qapp, lambda: k.health.get("id_card") is not None and k.health["id_card"].usable, 10,
               "the first reader poll")
    sims.id_card.stop()  # reader powered off: the SAM stops answering
    wait_until(qapp, lambda: not k.window.screens["home"].tiles["registration"].isEnabled(), 10,
               "the service to switch off")
    assert "身份证读卡器" in next(t for t in k.window.view.data["services"] if t["id"] == "registration")["reason"]
