"""Registration orders: the money-safety rules, as plain functions the API, the sweeper and the tests call.

The rules, in the order they matter:
* a paid order ends fulfilled in the HIS or refunded, never in between for good; every step may be repeated;
* only the channel decides whether money came: ``ChannelUnavailable`` leaves the order as it is, to be asked
  again, and a trade is closed only after the channel confirms it was not paid;
* every status change is a conditional UPDATE from the expected status, so a notification and a poll racing on
  one order change it once, and each change is written to ``order_events``;
* the HIS and the channel are never called inside an open transaction (see ``central.db``).
"""
from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from central.his.adapter import RegistrationRefused, Slot, SlotNotFound, SlotTaken
from central.models import Order, OrderEvent, OrderStatus, Payment
from central.payments.channel import ChannelError, ChannelUnavailable, TradeState
from central.services import Services, provider_of
from drivers.idcard.idnumber import mask_name

log = logging.getLogger(__name__)

CHANNEL_WECHAT_NATIVE = "wechat_native"
CHANNEL_ALIPAY_NATIVE = "alipay_native"
CHANNEL_WECHAT_CODE = "wechat_code"  # the kiosk scans the payment code on the patient's phone
CHANNEL_ALIPAY_CODE = "alipay_code"
#: Payment methods a kiosk may ask for, and the letter that ends their trade numbers (one trade per order).
METHODS = {CHANNEL_WECHAT_NATIVE: "W", CHANNEL_ALIPAY_NATIVE: "A", CHANNEL_WECHAT_CODE: "C", CHANNEL_ALIPAY_CODE: "B"}
CODE_METHODS = frozenset({CHANNEL_WECHAT_CODE, CHANNEL_ALIPAY_CODE})
#: A code payment the patient has not confirmed on the phone by then is reversed (closed, or refunded if the
#: confirmation crossed the reversal): the patient is standing at the kiosk, not at home.
CODE_PAY_DEADLINE = timedelta(seconds=60)
#: A kiosk polls about once a second; the channel is asked at most this often per order.
QUERY_INTERVAL = timedelta(seconds=2)
#: A trade must stay payable long enough for a patient to scan and confirm.
MIN_PAYABLE = timedelta(seconds=30)
_NO_SUCH_TRADE = frozenset({"ORDER_NOT_EXIST", "ORDERNOTEXIST", "RESOURCE_NOT_EXISTS", "ACQ.TRADE_NOT_EXIST"})


class OrderError(Exception):
    """A refusal the kiosk shows to the patient: stable code, Chinese and English message."""

    code = "ORDER_ERROR"
    message = "订单处理失败，请到人工窗口办理"
    message_en = "The order could not be processed; please go to a service counter"

    def __init__(self, code: str | None = None, message: str | None = None, message_en: str | None = None,
                 **extra: Any):
        self.code = code or self.code
        self.message = message or self.message
        self.message_en = message_en or self.message_en
        self.extra = extra
        super().__init__(f"{self.code}: {self.message_en}")


class NotFound(OrderError):
    code, message, message_en = "NOT_FOUND", "未找到该订单", "Order not found"


class Conflict(OrderError):
    code, message, message_en = "CONFLICT", "订单状态不允许此操作", "The order's state does not allow this"


class SlotUnavailable(OrderError):
    code = "SLOT_TAKEN"
    message = "该时段号源已被他人挂走，请重新选择"
    message_en = "This time slot has just been taken; please choose another"


class ChannelBusy(OrderError):
    """The payment channel gave no answer: the outcome is unknown and the kiosk must ask again."""

    code = "PAYMENT_CHANNEL_UNAVAILABLE"
    message = "支付渠道暂时无响应，请稍候"
    message_en = "The payment service is not answering; please wait"


# --- reading ------------------------------------------------------------------------------------------------------

def get_order(svc: Services, order_no: str, terminal_id: str | None = None) -> Order:
    """An order as its terminal sees it; another terminal's order does not exist for it."""
    with svc.sessions() as session:
        order = session.scalar(select(Order).where(Order.order_no == order_no))
        if order is None or (terminal_id is not None and order.terminal_id != terminal_id):
            raise NotFound()
        return order


def order_events(svc: Services, order_no: str) -> list[OrderEvent]:
    with svc.sessions() as session:
        return list(session.scalars(select(OrderEvent).join(Order, Order.id == OrderEvent.order_id)
                                    .where(Order.order_no == order_no).order_by(OrderEvent.id)))


# --- creating -----------------------------------------------------------------------------------------------------

def create_registration_order(svc: Services, terminal_id: str, patient_id: str, slot_id: int,
                              idempotency_key: str, *, now: datetime | None = None) -> tuple[Order, bool]:
    """Hold the slot in the HIS and open an order awaiting payment; returns (order, created).

    The same idempotency key returns the same order and never holds a second place: the HIS lock carries a
    reference derived from the key, so even two concurrent first attempts share one lock.
    """
    now = now or svc.now()
    existing = _by_key(svc, terminal_id, idempotency_key)
    if existing is not None:
        return _same_request(existing, patient_id, slot_id), False
    slot = svc.his.get_slot(slot_id)
    if slot is None:
        raise NotFound("SLOT_NOT_FOUND", "未找到该号源", "No such time slot")
    patient = svc.his.get_patient(patient_id)
    if patient is None:
        raise NotFound("PATIENT_NOT_FOUND", "未找到您的就诊档案，请到人工窗口建档",
                       "No patient file found; please register at a service counter")
    department = svc.his.get_department(slot.dept_code, slot.day, now)
    doctor = svc.his.get_doctor(slot.doctor_code)
    if department is None or doctor is None:
        raise NotFound("SLOT_NOT_FOUND", "未找到该号源", "No such time slot")
    if slot.ends_at <= now:
        raise _slot_taken(svc, slot, now)
    until = now + timedelta(minutes=svc.settings.slot_lock_minutes)
    reference = hashlib.sha256(f"{terminal_id}\x00{idempotency_key}".encode("utf-8")).hexdigest()[:32]
    try:
        lock_id = svc.his.lock_slot(slot_id, patient_id, until, reference)
    except SlotTaken:
        raise _slot_taken(svc, slot, now) from None
    except SlotNotFound:
        raise NotFound("SLOT_NOT_FOUND", "未找到该号源", "No such time slot") from None
    order = Order(order_no=_new_order_no(svc, now), terminal_id=terminal_id, idempotency_key=idempotency_key,
                  status=OrderStatus.AWAITING_PAYMENT, amount_fen=doctor.fee_fen, patient_id=patient_id,
                  patient_name_masked=mask_name(patient.name), dept_code=department.code,
                  dept_name=department.name, dept_location=department.location, doctor_code=doctor.code,
                  doctor_name=doctor.name, doctor_title=doctor.title, slot_id=slot.slot_id, slot_date=slot.day,
                  slot_start=slot.start, slot_end=slot.end, his_lock_id=lock_id, expires_at=until, created_at=now,
                  updated_at=now)
    try:
        with svc.sessions() as session, session.begin():
            session.add(order)
            session.flush()
            _event(session, order.id, f"terminal:{terminal_id}", "CREATED", None, order.status,
                   f"slot {slot.slot_id} lock {lock_id} amount {order.amount_fen}")
    except IntegrityError:
        # A concurrent request with the same key won; it holds the same lock, so there is nothing to undo.
        winner = _by_key(svc, terminal_id, idempotency_key)
        if winner is None:
            raise
        return _same_request(winner, patient_id, slot_id), False
    log.info("order %s created for slot %s by %s", order.order_no, slot.slot_id, terminal_id)
    return get_order(svc, order.order_no), True


def find_by_key(svc: Services, terminal_id: str, idempotency_key: str) -> Order | None:
    """The order this terminal's create request with this key made, if any."""
    return _by_key(svc, terminal_id, idempotency_key)


def _slot_taken(svc: Services, slot: Slot, now: datetime) -> SlotUnavailable:
    fresh = svc.his.list_free_slots(slot.dept_code, slot.doctor_code, slot.day, now)
    return SlotUnavailable(slots=fresh)


def _by_key(svc: Services, terminal_id: str, idempotency_key: str) -> Order | None:
    with svc.sessions() as session:
        return session.scalar(select(Order).where(Order.terminal_id == terminal_id,
                                                  Order.idempotency_key == idempotency_key))


def _same_request(order: Order, patient_id: str, slot_id: int) -> Order:
    if order.patient_id != patient_id or order.slot_id != slot_id:
        raise Conflict("IDEMPOTENCY_CONFLICT", "请求编号已用于另一笔挂号", "This idempotency key was used for another request")
    return order


def _new_order_no(svc: Services, now: datetime) -> str:
    local = now.astimezone(svc.settings.tz)
    return f"RG{local:%Y%m%d}{secrets.randbelow(10**10):010d}"


def out_trade_no_for(order_no: str, method: str = CHANNEL_WECHAT_NATIVE) -> str:
    return order_no + METHODS[method]


# --- paying -------------------------------------------------------------------------------------------------------

def start_payment(svc: Services, terminal_id: str, order_no: str, channel: str, idempotency_key: str, *,
                  auth_code: str | None = None, now: datetime | None = None) -> Order:
    """Open the channel trade for an order and return the order with its code URL. Idempotent: an order has
    one trade, and asking again returns it (a create whose outcome was unknown is simply repeated).
    For a payment code (`auth_code`) the charge is made here; see `_charge_code`."""
    now = now or svc.now()
    order = get_order(svc, order_no, terminal_id)
    if channel not in METHODS or provider_of(channel) not in svc.channels:
        raise Conflict("CHANNEL_NOT_SUPPORTED", "暂不支持该支付方式", "This payment method is not supported")
    if order.payment is not None and order.payment.channel != channel:
        raise Conflict("CHANNEL_MISMATCH", "该订单已选择其他支付方式，请取消后重新下单",
                       "This order is being paid another way; cancel it and start again")
    if order.status in (OrderStatus.CLOSED, OrderStatus.REFUND_PENDING, OrderStatus.REFUNDED):
        raise Conflict("ORDER_NOT_PAYABLE", "该订单已不能支付", "This order can no longer be paid")
    if channel in CODE_METHODS and not auth_code:
        raise Conflict("AUTH_CODE_MISSING", "请出示付款码", "Show the payment code to the scanner")
    if order.payment is not None and (order.payment.code_url or channel in CODE_METHODS):
        if channel in CODE_METHODS and order.status == OrderStatus.AWAITING_PAYMENT:
            # A retried charge never charges the code again: the channel's answer to a query decides.
            _query_and_apply(svc, order, "terminal:" + terminal_id, now=now)
            return get_order(svc, order_no, terminal_id)
        return order  # a retried request: the same trade, the same code
    if order.status != OrderStatus.AWAITING_PAYMENT:
        raise Conflict("ORDER_NOT_PAYABLE", "该订单已不能支付", "This order can no longer be paid")
    if order.expires_at - MIN_PAYABLE <= now:
        raise Conflict("ORDER_EXPIRED", "订单已超时，请重新挂号", "The order has expired; please start again")
    if order.payment is None:
        try:
            with svc.sessions() as session, session.begin():
                session.add(Payment(order_id=order.id, channel=channel, amount_fen=order.self_pay_fen, out_trade_no=out_trade_no_for(order_no, channel),
                                    idempotency_key=idempotency_key, state="NOTPAY", created_at=now,
                                    description=f"{svc.his.hospital().name}-{order.dept_name}挂号费"[:127]))
        except IntegrityError:
            pass  # a concurrent request created it; both use the same trade number
        order = get_order(svc, order_no, terminal_id)
    payment = order.payment
    assert payment is not None
    if channel in CODE_METHODS:
        assert auth_code is not None
        return _charge_code(svc, terminal_id, order, payment, auth_code, now)
    try:
        code_url = svc.channel_for(payment.channel).create_native(
            payment.out_trade_no, payment.description, order.amount_fen,
            svc.settings.notify_url_for(provider_of(payment.channel)), order.expires_at)
    except ChannelUnavailable:
        raise ChannelBusy() from None
    except ChannelError as exc:
        if exc.code == "ORDERPAID":  # paid already (a phone was faster than our retry): follow the money
            _query_and_apply(svc, order, "terminal:" + terminal_id)
            return get_order(svc, order_no, terminal_id)
        log.warning("order %s: channel refused the trade (%s)", order_no, exc.code)
        raise Conflict("PAYMENT_REFUSED", "支付渠道拒绝了该订单，请到人工窗口办理",
                       "The payment service refused the order; please go to a service counter") from None
    with svc.sessions() as session, session.begin():
        session.execute(update(Payment).where(Payment.id == payment.id, Payment.code_url.is_(None))
                        .values(code_url=code_url))
        _event(session, order.id, f"terminal:{terminal_id}", "PAYMENT_STARTED", order.status, order.status,
               f"{channel} {payment.out_trade_no}")
    order = get_order(svc, order_no, terminal_id)
    if order.status == OrderStatus.CLOSED:
        # Cancelled while the trade was being opened: make sure that trade cannot be paid either.
        _close_trade_quietly(svc, payment)
    return order


def _charge_code(svc: Services, terminal_id: str, order: Order, payment: Payment, auth_code: str,
                 now: datetime) -> Order:
    """Charge a payment code. SUCCESS settles at once; USERPAYING waits for the patient's confirmation on the
    phone (the kiosk polls, the channel is queried); an unknown outcome is queried, never charged twice."""
    actor = "terminal:" + terminal_id
    try:
        state = svc.channel_for(payment.channel).pay_by_code(payment.out_trade_no, payment.description,
                                                             order.amount_fen, auth_code)
    except ValueError:
        raise Conflict("AUTH_CODE_INVALID", "付款码无效，请刷新付款码后重试",
                       "This payment code is not valid; refresh it on the phone and try again") from None
    except ChannelUnavailable:
        _query_and_apply(svc, order, actor, now=now)
        raise ChannelBusy() from None
    except ChannelError as exc:
        log.warning("order %s: the payment code was refused (%s)", order.order_no, exc.code)
        with svc.sessions() as session, session.begin():
            session.execute(update(Payment).where(Payment.id == payment.id).values(state="PAYERROR"))
            _event(session, order.id, actor, "CODE_REFUSED", order.status, order.status, exc.code)
        raise Conflict("PAYMENT_REFUSED", "付款未成功，请取消后重新下单或到人工窗口办理",
                       "The payment did not go through; cancel and start again, or go to a counter") from None
    with svc.sessions() as session, session.begin():
        _event(session, order.id, actor, "PAYMENT_STARTED", order.status, order.status,
               f"{payment.channel} {payment.out_trade_no} {state.state}")
    apply_trade_state(svc, state, actor=actor, now=now)
    return get_order(svc, order.order_no, terminal_id)


def apply_trade_state(svc: Services, state: TradeState, *, actor: str, notified: bool = False,
                      now: datetime | None = None) -> Order | None:
    """Act on what the channel says about a trade. Only a paid trade changes the order; applying the same
    state twice changes nothing the second time."""
    now = now or svc.now()
    with svc.sessions() as session, session.begin():
        payment = session.scalar(select(Payment).where(Payment.out_trade_no == state.out_trade_no))
        if payment is None:
            log.warning("trade %s is not one of ours; ignored", state.out_trade_no)
            return None
        order = session.get(Order, payment.order_id)
        assert order is not None
        values: dict[str, Any] = {"state": state.state}
        if state.transaction_id:
            values["transaction_id"] = state.transaction_id
        if state.success_time:
            values["success_time"] = state.success_time
        if notified:
            values["notified_at"] = now
        session.execute(update(Payment).where(Payment.id == payment.id).values(**values))
        if state.paid:
            if state.amount_fen != order.amount_fen:
                # Money arrived but not the amount asked for: nothing automatic is safe; reconciliation decides.
                log.error("order %s: paid %s fen, expected %s; left for reconciliation", order.order_no,
                          state.amount_fen, order.amount_fen)
                _event(session, order.id, actor, "AMOUNT_MISMATCH", order.status, order.status,
                       f"paid {state.amount_fen} expected {order.amount_fen}")
            elif _transition(session, order, [OrderStatus.AWAITING_PAYMENT], OrderStatus.PAID, actor, "PAID", now,
                             f"{state.transaction_id}", paid_at=now, paid_fen=state.amount_fen):
                log.info("order %s paid (%s)", order.order_no, actor)
            elif _transition(session, order, [OrderStatus.CLOSED], OrderStatus.REFUND_PENDING, actor,
                             "PAID_AFTER_CLOSE", now, f"{state.transaction_id}", paid_at=now,
                             paid_fen=state.amount_fen):
                log.warning("order %s was paid after it closed; refunding", order.order_no)
        order_no = order.order_no
    advance(svc, order_no, actor=actor, now=now)
    return get_order(svc, order_no)


def request_refund(svc: Services, terminal_id: str, order_no: str, *, now: datetime | None = None) -> Order:
    """退号退费 (K7): the patient cancels a registration not yet used; the fee goes back along its trade.

    The order is marked CANCEL_PENDING before the HIS is asked, so a crash between the HIS cancelling and the
    refund leaves an order the sweeper finishes, never a cancelled registration whose money was kept."""
    now = now or svc.now()
    order = get_order(svc, order_no, terminal_id)
    if order.status in (OrderStatus.CANCEL_PENDING, OrderStatus.REFUND_PENDING, OrderStatus.REFUNDED):
        return advance(svc, order_no, actor=f"terminal:{terminal_id}", now=now)  # asked again: carry on
    if order.status != OrderStatus.FULFILLED:
        raise Conflict("ORDER_NOT_REFUNDABLE", "该订单不能退费", "This order cannot be refunded")
    with svc.sessions() as session, session.begin():
        _transition(session, order, [OrderStatus.FULFILLED], OrderStatus.CANCEL_PENDING, f"terminal:{terminal_id}",
                    "PATIENT_CANCELLED", now)
    order = advance(svc, order_no, actor=f"terminal:{terminal_id}", now=now)
    if order.status == OrderStatus.FULFILLED:  # the HIS said the registration was used
        raise Conflict("REFUND_AT_COUNTER", "该号已报到或已就诊，不能自助退号，请到人工窗口办理",
                       "This registration has been used; please go to a service counter")
    return order


def advance(svc: Services, order_no: str, *, actor: str, now: datetime | None = None) -> Order:
    """Take an order the rest of the way: confirm a paid one in the HIS (or refund if the HIS refuses), cancel
    a registration the patient gave back and refund it."""
    now = now or svc.now()
    order = get_order(svc, order_no)
    if order.status == OrderStatus.CANCEL_PENDING:
        _cancel_in_his(svc, order, actor, now)
        order = get_order(svc, order_no)
    if order.status == OrderStatus.PAID:
        _fulfil(svc, order, actor, now)
        order = get_order(svc, order_no)
    if order.status == OrderStatus.REFUND_PENDING:
        _refund(svc, order, actor, now)
        order = get_order(svc, order_no)
    return order


def _fulfil(svc: Services, order: Order, actor: str, now: datetime) -> None:
    payment = order.payment
    payment_ref = (payment.transaction_id or payment.out_trade_no) if payment else order.order_no
    try:
        registration = svc.his.confirm_registration(order.his_lock_id, payment_ref)
    except RegistrationRefused as exc:
        with svc.sessions() as session, session.begin():
            _transition(session, order, [OrderStatus.PAID], OrderStatus.REFUND_PENDING, actor, "HIS_REFUSED", now,
                        str(exc))
        log.warning("order %s: the HIS refused the registration; refunding", order.order_no)
        return
    except Exception:
        # The HIS is down or broke: the order stays PAID and the sweeper or the next poll tries again.
        log.exception("order %s: confirming the registration failed; will retry", order.order_no)
        return
    with svc.sessions() as session, session.begin():
        if _transition(session, order, [OrderStatus.PAID], OrderStatus.FULFILLED, actor, "FULFILLED", now,
                       f"queue {registration.queue_no}", queue_no=registration.queue_no,
                       visit_code=registration.visit_code, registration_location=registration.location):
            log.info("order %s fulfilled, queue number %s", order.order_no, registration.queue_no)


def _cancel_in_his(svc: Services, order: Order, actor: str, now: datetime) -> None:
    try:
        svc.his.cancel_registration(order.his_lock_id)
    except RegistrationRefused as exc:
        with svc.sessions() as session, session.begin():
            _transition(session, order, [OrderStatus.CANCEL_PENDING], OrderStatus.FULFILLED, actor,
                        "CANCEL_REFUSED", now, str(exc))
        log.info("order %s: the HIS kept the registration (%s)", order.order_no, exc)
        return
    except Exception:
        log.exception("order %s: cancelling the registration failed; will retry", order.order_no)
        return
    with svc.sessions() as session, session.begin():
        _transition(session, order, [OrderStatus.CANCEL_PENDING], OrderStatus.REFUND_PENDING, actor,
                    "REGISTRATION_CANCELLED", now)


def _refund(svc: Services, order: Order, actor: str, now: datetime) -> None:
    payment = order.payment
    if payment is None:  # nothing was ever paid through a channel: nothing to give back
        return
    refund_no = order.refund_no or order.order_no + "RF"
    if order.refund_no is None:
        with svc.sessions() as session, session.begin():
            session.execute(update(Order).where(Order.id == order.id, Order.refund_no.is_(None))
                            .values(refund_no=refund_no))
    try:
        reason = "患者退号，原路退回" if order.queue_no is not None else "号源已失效，挂号未成功，原路退回"
        status = svc.channel_for(payment.channel).refund(payment.out_trade_no, refund_no,
                                                         order.paid_fen or order.amount_fen, order.amount_fen, reason)
    except ChannelUnavailable:
        log.warning("order %s: refund outcome unknown; will ask again", order.order_no)
        return
    except ChannelError as exc:
        log.error("order %s: refund refused by the channel (%s)", order.order_no, exc.code)
        with svc.sessions() as session, session.begin():
            _event(session, order.id, actor, "REFUND_REFUSED", order.status, order.status, exc.code)
        return
    with svc.sessions() as session, session.begin():
        _transition(session, order, [OrderStatus.REFUND_PENDING], OrderStatus.REFUNDED, actor, "REFUNDED", now,
                    f"{refund_no} {status}", refund_status=status)


# --- polling, cancelling, sweeping ----------------------------------------------------------------------------

def refresh_order(svc: Services, terminal_id: str, order_no: str, *, now: datetime | None = None) -> Order:
    """The order for a polling kiosk, first asking the channel when no notification has come (throttled)."""
    now = now or svc.now()
    order = get_order(svc, order_no, terminal_id)
    payment = order.payment
    waiting = order.status == OrderStatus.AWAITING_PAYMENT
    code = payment is not None and payment.channel in CODE_METHODS
    if waiting and payment is not None and (payment.code_url or code) and payment.notified_at is None:
        if _claim_query(svc, payment, now):
            _query_and_apply(svc, order, f"terminal:{terminal_id}", now=now)
    elif order.status in (OrderStatus.PAID, OrderStatus.CANCEL_PENDING, OrderStatus.REFUND_PENDING) \
            and payment is not None:
        if _claim_query(svc, payment, now):
            advance(svc, order_no, actor=f"terminal:{terminal_id}", now=now)
    order = get_order(svc, order_no, terminal_id)
    code_overdue = code and payment is not None and payment.created_at + CODE_PAY_DEADLINE <= now
    if order.status == OrderStatus.AWAITING_PAYMENT and (order.expires_at <= now or code_overdue):
        try:
            order = close_order(svc, order, actor="system:expiry",
                                event="CODE_PAY_TIMEOUT" if code_overdue else "EXPIRED", now=now)
        except ChannelBusy:
            pass  # still unknown; the next poll or the sweeper asks again
    return order


def cancel_order(svc: Services, terminal_id: str, order_no: str, *, now: datetime | None = None) -> Order:
    """The patient walked away. The order closes unless the money came first, in which case it is honoured."""
    order = get_order(svc, order_no, terminal_id)
    if order.status != OrderStatus.AWAITING_PAYMENT:
        return order
    return close_order(svc, order, actor=f"terminal:{terminal_id}", event="CANCELLED", now=now)


def close_order(svc: Services, order: Order, *, actor: str, event: str, now: datetime | None = None) -> Order:
    """Close an unpaid order: first make sure at the channel that the trade was not paid and cannot be."""
    now = now or svc.now()
    payment = order.payment
    if payment is not None:
        try:
            state = svc.channel_for(payment.channel).query(payment.out_trade_no)
        except ChannelUnavailable:
            raise ChannelBusy() from None
        except ChannelError as exc:
            if exc.code not in _NO_SUCH_TRADE:
                raise ChannelBusy() from None
            state = None
        if state is not None and state.paid:
            apply_trade_state(svc, state, actor=actor, now=now)
            return get_order(svc, order.order_no)
        if state is not None and state.state != "CLOSED":
            try:
                if payment.channel in CODE_METHODS:  # a code charge may still land: reverse refunds it if so
                    svc.channel_for(payment.channel).reverse(payment.out_trade_no)
                else:
                    svc.channel_for(payment.channel).close(payment.out_trade_no)
            except ChannelUnavailable:
                raise ChannelBusy() from None
            except ChannelError as exc:
                if exc.code == "ORDERPAID":  # paid between our query and the close
                    _query_and_apply(svc, order, actor, now=now)
                    return get_order(svc, order.order_no)
                if exc.code not in _NO_SUCH_TRADE:
                    log.warning("order %s: channel would not close the trade (%s)", order.order_no, exc.code)
                    raise ChannelBusy() from None
    with svc.sessions() as session, session.begin():
        closed = _transition(session, order, [OrderStatus.AWAITING_PAYMENT], OrderStatus.CLOSED, actor, event, now)
        if closed and payment is not None:
            session.execute(update(Payment).where(Payment.id == payment.id).values(state="CLOSED"))
    if closed:
        svc.his.release_lock(order.his_lock_id)
    return get_order(svc, order.order_no)


@dataclass
class SweepReport:
    closed: int = 0
    fulfilled: int = 0
    refunded: int = 0
    unresolved: int = 0


def sweep(svc: Services, *, now: datetime | None = None) -> SweepReport:
    """Finish what kiosks left half-way: expired unpaid orders are closed (after asking the channel), paid ones
    are fulfilled or refunded."""
    now = now or svc.now()
    report = SweepReport()
    with svc.sessions() as session:
        stale = list(session.scalars(select(Order).where(or_(
            (Order.status == OrderStatus.AWAITING_PAYMENT) & (Order.expires_at <= now),
            Order.status.in_([OrderStatus.PAID, OrderStatus.CANCEL_PENDING, OrderStatus.REFUND_PENDING])))))
        # Code payments the patient never confirmed (the kiosk that was polling them may be gone).
        stale += list(session.scalars(select(Order).join(Payment, Payment.order_id == Order.id).where(
            Order.status == OrderStatus.AWAITING_PAYMENT, Order.expires_at > now,
            Payment.channel.in_(CODE_METHODS), Payment.created_at <= now - CODE_PAY_DEADLINE)))
    for order in stale:
        try:
            if order.status == OrderStatus.AWAITING_PAYMENT:
                event = "EXPIRED" if order.expires_at <= now else "CODE_PAY_TIMEOUT"
                order = close_order(svc, order, actor="system:sweeper", event=event, now=now)
            else:
                order = advance(svc, order.order_no, actor="system:sweeper", now=now)
        except ChannelBusy:
            report.unresolved += 1
            continue
        if order.status == OrderStatus.CLOSED:
            report.closed += 1
        elif order.status == OrderStatus.FULFILLED:
            report.fulfilled += 1
        elif order.status == OrderStatus.REFUNDED:
            report.refunded += 1
        else:
            report.unresolved += 1
    return report


# --- helpers --------------------------------------------------------------------------------------------------

def _query_and_apply(svc: Services, order: Order, actor: str, *, now: datetime | None = None) -> None:
    assert order.payment is not None
    try:
        state = svc.channel_for(order.payment.channel).query(order.payment.out_trade_no)
    except (ChannelUnavailable, ChannelError) as exc:
        log.info("order %s: query gave no usable answer (%s)", order.order_no, type(exc).__name__)
        return
    apply_trade_state(svc, state, actor=actor, now=now)


def _claim_query(svc: Services, payment: Payment, now: datetime) -> bool:
    """At most one channel query per order per interval, however many kiosks or threads ask."""
    with svc.sessions() as session, session.begin():
        claimed = session.execute(update(Payment).where(
            Payment.id == payment.id,
            or_(Payment.queried_at.is_(None), Payment.queried_at <= now - QUERY_INTERVAL)).values(queried_at=now))
        return claimed.rowcount == 1


def _close_trade_quietly(svc: Services, payment: Payment) -> None:
    try:
        svc.channel_for(payment.channel).close(payment.out_trade_no)
    except (ChannelUnavailable, ChannelError) as exc:
        log.warning("trade %s of a closed order could not be closed (%s)", payment.out_trade_no, type(exc).__name__)


def _transition(session: Session, order: Order, from_statuses: list[str], to_status: str, actor: str, event: str,
                now: datetime, detail: str = "", **values: Any) -> bool:
    """Change status only from an expected one; the loser of a race changes nothing and records nothing."""
    result = session.execute(update(Order).where(Order.id == order.id, Order.status.in_(from_statuses))
                             .values(status=to_status, updated_at=now, **values))
    if result.rowcount != 1:
        return False
    _event(session, order.id, actor, event, from_statuses[0] if len(from_statuses) == 1 else order.status,
           to_status, detail)
    return True


def _event(session: Session, order_id: int, actor: str, event: str, from_status: str | None,
           to_status: str | None, detail: str = "") -> None:
    session.add(OrderEvent(order_id=order_id, actor=actor[:64], event=event, from_status=from_status,
                           to_status=to_status, detail=detail))
