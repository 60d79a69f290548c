"""Whole registrations over real HTTP: the app on a loopback port, the real WeChat Pay channel, and the sandbox
mounted in the same server paying like a phone and sending signed, encrypted notifications."""
from __future__ import annotations

import logging
import uuid
from dataclasses import replace
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from central import orders
from central.his.seed import DEMO_PATIENT, DEMO_PATIENT_ID
from central.his.tables import HisPatient, HisRegistration, HisSlot, HisSlotLock
from central.payments.keys import ensure_sandbox_keys
from central.payments.wechatpay_sandbox import sign_notification
from central.config import Settings
from tests.central.conftest import Kiosk, LiveCentral, free_port, provision, wait_until

NOTIFY = "/api/v1/pay/wechat/notify"


def book(live: LiveCentral, kiosk: Kiosk, patient_id: str = DEMO_PATIENT_ID) -> dict[str, Any]:
    """Walk the kiosk's screens: department, doctor, slot, order, payment QR."""
    departments = live.api(kiosk, "GET", "/departments").json()["departments"]
    assert next(d for d in departments if d["code"] == "JZNK")["remaining"] > 0
    doctors = live.api(kiosk, "GET", "/departments/JZNK/doctors").json()["doctors"]
    doctor = next(d for d in doctors if d["remaining"] > 0)
    slot = live.api(kiosk, "GET", f"/departments/JZNK/doctors/{doctor['code']}/slots").json()["slots"][0]
    created = live.api(kiosk, "POST", "/registrations", json={"patient_id": patient_id, "slot_id": slot["slot_id"],
                                                               "idempotency_key": uuid.uuid4().hex})
    assert created.status_code == 201, created.text
    order = created.json()
    assert order["status"] == "AWAITING_PAYMENT" and order["amount_fen"] == doctor["fee_fen"]
    assert order["payment"] is None and order["registration"] is None
    assert order["expires_at"].endswith("+08:00")
    paying = live.api(kiosk, "POST", f"/orders/{order['order_no']}/pay",
                      json={"channel": "wechat_native", "idempotency_key": uuid.uuid4().hex})
    assert paying.status_code == 200, paying.text
    order = paying.json()
    assert order["payment"]["code_url"].startswith("weixin://wxpay/bizpayurl?pr=")
    assert order["payment"]["channel"] == "wechat_native" and order["payment"]["state"] == "NOTPAY"
    return order


def registrations_for(live: LiveCentral, order_no: str) -> int:
    lock_id = orders.get_order(live.svc, order_no).his_lock_id
    with live.svc.sessions() as session:
        return session.scalar(select(func.count()).select_from(HisRegistration).where(
            HisRegistration.lock_id == lock_id)) or 0


def test_identify_book_pay_and_get_the_registration(live: LiveCentral) -> None:
    kiosk = provision(live.svc, "KIOSK-001")
    who = live.api(kiosk, "POST", "/patients/identify",
                   json={"method": "id_card", "id_number": DEMO_PATIENT["id_number"], "name": DEMO_PATIENT["name"]})
    assert who.json()["patient_id"] == DEMO_PATIENT_ID
    order = book(live, kiosk)
    order_no = order["order_no"]
    assert live.pay_as_phone(order["payment"]["code_url"]).status_code == 200

    # The notification alone (nobody polls) fulfils the order.
    wait_until(lambda: orders.get_order(live.svc, order_no).status == "FULFILLED")
    done = live.api(kiosk, "GET", f"/orders/{order_no}").json()
    assert done["status"] == "FULFILLED" and done["payment"]["state"] == "SUCCESS"
    registration = done["registration"]
    assert registration["queue_no"] >= 1 and len(registration["visit_code"]) == 12
    assert registration["location"] == done["department"]["location"]
    assert (registration["date"], registration["start"]) == (done["slot"]["date"], done["slot"]["start"])
    assert orders.get_order(live.svc, order_no).payment.notified_at is not None

    # The provider repeats its notification: acknowledged, and nothing happens twice.
    trade = live.sandbox_trade(order["payment"]["out_trade_no"])
    transaction = {k: trade[k] for k in ("appid", "mchid", "out_trade_no", "transaction_id", "trade_type",
                                         "trade_state", "trade_state_desc", "bank_type", "attach", "success_time",
                                         "payer", "amount")}
    headers, body = sign_notification(live.svc.wechatpay_keys, transaction)
    for _ in range(2):
        assert httpx.post(live.url + NOTIFY, content=body, headers=headers, timeout=15).status_code == 204
    assert registrations_for(live, order_no) == 1
    events = [e.event for e in orders.order_events(live.svc, order_no)]
    assert events.count("PAID") == 1 and events.count("FULFILLED") == 1
    again = live.api(kiosk, "GET", f"/orders/{order_no}").json()
    assert again["registration"] == registration

    # Another terminal cannot see it.
    other = provision(live.svc, "KIOSK-002")
    assert live.api(other, "GET", f"/orders/{order_no}").status_code == 404
    assert live.api(other, "POST", f"/orders/{order_no}/cancel").status_code == 404


def test_cancel_before_paying_closes_the_trade(live: LiveCentral) -> None:
    kiosk = provision(live.svc, "KIOSK-001")
    order = book(live, kiosk)
    cancelled = live.api(kiosk, "POST", f"/orders/{order['order_no']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "CLOSED"
    phone = live.pay_as_phone(order["payment"]["code_url"])
    assert phone.status_code == 400 and phone.json()["code"] == "ORDER_CLOSED"
    assert live.api(kiosk, "GET", f"/orders/{order['order_no']}").json()["status"] == "CLOSED"
    refused = live.api(kiosk, "POST", f"/orders/{order['order_no']}/pay",
                       json={"channel": "wechat_native", "idempotency_key": uuid.uuid4().hex})
    assert refused.status_code == 409 and refused.json()["code"] == "ORDER_NOT_PAYABLE"


def test_forged_notification_is_refused_and_logged(live: LiveCentral, tmp_path, caplog) -> None:
    caplog.set_level(logging.WARNING)
    kiosk = provision(live.svc, "KIOSK-001")
    order = book(live, kiosk)
    foreign = ensure_sandbox_keys(tmp_path / "attacker")
    forged_keys = replace(live.svc.wechatpay_keys, platform_private_key=foreign.platform_private_key)
    headers, body = sign_notification(forged_keys, {
        "appid": forged_keys.appid, "mchid": forged_keys.mchid, "out_trade_no": order["payment"]["out_trade_no"],
        "transaction_id": "4200000000000000000000000001", "trade_state": "SUCCESS", "trade_type": "NATIVE",
        "success_time": "2026-01-01T10:00:00+08:00", "payer": {"openid": "x"},
        "amount": {"total": order["amount_fen"], "currency": "CNY"}})
    response = httpx.post(live.url + NOTIFY, content=body, headers=headers, timeout=15)
    assert response.status_code == 401
    assert response.json() == {"code": "FAIL", "message": "签名错误"}
    assert any(r.levelno == logging.WARNING and "127.0.0.1" in r.getMessage() for r in caplog.records)
    assert orders.get_order(live.svc, order["order_no"]).status == "AWAITING_PAYMENT"
    garbage = httpx.post(live.url + NOTIFY, content=b"{}", headers={"Content-Type": "application/json"}, timeout=15)
    assert garbage.status_code == 401


@pytest.fixture
def deaf_live(data_dir) -> LiveCentral:
    """A server whose notifications never arrive (the provider is given an address nobody answers on)."""
    port = free_port()
    settings = Settings(data_dir=data_dir, port=port, sweep_seconds=0, public_base_url=f"http://127.0.0.1:{free_port()}")
    server = LiveCentral(settings).start()
    yield server
    server.stop()


def test_lost_notification_is_recovered_by_polling(deaf_live: LiveCentral) -> None:
    live = deaf_live
    kiosk = provision(live.svc, "KIOSK-001")
    order = book(live, kiosk)
    live.pay_as_phone(order["payment"]["code_url"])
    final = wait_until(lambda: (o := live.api(kiosk, "GET", f"/orders/{order['order_no']}").json())["status"]
                       == "FULFILLED" and o, timeout=15, interval=0.5)
    assert final["registration"]["queue_no"] >= 1
    assert orders.get_order(live.svc, order["order_no"]).payment.notified_at is None


def test_paid_after_the_place_was_lost_is_refunded(deaf_live: LiveCentral) -> None:
    live = deaf_live
    kiosk = provision(live.svc, "KIOSK-001")
    order = book(live, kiosk)
    record = orders.get_order(live.svc, order["order_no"])
    with live.svc.sessions() as session, session.begin():
        session.execute(update(HisSlotLock).where(HisSlotLock.lock_id == record.his_lock_id)
                        .values(until=live.svc.now() - timedelta(seconds=1)))
        session.execute(update(HisSlot).where(HisSlot.id == record.slot_id).values(capacity=HisSlot.booked))
        other = session.scalar(select(HisPatient.patient_id).where(HisPatient.patient_id != DEMO_PATIENT_ID))
    taker = live.api(kiosk, "POST", "/registrations", json={"patient_id": other, "slot_id": record.slot_id,
                                                             "idempotency_key": uuid.uuid4().hex})
    assert taker.status_code == 201, taker.text  # the lapsed place went to another patient
    live.pay_as_phone(order["payment"]["code_url"])  # ... and then the first patient paid
    final = wait_until(lambda: (o := live.api(kiosk, "GET", f"/orders/{order['order_no']}").json())["status"]
                       in ("REFUNDED", "FULFILLED") and o, timeout=15, interval=0.5)
    assert final["status"] == "REFUNDED" and final["registration"] is None
    trade = live.sandbox_trade(order["payment"]["out_trade_no"])
    assert trade["refunded"] == order["amount_fen"] and trade["trade_state"] == "REFUND"


def test_pay_with_alipay_through_the_server(live: LiveCentral) -> None:
    """The same order flow on Alipay: the server opens an Alipay QR, the sandbox pays it and posts its RSA2
    notification to the server's Alipay route, the order is fulfilled once; a cancelled order's trade is refused."""
    kiosk = provision(live.svc, "KIOSK-ALI")
    departments = live.api(kiosk, "GET", "/departments/JZNK/doctors").json()["doctors"]
    doctor = next(d for d in departments if d["remaining"] > 0)
    slot = live.api(kiosk, "GET", f"/departments/JZNK/doctors/{doctor['code']}/slots").json()["slots"][0]
    order = live.api(kiosk, "POST", "/registrations", json={"patient_id": DEMO_PATIENT_ID, "slot_id": slot["slot_id"],
                                                             "idempotency_key": uuid.uuid4().hex}).json()
    paying = live.api(kiosk, "POST", f"/orders/{order['order_no']}/pay",
                      json={"channel": "alipay_native", "idempotency_key": uuid.uuid4().hex})
    assert paying.status_code == 200, paying.text
    payment = paying.json()["payment"]
    assert payment["channel"] == "alipay_native" and payment["out_trade_no"].endswith("A")
    paid = httpx.post(f"{live.url}/sandbox/alipay/simulate/pay", json={"qr_code": payment["code_url"]}, timeout=15)
    assert paid.status_code == 200, paid.text
    wait_until(lambda: orders.get_order(live.svc, order["order_no"]).status == "FULFILLED")
    assert orders.get_order(live.svc, order["order_no"]).payment.notified_at is not None
    assert registrations_for(live, order["order_no"]) == 1
    forged = httpx.post(f"{live.url}/api/v1/pay/alipay/notify", content=b"out_trade_no=X&trade_status=TRADE_SUCCESS&sign=AAAA",
                        headers={"content-type": "application/x-www-form-urlencoded"}, timeout=15)
    assert forged.status_code == 401 and forged.text == "fail"


def auth_code() -> str:
    return f"13{uuid.uuid4().int % 10**16:016d}"


def new_order(live: LiveCentral, kiosk: Kiosk) -> dict[str, Any]:
    doctors = live.api(kiosk, "GET", "/departments/JZNK/doctors").json()["doctors"]
    doctor = next(d for d in doctors if d["remaining"] > 0)
    slot = live.api(kiosk, "GET", f"/departments/JZNK/doctors/{doctor['code']}/slots").json()["slots"][0]
    return live.api(kiosk, "POST", "/registrations", json={"patient_id": DEMO_PATIENT_ID, "slot_id": slot["slot_id"],
                                                            "idempotency_key": uuid.uuid4().hex}).json()


def pay_code(live: LiveCentral, kiosk: Kiosk, order_no: str, code: str, key: str) -> httpx.Response:
    return live.api(kiosk, "POST", f"/orders/{order_no}/pay",
                    json={"channel": "wechat_code", "idempotency_key": key, "auth_code": code})


def test_payment_code_scanned_at_the_kiosk(live: LiveCentral) -> None:
    kiosk = provision(live.svc, "KIOSK-CODE")
    order = new_order(live, kiosk)
    paid = pay_code(live, kiosk, order["order_no"], auth_code(), uuid.uuid4().hex)
    assert paid.status_code == 200, paid.text
    assert paid.json()["status"] == "FULFILLED" and registrations_for(live, order["order_no"]) == 1
    again = pay_code(live, kiosk, order["order_no"], auth_code(), uuid.uuid4().hex)  # a double tap: no second charge
    assert again.json()["status"] == "FULFILLED"
    assert live.sandbox_trade(paid.json()["payment"]["out_trade_no"])["amount"]["total"] == order["amount_fen"]


def test_payment_code_waiting_for_the_patient_then_confirmed(live: LiveCentral) -> None:
    kiosk = provision(live.svc, "KIOSK-CODE2")
    order = new_order(live, kiosk)
    httpx.post(f"{live.url}/sandbox/wechatpay/simulate/codepay", json={"result": "USERPAYING"}, timeout=10)
    waiting = pay_code(live, kiosk, order["order_no"], auth_code(), uuid.uuid4().hex).json()
    assert waiting["status"] == "AWAITING_PAYMENT" and waiting["payment"]["state"] == "USERPAYING"
    out_trade_no = waiting["payment"]["out_trade_no"]
    httpx.post(f"{live.url}/sandbox/wechatpay/simulate/confirm", json={"out_trade_no": out_trade_no}, timeout=10)
    wait_until(lambda: live.api(kiosk, "GET", f"/orders/{order['order_no']}").json()["status"] == "FULFILLED")


def test_payment_code_never_confirmed_is_reversed_at_the_deadline(live: LiveCentral) -> None:
    kiosk = provision(live.svc, "KIOSK-CODE3")
    order = new_order(live, kiosk)
    httpx.post(f"{live.url}/sandbox/wechatpay/simulate/codepay", json={"result": "USERPAYING"}, timeout=10)
    waiting = pay_code(live, kiosk, order["order_no"], auth_code(), uuid.uuid4().hex).json()
    out_trade_no = waiting["payment"]["out_trade_no"]
    later = live.svc.now() + orders.CODE_PAY_DEADLINE + timedelta(seconds=1)
    closed = orders.refresh_order(live.svc, kiosk.terminal_id, order["order_no"], now=later)
    assert closed.status == "CLOSED"
    assert live.sandbox_trade(out_trade_no)["trade_state"] in ("CLOSED", "REVOKED")
    # The confirmation arriving after the reversal moves no money.
    late = httpx.post(f"{live.url}/sandbox/wechatpay/simulate/confirm", json={"out_trade_no": out_trade_no}, timeout=10)
    assert late.status_code >= 400


def paid_registration(live: LiveCentral, kiosk: Kiosk) -> dict[str, Any]:
    order = book(live, kiosk)
    live.pay_as_phone(order["payment"]["code_url"])
    wait_until(lambda: orders.get_order(live.svc, order["order_no"]).status == "FULFILLED")
    return live.api(kiosk, "GET", f"/orders/{order['order_no']}").json()


def his_registration(live: LiveCentral, order_no: str) -> HisRegistration:
    lock_id = orders.get_order(live.svc, order_no).his_lock_id
    with live.svc.sessions() as session:
        return session.scalar(select(HisRegistration).where(HisRegistration.lock_id == lock_id))


def test_patient_cancels_an_unused_registration_and_is_refunded(live: LiveCentral) -> None:
    kiosk = provision(live.svc, "KIOSK-K7")
    order = paid_registration(live, kiosk)
    with live.svc.sessions() as session:
        booked_before = session.get(HisSlot, order["slot"]["slot_id"]).booked
    refunded = live.api(kiosk, "POST", f"/orders/{order['order_no']}/refund")
    assert refunded.status_code == 200, refunded.text
    assert refunded.json()["status"] == "REFUNDED"
    assert his_registration(live, order["order_no"]).status == "CANCELLED"
    with live.svc.sessions() as session:
        assert session.get(HisSlot, order["slot"]["slot_id"]).booked == booked_before - 1  # the place is back
    trade = live.sandbox_trade(order["payment"]["out_trade_no"])
    assert trade["trade_state"] == "REFUND" and trade["refunded"] == order["amount_fen"]
    again = live.api(kiosk, "POST", f"/orders/{order['order_no']}/refund")  # a double tap refunds nothing twice
    assert again.json()["status"] == "REFUNDED"
    assert live.sandbox_trade(order["payment"]["out_trade_no"])["refunded"] == order["amount_fen"]


def test_a_used_registration_is_refunded_at_the_counter_only(live: LiveCentral) -> None:
    kiosk = provision(live.svc, "KIOSK-K7B")
    order = paid_registration(live, kiosk)
    with live.svc.sessions() as session, session.begin():
        session.execute(update(HisRegistration).where(
            HisRegistration.visit_code == order["registration"]["visit_code"]).values(status="CHECKED_IN"))
    refused = live.api(kiosk, "POST", f"/orders/{order['order_no']}/refund")
    assert refused.status_code == 409 and refused.json()["code"] == "REFUND_AT_COUNTER"
    assert orders.get_order(live.svc, order["order_no"]).status == "FULFILLED"
    assert live.sandbox_trade(order["payment"]["out_trade_no"])["trade_state"] == "SUCCESS"


def test_his_down_during_cancel_is_finished_by_the_sweeper(live: LiveCentral, monkeypatch: pytest.MonkeyPatch) -> None:
    kiosk = provision(live.svc, "KIOSK-K7C")
    order = paid_registration(live, kiosk)
    real_cancel = live.svc.his.cancel_registration

    def his_down(lock_id: str) -> None:
        raise ConnectionError("HIS not answering")

    monkeypatch.setattr(live.svc.his, "cancel_registration", his_down)
    pending = live.api(kiosk, "POST", f"/orders/{order['order_no']}/refund").json()
    assert pending["status"] == "CANCEL_PENDING"  # the money stays until the HIS gives the place back
    assert live.sandbox_trade(order["payment"]["out_trade_no"])["trade_state"] == "SUCCESS"
    monkeypatch.setattr(live.svc.his, "cancel_registration", real_cancel)
    orders.sweep(live.svc)
    assert orders.get_order(live.svc, order["order_no"]).status == "REFUNDED"
    assert live.sandbox_trade(order["payment"]["out_trade_no"])["trade_state"] == "REFUND"
