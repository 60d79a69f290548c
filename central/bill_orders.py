"""Outpatient bills (门诊缴费) and the refund of their items (退费), on top of the order rules in
``central.orders``: a bill order is paid like any order (insurance part, self-pay part) and fulfilled by the
HIS recording the bill as paid; afterwards items not yet dispensed or performed can be given back one by one.

An item refund is a batch with its own number (``<order_no>R<n>``), written to the order's items before anything
is asked of anyone, then carried out in an order that never loses money and may be repeated at every step:
the HIS withdraws the items (it refuses executed ones: those go to the counter), the insurance platform gives
back its part and says what the patient paid of them, and that self-pay share goes back along the original
trade. A crash anywhere leaves REFUND_PENDING items that the sweeper finishes.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from central.his.adapter import BillRefused, ItemsExecuted
from central.models import Order, OrderItem, OrderStatus
from central.orders import (KIND_BILL, Conflict, NotFound, _by_key, _event, _new_order_no, _trade_channel,
                            _transition, get_order)
from central.payments.channel import ChannelError, ChannelUnavailable, SignatureError
from central.services import Services
from drivers.idcard.idnumber import mask_name

log = logging.getLogger(__name__)


def create_bill_order(svc: Services, terminal_id: str, patient_id: str, bill_no: str, idempotency_key: str, *,
                      now: datetime | None = None) -> tuple[Order, bool]:
    """Open an order for a pending bill; returns (order, created). The same key returns the same order. Two
    kiosks may open orders for one bill: the HIS takes the first payment and the other is refunded."""
    now = now or svc.now()
    existing = _by_key(svc, terminal_id, idempotency_key)
    if existing is not None:
        if existing.kind != KIND_BILL or existing.his_lock_id != bill_no or existing.patient_id != patient_id:
            raise Conflict("IDEMPOTENCY_CONFLICT", "请求编号已用于另一笔订单", "This idempotency key was used for another request")
        return existing, False
    bill = svc.his.get_bill(bill_no)
    patient = svc.his.get_patient(patient_id)
    if bill is None or patient is None or bill.patient_id != patient_id:
        raise NotFound("BILL_NOT_FOUND", "未找到该缴费单", "No such bill for this patient")
    if bill.status != "PENDING":
        raise Conflict("BILL_NOT_PAYABLE", "该缴费单已缴费或已作废", "This bill has been paid or withdrawn")
    local = bill.issued_at.astimezone(svc.settings.tz)
    order = Order(order_no=_new_order_no(svc, now, "MZ"), terminal_id=terminal_id, idempotency_key=idempotency_key,
                  kind=KIND_BILL, status=OrderStatus.AWAITING_PAYMENT, amount_fen=bill.total_fen,
                  patient_id=patient_id, patient_name_masked=mask_name(patient.name), dept_code=bill.dept_code,
                  dept_name=bill.dept_name, dept_location="", doctor_code=bill.doctor_code,
                  doctor_name=bill.doctor_name, doctor_title="", slot_id=0, slot_date=local.date(),
                  slot_start=f"{local:%H:%M}", slot_end="", his_lock_id=bill.bill_no,
                  expires_at=now + timedelta(minutes=svc.settings.slot_lock_minutes), created_at=now, updated_at=now)
    try:
        with svc.sessions() as session, session.begin():
            session.add(order)
            session.flush()
            for line in bill.items:
                session.add(OrderItem(order_id=order.id, item_id=line.item_id, category=line.category, name=line.name,
                                      insurance_class=line.insurance_class, amount_fen=line.amount_fen,
                                      place=line.place, place_en=line.place_en, status="DUE"))
            _event(session, order.id, f"terminal:{terminal_id}", "CREATED", None, order.status,
                   f"bill {bill.bill_no} amount {bill.total_fen} items {len(bill.items)}")
    except IntegrityError:
        winner = _by_key(svc, terminal_id, idempotency_key)
        if winner is None:
            raise
        return winner, False
    return get_order(svc, order.order_no), True


def refund_items(svc: Services, terminal_id: str, order_no: str, item_ids: list[str], *,
                 now: datetime | None = None) -> Order:
    """退费: give back paid items not yet dispensed or performed. Items the HIS reports executed are refused with
    REFUND_AT_COUNTER naming them; the others in the same request are not refunded either (the patient decides
    again with the full picture)."""
    now = now or svc.now()
    actor = f"terminal:{terminal_id}"
    order = get_order(svc, order_no, terminal_id)
    if order.kind != KIND_BILL or order.status not in (OrderStatus.FULFILLED, OrderStatus.REFUNDED):
        raise Conflict("ORDER_NOT_REFUNDABLE", "该订单不能退费", "This order cannot be refunded")
    items = {item.item_id: item for item in order.items}
    if not item_ids or any(i not in items for i in item_ids):
        raise NotFound("ITEM_NOT_FOUND", "未找到要退费的项目", "No such item on this bill")
    wanted = [items[i] for i in dict.fromkeys(item_ids) if items[i].status == "PAID"]
    if wanted:
        batch = f"{order.order_no}R{len({i.refund_no for i in order.items if i.refund_no}) + 1}"
        with svc.sessions() as session, session.begin():
            taken = session.execute(update(OrderItem).where(
                OrderItem.id.in_([i.id for i in wanted]), OrderItem.status == "PAID")
                .values(status="REFUND_PENDING", refund_no=batch))
            if taken.rowcount != len(wanted):
                raise Conflict("REFUND_IN_PROGRESS", "退费正在处理中，请稍候", "A refund is already in progress")
            _event(session, order.id, actor, "ITEM_REFUND_REQUESTED", order.status, order.status,
                   f"{batch}: items {','.join(i.item_id for i in wanted)}")
        finish_item_refunds(svc, order_no, actor=actor, now=now)
    order = get_order(svc, order_no, terminal_id)
    refused = [i for i in order.items if i.item_id in item_ids and i.status == "PAID"]
    if refused:
        names = "、".join(i.name for i in refused)
        raise Conflict("REFUND_AT_COUNTER", f"以下项目已发药或已执行，不能自助退费，请到人工窗口办理：{names}",
                       "Some items were already dispensed or performed; please go to a service counter",
                       items=[i.item_id for i in refused])
    return order


def finish_item_refunds(svc: Services, order_no: str, *, actor: str, now: datetime | None = None) -> None:
    """Carry every pending refund batch of an order as far as it goes now; safe to repeat at any point."""
    now = now or svc.now()
    order = get_order(svc, order_no)
    batches: dict[str, list[OrderItem]] = {}
    for item in order.items:
        if item.status == "REFUND_PENDING" and item.refund_no:
            batches.setdefault(item.refund_no, []).append(item)
    for batch, items in batches.items():
        _finish_batch(svc, get_order(svc, order_no), batch, items, actor, now)
    order = get_order(svc, order_no)
    if order.items and all(i.status == "REFUNDED" for i in order.items):
        with svc.sessions() as session, session.begin():
            _transition(session, order, [OrderStatus.FULFILLED], OrderStatus.REFUNDED, actor, "REFUNDED", now,
                        "every item refunded")


def _finish_batch(svc: Services, order: Order, batch: str, items: list[OrderItem], actor: str,
                  now: datetime) -> None:
    ids = [i.item_id for i in items]
    try:
        svc.his.refund_bill_items(order.his_lock_id, ids, batch)
    except (ItemsExecuted, BillRefused) as exc:
        with svc.sessions() as session, session.begin():
            session.execute(update(OrderItem).where(OrderItem.id.in_([i.id for i in items]),
                                                    OrderItem.status == "REFUND_PENDING")
                            .values(status="PAID", refund_no=None))
            _event(session, order.id, actor, "REFUND_AT_COUNTER", order.status, order.status, f"{batch}: {exc}")
        return
    except Exception:
        log.exception("order %s: the HIS did not withdraw %s; will retry", order.order_no, batch)
        return
    reason = "未执行项目退费，原路退回"
    self_pay_fen = sum(i.amount_fen for i in items)
    insurance = order.insurance_payment
    if insurance is not None and insurance.state == "SUCCESS":
        platform: Any = svc.channels["insurance"]
        try:
            refunded = platform.refund_items(batch, insurance.out_trade_no, ids, reason)
        except (ChannelUnavailable, SignatureError):
            log.warning("order %s: insurance refund %s unanswered; will retry", order.order_no, batch)
            return
        except ChannelError as exc:
            log.error("order %s: insurance refused refund %s (%s)", order.order_no, batch, exc.code)
            with svc.sessions() as session, session.begin():
                _event(session, order.id, actor, "REFUND_REFUSED", order.status, order.status, f"insurance {exc.code}")
            return
        self_pay_fen = refunded.self_pay_fen
    trade = order.payment if order.paid_trade_no else None
    status = "NONE"
    if trade is not None and self_pay_fen > 0:
        try:
            status = _trade_channel(svc, order, trade).refund(trade.out_trade_no, batch, self_pay_fen,
                                                              trade.amount_fen or order.self_pay_fen, reason)
        except (ChannelUnavailable, SignatureError):
            log.warning("order %s: refund %s unanswered; will retry", order.order_no, batch)
            return
        except ChannelError as exc:
            log.error("order %s: channel refused refund %s (%s)", order.order_no, batch, exc.code)
            with svc.sessions() as session, session.begin():
                _event(session, order.id, actor, "REFUND_REFUSED", order.status, order.status, exc.code)
            return
    with svc.sessions() as session, session.begin():
        session.execute(update(OrderItem).where(OrderItem.id.in_([i.id for i in items]),
                                                OrderItem.status == "REFUND_PENDING").values(status="REFUNDED"))
        _event(session, order.id, actor, "ITEMS_REFUNDED", order.status, order.status,
               f"{batch}: self-pay {self_pay_fen} fen {status}")
