"""Order rules called directly (no HTTP), against the reference HIS and an in-memory channel."""
from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from central import orders
from central.his.adapter import Slot
from central.his.seed import DEMO_PATIENT_ID
from central.his.tables import HisPatient, HisRegistration, HisSlot, HisSlotLock
from central.models import OrderStatus
from central.services import Services
from tests.central.conftest import Kiosk, provision
from tests.central.fakes import FakeChannel

TERMINAL = "KIOSK-001"


def next_emergency_slot(svc: Services) -> Slot:
    now = svc.now()
    for doctor in svc.his.list_doctors("JZNK", svc.today(), now):
        slots = svc.his.list_free_slots("JZNK", doctor.code, svc.today(), now)
        if slots:
            return slots[0]
    raise AssertionError("the emergency clinic always has a slot")


def key() -> str:
    return uuid.uuid4().hex


def leave_places(svc: Services, slot_id: int, places: int) -> None:
    with svc.sessions() as session, session.begin():
        session.execute(update(HisSlot).where(HisSlot.id == slot_id).values(capacity=HisSlot.booked + places))


def patients(svc: Services, count: int) -> list[str]:
    with svc.sessions() as session:
        return list(session.scalars(select(HisPatient.patient_id).order_by(HisPatient.patient_id).limit(count)))


@pytest.fixture
def order(svc: Services, kiosk: Kiosk):
    created, _ = orders.create_registration_order(svc, TERMINAL, DEMO_PATIENT_ID, next_emergency_slot(svc).slot_id,
                                                  key())
    return created


def test_create_holds_the_slot_and_is_idempotent(svc: Services, kiosk: Kiosk) -> None:
    slot = next_emergency_slot(svc)
    idem = key()
    first, created = orders.create_registration_order(svc, TERMINAL, DEMO_PATIENT_ID, slot.slot_id, idem)
    again, created_again = orders.create_registration_order(svc, TERMINAL, DEMO_PATIENT_ID, slot.slot_id, idem)
    assert created and not created_again and again.order_no == first.order_no
    assert first.status == OrderStatus.AWAITING_PAYMENT and first.patient_name_masked == "李*英"
    assert first.amount_fen in (1000, 2000, 3000, 5000)
    expected_expiry = svc.now() + timedelta(minutes=svc.settings.slot_lock_minutes)
    assert abs((first.expires_at - expected_expiry).total_seconds()) < 5
    with svc.sessions() as session:
        locks = session.scalars(select(HisSlotLock).where(HisSlotLock.slot_id == slot.slot_id)).all()
        assert len(locks) == 1 and locks[0].status == "HELD"
    assert svc.his.get_slot(slot.slot_id).remaining == slot.remaining - 1
    with pytest.raises(orders.Conflict) as conflict:
        orders.create_registration_order(svc, TERMINAL, DEMO_PATIENT_ID, slot.slot_id + 1, idem)
    assert conflict.value.code == "IDEMPOTENCY_CONFLICT"
    assert [e.event for e in orders.order_events(svc, first.order_no)] == ["CREATED"]


def test_the_same_key_racing_with_itself_holds_one_place(svc: Services, kiosk: Kiosk) -> None:
    slot = next_emergency_slot(svc)
    idem = key()
    results: list[str] = []
    errors: list[BaseException] = []

    def attempt() -> None:
        try:
            results.append(orders.create_registration_order(svc, TERMINAL, DEMO_PATIENT_ID, slot.slot_id,
                                                            idem)[0].order_no)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=attempt) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(set(results)) == 1
    assert svc.his.get_slot(slot.slot_id).remaining == slot.remaining - 1


def test_many_patients_racing_for_the_last_place_get_it_once(svc: Services, kiosk: Kiosk) -> None:
    slot = next_emergency_slot(svc)
    leave_places(svc, slot.slot_id, 1)
    contenders = patients(svc, 16)
    barrier = threading.Barrier(len(contenders))
    won: list[str] = []
    taken: list[orders.SlotUnavailable] = []
    errors: list[BaseException] = []

    def attempt(patient_id: str) -> None:
        barrier.wait()
        try:
            won.append(orders.create_registration_order(svc, TERMINAL, patient_id, slot.slot_id, key())[0].order_no)
        except orders.SlotUnavailable as exc:
            taken.append(exc)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=attempt, args=(p,)) for p in contenders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert len(won) == 1 and len(taken) == len(contenders) - 1
    assert all(exc.code == "SLOT_TAKEN" for exc in taken)
    assert all(slot.slot_id not in [s.slot_id for s in exc.extra["slots"]] for exc in taken)
    with svc.sessions() as session:
        row = session.get(HisSlot, slot.slot_id)
        assert row.booked == row.capacity
        assert len(session.scalars(select(HisSlotLock).where(HisSlotLock.slot_id == slot.slot_id,
                                                             HisSlotLock.status == "HELD")).all()) == 1


def test_slot_taken_over_http_lists_fresh_slots(client: TestClient, kiosk: Kiosk, svc: Services) -> None:
    slot = next_emergency_slot(svc)
    leave_places(svc, slot.slot_id, 0)
    response = client.post("/api/v1/kiosk/registrations", auth=kiosk.auth,
                           json={"patient_id": DEMO_PATIENT_ID, "slot_id": slot.slot_id, "idempotency_key": key()})
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "SLOT_TAKEN" and body["message"] == "该时段号源已被他人挂走，请重新选择"
    assert body["message_en"] and isinstance(body["slots"], list)
    assert slot.slot_id not in [s["slot_id"] for s in body["slots"]]
    assert all(set(s) == {"slot_id", "start", "end", "remaining"} for s in body["slots"])


def test_paid_once_then_fulfilled_once(svc: Services, fake_channel: FakeChannel, order) -> None:
    paying = orders.start_payment(svc, TERMINAL, order.order_no, "wechat_native", key())
    assert paying.payment.code_url and paying.payment.out_trade_no == order.order_no + "W"
    assert orders.start_payment(svc, TERMINAL, order.order_no, "wechat_native", key()).payment.code_url == \
        paying.payment.code_url
    trade = fake_channel.pay(paying.payment.out_trade_no)
    done = orders.apply_trade_state(svc, trade, actor="channel:notify", notified=True)
    again = orders.apply_trade_state(svc, trade, actor="channel:notify", notified=True)
    assert done.status == again.status == OrderStatus.FULFILLED
    assert done.queue_no == again.queue_no and done.visit_code == again.visit_code and done.queue_no >= 1
    with svc.sessions() as session:
        assert len(session.scalars(select(HisRegistration).where(
            HisRegistration.lock_id == order.his_lock_id)).all()) == 1
    events = [e.event for e in orders.order_events(svc, order.order_no)]
    assert events == ["CREATED", "PAYMENT_STARTED", "PAID", "FULFILLED"]


def test_unknown_channel_outcome_decides_nothing(svc: Services, fake_channel: FakeChannel, order) -> None:
    fake_channel.unavailable = True
    with pytest.raises(orders.ChannelBusy):
        orders.start_payment(svc, TERMINAL, order.order_no, "wechat_native", key())
    fake_channel.unavailable = False
    paying = orders.start_payment(svc, TERMINAL, order.order_no, "wechat_native", key())
    fake_channel.pay(paying.payment.out_trade_no)
    fake_channel.unavailable = True
    with pytest.raises(orders.ChannelBusy):
        orders.cancel_order(svc, TERMINAL, order.order_no)
    assert orders.refresh_order(svc, TERMINAL, order.order_no).status == OrderStatus.AWAITING_PAYMENT
    fake_channel.unavailable = False
    # The cancel is repeated; the channel now says the money came, so the patient gets the registration.
    assert orders.cancel_order(svc, TERMINAL, order.order_no).status == OrderStatus.FULFILLED


def test_amount_mismatch_is_left_for_reconciliation(svc: Services, fake_channel: FakeChannel, order) -> None:
    paying = orders.start_payment(svc, TERMINAL, order.order_no, "wechat_native", key())
    result = orders.apply_trade_state(svc, fake_channel.pay(paying.payment.out_trade_no, amount_fen=1),
                                      actor="channel:notify")
    assert result.status == OrderStatus.AWAITING_PAYMENT
    assert "AMOUNT_MISMATCH" in [e.event for e in orders.order_events(svc, order.order_no)]


def test_cancel_releases_the_place_and_refuses_payment(svc: Services, fake_channel: FakeChannel, order) -> None:
    before = svc.his.get_slot(order.slot_id).remaining
    orders.start_payment(svc, TERMINAL, order.order_no, "wechat_native", key())
    closed = orders.cancel_order(svc, TERMINAL, order.order_no)
    assert closed.status == OrderStatus.CLOSED and closed.payment.state == "CLOSED"
    assert fake_channel.trades[order.order_no + "W"].state == "CLOSED"
    assert svc.his.get_slot(order.slot_id).remaining == before + 1
    assert orders.cancel_order(svc, TERMINAL, order.order_no).status == OrderStatus.CLOSED
    with pytest.raises(orders.Conflict) as refused:
        orders.start_payment(svc, TERMINAL, order.order_no, "wechat_native", key())
    assert refused.value.code == "ORDER_NOT_PAYABLE"


def test_hidden_from_other_terminals(svc: Services, order) -> None:
    with pytest.raises(orders.NotFound):
        orders.get_order(svc, order.order_no, "KIOSK-002")
    with pytest.raises(orders.NotFound):
        orders.cancel_order(svc, "KIOSK-002", order.order_no)


def test_expired_lock_whose_place_is_gone_is_refunded(svc: Services, fake_channel: FakeChannel, order) -> None:
    paying = orders.start_payment(svc, TERMINAL, order.order_no, "wechat_native", key())
    trade = fake_channel.pay(paying.payment.out_trade_no)
    with svc.sessions() as session, session.begin():
        session.execute(update(HisSlotLock).where(HisSlotLock.lock_id == order.his_lock_id)
                        .values(until=svc.now() - timedelta(minutes=1)))
    leave_places(svc, order.slot_id, 0)  # the slot is full; our lapsed place is the only one that frees ...
    other = patients(svc, 2)[1]
    orders.create_registration_order(svc, "KIOSK-001", other, order.slot_id, key())  # ... goes to someone else
    result = orders.apply_trade_state(svc, trade, actor="channel:notify")
    assert result.status == OrderStatus.REFUNDED and result.refund_status == "SUCCESS"
    assert fake_channel.trades[paying.payment.out_trade_no].refunds == {order.order_no + "RF": order.amount_fen}
    assert [e.event for e in orders.order_events(svc, order.order_no)][-4:] == ["PAID", "HIS_REFUSED", "TRADE_REFUNDED",
                                                                         "REFUNDED"]


def test_expired_lock_with_a_free_place_is_still_honoured(svc: Services, fake_channel: FakeChannel, order) -> None:
    paying = orders.start_payment(svc, TERMINAL, order.order_no, "wechat_native", key())
    with svc.sessions() as session, session.begin():
        session.execute(update(HisSlotLock).where(HisSlotLock.lock_id == order.his_lock_id)
                        .values(until=svc.now() - timedelta(minutes=1)))
    svc.his.list_departments(svc.today(), svc.now())  # the HIS notices the lapse and frees the place
    result = orders.apply_trade_state(svc, fake_channel.pay(paying.payment.out_trade_no), actor="channel:notify")
    assert result.status == OrderStatus.FULFILLED


def test_sweeper_closes_abandoned_orders_and_finishes_paid_ones(svc: Services, fake_channel: FakeChannel,
                                                                kiosk: Kiosk) -> None:
    slot = next_emergency_slot(svc)
    people = patients(svc, 3)
    abandoned, _ = orders.create_registration_order(svc, TERMINAL, people[1], slot.slot_id, key())
    orders.start_payment(svc, TERMINAL, abandoned.order_no, "wechat_native", key())
    paid, _ = orders.create_registration_order(svc, TERMINAL, people[2], slot.slot_id, key())
    paying = orders.start_payment(svc, TERMINAL, paid.order_no, "wechat_native", key())
    fake_channel.pay(paying.payment.out_trade_no)  # paid, but the notification never came and no kiosk polls
    report = orders.sweep(svc, now=svc.now() + timedelta(minutes=svc.settings.slot_lock_minutes + 1))
    assert report.closed == 1 and report.fulfilled == 1
    assert orders.get_order(svc, abandoned.order_no).status == OrderStatus.CLOSED
    assert orders.get_order(svc, paid.order_no).status == OrderStatus.FULFILLED


def test_an_order_is_found_by_its_key_and_a_lookup_creates_nothing(client: TestClient, kiosk: Kiosk,
                                                                     svc: Services) -> None:
    slot = next_emergency_slot(svc)
    k = key()
    assert client.get(f"/api/v1/kiosk/registrations/by-key/{k}", auth=kiosk.auth).status_code == 404
    made = client.post("/api/v1/kiosk/registrations", auth=kiosk.auth,
                       json={"patient_id": DEMO_PATIENT_ID, "slot_id": slot.slot_id, "idempotency_key": k}).json()
    found = client.get(f"/api/v1/kiosk/registrations/by-key/{k}", auth=kiosk.auth)
    assert found.status_code == 200 and found.json()["order_no"] == made["order_no"]
    other = provision(svc, "KIOSK-OTHER")
    assert client.get(f"/api/v1/kiosk/registrations/by-key/{k}", auth=other.auth).status_code == 404
