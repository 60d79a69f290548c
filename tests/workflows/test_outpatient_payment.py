"""Outpatient payment (门诊缴费) and item refunds (退费), driven without Qt, devices or network: every branch a
patient can meet, and the money rules (journal before the request, same key on retry, the server decides)."""
from __future__ import annotations

import json

import pytest

from drivers.health import Health
from workflows.journal import Journal
from workflows.outpatient_payment import OutpatientPayment
from workflows.service_base import Timeouts

from .fakes import VOUCHER, Clock, FakeBillBackend, FakeCard, RecordingPrinter

WECHAT_CODE = "134567890123456789"


@pytest.fixture
def env(tmp_path):
    journal = Journal(tmp_path / "journal.db")
    backend = FakeBillBackend(journal)
    printer = RecordingPrinter()
    views = []
    clock = Clock()
    wf = OutpatientPayment(backend, printer, journal, views.append, "KIOSK-T01", Timeouts(poll_interval=1.0),
                           clock=clock, sleep=lambda s: None)
    return wf, backend, printer, views, journal, clock


def identify(wf):
    wf.handle("start")
    assert wf.state == "reading_card"
    wf.handle("card_read", card=FakeCard())


def to_checkout(wf, bill_no="B001"):
    identify(wf)
    assert wf.state == "choosing_bill"  # two bills: the patient picks one
    wf.handle("pick_bill", bill_no=bill_no)
    assert wf.state == "reviewing_bill"
    wf.handle("confirm")
    assert wf.state == "checkout"


def to_payment(wf, bill_no="B001"):
    to_checkout(wf, bill_no)
    wf.handle("pay")
    assert wf.state == "awaiting_payment"


def texts(blocks):
    return [getattr(b, "text", "") for b in blocks]


def test_pay_a_bill_by_qr_prints_where_to_go_and_goes_home_wiped(env):
    wf, backend, printer, views, journal, clock = env
    identify(wf)
    bills = views[-1]
    assert bills.screen == "bills" and [b["bill_no"] for b in bills.data["bills"]] == ["B001", "B002"]
    assert bills.patient.startswith("李*英") and "李秀英" not in bills.patient
    wf.handle("pick_bill", bill_no="B001")
    detail = views[-1]
    assert detail.screen == "bill_detail" and detail.can_back and detail.can_cancel
    assert [g["place"] for g in detail.data["places"]] == ["门诊西药房 1–4 号窗口", "检验科（门诊楼二楼）",
                                                          "医学影像科（医技楼一楼）"]
    wf.handle("confirm")
    assert views[-1].screen == "bill_checkout" and views[-1].data["order"]["amount_fen"] == 7700
    wf.handle("pay")
    pay_view = views[-1]
    assert pay_view.screen == "bill_payment" and pay_view.can_cancel
    assert pay_view.data["order"]["payment"]["code_url"].startswith("weixin://")
    order_no = wf.visit.order["order_no"]

    backend.phone_pays(order_no)
    clock.t += 1.5
    wf.tick()
    assert wf.state == "done"
    done = views[-1]
    assert done.screen == "bill_done" and not done.data["print_failed"] and not done.can_cancel
    assert done.data["places"][0]["items"] == ["阿莫西林胶囊"]
    slip = texts(printer.documents[0])
    assert any("门诊缴费凭条" in t for t in slip)
    for place in ("门诊西药房 1–4 号窗口", "检验科（门诊楼二楼）", "医学影像科（医技楼一楼）"):
        assert any(place in t for t in slip), place
    assert any("阿莫西林胶囊" in t and "37.00" in t for t in slip)
    assert any("合计" in t and "77.00" in t for t in slip)
    assert any("李*英" in t for t in slip) and not any("李秀英" in t for t in slip)

    clock.t += Timeouts().done + 1
    wf.tick()
    assert wf.state == "home" and wf.visit.patient is None and wf.visit.order is None
    assert views[-1].screen == "home"


def test_a_single_bill_opens_straight_away(env):
    wf, backend, printer, views, journal, clock = env
    del backend.bill_table["B002"]
    identify(wf)
    assert wf.state == "reviewing_bill" and wf.visit.bill["bill_no"] == "B001"
    assert not views[-1].can_back  # nothing to go back to
    wf.handle("back")
    assert wf.state == "reviewing_bill"


def test_every_transition_is_journaled_before_its_request_and_carries_nothing_personal(env):
    wf, backend, printer, views, journal, clock = env
    to_checkout(wf)
    wf.handle("code_scanned", kind="insurance_voucher", code=VOUCHER)
    wf.handle("pay")
    wf.handle("code_scanned", kind="wechat_pay", code=WECHAT_CODE)
    assert wf.state == "done"
    calls = {name: (args, last) for name, args, last in backend.calls}
    args, last = calls["create_bill_order"]
    assert last["dest"] == "creating_order" and last["data"]["order_key"] == args[2]
    pays = [(args, last) for name, args, last in backend.calls if name == "pay"]
    assert pays[0][1]["dest"] == "awaiting_payment" and pays[0][1]["data"]["pay_key"] == pays[0][0][2]
    assert pays[1][1]["dest"] == "paying_by_code" and pays[1][1]["data"]["code_key"] == pays[1][0][2]
    dump = json.dumps(journal.entries(), ensure_ascii=False)
    for secret in ("李秀英", FakeCard.id_number, VOUCHER, WECHAT_CODE):
        assert secret not in dump
    assert '"bill_no": "B001"' in dump  # identifiers are what the journal is for


def test_no_bills_says_so_and_offers_refunds_and_home(env):
    wf, backend, printer, views, journal, clock = env
    backend.bill_table.clear()
    identify(wf)
    view = views[-1]
    assert wf.state == "choosing_bill" and view.screen == "bills" and view.data["bills"] == []
    assert view.message == "您目前没有待缴费用" and "no bills" in view.message_en
    wf.handle("finish")
    assert wf.state == "home" and wf.visit.patient is None


def test_unknown_patient_gets_a_clear_message(env):
    wf, backend, printer, views, journal, clock = env
    wf.handle("start")
    wf.handle("card_read", card=FakeCard(name="张三", id_number="110101199003074477"))
    assert wf.state == "failed" and views[-1].screen == "error"
    assert "建档" in views[-1].message and views[-1].message_en
    assert not any(name == "bills" for name, _, _ in backend.calls)


@pytest.mark.parametrize("method", ["identify_by_id_card", "bills", "create_bill_order"])
def test_server_unreachable_gives_a_clear_message(env, method):
    wf, backend, printer, views, journal, clock = env
    backend.offline.add(method)
    wf.handle("start")
    wf.handle("card_read", card=FakeCard())
    if method == "create_bill_order":
        wf.handle("pick_bill", bill_no="B001")
        wf.handle("confirm")
        keys = {args[2] for name, args, _ in backend.calls if name == method}
        assert len(keys) == 1 and len([c for c in backend.calls if c[0] == method]) == 3  # same key, asked again
    assert wf.state == "failed"
    assert views[-1].message.startswith("网络连接中断") and "network" in views[-1].message_en
    assert not any(name == "pay" for name, _, _ in backend.calls)


def test_bill_paid_elsewhere_before_the_order_is_a_clear_message(env):
    wf, backend, printer, views, journal, clock = env
    identify(wf)
    wf.handle("pick_bill", bill_no="B001")
    backend.bill_table["B001"]["status"] = "PAID"  # the patient's family paid it on the phone meanwhile
    wf.handle("confirm")
    assert wf.state == "failed" and "已在其他" in views[-1].message and "paid elsewhere" in views[-1].message_en
    assert not backend.orders


def test_bill_paid_elsewhere_while_the_qr_was_up_says_the_money_goes_back(env):
    wf, backend, printer, views, journal, clock = env
    to_payment(wf)
    backend.bill_table["B001"]["status"] = "PAID"
    backend.phone_pays(wf.visit.order["order_no"])
    clock.t += 1.5
    wf.tick()
    assert wf.state == "failed" and "原路退回" in views[-1].message and "refunded" in views[-1].message_en
    assert not printer.documents


def test_insurance_voucher_shows_the_split_then_only_the_self_pay_part_is_asked(env):
    wf, backend, printer, views, journal, clock = env
    to_checkout(wf)
    wf.handle("code_scanned", kind="insurance_voucher", code=VOUCHER)
    assert wf.state == "checkout"
    order = views[-1].data["order"]
    assert order["insurance"]["split"]["fund_fen"] == 4620 and order["self_pay_fen"] == 3080
    assert "医保" in views[-1].message
    wf.handle("pay")
    assert views[-1].data["order"]["self_pay_fen"] == 3080
    backend.phone_pays(wf.visit.order["order_no"])
    clock.t += 1.5
    wf.tick()
    slip = texts(printer.documents[0])
    assert any("医保支付" in t and "46.20" in t for t in slip) and any("个人支付" in t and "30.80" in t for t in slip)


def test_a_voucher_that_is_refused_or_unanswered_leaves_self_pay_open(env):
    wf, backend, printer, views, journal, clock = env
    to_checkout(wf)
    wf.handle("code_scanned", kind="insurance_voucher", code="X" * 32)
    assert wf.state == "checkout" and views[-1].message == "医保凭证无效，请重新出示"
    backend.insurance_down = True
    wf.handle("code_scanned", kind="insurance_voucher", code=VOUCHER)
    assert wf.state == "checkout" and "医保系统暂时无响应" in views[-1].message
    wf.handle("pay")
    assert wf.state == "awaiting_payment"


def test_a_voucher_after_payment_started_is_explained_not_used(env):
    wf, backend, printer, views, journal, clock = env
    to_payment(wf)
    wf.handle("code_scanned", kind="insurance_voucher", code=VOUCHER)
    assert wf.state == "awaiting_payment" and "不能再使用医保" in views[-1].message
    assert not any(name == "presettle_insurance" for name, _, _ in backend.calls)


def test_payment_code_pays_the_bill(env):
    wf, backend, printer, views, journal, clock = env
    to_payment(wf)
    wf.handle("code_scanned", kind="alipay", code="281234567890123456")
    assert wf.state == "done" and backend.orders[wf.visit.order["order_no"]]["payment"]["channel"] == "alipay_code"


def test_a_refused_code_leaves_the_qr_and_says_why(env):
    wf, backend, printer, views, journal, clock = env
    to_payment(wf)
    backend.code_outcomes[WECHAT_CODE] = "REFUSED"
    wf.handle("code_scanned", kind="wechat_pay", code=WECHAT_CODE)
    assert wf.state == "awaiting_payment" and views[-1].screen == "bill_payment"
    assert "付款未成功" in views[-1].message


@pytest.mark.parametrize("steps", ["reading_card", "choosing_bill", "reviewing_bill"])
def test_cancel_before_the_order_goes_home_and_creates_nothing(env, steps):
    wf, backend, printer, views, journal, clock = env
    wf.handle("start")
    if steps != "reading_card":
        wf.handle("card_read", card=FakeCard())
    if steps == "reviewing_bill":
        wf.handle("pick_bill", bill_no="B002")
    assert wf.state == steps and views[-1].can_cancel
    wf.handle("cancel")
    assert wf.state == "home" and wf.visit.patient is None and not backend.orders


@pytest.mark.parametrize("where", ["checkout", "awaiting_payment"])
def test_cancel_once_the_order_exists_closes_it_at_the_server(env, where):
    wf, backend, printer, views, journal, clock = env
    (to_checkout if where == "checkout" else to_payment)(wf)
    order_no = wf.visit.order["order_no"]
    wf.handle("cancel")
    assert wf.state == "home" and backend.orders[order_no]["status"] == "CLOSED"


def test_a_payment_that_arrived_before_cancel_is_honoured(env):
    wf, backend, printer, views, journal, clock = env
    to_payment(wf)
    backend.phone_pays(wf.visit.order["order_no"])
    wf.handle("cancel")
    assert wf.state == "done" and len(printer.documents) == 1


def test_cancel_while_the_server_is_unreachable_keeps_asking(env):
    wf, backend, printer, views, journal, clock = env
    to_payment(wf)
    backend.offline.add("cancel")
    wf.handle("cancel")
    assert wf.state == "cancelling"
    clock.t += 1.5
    wf.tick()
    assert wf.state == "cancelling"  # never walks away from an open order
    backend.offline.discard("cancel")
    clock.t += 1.5
    wf.tick()
    assert wf.state == "home"


def test_payment_timeout_at_the_server_says_nothing_was_charged(env):
    wf, backend, printer, views, journal, clock = env
    to_payment(wf)
    backend.orders[wf.visit.order["order_no"]]["status"] = "CLOSED"  # the server's expiry closed it
    clock.t += 1.5
    wf.tick()
    assert wf.state == "failed" and "未产生扣款" in views[-1].message and "Nothing was charged" in views[-1].message_en


@pytest.mark.parametrize("where", ["choosing_bill", "reviewing_bill", "checkout", "awaiting_payment"])
def test_idle_timeout_wipes_the_session(env, where):
    wf, backend, printer, views, journal, clock = env
    identify(wf)
    if where != "choosing_bill":
        wf.handle("pick_bill", bill_no="B001")
    if where in ("checkout", "awaiting_payment"):
        wf.handle("confirm")
    if where == "awaiting_payment":
        wf.handle("pay")
    assert wf.state == where
    clock.t += 60
    wf.tick()
    assert wf.state == where  # not idle long enough yet
    clock.t += 200
    wf.tick()
    assert wf.state == "home" and wf.visit.patient is None and wf.visit.bills == []
    assert views[-1].screen == "home"
    if where in ("checkout", "awaiting_payment"):
        assert all(o["status"] == "CLOSED" for o in backend.orders.values())


def test_paid_but_slow_to_confirm_tells_the_patient_not_to_pay_again(env):
    wf, backend, printer, views, journal, clock = env
    to_payment(wf)
    order_no = wf.visit.order["order_no"]
    backend.phone_pays(order_no, fulfil=False)
    clock.t += 1.5
    wf.tick()
    assert wf.state == "fulfilling"
    clock.t += Timeouts().fulfilment + 5
    wf.tick()
    assert wf.state == "failed" and order_no in views[-1].message and "do not pay again" in views[-1].message_en


def test_printer_out_of_paper_keeps_the_payment_and_says_where_to_get_the_slip(env):
    wf, backend, printer, views, journal, clock = env
    printer.fail = True
    to_payment(wf)
    backend.phone_pays(wf.visit.order["order_no"])
    clock.t += 1.5
    wf.tick()
    assert wf.state == "done" and views[-1].screen == "bill_done" and views[-1].data["print_failed"]
    assert backend.orders[wf.visit.order["order_no"]]["status"] == "FULFILLED"
    assert views[-1].data["places"]  # where to go is still on the screen


def test_a_broken_printer_switches_the_service_off(env):
    wf, backend, printer, views, journal, clock = env
    wf.handle("device_health", device="receipt_printer", health=Health.fault("paper_out", "out of paper"))
    usable, why, why_en = wf.availability()
    assert not usable and "凭条打印机" in why and "receipt printer" in why_en
    wf.handle("start")
    assert wf.state == "home"


def test_a_device_failing_mid_visit_stops_before_money(env):
    wf, backend, printer, views, journal, clock = env
    identify(wf)
    wf.handle("pick_bill", bill_no="B001")
    wf.handle("device_health", device="id_card", health=Health.fault("disconnected", "gone"))
    wf.handle("confirm")
    assert wf.state == "failed" and "身份证读卡器" in views[-1].message and not backend.orders


# ---- 退费 -----------------------------------------------------------------------------------------------------

def paid_order(wf, backend, clock, printer):
    to_payment(wf)
    order_no = wf.visit.order["order_no"]
    backend.phone_pays(order_no)
    clock.t += 1.5
    wf.tick()
    wf.handle("finish")
    assert wf.state == "home"
    return order_no


def test_refund_an_item_not_yet_dispensed(env):
    wf, backend, printer, views, journal, clock = env
    order_no = paid_order(wf, backend, clock, printer)
    identify(wf)
    assert wf.state == "reviewing_bill"  # B002 is the only bill left; the refund entry is on this screen too
    wf.handle("open_refunds")
    view = views[-1]
    assert view.screen == "refunds" and [o["order_no"] for o in view.data["orders"]] == [order_no]
    wf.handle("request_refund")
    assert wf.state == "choosing_refund"  # nothing ticked: nothing to confirm
    wf.handle("toggle_item", order_no=order_no, item_id="11")
    wf.handle("toggle_item", order_no=order_no, item_id="12")
    wf.handle("toggle_item", order_no=order_no, item_id="12")  # changed their mind
    assert views[-1].data["selected"] == ["11"] and views[-1].data["total_fen"] == 3700
    wf.handle("request_refund")
    assert views[-1].screen == "refund_confirm" and views[-1].data["total_fen"] == 3700
    wf.handle("confirm_refund")
    assert wf.state == "done"
    result = views[-1]
    assert result.screen == "refund_done" and [i["name"] for i in result.data["refunded"]] == ["阿莫西林胶囊"]
    assert backend.orders[order_no]["items"][0]["status"] == "REFUNDED"
    last = next(last for name, _, last in backend.calls if name == "refund_items")
    assert last["dest"] == "refunding" and last["data"]["refund_items"] == ["11"]


def test_an_executed_item_is_sent_to_the_counter_by_name(env):
    wf, backend, printer, views, journal, clock = env
    order_no = paid_order(wf, backend, clock, printer)
    backend.executed.add("11")  # the pharmacy already dispensed it
    identify(wf)
    wf.handle("open_refunds")
    wf.handle("toggle_item", order_no=order_no, item_id="11")
    wf.handle("request_refund")
    wf.handle("confirm_refund")
    assert wf.state == "done" and views[-1].screen == "refund_done"
    assert views[-1].data["at_counter"] == ["阿莫西林胶囊"] and "人工窗口" in views[-1].data["message"]
    assert backend.orders[order_no]["items"][0]["status"] == "PAID"


def test_nothing_refundable_says_so(env):
    wf, backend, printer, views, journal, clock = env
    identify(wf)
    wf.handle("open_refunds")
    assert wf.state == "choosing_refund" and views[-1].data["orders"] == []
    assert "人工窗口" in views[-1].message and "counter" in views[-1].message_en
    wf.handle("back")
    assert wf.state == "choosing_bill"


def test_refund_with_the_server_unreachable_does_not_guess(env):
    wf, backend, printer, views, journal, clock = env
    order_no = paid_order(wf, backend, clock, printer)
    identify(wf)
    wf.handle("open_refunds")
    wf.handle("toggle_item", order_no=order_no, item_id="13")
    wf.handle("request_refund")
    backend.offline.add("refund_items")
    wf.handle("confirm_refund")
    assert wf.state == "failed" and "结果未知" in views[-1].message
    assert len([c for c in backend.calls if c[0] == "refund_items"]) == 3  # asked again, then told the patient


def test_ticks_on_items_that_cannot_be_refunded_are_ignored(env):
    wf, backend, printer, views, journal, clock = env
    order_no = paid_order(wf, backend, clock, printer)
    identify(wf)
    wf.handle("open_refunds")
    wf.handle("toggle_item", order_no=order_no, item_id="99")
    wf.handle("toggle_item", order_no="MZ-OTHER", item_id="11")
    assert views[-1].data["selected"] == []


def test_the_service_runs_in_the_hub_and_hands_the_home_screen_back(env, tmp_path):
    from workflows.hub import ServiceHub
    from workflows.services import catalogue
    wf, backend, printer, views, journal, clock = env
    shown = []
    hub = ServiceHub(catalogue({"outpatient_payment": lambda publish: OutpatientPayment(
        backend, printer, journal, publish, "KIOSK-T01", clock=clock, sleep=lambda s: None)}), shown.append)
    hub.handle("open_service", service="outpatient_payment")
    assert shown[-1].screen == "insert_card"
    hub.handle("card_read", card=FakeCard())
    assert shown[-1].screen == "bills"
    hub.handle("cancel")
    assert hub.active is None and shown[-1].screen == "home"


def test_a_kiosk_that_died_at_checkout_closes_the_bill_order_on_restart(env):
    from workflows.recovery import recover
    wf, backend, printer, views, journal, clock = env
    to_checkout(wf)
    order_no = wf.visit.order["order_no"]  # power cut here: the QR was never shown, the order is open
    results = recover(journal, backend)
    assert [(r.order_no, r.outcome) for r in results] == [(order_no, "cancelled")]
    assert backend.orders[order_no]["status"] == "CLOSED"
    assert recover(journal, backend) == []  # recovered once


def test_the_qr_is_the_configured_method(tmp_path):
    journal = Journal(tmp_path / "journal.db")
    backend = FakeBillBackend(journal)
    views = []
    wf = OutpatientPayment(backend, RecordingPrinter(), journal, views.append, "KIOSK-T01", qr_channel="aggregate",
                           sleep=lambda s: None)
    to_payment(wf)
    assert backend.orders[wf.visit.order["order_no"]]["payment"]["channel"] == "aggregate"
    assert views[-1].data["channel"] == "aggregate"


def test_the_service_imports_no_qt():
    import subprocess
    import sys
    code = ("import sys, workflows.outpatient_payment, workflows.service_base, workflows.bill_receipt; "
            "sys.exit(1 if any(m.startswith('PySide6') for m in sys.modules) else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
