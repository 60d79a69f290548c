"""Outpatient bills paid at the kiosk and the refund of items not yet executed, over real HTTP against the
sandboxes: self-pay only and insurance + self-pay, items the pharmacy already dispensed sent to the counter,
a refund interrupted half-way finished by the sweeper, and two kiosks paying the same bill."""
from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import func, select

from central import orders
from central.his.reference import ReferenceHis
from central.his.tables import HisBill, HisBillItem
from central.payments.insurance_sandbox import demo_persons
from tests.central.conftest import Kiosk, LiveCentral, provision, wait_until

WANGWU = next(p for p in demo_persons() if p.name == "王五")


def a_bill(live: LiveCentral, min_items: int = 3) -> HisBill:
    """A pending bill with several items (whoever's it is)."""
    with live.svc.sessions() as session:
        counts = (select(HisBillItem.bill_no, func.count().label("n")).group_by(HisBillItem.bill_no).subquery())
        bill = session.scalar(select(HisBill).join(counts, counts.c.bill_no == HisBill.bill_no)
                              .where(HisBill.status == "PENDING", counts.c.n >= min_items).order_by(HisBill.bill_no))
        assert bill is not None
        return bill


def open_order(live: LiveCentral, kiosk: Kiosk, bill: HisBill, key: str | None = None) -> dict[str, Any]:
    listed = live.api(kiosk, "GET", f"/patients/{bill.patient_id}/bills").json()["bills"]
    shown = next(b for b in listed if b["bill_no"] == bill.bill_no)
    assert shown["total_fen"] == sum(i["amount_fen"] for i in shown["items"])
    assert all(i["place"] for i in shown["items"])
    created = live.api(kiosk, "POST", "/bills", json={"patient_id": bill.patient_id, "bill_no": bill.bill_no,
                                                      "idempotency_key": key or uuid.uuid4().hex})
    assert created.status_code == 201, created.text
    order = created.json()
    assert order["kind"] == "bill" and order["order_no"].startswith("MZ")
    assert order["amount_fen"] == shown["total_fen"] and len(order["items"]) == len(shown["items"])
    return order


def pay_qr(live: LiveCentral, kiosk: Kiosk, order_no: str) -> dict[str, Any]:
    paying = live.api(kiosk, "POST", f"/orders/{order_no}/pay",
                      json={"channel": "wechat_native", "idempotency_key": uuid.uuid4().hex})
    assert paying.status_code == 200, paying.text
    trade = paying.json()["payment"]
    assert live.pay_as_phone(trade["code_url"]).status_code == 200
    wait_until(lambda: live.api(kiosk, "GET", f"/orders/{order_no}").json()["status"] == "FULFILLED")
    return trade


def refund(live: LiveCentral, kiosk: Kiosk, order_no: str, *item_ids: str) -> httpx.Response:
    return live.api(kiosk, "POST", f"/orders/{order_no}/refund-items", json={"item_ids": list(item_ids)})


def his_bill_status(live: LiveCentral, bill_no: str) -> tuple[str, list[str]]:
    bill = live.svc.his.get_bill(bill_no)
    assert bill is not None
    return bill.status, [i.status for i in bill.items]


def test_pay_a_bill_then_refund_an_item_not_yet_dispensed(live: LiveCentral) -> None:
    kiosk = provision(live.svc, "KIOSK-001")
    bill = a_bill(live)
    order = open_order(live, kiosk, bill)
    trade = pay_qr(live, kiosk, order["order_no"])
    status, items = his_bill_status(live, bill.bill_no)
    assert status == "PAID" and set(items) == {"PAID"}
    view = live.api(kiosk, "GET", f"/orders/{order['order_no']}").json()
    assert {i["status"] for i in view["items"]} == {"PAID"}

    first, second = view["items"][0], view["items"][1]
    done = refund(live, kiosk, order["order_no"], first["item_id"])
    assert done.status_code == 200, done.text
    assert next(i for i in done.json()["items"] if i["item_id"] == first["item_id"])["status"] == "REFUNDED"
    assert done.json()["status"] == "FULFILLED"  # the rest of the bill stands
    sandbox = live.sandbox_trade(trade["out_trade_no"])
    assert sandbox["refunded"] == first["amount_fen"]
    assert [r["out_refund_no"] for r in sandbox["refunds"]] == [order["order_no"] + "R1"]
    assert his_bill_status(live, bill.bill_no)[1][0] == "REFUNDED"

    # The pharmacy hands over the second item; the kiosk must send that one to the counter.
    his = live.svc.his
    assert isinstance(his, ReferenceHis)
    his.execute_item(second["item_id"])
    counter = refund(live, kiosk, order["order_no"], second["item_id"])
    assert counter.status_code == 409 and counter.json()["code"] == "REFUND_AT_COUNTER"
    assert second["name"] in counter.json()["message"] and counter.json()["items"] == [second["item_id"]]
    assert next(i for i in live.api(kiosk, "GET", f"/orders/{order['order_no']}").json()["items"]
                if i["item_id"] == second["item_id"])["status"] == "PAID"

    # Asking again for an item already refunded changes nothing and takes no money.
    again = refund(live, kiosk, order["order_no"], first["item_id"])
    assert again.status_code == 200
    events = [e.event for e in orders.order_events(live.svc, order["order_no"])]
    assert events.count("ITEMS_REFUNDED") == 1 and events.count("REFUND_AT_COUNTER") == 1


def test_refunding_every_item_refunds_the_order(live: LiveCentral) -> None:
    kiosk = provision(live.svc, "KIOSK-001")
    bill = a_bill(live, min_items=2)
    order = open_order(live, kiosk, bill)
    trade = pay_qr(live, kiosk, order["order_no"])
    ids = [i["item_id"] for i in order["items"]]
    done = refund(live, kiosk, order["order_no"], *ids)
    assert done.status_code == 200 and done.json()["status"] == "REFUNDED"
    assert live.sandbox_trade(trade["out_trade_no"])["trade_state"] == "REFUND"


def test_insurance_part_of_refunded_items_goes_back_to_the_platform(live: LiveCentral) -> None:
    kiosk = provision(live.svc, "KIOSK-001")
    bill = a_bill(live)
    order = open_order(live, kiosk, bill)
    split = live.api(kiosk, "POST", f"/orders/{order['order_no']}/insurance",
                     json={"credential": "e_voucher", "number": WANGWU.e_voucher}).json()
    assert split["insurance"]["amount_fen"] + split["self_pay_fen"] == order["amount_fen"]
    if split["self_pay_fen"]:
        pay_qr(live, kiosk, order["order_no"])
    else:
        paid = live.api(kiosk, "POST", f"/orders/{order['order_no']}/pay",
                        json={"channel": "wechat_native", "idempotency_key": uuid.uuid4().hex})
        assert paid.json()["status"] == "FULFILLED"
    item = order["items"][0]
    done = refund(live, kiosk, order["order_no"], item["item_id"])
    assert done.status_code == 200, done.text
    settlement = httpx.get(f"{live.url}/sandbox/insurance/simulate/settlements/{order['order_no']}I",
                           timeout=15).json()
    assert len(settlement["refunds"]) == 1 and settlement["refunds"][0]["item_ids"] == [item["item_id"]]
    back = settlement["refunds"][0]
    assert back["fund_fen"] + back["account_fen"] + back["self_pay_fen"] == item["amount_fen"]
    detail = next(e.detail for e in orders.order_events(live.svc, order["order_no"]) if e.event == "ITEMS_REFUNDED")
    assert f"self-pay {back['self_pay_fen']} fen" in detail


def test_refund_interrupted_by_the_platform_is_finished_by_the_sweeper(live: LiveCentral) -> None:
    kiosk = provision(live.svc, "KIOSK-001")
    bill = a_bill(live)
    order = open_order(live, kiosk, bill)
    live.api(kiosk, "POST", f"/orders/{order['order_no']}/insurance",
             json={"credential": "e_voucher", "number": WANGWU.e_voucher})
    paid = live.api(kiosk, "POST", f"/orders/{order['order_no']}/pay",
                    json={"channel": "wechat_native", "idempotency_key": uuid.uuid4().hex}).json()
    if paid["status"] != "FULFILLED":
        live.pay_as_phone(paid["payment"]["code_url"])
        wait_until(lambda: live.api(kiosk, "GET", f"/orders/{order['order_no']}").json()["status"] == "FULFILLED")
    httpx.post(f"{live.url}/sandbox/insurance/simulate/control", json={"platform_down": True}, timeout=15)
    item = order["items"][0]
    pending = refund(live, kiosk, order["order_no"], item["item_id"])
    assert pending.status_code == 200
    assert next(i for i in pending.json()["items"] if i["item_id"] == item["item_id"])["status"] == "REFUND_PENDING"
    assert his_bill_status(live, bill.bill_no)[1][0] == "REFUNDED"  # withdrawn in the HIS; money still to go
    httpx.post(f"{live.url}/sandbox/insurance/simulate/control", json={"platform_down": False}, timeout=15)
    orders.sweep(live.svc)
    view = live.api(kiosk, "GET", f"/orders/{order['order_no']}").json()
    assert next(i for i in view["items"] if i["item_id"] == item["item_id"])["status"] == "REFUNDED"


def test_two_kiosks_paying_one_bill_the_second_is_refunded(live: LiveCentral) -> None:
    one, two = provision(live.svc, "KIOSK-001"), provision(live.svc, "KIOSK-002")
    bill = a_bill(live, min_items=1)
    first = open_order(live, one, bill)
    second = open_order(live, two, bill)
    pay_qr(live, one, first["order_no"])
    paying = live.api(two, "POST", f"/orders/{second['order_no']}/pay",
                      json={"channel": "wechat_native", "idempotency_key": uuid.uuid4().hex}).json()
    assert live.pay_as_phone(paying["payment"]["code_url"]).status_code == 200
    wait_until(lambda: live.api(two, "GET", f"/orders/{second['order_no']}").json()["status"] == "REFUNDED")
    assert live.sandbox_trade(paying["payment"]["out_trade_no"])["trade_state"] == "REFUND"
    assert live.api(one, "GET", f"/orders/{first['order_no']}").json()["status"] == "FULFILLED"
    assert his_bill_status(live, bill.bill_no)[0] == "PAID"
    refused = live.api(one, "POST", "/bills", json={"patient_id": bill.patient_id, "bill_no": bill.bill_no,
                                                     "idempotency_key": uuid.uuid4().hex})
    assert refused.status_code == 409 and refused.json()["code"] == "BILL_NOT_PAYABLE"


def test_bad_bill_requests_are_clear_errors(live: LiveCentral) -> None:
    kiosk = provision(live.svc, "KIOSK-001")
    bill = a_bill(live, min_items=1)
    unknown = live.api(kiosk, "POST", "/bills", json={"patient_id": bill.patient_id, "bill_no": "B000",
                                                      "idempotency_key": uuid.uuid4().hex})
    assert unknown.status_code == 404 and unknown.json()["code"] == "BILL_NOT_FOUND"
    junk = live.api(kiosk, "POST", "/bills", json={"patient_id": bill.patient_id, "bill_no": "'; drop",
                                                   "idempotency_key": uuid.uuid4().hex})
    assert junk.status_code == 422
    order = open_order(live, kiosk, bill)
    early = refund(live, kiosk, order["order_no"], order["items"][0]["item_id"])
    assert early.status_code == 409 and early.json()["code"] == "ORDER_NOT_REFUNDABLE"
    assert live.api(kiosk, "GET", "/patients/P-NOBODY/bills").status_code == 404
