"""`GET /patients/{id}/orders?kind=bill`: what the kiosk's 退费 screen lists — today's paid bill orders this
terminal took for the patient, with each item's status; never another terminal's or another patient's."""
from __future__ import annotations

from central.his.tables import HisBill
from tests.central.conftest import LiveCentral, provision
from tests.central.test_bill_orders import a_bill, open_order, pay_qr, refund


def listed(live: LiveCentral, kiosk, patient_id: str, **params: str):
    return live.api(kiosk, "GET", f"/patients/{patient_id}/orders", params=params or {"kind": "bill"})


def test_paid_bill_orders_are_listed_with_item_statuses(live: LiveCentral) -> None:
    kiosk = provision(live.svc, "KIOSK-001")
    other = provision(live.svc, "KIOSK-002")
    bill: HisBill = a_bill(live)
    assert listed(live, kiosk, bill.patient_id).json() == {"orders": []}
    order = open_order(live, kiosk, bill)
    assert listed(live, kiosk, bill.patient_id).json() == {"orders": []}  # unpaid: nothing to refund
    pay_qr(live, kiosk, order["order_no"])

    orders = listed(live, kiosk, bill.patient_id).json()["orders"]
    assert [o["order_no"] for o in orders] == [order["order_no"]]
    assert orders[0]["kind"] == "bill" and orders[0]["status"] == "FULFILLED"
    assert {i["status"] for i in orders[0]["items"]} == {"PAID"} and all(i["place"] for i in orders[0]["items"])

    first = orders[0]["items"][0]["item_id"]
    assert refund(live, kiosk, order["order_no"], first).status_code == 200
    again = listed(live, kiosk, bill.patient_id).json()["orders"][0]
    assert next(i for i in again["items"] if i["item_id"] == first)["status"] == "REFUNDED"

    # Another terminal cannot refund this order (it belongs to the kiosk that took it), so it does not list it.
    assert listed(live, other, bill.patient_id).json() == {"orders": []}


def test_unknown_patient_and_unknown_kind_are_clear_errors(live: LiveCentral) -> None:
    kiosk = provision(live.svc, "KIOSK-001")
    missing = listed(live, kiosk, "P-NOBODY")
    assert missing.status_code == 404 and missing.json()["code"] == "PATIENT_NOT_FOUND"
    bill = a_bill(live, min_items=1)
    assert listed(live, kiosk, bill.patient_id, kind="registration").status_code == 422
