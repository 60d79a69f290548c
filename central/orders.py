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
import json
import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from central.his.adapter import BillRefused, RegistrationRefused, Slot, SlotNotFound, SlotTaken
from central.models import Order, OrderEvent, OrderItem, OrderStatus, Payment, PaymentPart
from central.payments.channel import ChannelError, ChannelUnavailable, PaymentChannel, SignatureError, TradeState
from central.payments.insurance import BillItem
from central.services import Services, provider_of
from drivers.idcard.idnumber import mask_name
from drivers.pcsc.cards import mask_pan

log = logging.getLogger(__name__)

KIND_REGISTRATION = "registration"
KIND_BILL = "bill"  # an outpatient bill (门诊缴费): items paid together, refundable one by one
CHANNEL_WECHAT_NATIVE = "wechat_native"
CHANNEL_ALIPAY_NATIVE = "alipay_native"
CHANNEL_WECHAT_CODE = "wechat_code"  # the kiosk scans the payment code on the patient's phone
CHANNEL_ALIPAY_CODE = "alipay_code"
CHANNEL_CARD = "unionpay_card"  # bank card read at the kiosk, PIN from the PIN pad
CHANNEL_AGGREGATE = "aggregate"  # one QR code either app can pay; the trade opens in the app that scans it
CHANNEL_INSURANCE = "insurance"  # the insurance part of a bill (not a method the patient picks to pay with)
#: Trade methods and the letter that ends their trade numbers.
METHODS = {CHANNEL_WECHAT_NATIVE: "W", CHANNEL_ALIPAY_NATIVE: "A", CHANNEL_WECHAT_CODE: "C", CHANNEL_ALIPAY_CODE: "B",
           CHANNEL_CARD: "K", CHANNEL_INSURANCE: "I"}
#: What a kiosk may ask to pay the self-pay part with.
PAY_METHODS = frozenset(METHODS) - {CHANNEL_INSURANCE} | {CHANNEL_AGGREGATE}
CODE_METHODS = frozenset({CHANNEL_WECHAT_CODE, CHANNEL_ALIPAY_CODE})
#: Charged while the patient stands at the kiosk: an unconfirmed charge is reversed after the deadline.
ATTENDED_METHODS = CODE_METHODS | {CHANNEL_CARD}
#: The trade an aggregate code opens, by the app that scanned it.
AGGREGATE_METHODS = {"wechat": CHANNEL_WECHAT_NATIVE, "alipay": CHANNEL_ALIPAY_NATIVE}
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


def _new_order_no(svc: Services, now: datetime, prefix: str = "RG") -> str:
    """RG for registrations, MZ for outpatient bills (门诊缴费): finance staff read the kind off the number."""
    local = now.astimezone(svc.settings.tz)
    return f"{prefix}{local:%Y%m%d}{secrets.randbelow(10**10):010d}"


def out_trade_no_for(order_no: str, method: str = CHANNEL_WECHAT_NATIVE, attempt: int = 1) -> str:
    """Trade numbers follow from the order: a retried create addresses the same trade. Card attempts are
    numbered, because a declined card may be followed by another card."""
    return order_no + METHODS[method] + (str(attempt) if method == CHANNEL_CARD else "")


@dataclass(frozen=True)
class CardData:
    """What the kiosk read from a bank card and the PIN pad: never logged, never stored (only the masked PAN)."""

    pan: str = field(repr=False)
    expiry: str = field(repr=False)  # YYMM
    pin_block: str = field(repr=False)  # hex, encrypted by the PIN pad under the terminal's working key
    pin_algorithm: str = "sm4"
    track2: str | None = field(default=None, repr=False)


# --- paying -------------------------------------------------------------------------------------------------------

def start_payment(svc: Services, terminal_id: str, order_no: str, channel: str, idempotency_key: str, *,
                  auth_code: str | None = None, card: CardData | None = None,
                  now: datetime | None = None) -> Order:
    """Settle the insurance part if there is one, then open the self-pay trade in the method the patient chose.

    Idempotent: the same request again returns the same trade (a create whose outcome was unknown is simply
    repeated; a charge whose outcome was unknown is queried, never charged again). An order is paid one way:
    choosing another method means cancelling and starting again. A payment code or a card is charged here,
    while the patient stands at the kiosk; see `_charge_code` and `_charge_card`."""
    now = now or svc.now()
    actor = "terminal:" + terminal_id
    order = get_order(svc, order_no, terminal_id)
    if channel not in PAY_METHODS or not _method_available(svc, channel):
        raise Conflict("CHANNEL_NOT_SUPPORTED", "暂不支持该支付方式", "This payment method is not supported")
    chosen = order.payment_method or (order.payment.channel if order.payment else None)
    if chosen is not None and chosen != channel and order.status == OrderStatus.AWAITING_PAYMENT:
        order = _switch_method(svc, order, chosen, channel, actor, now)
        if order.status != OrderStatus.AWAITING_PAYMENT:
            return order  # the first method's payment arrived meanwhile: honoured
    elif chosen is not None and chosen != channel:
        raise Conflict("CHANNEL_MISMATCH", "该订单已选择其他支付方式，请取消后重新下单",
                       "This order is being paid another way; cancel it and start again")
    if order.status in (OrderStatus.CLOSED, OrderStatus.REFUND_PENDING, OrderStatus.REFUNDED):
        raise Conflict("ORDER_NOT_PAYABLE", "该订单已不能支付", "This order can no longer be paid")
    if channel in CODE_METHODS and not auth_code:
        raise Conflict("AUTH_CODE_MISSING", "请出示付款码", "Show the payment code to the scanner")
    if channel == CHANNEL_CARD and card is None:
        raise Conflict("CARD_MISSING", "请插入银行卡并输入密码", "Insert the bank card and enter the PIN")
    retried = next((p for p in order.self_payments if p.idempotency_key == idempotency_key), None)
    if retried is not None:
        if channel in ATTENDED_METHODS and order.status == OrderStatus.AWAITING_PAYMENT:
            _query_and_apply(svc, order, actor, payment=retried, now=now)  # decided by the channel's answer
            order = get_order(svc, order_no, terminal_id)
            if retried.channel == CHANNEL_CARD and order.status == OrderStatus.AWAITING_PAYMENT:
                _settle_unknown_card(svc, order, retried, actor)
        return get_order(svc, order_no, terminal_id)
    if order.payment is not None and channel not in ATTENDED_METHODS and order.payment.code_url:
        return order  # the same QR code again
    earlier_code = [p for p in order.self_payments if p.channel == channel]
    if channel in CODE_METHODS and earlier_code and order.status == OrderStatus.AWAITING_PAYMENT:
        # One code charge per order and method; its state decides.
        _query_and_apply(svc, order, actor, payment=earlier_code[-1], now=now)
        return get_order(svc, order_no, terminal_id)
    if channel == CHANNEL_AGGREGATE and order.payment_method == CHANNEL_AGGREGATE:
        return order
    if order.status != OrderStatus.AWAITING_PAYMENT:
        if order.status in (OrderStatus.PAID, OrderStatus.FULFILLED):
            return order  # paid meanwhile (e.g. a retried request after the answer was lost)
        raise Conflict("ORDER_NOT_PAYABLE", "该订单已不能支付", "This order can no longer be paid")
    if order.expires_at - MIN_PAYABLE <= now:
        raise Conflict("ORDER_EXPIRED", "订单已超时，请重新挂号", "The order has expired; please start again")
    if channel == CHANNEL_CARD and any(p.state not in ("PAYERROR", "CLOSED") for p in order.self_payments):
        raise ChannelBusy()  # an earlier card attempt is still being settled or reversed
    with svc.sessions() as session, session.begin():
        session.execute(update(Order).where(Order.id == order.id, Order.payment_method.is_(None))
                        .values(payment_method=channel))
    order = get_order(svc, order_no, terminal_id)
    if order.payment_method != channel:
        raise Conflict("CHANNEL_MISMATCH", "该订单已选择其他支付方式，请取消后重新下单",
                       "This order is being paid another way; cancel it and start again")
    if order.insurance_payment is not None:
        _settle_insurance(svc, order, actor, now)
        order = get_order(svc, order_no, terminal_id)
    if order.self_pay_fen == 0:  # insurance paid it all: nothing to charge
        with svc.sessions() as session, session.begin():
            _transition(session, order, [OrderStatus.AWAITING_PAYMENT], OrderStatus.PAID, actor, "PAID", now,
                        "insurance covers the whole amount", paid_at=now, paid_fen=0)
        return advance(svc, order_no, actor=actor, now=now)
    if channel == CHANNEL_AGGREGATE:
        return order  # the trade opens when the code is scanned, in the app that scanned it
    attempt = 1 + sum(1 for p in order.self_payments if p.channel == channel)
    payment = _add_trade(svc, order, channel, idempotency_key, now, attempt)
    if channel in CODE_METHODS:
        assert auth_code is not None
        return _charge_code(svc, terminal_id, get_order(svc, order_no), payment, auth_code, now)
    if channel == CHANNEL_CARD:
        assert card is not None
        return _charge_card(svc, terminal_id, get_order(svc, order_no), payment, card, now)
    _open_native(svc, order, payment, actor)
    return get_order(svc, order_no, terminal_id)


def _switch_method(svc: Services, order: Order, chosen: str, method: str, actor: str, now: datetime) -> Order:
    """The patient pays another way than first chosen (shows a payment code instead of scanning the QR, say).
    Every trade the first way opened is closed at its channel first — a paid one settles the order instead —
    so the order can never be paid twice. A method is not taken up again once left: its closed trade stays."""
    if any(p.channel == method for p in order.self_payments) or (
            method == CHANNEL_AGGREGATE and any(p.idempotency_key.startswith("aggregate:") for p in order.self_payments)):
        raise Conflict("CHANNEL_MISMATCH", "该支付方式已取消，请取消订单后重新下单",
                       "That payment method was left; cancel the order and start again")
    for payment in order.self_payments:
        if payment.state not in ("CLOSED", "PAYERROR"):
            _close_trade(svc, order, payment, actor, now)
            if get_order(svc, order.order_no).status != OrderStatus.AWAITING_PAYMENT:
                return get_order(svc, order.order_no)
    with svc.sessions() as session, session.begin():
        switched = session.execute(update(Order).where(
            Order.id == order.id, Order.status == OrderStatus.AWAITING_PAYMENT,
            or_(Order.payment_method == chosen, Order.payment_method.is_(None)))
                                   .values(payment_method=method, updated_at=now))
        if switched.rowcount == 1:
            _event(session, order.id, actor, "METHOD_CHANGED", order.status, order.status, f"{chosen} -> {method}")
    return get_order(svc, order.order_no)


def _method_available(svc: Services, method: str) -> bool:
    if method == CHANNEL_AGGREGATE:
        return all(provider in svc.channels for provider in AGGREGATE_METHODS)
    return provider_of(method) in svc.channels


def _add_trade(svc: Services, order: Order, method: str, idempotency_key: str, now: datetime,
               attempt: int = 1) -> Payment:
    out_trade_no = out_trade_no_for(order.order_no, method, attempt)
    try:
        with svc.sessions() as session, session.begin():
            session.add(Payment(order_id=order.id, channel=method, amount_fen=order.self_pay_fen,
                                out_trade_no=out_trade_no, idempotency_key=idempotency_key, state="NOTPAY",
                                created_at=now, description=_description(svc, order)))
    except IntegrityError:
        pass  # a concurrent request created it; both use the same trade number
    with svc.sessions() as session:
        payment = session.scalar(select(Payment).where(Payment.out_trade_no == out_trade_no))
        assert payment is not None
        return payment


def _description(svc: Services, order: Order) -> str:
    what = "门诊缴费" if order.kind == KIND_BILL else "挂号费"
    return f"{svc.his.hospital().name}-{order.dept_name}{what}"[:127]


def _open_native(svc: Services, order: Order, payment: Payment, actor: str) -> str:
    """Open a QR trade at the channel and keep its code URL; returns the URL."""
    if payment.code_url:
        return payment.code_url
    try:
        code_url = svc.channel_for(payment.channel).create_native(
            payment.out_trade_no, payment.description, payment.amount_fen or order.self_pay_fen,
            svc.settings.notify_url_for(provider_of(payment.channel)), order.expires_at)
    except ChannelUnavailable:
        raise ChannelBusy() from None
    except ChannelError as exc:
        if exc.code == "ORDERPAID":  # paid already (a phone was faster than our retry): follow the money
            _query_and_apply(svc, order, actor, payment=payment)
            raise Conflict("ORDER_PAID", "该订单已支付", "This order has been paid") from None
        log.warning("order %s: channel refused the trade (%s)", order.order_no, exc.code)
        raise Conflict("PAYMENT_REFUSED", "支付渠道拒绝了该订单，请到人工窗口办理",
                       "The payment service refused the order; please go to a service counter") from None
    with svc.sessions() as session, session.begin():
        session.execute(update(Payment).where(Payment.id == payment.id, Payment.code_url.is_(None))
                        .values(code_url=code_url))
        _event(session, order.id, actor, "PAYMENT_STARTED", order.status, order.status,
               f"{payment.channel} {payment.out_trade_no}")
    if get_order(svc, order.order_no).status == OrderStatus.CLOSED:
        # Cancelled while the trade was being opened: make sure that trade cannot be paid either.
        _close_trade_quietly(svc, payment)
    return code_url


def aggregate_token(svc: Services, order_no: str) -> str:
    """The unguessable part of an aggregate code's URL: only the kiosk showing the order can hand it out."""
    return svc.cipher.blind_index(order_no, "aggregate-qr")[:24]


def aggregate_url(svc: Services, order_no: str) -> str:
    return f"{svc.settings.base_url}/pay/q/{order_no}/{aggregate_token(svc, order_no)}"


def scan_aggregate(svc: Services, order_no: str, token: str, provider: str, *,
                   now: datetime | None = None) -> str:
    """An aggregate code scanned by WeChat or Alipay: open (or reuse) that app's trade and return its URL.

    At most one trade is open at a time: scanning with the other app first closes the earlier trade at its
    channel (a paid one ends the matter), so the patient can never pay the same order twice."""
    now = now or svc.now()
    if not secrets.compare_digest(token, aggregate_token(svc, order_no)):
        raise NotFound()
    order = get_order(svc, order_no)
    method = AGGREGATE_METHODS.get(provider)
    if order.payment_method != CHANNEL_AGGREGATE or method is None:
        raise NotFound()
    actor = f"payer:{provider}"
    if order.status != OrderStatus.AWAITING_PAYMENT or order.expires_at - MIN_PAYABLE <= now:
        raise Conflict("ORDER_NOT_PAYABLE", "该订单已支付或已关闭", "This order has been paid or closed")
    current = order.payment
    if current is not None and current.channel == method and current.state == "NOTPAY" and current.code_url:
        return current.code_url
    if current is not None and current.channel != method and current.state != "CLOSED":
        _close_trade(svc, order, current, actor, now)  # raises if it turned out paid or cannot be closed
    attempt = 1 + sum(1 for p in order.self_payments if p.channel == method)
    if attempt > 1 and current is not None and current.channel == method:
        raise Conflict("ORDER_NOT_PAYABLE", "该订单已不能支付", "This order can no longer be paid")
    payment = _add_trade(svc, order, method, f"aggregate:{method}", now)
    return _open_native(svc, get_order(svc, order_no), payment, actor)


def _charge_code(svc: Services, terminal_id: str, order: Order, payment: Payment, auth_code: str,
                 now: datetime) -> Order:
    """Charge a payment code. SUCCESS settles at once; USERPAYING waits for the patient's confirmation on the
    phone (the kiosk polls, the channel is queried); an unknown outcome is queried, never charged twice."""
    actor = "terminal:" + terminal_id
    try:
        state = svc.channel_for(payment.channel).pay_by_code(payment.out_trade_no, payment.description,
                                                             payment.amount_fen or order.self_pay_fen, auth_code)
    except ValueError:
        raise Conflict("AUTH_CODE_INVALID", "付款码无效，请刷新付款码后重试",
                       "This payment code is not valid; refresh it on the phone and try again") from None
    except ChannelUnavailable:
        _query_and_apply(svc, order, actor, payment=payment, now=now)
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


#: What the patient reads when the bank declines, by ISO 8583 response code.
CARD_DECLINES = {
    "55": ("密码错误，请重新输入", "Wrong PIN; please try again"),
    "75": ("密码错误次数超限，请联系发卡银行", "Too many wrong PINs; please contact your bank"),
    "51": ("卡内余额不足，请换卡或选择其他支付方式", "Insufficient funds; use another card or payment method"),
    "54": ("银行卡已过期，请换卡", "This card has expired; please use another card"),
    "41": ("此卡不能使用，请换卡", "This card cannot be used; please use another card"),
    "14": ("卡号无效，请换卡", "Invalid card number; please use another card"),
}


def _charge_card(svc: Services, terminal_id: str, order: Order, payment: Payment, card: CardData,
                 now: datetime) -> Order:
    """A bank-card sale. A decline is told to the patient (another card may follow); a sale whose outcome is
    unknown is reversed at once, as ISO 8583 requires, and the patient is told nothing was taken only after
    the acquirer confirmed the reversal."""
    actor = "terminal:" + terminal_id
    channel = _trade_channel(svc, order, payment)
    masked = mask_pan(card.pan)
    with svc.sessions() as session, session.begin():
        session.execute(update(Payment).where(Payment.id == payment.id)
                        .values(detail=json.dumps({"card": masked}, ensure_ascii=False)))
        _event(session, order.id, actor, "PAYMENT_STARTED", order.status, order.status,
               f"{payment.channel} {payment.out_trade_no} card {masked}")
    try:
        charge = channel.charge_card  # type: ignore[attr-defined]
        state = charge(payment.out_trade_no, payment.amount_fen or order.self_pay_fen, card.pan, card.expiry,
                       card.pin_block, card.pin_algorithm, terminal_id=terminal_id, track2=card.track2)
    except ValueError as exc:
        with svc.sessions() as session, session.begin():
            session.execute(update(Payment).where(Payment.id == payment.id).values(state="PAYERROR"))
        raise Conflict("CARD_UNREADABLE", "读卡失败，请重新插卡", "The card could not be read; insert it again",
                       reason=str(exc)) from None
    except ChannelError as exc:
        with svc.sessions() as session, session.begin():
            session.execute(update(Payment).where(Payment.id == payment.id).values(state="PAYERROR"))
            _event(session, order.id, actor, "CARD_DECLINED", order.status, order.status, exc.code)
        zh, en = CARD_DECLINES.get(exc.code, ("银行卡交易未成功，请换卡或选择其他支付方式",
                                              "The card payment did not go through; try another card or method"))
        raise Conflict("CARD_DECLINED", zh, en, response_code=exc.code) from None
    except (ChannelUnavailable, SignatureError):
        log.warning("order %s: card sale %s outcome unknown; reversing", order.order_no, payment.out_trade_no)
        _settle_unknown_card(svc, order, payment, actor)
        raise ChannelBusy() from None
    apply_trade_state(svc, state, actor=actor, now=now)
    return get_order(svc, order.order_no, terminal_id)


def _settle_unknown_card(svc: Services, order: Order, payment: Payment, actor: str) -> bool:
    """Reverse a card sale whose outcome we do not know; True once the acquirer confirmed. Until then the
    trade is REVERSING and the sweeper sends the reversal again."""
    with svc.sessions() as session, session.begin():
        session.execute(update(Payment).where(Payment.id == payment.id, Payment.state == "NOTPAY")
                        .values(state="REVERSING"))
    try:
        _trade_channel(svc, order, payment).reverse(payment.out_trade_no)
    except (ChannelUnavailable, SignatureError):
        log.warning("order %s: reversal of %s unanswered; will send again", order.order_no, payment.out_trade_no)
        return False
    except ChannelError as exc:
        log.error("order %s: reversal of %s refused (%s)", order.order_no, payment.out_trade_no, exc.code)
        return False
    with svc.sessions() as session, session.begin():
        session.execute(update(Payment).where(Payment.id == payment.id).values(state="CLOSED"))
        _event(session, order.id, actor, "CARD_REVERSED", order.status, order.status, payment.out_trade_no)
    return True


def apply_trade_state(svc: Services, state: TradeState, *, actor: str, notified: bool = False,
                      now: datetime | None = None) -> Order | None:
    """Act on what the channel says about a trade. Only a paid trade changes the order; applying the same
    state twice changes nothing the second time. A second trade paid for an order that another trade already
    paid (possible only if a channel broke its word on closing) is refunded at once."""
    now = now or svc.now()
    extra: Payment | None = None
    with svc.sessions() as session, session.begin():
        payment = session.scalar(select(Payment).where(Payment.out_trade_no == state.out_trade_no))
        if payment is None or payment.part != PaymentPart.SELF:
            log.warning("trade %s is not one of ours; ignored", state.out_trade_no)
            return None
        order = session.get(Order, payment.order_id)
        assert order is not None
        values: dict[str, Any] = {"state": state.state}
        if payment.state in ("REFUND", "REVERSING") and state.state == "SUCCESS":
            values.pop("state")  # our own record is further along than a stale answer
        if state.transaction_id:
            values["transaction_id"] = state.transaction_id
        if state.success_time:
            values["success_time"] = state.success_time
        if notified:
            values["notified_at"] = now
        session.execute(update(Payment).where(Payment.id == payment.id).values(**values))
        expected = payment.amount_fen if payment.amount_fen is not None else order.self_pay_fen
        if state.paid:
            if state.amount_fen != expected:
                # Money arrived but not the amount asked for: nothing automatic is safe; reconciliation decides.
                log.error("order %s: paid %s fen, expected %s; left for reconciliation", order.order_no,
                          state.amount_fen, expected)
                _event(session, order.id, actor, "AMOUNT_MISMATCH", order.status, order.status,
                       f"paid {state.amount_fen} expected {expected}")
            elif order.paid_trade_no not in (None, payment.out_trade_no):
                if payment.state != "REFUND":
                    _event(session, order.id, actor, "EXTRA_PAYMENT", order.status, order.status,
                           f"{payment.out_trade_no} paid after {order.paid_trade_no}; refunding it")
                    extra = payment
            elif _transition(session, order, [OrderStatus.AWAITING_PAYMENT], OrderStatus.PAID, actor, "PAID", now,
                             f"{state.transaction_id}", paid_at=now, paid_fen=state.amount_fen,
                             paid_trade_no=payment.out_trade_no):
                log.info("order %s paid (%s)", order.order_no, actor)
            elif _transition(session, order, [OrderStatus.CLOSED], OrderStatus.REFUND_PENDING, actor,
                             "PAID_AFTER_CLOSE", now, f"{state.transaction_id}", paid_at=now,
                             paid_fen=state.amount_fen, paid_trade_no=payment.out_trade_no):
                log.warning("order %s was paid after it closed; refunding", order.order_no)
        order_no = order.order_no
    if extra is not None:
        _refund_trade(svc, get_order(svc, order_no), extra, extra.out_trade_no + "RF", state.amount_fen or 0,
                      "重复支付，原路退回", actor, now)
    advance(svc, order_no, actor=actor, now=now)
    return get_order(svc, order_no)


# --- the insurance part -----------------------------------------------------------------------------------

def presettle_insurance(svc: Services, terminal_id: str, order_no: str, cert_type: str, cert_no: str, *,
                        now: datetime | None = None) -> Order:
    """The patient showed an insurance e-voucher or social-security card: ask the platform how the bill splits
    (fund, personal account, self-pay). No money moves; the split is kept on the order, and the insurance part
    is settled when the patient goes on to pay the self-pay part (`start_payment`)."""
    now = now or svc.now()
    actor = "terminal:" + terminal_id
    order = get_order(svc, order_no, terminal_id)
    channel = svc.channels.get(CHANNEL_INSURANCE)
    if channel is None:
        raise Conflict("CHANNEL_NOT_SUPPORTED", "本院暂未开通医保自助结算", "Insurance settlement is not available here")
    if order.status != OrderStatus.AWAITING_PAYMENT or order.payment_method is not None or order.self_payments:
        raise Conflict("ORDER_NOT_PAYABLE", "该订单已开始支付，请取消后重新下单",
                       "Payment has started for this order; cancel it to use insurance")
    current = order.insurance_payment
    if current is not None and current.state not in ("PRESETTLED", "PAYERROR"):
        return order
    serial = out_trade_no_for(order_no, CHANNEL_INSURANCE)
    try:
        insurance: Any = channel  # an InsuranceChannel: identify and presettle are its own verbs
        person = insurance.identify(cert_type, cert_no, f"{serial}-ID{secrets.randbelow(10**6):06d}")
        if order.kind == KIND_BILL:
            items = [BillItem(i.item_id, i.name, i.insurance_class, i.amount_fen) for i in order.items]
        else:
            items = [BillItem(f"{order_no}-1", "挂号费", "A", order.amount_fen)]
        pre = insurance.presettle(f"{serial}-PS{secrets.randbelow(10**6):06d}", person.psn_no, order_no, items)
    except ValueError:
        raise Conflict("INSURANCE_CREDENTIAL_INVALID", "医保凭证无效，请重新出示",
                       "This insurance credential is not valid; please show it again") from None
    except (ChannelUnavailable, SignatureError):
        raise ChannelBusy() from None
    except ChannelError as exc:
        raise Conflict("INSURANCE_REFUSED", "医保暂不能结算，请选择自费支付或到人工窗口办理",
                       "Insurance cannot settle this now; pay it yourself or go to a counter",
                       insurance_code=exc.code) from None
    detail = json.dumps({"presettle_id": pre.presettle_id, "psn_no": pre.psn_no, "insutype": person.insutype,
                         "name_masked": person.masked_name, "split": pre.split.to_dict()}, ensure_ascii=False)
    with svc.sessions() as session, session.begin():
        if current is None:
            session.add(Payment(order_id=order.id, part=PaymentPart.INSURANCE, channel=CHANNEL_INSURANCE,
                                out_trade_no=serial, idempotency_key=serial, description="医保结算",
                                amount_fen=pre.split.insurance_fen, state="PRESETTLED", detail=detail,
                                created_at=now))
        else:
            session.execute(update(Payment).where(Payment.id == current.id).values(
                amount_fen=pre.split.insurance_fen, state="PRESETTLED", detail=detail))
        session.execute(update(Order).where(Order.id == order.id, Order.status == OrderStatus.AWAITING_PAYMENT)
                        .values(insurance_fen=pre.split.insurance_fen, updated_at=now))
        _event(session, order.id, actor, "INSURANCE_PRESETTLED", order.status, order.status,
               f"fund {pre.split.fund_fen} account {pre.split.account_fen} self {pre.split.self_pay_fen}")
    return get_order(svc, order_no, terminal_id)


def _settle_insurance(svc: Services, order: Order, actor: str, now: datetime) -> None:
    """Settle the pre-settled insurance part (idempotent on the serial). If the patient then does not pay the
    self-pay part, closing the order reverses this settlement."""
    payment = order.insurance_payment
    assert payment is not None
    if payment.state == "SUCCESS":
        return
    if payment.state != "PRESETTLED":
        raise Conflict("INSURANCE_REFUSED", "医保结算未成功，请取消后重新下单",
                       "The insurance settlement did not go through; cancel and start again")
    presettle_id = json.loads(payment.detail or "{}").get("presettle_id", "")
    try:
        insurance: Any = svc.channels[CHANNEL_INSURANCE]
        settlement = insurance.settle(payment.out_trade_no, presettle_id)
    except (ChannelUnavailable, SignatureError):
        raise ChannelBusy() from None
    except ChannelError as exc:
        with svc.sessions() as session, session.begin():
            session.execute(update(Payment).where(Payment.id == payment.id).values(state="PAYERROR"))
            _event(session, order.id, actor, "INSURANCE_REFUSED", order.status, order.status, exc.code)
        raise Conflict("INSURANCE_REFUSED", "医保结算未成功，请重新读取医保凭证或选择自费支付",
                       "The insurance settlement did not go through; show the credential again or pay yourself",
                       insurance_code=exc.code) from None
    with svc.sessions() as session, session.begin():
        session.execute(update(Payment).where(Payment.id == payment.id).values(
            state="SUCCESS", transaction_id=settlement.setl_id, success_time=settlement.settle_time))
        if settlement.split.insurance_fen != order.insurance_fen:
            # The platform settled another split than it pre-settled: the patient's part follows the platform.
            session.execute(update(Order).where(Order.id == order.id)
                            .values(insurance_fen=settlement.split.insurance_fen))
        _event(session, order.id, actor, "INSURANCE_SETTLED", order.status, order.status, settlement.setl_id)


def _reverse_insurance(svc: Services, order: Order, actor: str) -> None:
    """Undo the insurance part of an order that will not be paid: reversal is idempotent and also covers a
    settlement whose answer was lost. Raises ChannelBusy while the platform does not answer."""
    payment = order.insurance_payment
    if payment is None or payment.state == "CLOSED":
        return
    try:
        svc.channels[CHANNEL_INSURANCE].reverse(payment.out_trade_no)
    except (ChannelUnavailable, SignatureError):
        raise ChannelBusy() from None
    except ChannelError as exc:
        log.error("order %s: insurance reversal refused (%s)", order.order_no, exc.code)
        raise ChannelBusy() from None
    with svc.sessions() as session, session.begin():
        session.execute(update(Payment).where(Payment.id == payment.id).values(state="CLOSED"))
        _event(session, order.id, actor, "INSURANCE_REVERSED", order.status, order.status, payment.out_trade_no)


def request_refund(svc: Services, terminal_id: str, order_no: str, *, now: datetime | None = None) -> Order:
    """退号退费 (K7): the patient cancels a registration not yet used; the fee goes back along its trade.

    The order is marked CANCEL_PENDING before the HIS is asked, so a crash between the HIS cancelling and the
    refund leaves an order the sweeper finishes, never a cancelled registration whose money was kept."""
    now = now or svc.now()
    order = get_order(svc, order_no, terminal_id)
    if order.kind == KIND_BILL:
        from central.bill_orders import refund_items
        return refund_items(svc, terminal_id, order_no, [i.item_id for i in order.items], now=now)
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
    payment = order.payment if order.paid_trade_no else None
    insurance = order.insurance_payment
    if payment is not None:
        payment_ref = payment.transaction_id or payment.out_trade_no
    elif insurance is not None:
        payment_ref = insurance.transaction_id or insurance.out_trade_no
    else:
        payment_ref = order.order_no
    bill = order.kind == KIND_BILL
    try:
        if bill:
            svc.his.pay_bill(order.his_lock_id, payment_ref)
        else:
            registration = svc.his.confirm_registration(order.his_lock_id, payment_ref)
    except (RegistrationRefused, BillRefused) as exc:
        with svc.sessions() as session, session.begin():
            _transition(session, order, [OrderStatus.PAID], OrderStatus.REFUND_PENDING, actor, "HIS_REFUSED", now,
                        str(exc))
        log.warning("order %s: the HIS refused it (%s); refunding", order.order_no, exc)
        return
    except Exception:
        # The HIS is down or broke: the order stays PAID and the sweeper or the next poll tries again.
        log.exception("order %s: the HIS did not confirm; will retry", order.order_no)
        return
    with svc.sessions() as session, session.begin():
        if bill:
            if _transition(session, order, [OrderStatus.PAID], OrderStatus.FULFILLED, actor, "FULFILLED", now,
                           f"bill {order.his_lock_id}"):
                session.execute(update(OrderItem).where(OrderItem.order_id == order.id, OrderItem.status == "DUE")
                                .values(status="PAID"))
                log.info("order %s fulfilled: bill %s paid", order.order_no, order.his_lock_id)
        elif _transition(session, order, [OrderStatus.PAID], OrderStatus.FULFILLED, actor, "FULFILLED", now,
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
    """Give every part back along its own route — the self-pay trade to the patient's wallet or card, the
    insurance part to the fund and personal account — and only then call the order refunded."""
    if order.kind == KIND_BILL:
        reason = "缴费单已失效，缴费未成功，原路退回"
    else:
        reason = "患者退号，原路退回" if order.queue_no is not None else "号源已失效，挂号未成功，原路退回"
    done = True
    payment = order.payment if order.paid_trade_no else None
    if payment is not None:
        refund_no = order.refund_no or order.order_no + "RF"
        if order.refund_no is None:
            with svc.sessions() as session, session.begin():
                session.execute(update(Order).where(Order.id == order.id, Order.refund_no.is_(None))
                                .values(refund_no=refund_no))
        status = _refund_trade(svc, order, payment, refund_no, order.paid_fen or order.self_pay_fen, reason,
                               actor, now)
        done = status is not None
        if status is not None:
            with svc.sessions() as session, session.begin():
                session.execute(update(Order).where(Order.id == order.id).values(refund_status=status))
    insurance = order.insurance_payment
    if insurance is not None and insurance.state == "SUCCESS":
        try:
            svc.channels[CHANNEL_INSURANCE].refund(insurance.out_trade_no, insurance.out_trade_no + "R",
                                                   insurance.amount_fen or order.insurance_fen,
                                                   insurance.amount_fen or order.insurance_fen, reason)
        except (ChannelUnavailable, SignatureError):
            log.warning("order %s: insurance refund outcome unknown; will ask again", order.order_no)
            done = False
        except ChannelError as exc:
            log.error("order %s: insurance refund refused (%s)", order.order_no, exc.code)
            with svc.sessions() as session, session.begin():
                _event(session, order.id, actor, "REFUND_REFUSED", order.status, order.status, f"insurance {exc.code}")
            done = False
        else:
            with svc.sessions() as session, session.begin():
                session.execute(update(Payment).where(Payment.id == insurance.id).values(state="REFUND"))
                _event(session, order.id, actor, "INSURANCE_REFUNDED", order.status, order.status,
                       insurance.out_trade_no)
    elif insurance is not None and insurance.state == "PRESETTLED":
        try:
            _reverse_insurance(svc, order, actor)  # a settlement whose answer was lost is undone too
        except ChannelBusy:
            done = False
    if done:
        with svc.sessions() as session, session.begin():
            _transition(session, order, [OrderStatus.REFUND_PENDING], OrderStatus.REFUNDED, actor, "REFUNDED", now,
                        order.refund_no or "")


def _refund_trade(svc: Services, order: Order, payment: Payment, refund_no: str, amount_fen: int, reason: str,
                  actor: str, now: datetime) -> str | None:
    """Refund one paid trade in full; the provider's refund status, or None if it must be asked again."""
    try:
        status = _trade_channel(svc, order, payment).refund(payment.out_trade_no, refund_no, amount_fen, amount_fen,
                                                         reason)
    except (ChannelUnavailable, SignatureError):
        log.warning("order %s: refund of %s outcome unknown; will ask again", order.order_no, payment.out_trade_no)
        return None
    except ChannelError as exc:
        log.error("order %s: refund of %s refused by the channel (%s)", order.order_no, payment.out_trade_no,
                  exc.code)
        with svc.sessions() as session, session.begin():
            _event(session, order.id, actor, "REFUND_REFUSED", order.status, order.status, exc.code)
        return None
    with svc.sessions() as session, session.begin():
        session.execute(update(Payment).where(Payment.id == payment.id).values(state="REFUND"))
        _event(session, order.id, actor, "TRADE_REFUNDED", order.status, order.status,
               f"{payment.out_trade_no} {refund_no} {status}")
    return status


# --- polling, cancelling, sweeping ----------------------------------------------------------------------------

def refresh_order(svc: Services, terminal_id: str, order_no: str, *, now: datetime | None = None) -> Order:
    """The order for a polling kiosk, first asking the channel when no notification has come (throttled)."""
    now = now or svc.now()
    order = get_order(svc, order_no, terminal_id)
    payment = order.payment
    waiting = order.status == OrderStatus.AWAITING_PAYMENT
    attended = payment is not None and payment.channel in ATTENDED_METHODS
    if waiting and payment is not None and (payment.code_url or attended) and payment.notified_at is None:
        if _claim_query(svc, payment, now):
            _query_and_apply(svc, order, f"terminal:{terminal_id}", now=now)
    elif order.status in (OrderStatus.PAID, OrderStatus.CANCEL_PENDING, OrderStatus.REFUND_PENDING):
        claim = payment or order.insurance_payment
        if claim is None or _claim_query(svc, claim, now):
            advance(svc, order_no, actor=f"terminal:{terminal_id}", now=now)
    order = get_order(svc, order_no, terminal_id)
    overdue = attended and payment is not None and payment.created_at + CODE_PAY_DEADLINE <= now
    if order.status == OrderStatus.AWAITING_PAYMENT and (order.expires_at <= now or overdue):
        try:
            order = close_order(svc, order, actor="system:expiry",
                                event="CODE_PAY_TIMEOUT" if overdue else "EXPIRED", now=now)
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
    """Close an unpaid order: first make sure at each channel that no trade was paid and none can be, then
    undo the insurance settlement if there was one."""
    now = now or svc.now()
    for payment in order.self_payments:
        if payment.state in ("CLOSED", "PAYERROR") and payment.channel != CHANNEL_CARD:
            continue
        _close_trade(svc, order, payment, actor, now)
        if get_order(svc, order.order_no).status != OrderStatus.AWAITING_PAYMENT:
            return get_order(svc, order.order_no)  # it was paid: honoured, not closed
    _reverse_insurance(svc, get_order(svc, order.order_no), actor)
    with svc.sessions() as session, session.begin():
        closed = _transition(session, order, [OrderStatus.AWAITING_PAYMENT], OrderStatus.CLOSED, actor, event, now)
    if closed and order.kind == KIND_REGISTRATION:
        svc.his.release_lock(order.his_lock_id)
    return get_order(svc, order.order_no)


def _close_trade(svc: Services, order: Order, payment: Payment, actor: str, now: datetime) -> None:
    """Make sure one trade was not paid and cannot be; if it was paid, the order follows the money (and the
    caller sees the order no longer awaiting payment). Raises ChannelBusy while the channel does not answer."""
    channel = _trade_channel(svc, order, payment)
    try:
        state = channel.query(payment.out_trade_no)
    except (ChannelUnavailable, SignatureError):
        raise ChannelBusy() from None
    except ChannelError as exc:
        if exc.code not in _NO_SUCH_TRADE:
            raise ChannelBusy() from None
        state = None
    if state is not None and state.paid:
        apply_trade_state(svc, state, actor=actor, now=now)
        if get_order(svc, order.order_no).status == OrderStatus.AWAITING_PAYMENT:
            raise ChannelBusy()  # paid, but not in a way that settles the order (amount mismatch): a human looks
        return
    if state is None or state.state != "CLOSED":
        try:
            if payment.channel in ATTENDED_METHODS:  # a charge may still land: reversal refunds it if so
                channel.reverse(payment.out_trade_no)
            else:
                channel.close(payment.out_trade_no)
        except (ChannelUnavailable, SignatureError):
            raise ChannelBusy() from None
        except ChannelError as exc:
            if exc.code == "ORDERPAID":  # paid between our query and the close
                _query_and_apply(svc, order, actor, payment=payment, now=now)
                if get_order(svc, order.order_no).status == OrderStatus.AWAITING_PAYMENT:
                    raise ChannelBusy() from None
                return
            if exc.code not in _NO_SUCH_TRADE:
                log.warning("order %s: channel would not close %s (%s)", order.order_no, payment.out_trade_no,
                            exc.code)
                raise ChannelBusy() from None
    with svc.sessions() as session, session.begin():
        session.execute(update(Payment).where(Payment.id == payment.id).values(state="CLOSED"))


@dataclass
class SweepReport:
    closed: int = 0
    fulfilled: int = 0
    refunded: int = 0
    unresolved: int = 0


def sweep(svc: Services, *, now: datetime | None = None) -> SweepReport:
    """Finish what kiosks left half-way: expired unpaid orders are closed (after asking the channel), paid ones
    are fulfilled or refunded, card sales of unknown outcome are reversed."""
    now = now or svc.now()
    report = SweepReport()
    with svc.sessions() as session:
        stale = list(session.scalars(select(Order).where(or_(
            (Order.status == OrderStatus.AWAITING_PAYMENT) & (Order.expires_at <= now),
            Order.status.in_([OrderStatus.PAID, OrderStatus.CANCEL_PENDING, OrderStatus.REFUND_PENDING])))))
        # Codes and cards charged at a kiosk that were never settled (the kiosk that was polling may be gone).
        stale += list(session.scalars(select(Order).join(Payment, Payment.order_id == Order.id).where(
            Order.status == OrderStatus.AWAITING_PAYMENT, Order.expires_at > now,
            Payment.channel.in_(ATTENDED_METHODS), Payment.state.in_(["NOTPAY", "USERPAYING", "REVERSING"]),
            Payment.created_at <= now - CODE_PAY_DEADLINE)).unique())
        reversing = list(session.scalars(select(Payment).where(Payment.state == "REVERSING")))
        item_refunds = list(session.scalars(select(Order.order_no).join(OrderItem, OrderItem.order_id == Order.id)
                                            .where(OrderItem.status == "REFUND_PENDING").distinct()))
    for payment in reversing:
        _settle_unknown_card(svc, get_order(svc, _order_no_of(svc, payment)), payment, "system:sweeper")
    if item_refunds:
        from central.bill_orders import finish_item_refunds
        for order_no in item_refunds:
            finish_item_refunds(svc, order_no, actor="system:sweeper", now=now)
    for order in stale:
        try:
            if order.status == OrderStatus.AWAITING_PAYMENT:
                event = "EXPIRED" if order.expires_at <= now else "CODE_PAY_TIMEOUT"
                order = close_order(svc, get_order(svc, order.order_no), actor="system:sweeper", event=event,
                                    now=now)
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


def _order_no_of(svc: Services, payment: Payment) -> str:
    with svc.sessions() as session:
        order = session.get(Order, payment.order_id)
        assert order is not None
        return order.order_no


# --- helpers --------------------------------------------------------------------------------------------------

def _query_and_apply(svc: Services, order: Order, actor: str, *, payment: Payment | None = None,
                     now: datetime | None = None) -> None:
    payment = payment or order.payment
    assert payment is not None
    try:
        state = _trade_channel(svc, order, payment).query(payment.out_trade_no)
    except (ChannelUnavailable, ChannelError, SignatureError) as exc:
        log.info("order %s: query gave no usable answer (%s)", order.order_no, type(exc).__name__)
        return
    apply_trade_state(svc, state, actor=actor, now=now)


def _trade_channel(svc: Services, order: Order, payment: Payment) -> PaymentChannel:
    """The channel that holds a trade. A card trade belongs to the acquirer terminal (the kiosk) that made it."""
    channel = svc.channel_for(payment.channel)
    if payment.channel == CHANNEL_CARD:
        return channel.for_terminal(order.terminal_id)  # type: ignore[attr-defined, no-any-return]
    return channel


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
