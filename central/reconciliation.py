"""Daily reconciliation (对账): each channel's statement for one day against our own payments and refunds.

The finance clerk closing the day needs to know, line by line, where the channel's money and ours disagree; the
money-safety rule (every paid order ends fulfilled or refunded) is checked here once a day against the only
independent ledger there is, the provider's statement.

How a line is given a day (the hospital's timezone, ``settings.tz``):

* a payment belongs to the day the *channel* says the money moved: the trade's ``success_time`` as the channel
  reported it (notification or query), which is the time the statement lists it under. A trade paid at
  23:59:59 China time whose notification reached us after midnight belongs to the day before, not to our
  ``paid_at``. Only when the channel gave no time does our own ``paid_at`` (then the payment's creation) count;
* a refund belongs to the day we recorded the channel's acceptance (the order event that records it, see
  ``REFUND_EVENTS``): channels do not tell the merchant their refund booking time, so ours is the best there is;
* lines within ``DAY_EDGE`` of midnight may fall on the other side at the channel. Our line at the end of the
  day that the day's statement lacks is looked for on the next day's statement; while that day is not over (or
  its statement cannot be had yet) it is reported as *pending next day's statement*, never as missing. A
  channel line that we recorded on the neighbouring day is *booked across midnight*: the same money, no
  difference.

Classes of line, in ``LineClass``: matched, booked across midnight, pending next day; and the differences:
on the channel only (长款), ours only (短款), amount differs, refund on one side only, booked on another date,
and a paid trade whose order is neither FULFILLED nor REFUNDED (money taken, nothing delivered).

A statement that cannot be had (``ChannelUnavailable``, a corrupt or unreadable file, a refusal) makes that
provider *unavailable*: nothing of it is reported as matched. ``resolve`` then fixes what is safe to fix
without a person: a 长款 trade that is ours (a notification that never came and nobody queried) is asked about
and the answer applied through ``central.orders.apply_trade_state``, exactly as a late notification would be.
Nothing here refunds or changes an amount: every other difference goes to the clerk.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import select

from central.models import Order, OrderEvent, OrderStatus, Payment, PaymentPart
from central.payments.channel import (BillLine, ChannelError, ChannelUnavailable, PaymentChannel,
                                      SignatureError)
from central.services import Services, provider_of

log = logging.getLogger(__name__)

#: Channels state their times in China time; a time without an offset is read as such.
CHINA_TZ = timezone(timedelta(hours=8), "CST")
#: How close to midnight a line may be for the two sides to book it on different days (notification latency,
#: the channel's own booking of refunds).
DAY_EDGE = timedelta(minutes=10)
#: Trades stay payable for minutes (the slot lock), so a trade paid on a day was created well within this much
#: of it; a day's payments are read from trades created this long before the day to this long after it (the
#: margin after covers a channel's clock and ours disagreeing), then dated exactly.
PAYMENT_LOOKBACK = timedelta(days=2)
#: Payment states that mean the channel said the money arrived (a refunded trade was paid first).
PAID_STATES = ("SUCCESS", "REFUND", "REVERSING")
#: Orders whose paid money has reached its end: delivered, or given back.
SETTLED_STATUSES = (OrderStatus.FULFILLED, OrderStatus.REFUNDED)
#: Who the resolver acts as, in order_events.
RESOLVER_ACTOR = "system:reconciliation"

PROVIDER_LABELS = {"wechat": ("微信支付", "WeChat Pay"), "alipay": ("支付宝", "Alipay")}


class LineClass:
    """What one reconciliation line says; the first three are not differences."""

    MATCHED = "MATCHED"
    CROSS_DAY = "CROSS_DAY"
    PENDING_NEXT_DAY = "PENDING_NEXT_DAY"
    CHANNEL_ONLY = "CHANNEL_ONLY"
    OURS_ONLY = "OURS_ONLY"
    AMOUNT_MISMATCH = "AMOUNT_MISMATCH"
    REFUND_CHANNEL_ONLY = "REFUND_CHANNEL_ONLY"
    REFUND_OURS_ONLY = "REFUND_OURS_ONLY"
    DATE_DIFFERS = "DATE_DIFFERS"
    UNDELIVERED = "UNDELIVERED"

    NOT_DIFFERENCES = frozenset({MATCHED, CROSS_DAY, PENDING_NEXT_DAY})
    LABELS = {
        MATCHED: ("平账", "matched"),
        CROSS_DAY: ("跨日入账", "booked across midnight"),
        PENDING_NEXT_DAY: ("待次日对账单", "pending next day's statement"),
        CHANNEL_ONLY: ("长款", "on the channel, not ours"),
        OURS_ONLY: ("短款", "ours, not on the channel"),
        AMOUNT_MISMATCH: ("金额不符", "amount differs"),
        REFUND_CHANNEL_ONLY: ("渠道有退款本方无", "refund on the channel only"),
        REFUND_OURS_ONLY: ("本方有退款渠道无", "refund on our side only"),
        DATE_DIFFERS: ("入账日期不符", "booked on another date"),
        UNDELIVERED: ("已收款未履约", "paid, order neither fulfilled nor refunded"),
    }


@dataclass
class Line:
    """One line of the detail ledger (明细账): a trade or refund as each side has it, and what that means."""

    provider: str
    line_class: str
    kind: str  # "PAY" | "REFUND"
    out_trade_no: str
    out_refund_no: str | None = None
    order_no: str | None = None
    transaction_id: str | None = None
    channel_fen: int | None = None
    ours_fen: int | None = None
    channel_time: str | None = None
    ours_time: str | None = None
    order_status: str | None = None
    resolvable: bool = False  # a 长款 trade of ours: asking the channel may settle it (see `resolve`)
    note: str = ""

    @property
    def is_difference(self) -> bool:
        return self.line_class not in LineClass.NOT_DIFFERENCES

    def label(self) -> str:
        chinese, english = LineClass.LABELS[self.line_class]
        return f"{chinese} {english}"


@dataclass
class Totals:
    """The summary ledger (总账) of one side: payments and refunds counted and summed, in fen."""

    pay_count: int = 0
    pay_fen: int = 0
    refund_count: int = 0
    refund_fen: int = 0

    @property
    def net_fen(self) -> int:
        return self.pay_fen - self.refund_fen

    def add(self, kind: str, fen: int) -> None:
        if kind == "PAY":
            self.pay_count += 1
            self.pay_fen += fen
        else:
            self.refund_count += 1
            self.refund_fen += fen

    def as_dict(self) -> dict[str, int]:
        return {**asdict(self), "net_fen": self.net_fen}


@dataclass
class ProviderResult:
    provider: str
    available: bool
    reason: str = ""  # why the statement could not be had
    channel: Totals = field(default_factory=Totals)
    ours: Totals = field(default_factory=Totals)
    lines: list[Line] = field(default_factory=list)

    @property
    def differences(self) -> list[Line]:
        return [line for line in self.lines if line.is_difference]

    def count(self, line_class: str) -> int:
        return sum(1 for line in self.lines if line.line_class == line_class)


@dataclass
class ReconciliationReport:
    bill_date: date
    timezone: str
    generated_at: datetime
    day_edge: timedelta
    providers: list[ProviderResult]

    @property
    def unavailable(self) -> list[ProviderResult]:
        return [p for p in self.providers if not p.available]

    @property
    def differences(self) -> list[Line]:
        return [line for p in self.providers for line in p.differences]

    @property
    def exit_status(self) -> int:
        """0 everything matched, 1 differences, 2 a statement could not be had (that decides over 1: a day
        with a missing statement is not reconciled, whatever the other channel says)."""
        if self.unavailable:
            return 2
        return 1 if self.differences else 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "bill_date": self.bill_date.isoformat(), "timezone": self.timezone,
            "generated_at": self.generated_at.isoformat(timespec="seconds"),
            "day_edge_minutes": self.day_edge.total_seconds() / 60, "exit_status": self.exit_status,
            "providers": [{
                "provider": p.provider, "statement_available": p.available, "reason": p.reason,
                "channel_totals": p.channel.as_dict(), "our_totals": p.ours.as_dict(),
                "differences": len(p.differences),
                "lines": [{**asdict(line), "label": line.label(), "is_difference": line.is_difference}
                          for line in p.lines],
            } for p in self.providers],
        }


# --- our side ---------------------------------------------------------------------------------------------------

@dataclass
class _Ours:
    kind: str
    out_trade_no: str
    out_refund_no: str | None
    order_no: str
    transaction_id: str | None
    amount_fen: int
    at: datetime
    order_status: str
    undelivered: str = ""  # why this paid trade breaks the rule, if it does

    @property
    def key(self) -> tuple[str, str]:
        return _key(self.kind, self.out_trade_no, self.out_refund_no)


@dataclass
class _PaidTrade:
    """A trade paid on the day, for the check that its order reached FULFILLED or REFUNDED."""

    order_no: str
    order_status: str
    reason: str  # why it breaks the rule; "" if it does not
    bill: BillLine | None = None
    ours: _Ours | None = None


def _key(kind: str, out_trade_no: str, out_refund_no: str | None) -> tuple[str, str]:
    return (kind, out_refund_no or out_trade_no) if kind == "REFUND" else (kind, out_trade_no)


def parse_channel_time(text: str | None) -> datetime | None:
    """A channel's time (RFC 3339, or "YYYY-MM-DD HH:MM:SS" in China time) as an aware datetime."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=CHINA_TZ)


def _paid_amount(payment: Payment, order: Order) -> int:
    if order.paid_trade_no == payment.out_trade_no and order.paid_fen is not None:
        return order.paid_fen
    return payment.amount_fen if payment.amount_fen is not None else order.self_pay_fen


def _undelivered(payment: Payment, order: Order) -> str:
    """Why a paid trade breaks "paid ends fulfilled or refunded", or "" if it does not."""
    if order.status not in SETTLED_STATUSES:
        return f"order is {order.status}"
    if order.paid_trade_no not in (None, payment.out_trade_no) and payment.state != "REFUND":
        return f"a second trade for an order paid by {order.paid_trade_no}, not refunded"
    return ""


def _pay_line(payment: Payment, order: Order) -> _Ours:
    at = (parse_channel_time(payment.success_time)
          or (order.paid_at if order.paid_trade_no == payment.out_trade_no else None)
          or payment.notified_at or payment.queried_at or payment.created_at)
    return _Ours("PAY", payment.out_trade_no, None, order.order_no, payment.transaction_id,
                 _paid_amount(payment, order), at, order.status, _undelivered(payment, order))


def _is_paid(payment: Payment) -> bool:
    return payment.state in PAID_STATES or payment.success_time is not None


def _our_payments(svc: Services, provider: str, start: datetime, end: datetime) -> list[_Ours]:
    """Our paid trades of this provider that may fall in [start, end): read wide, dated exactly in Python."""
    with svc.sessions() as session:
        rows = session.execute(
            select(Payment, Order).join(Order, Order.id == Payment.order_id).where(
                Payment.part == PaymentPart.SELF,
                (Payment.created_at >= start - PAYMENT_LOOKBACK) & (Payment.created_at < end + PAYMENT_LOOKBACK)
                | (Order.paid_at >= start) & (Order.paid_at < end))).all()
    lines = [_pay_line(p, o) for p, o in rows if provider_of(p.channel) == provider and _is_paid(p)]
    return [line for line in lines if start <= line.at < end]


def _refund_events(session: Any, *conditions: Any) -> list[tuple[OrderEvent, Order]]:
    return list(session.execute(select(OrderEvent, Order).join(Order, Order.id == OrderEvent.order_id)
                                .where(*conditions).order_by(OrderEvent.id)).all())


#: Order events that record money going back along a channel trade.
REFUND_EVENTS = ("TRADE_REFUNDED", "REFUNDED", "ITEMS_REFUNDED")
#: ``ITEMS_REFUNDED`` detail (bill items given back): "<refund batch no>: self-pay <fen> fen <channel status>".
_ITEMS_REFUNDED = re.compile(r"^(?P<batch>\S+): self-pay (?P<fen>\d+) fen (?P<status>\S+)")


def _refund_lines(session: Any, events: Iterable[tuple[OrderEvent, Order]], provider: str) -> list[_Ours]:
    """Our refunds, read from order events (the only place a refund's time is kept):

    * ``TRADE_REFUNDED`` ("<trade> <refund no> <status>"): one paid trade given back in full;
    * ``ITEMS_REFUNDED``: a batch of bill items whose self-pay share went back along the order's trade;
    * ``REFUNDED`` only for orders refunded before ``TRADE_REFUNDED`` existed, with the order's refund number.
    """
    lines: dict[tuple[str, str], _Ours] = {}
    for event, order in events:
        amount: int | None = None
        if event.event == "TRADE_REFUNDED":
            parts = event.detail.split()
            if len(parts) < 2:
                continue
            out_trade_no, refund_no = parts[0], parts[1]
        elif event.event == "ITEMS_REFUNDED":
            match = _ITEMS_REFUNDED.match(event.detail)
            trade = order.payment if order.paid_trade_no else None
            if match is None or trade is None or match["status"] == "NONE" or int(match["fen"]) == 0:
                continue  # nothing went back through a channel (insurance paid it all)
            out_trade_no, refund_no, amount = trade.out_trade_no, match["batch"], int(match["fen"])
        else:
            has_trade_events = session.scalar(select(OrderEvent.id).where(
                OrderEvent.order_id == order.id, OrderEvent.event == "TRADE_REFUNDED").limit(1))
            if has_trade_events is not None or not order.refund_no:
                continue
            payment = order.payment
            if payment is None:
                continue
            out_trade_no, refund_no = payment.out_trade_no, order.refund_no
        payment = session.scalar(select(Payment).where(Payment.out_trade_no == out_trade_no))
        if payment is None or payment.part != PaymentPart.SELF or provider_of(payment.channel) != provider:
            continue
        line = _Ours("REFUND", out_trade_no, refund_no, order.order_no, payment.transaction_id,
                     amount if amount is not None else _paid_amount(payment, order), event.at, order.status)
        lines.setdefault(line.key, line)  # a refund recorded twice (a retried call) is one refund
    return list(lines.values())


def _our_refunds(svc: Services, provider: str, start: datetime, end: datetime) -> list[_Ours]:
    with svc.sessions() as session:
        events = _refund_events(session, OrderEvent.event.in_(REFUND_EVENTS),
                                OrderEvent.at >= start, OrderEvent.at < end)
        return _refund_lines(session, events, provider)


def _find_ours(svc: Services, provider: str, bill: BillLine) -> tuple[_Ours | None, Payment | None, Order | None]:
    """Our record of a statement line, whatever day we booked it: (our line if we recorded the money,
    the payment, its order)."""
    with svc.sessions() as session:
        row = session.execute(select(Payment, Order).join(Order, Order.id == Payment.order_id)
                              .where(Payment.out_trade_no == bill.out_trade_no)).first()
        if row is None:
            return None, None, None
        payment, order = row
        if payment.part != PaymentPart.SELF or provider_of(payment.channel) != provider:
            return None, None, None
        if bill.kind == "PAY":
            return (_pay_line(payment, order) if _is_paid(payment) else None), payment, order
        events = _refund_events(session, OrderEvent.order_id == order.id,
                                OrderEvent.event.in_(REFUND_EVENTS))
        wanted = _key("REFUND", bill.out_trade_no, bill.out_refund_no)
        found = next((line for line in _refund_lines(session, events, provider) if line.key == wanted), None)
        return found, payment, order


# --- the channel's side -----------------------------------------------------------------------------------------

class StatementUnavailable(Exception):
    """A statement that could not be had; the message says why, for the clerk."""


def has_statement(channel: PaymentChannel) -> bool:
    return type(channel).download_bill is not PaymentChannel.download_bill


def _download(channel: PaymentChannel, day: date) -> list[BillLine]:
    """The statement, or StatementUnavailable: whatever went wrong, nothing of it may count as matched."""
    try:
        return channel.download_bill(day)
    except ChannelUnavailable as exc:
        raise StatementUnavailable(f"对账单暂时无法获取 no trustworthy statement yet: {exc}") from None
    except SignatureError:
        raise StatementUnavailable("对账单签名验证失败 the statement's answer did not verify") from None
    except ChannelError as exc:
        raise StatementUnavailable(f"渠道拒绝或账单损坏 refused or corrupt: {exc.code} {exc.message}") from None
    except NotImplementedError:
        raise StatementUnavailable("该渠道不提供对账单 this channel has no daily statement") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise StatementUnavailable(f"对账单无法解析 unreadable statement: {type(exc).__name__}") from None
    except Exception as exc:  # a bug or an unforeseen answer must not read as "no differences"
        log.exception("downloading the statement of %s failed", day)
        raise StatementUnavailable(f"对账单获取失败 statement download failed: {type(exc).__name__}") from None


# --- reconciling ------------------------------------------------------------------------------------------------

def day_bounds(svc: Services, day: date) -> tuple[datetime, datetime]:
    """[start, end) of a day in the hospital's timezone."""
    tz = svc.settings.tz
    return datetime.combine(day, time.min, tzinfo=tz), datetime.combine(day + timedelta(days=1), time.min, tzinfo=tz)


def _fen_text(fen: int | None) -> str:
    if fen is None:
        return ""
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}"


def _local(svc: Services, moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(svc.settings.tz).isoformat(timespec="seconds")


class _Reconciler:
    """One provider, one day."""

    def __init__(self, svc: Services, provider: str, day: date, edge: timedelta):
        self.svc, self.provider, self.day, self.edge = svc, provider, day, edge
        self.channel = svc.channels[provider]
        self.start, self.end = day_bounds(svc, day)
        self.result = ProviderResult(provider=provider, available=True)
        self._neighbours: dict[date, list[BillLine] | StatementUnavailable] = {}

    def run(self) -> ProviderResult:
        try:
            statement = _download(self.channel, self.day)
        except StatementUnavailable as exc:
            log.warning("reconciliation %s %s: %s", self.provider, self.day, exc)
            return ProviderResult(provider=self.provider, available=False, reason=str(exc))
        ours_today = _our_payments(self.svc, self.provider, self.start, self.end) + \
            _our_refunds(self.svc, self.provider, self.start, self.end)
        near = _our_payments(self.svc, self.provider, self.start - self.edge, self.end + self.edge) + \
            _our_refunds(self.svc, self.provider, self.start - self.edge, self.end + self.edge)
        ours_by_key = {line.key: line for line in near}
        dated_today = {line.key for line in ours_today}
        for line in ours_today:
            self.result.ours.add(line.kind, line.amount_fen)
        seen: set[tuple[str, str]] = set()
        paid_trades: dict[str, _PaidTrade] = {}
        for bill in statement:
            self.result.channel.add(bill.kind, bill.amount_fen)
            key = _key(bill.kind, bill.out_trade_no, bill.out_refund_no)
            if key in seen:
                self._add(LineClass.CHANNEL_ONLY, bill, None, note="the statement lists this line twice")
                continue
            seen.add(key)
            ours = ours_by_key.get(key)
            paid: _PaidTrade | None = None
            if ours is not None and key in dated_today:
                self._matched(bill, ours, LineClass.MATCHED)
            elif ours is not None:
                self._matched(bill, ours, LineClass.CROSS_DAY, note="we booked it on the neighbouring day")
            else:
                paid = self._unmatched_channel_line(bill)
            if bill.kind == "PAY":
                paid = paid or (_PaidTrade(ours.order_no, ours.order_status, ours.undelivered, ours=ours)
                                if ours is not None else None)
                if paid is not None:
                    paid.bill = bill
                    paid_trades[bill.out_trade_no] = paid
        for line in ours_today:
            if line.key not in seen:
                self._unmatched_our_line(line)
            if line.kind == "PAY":
                paid_trades.setdefault(line.out_trade_no,
                                       _PaidTrade(line.order_no, line.order_status, line.undelivered)).ours = line
        self._undelivered(paid_trades)
        return self.result

    # -- the line classes ------------------------------------------------------------------------------------

    def _add(self, line_class: str, bill: BillLine | None, ours: _Ours | None, *, note: str = "",
             resolvable: bool = False, order_no: str | None = None, order_status: str | None = None) -> None:
        """One line from the statement's side, ours, or both (at least one of them)."""
        either = bill or ours
        if either is None:
            raise ValueError("a reconciliation line needs the channel's side or ours")
        channel_time = None
        if bill is not None:
            channel_time = _local(self.svc, parse_channel_time(bill.time)) or bill.time
        self.result.lines.append(Line(
            provider=self.provider, line_class=line_class, kind=either.kind, out_trade_no=either.out_trade_no,
            out_refund_no=(bill.out_refund_no if bill else None) or (ours.out_refund_no if ours else None),
            order_no=ours.order_no if ours else order_no,
            transaction_id=(bill.transaction_id if bill else None) or (ours.transaction_id if ours else None),
            channel_fen=bill.amount_fen if bill else None, ours_fen=ours.amount_fen if ours else None,
            channel_time=channel_time, ours_time=_local(self.svc, ours.at) if ours else None,
            order_status=ours.order_status if ours else order_status, resolvable=resolvable, note=note))

    def _matched(self, bill: BillLine, ours: _Ours, line_class: str, note: str = "") -> None:
        """Both sides have the line: matched (or across midnight) unless the amounts differ."""
        if bill.amount_fen != ours.amount_fen:
            amounts = f"channel {_fen_text(bill.amount_fen)}, ours {_fen_text(ours.amount_fen)}"
            self._add(LineClass.AMOUNT_MISMATCH, bill, ours, note=f"{amounts}; {note}" if note else amounts)
        else:
            self._add(line_class, bill, ours, note=note)

    def _unmatched_channel_line(self, bill: BillLine) -> _PaidTrade | None:
        """A statement line with no line of ours near this day: look for our record on any day. Returns the
        paid trade for the undelivered check when the trade is ours."""
        ours, payment, order = _find_ours(self.svc, self.provider, bill)
        if ours is not None:
            if self.start <= ours.at < self.end:  # ours for this day after all, read only now
                self.result.ours.add(ours.kind, ours.amount_fen)
                self._matched(bill, ours, LineClass.MATCHED)
            elif self.start - self.edge <= ours.at < self.end + self.edge:
                self._matched(bill, ours, LineClass.CROSS_DAY, note="we booked it on the neighbouring day")
            else:
                self._add(LineClass.DATE_DIFFERS, bill, ours,
                          note=f"we booked it on {ours.at.astimezone(self.svc.settings.tz).date()}")
            return _PaidTrade(ours.order_no, ours.order_status, ours.undelivered, ours=ours)
        order_no = order.order_no if order else None
        status = order.status if order else None
        if bill.kind == "REFUND":
            note = ("the refund's outcome never reached us; the refund sweep records it" if
                    status == OrderStatus.REFUND_PENDING else "a refund we did not make or did not record")
            self._add(LineClass.REFUND_CHANNEL_ONLY, bill, None, note=note, order_no=order_no, order_status=status)
            return None
        if payment is None:
            self._add(LineClass.CHANNEL_ONLY, bill, None, note="not a trade of ours")
            return None
        self._add(LineClass.CHANNEL_ONLY, bill, None, resolvable=True, order_no=order_no, order_status=status,
                  note="our trade, but we never recorded the money (lost notification, not yet queried)")
        assert order is not None
        return _PaidTrade(order.order_no, order.status,
                          _undelivered(payment, order) or "we never recorded the payment")

    def _unmatched_our_line(self, ours: _Ours) -> None:
        """Our line dated this day that the day's statement lacks: near midnight it may be on the neighbour's."""
        missing = LineClass.OURS_ONLY if ours.kind == "PAY" else LineClass.REFUND_OURS_ONLY
        if ours.at >= self.end - self.edge:
            neighbour = self.day + timedelta(days=1)
        elif ours.at < self.start + self.edge:
            neighbour = self.day - timedelta(days=1)
        else:
            self._add(missing, None, ours)
            return
        if neighbour > self.day and neighbour >= self.svc.today():
            self._add(LineClass.PENDING_NEXT_DAY, None, ours, note=f"{neighbour} is not over yet")
            return
        statement = self._neighbour(neighbour)
        if isinstance(statement, StatementUnavailable):
            if neighbour > self.day:
                self._add(LineClass.PENDING_NEXT_DAY, None, ours, note=f"statement of {neighbour}: {statement}")
            else:
                self._add(missing, None, ours, note=f"statement of {neighbour} could not be checked: {statement}")
            return
        bill = next((b for b in statement if _key(b.kind, b.out_trade_no, b.out_refund_no) == ours.key), None)
        if bill is None:
            self._add(missing, None, ours, note=f"not on the statement of {neighbour} either")
        else:
            self._matched(bill, ours, LineClass.CROSS_DAY, note=f"the channel booked it on {neighbour}")

    def _neighbour(self, day: date) -> list[BillLine] | StatementUnavailable:
        if day not in self._neighbours:
            try:
                self._neighbours[day] = _download(self.channel, day)
            except StatementUnavailable as exc:
                self._neighbours[day] = exc
        return self._neighbours[day]

    def _undelivered(self, paid_trades: dict[str, _PaidTrade]) -> None:
        """One line per trade paid this day (by either side's account) whose order has not reached its end."""
        for out_trade_no, paid in paid_trades.items():
            if not paid.reason:
                continue
            bill, ours = paid.bill, paid.ours
            self.result.lines.append(Line(
                provider=self.provider, line_class=LineClass.UNDELIVERED, kind="PAY", out_trade_no=out_trade_no,
                order_no=paid.order_no,
                transaction_id=(bill.transaction_id if bill else None) or (ours.transaction_id if ours else None),
                channel_fen=bill.amount_fen if bill else None, ours_fen=ours.amount_fen if ours else None,
                channel_time=_local(self.svc, parse_channel_time(bill.time)) if bill else None,
                ours_time=_local(self.svc, ours.at) if ours else None, order_status=paid.order_status,
                note=paid.reason))


def reconcile(svc: Services, bill_date: date, *, providers: Sequence[str] | None = None,
              day_edge: timedelta = DAY_EDGE) -> ReconciliationReport:
    """Reconcile each provider's statement of ``bill_date`` (hospital time) against our records.

    ``providers`` None means every configured channel that offers a statement; naming one that is not
    configured is a ValueError (a typo must not read as "nothing to reconcile").
    """
    if not isinstance(bill_date, date) or isinstance(bill_date, datetime):
        raise TypeError("bill_date must be a date")
    if bill_date > svc.today():
        raise ValueError(f"{bill_date} has not begun yet; there is no statement to reconcile")
    if providers is None:
        names = [name for name, channel in svc.channels.items() if has_statement(channel)]
        if not names:
            raise ValueError("no configured payment channel offers a daily statement")
    else:
        names = list(dict.fromkeys(providers))
        unknown = [name for name in names if name not in svc.channels]
        if unknown:
            raise ValueError(f"payment channel not configured: {', '.join(unknown)}")
    results = [_Reconciler(svc, name, bill_date, day_edge).run() for name in names]
    report = ReconciliationReport(bill_date=bill_date, timezone=str(svc.settings.tz), generated_at=svc.now(),
                                  day_edge=day_edge, providers=results)
    log.info("reconciliation of %s: %d differences, %d statements unavailable", bill_date,
             len(report.differences), len(report.unavailable))
    return report


# --- resolving what is safe to resolve --------------------------------------------------------------------------

@dataclass
class Resolution:
    provider: str
    out_trade_no: str
    outcome: str  # "APPLIED" | "AMOUNT_DIFFERS" (recorded, nothing else) | "NOT_PAID" | "NO_ANSWER"
    order_no: str | None = None
    order_status: str | None = None
    note: str = ""


def resolve(svc: Services, report: ReconciliationReport, *, now: datetime | None = None) -> list[Resolution]:
    """Settle the 长款 lines whose trade is ours: ask the channel and apply its answer as a late notification
    would (``apply_trade_state``), so the order is fulfilled, or refunded if it had been closed, by the same
    rules as ever. Every other difference is left to the clerk: nothing here refunds or changes an amount."""
    from central.orders import apply_trade_state

    resolutions: list[Resolution] = []
    for line in report.differences:
        if line.line_class != LineClass.CHANNEL_ONLY or not line.resolvable:
            continue
        channel = svc.channels[line.provider]
        try:
            state = channel.query(line.out_trade_no)
        except (ChannelUnavailable, ChannelError, SignatureError) as exc:
            resolutions.append(Resolution(line.provider, line.out_trade_no, "NO_ANSWER", line.order_no,
                                          line.order_status, type(exc).__name__))
            continue
        if state.out_trade_no != line.out_trade_no or not state.paid:
            resolutions.append(Resolution(line.provider, line.out_trade_no, "NOT_PAID", line.order_no,
                                          line.order_status, f"the channel now says {state.state}"))
            continue
        with svc.sessions() as session:
            payment = session.scalar(select(Payment).where(Payment.out_trade_no == line.out_trade_no))
            order = session.get(Order, payment.order_id) if payment is not None else None
            expected = payment.amount_fen if payment is not None and payment.amount_fen is not None else (
                order.self_pay_fen if order is not None else None)
        # Applied even when the amount differs: the order rules then only record the trade and the mismatch
        # (no status change), and the next reconciliation shows an amount difference instead of 长款.
        order = apply_trade_state(svc, state, actor=RESOLVER_ACTOR, now=now)
        differs = state.amount_fen != expected
        resolutions.append(Resolution(
            line.provider, line.out_trade_no, "AMOUNT_DIFFERS" if differs else "APPLIED",
            order.order_no if order else line.order_no, order.status if order else None,
            f"paid {_fen_text(state.amount_fen)}, expected {_fen_text(expected)}: for the clerk" if differs else ""))
        log.info("reconciliation: trade %s applied from the channel's answer; order now %s", line.out_trade_no,
                 order.status if order else "?")
    return resolutions


def reconcile_and_resolve(svc: Services, bill_date: date, *, providers: Sequence[str] | None = None
                          ) -> tuple[ReconciliationReport, list[Resolution]]:
    """For a scheduled job: reconcile, settle what is safe, and reconcile again if anything was settled, so the
    report handed to the clerk shows what is still left. Never raises for an unavailable statement."""
    report = reconcile(svc, bill_date, providers=providers)
    resolutions = resolve(svc, report)
    if any(r.outcome == "APPLIED" for r in resolutions):
        report = reconcile(svc, bill_date, providers=providers)
    return report, resolutions


# --- output for the clerk ---------------------------------------------------------------------------------------

CSV_COLUMNS = ("provider", "class", "类别", "kind", "order_no", "out_trade_no", "out_refund_no", "transaction_id",
               "channel_yuan", "ours_yuan", "channel_time", "ours_time", "order_status", "resolvable", "note")


def parse_bill_date(text: str | None) -> date:
    """``YYYY-MM-DD`` from the command line, or a ValueError that says so in both languages."""
    try:
        if text is None or len(text.strip()) != 10:
            raise ValueError
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"日期格式应为 YYYY-MM-DD / the date must be YYYY-MM-DD, got {text!r}") from None


def report_csv(report: ReconciliationReport) -> str:
    """Every line that is not plainly matched (differences, cross-midnight and pending lines), one per row."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for provider in report.providers:
        if not provider.available:
            writer.writerow([provider.provider, "STATEMENT_UNAVAILABLE", "对账单不可用", "", "", "", "", "", "", "",
                             "", "", "", "", provider.reason])
        for line in provider.lines:
            if line.line_class == LineClass.MATCHED:
                continue
            writer.writerow([line.provider, line.line_class, LineClass.LABELS[line.line_class][0], line.kind,
                             line.order_no or "", line.out_trade_no, line.out_refund_no or "",
                             line.transaction_id or "", _fen_text(line.channel_fen), _fen_text(line.ours_fen),
                             line.channel_time or "", line.ours_time or "", line.order_status or "",
                             "yes" if line.resolvable else "", line.note])
    return out.getvalue()


def write_report(report: ReconciliationReport, directory: Path) -> tuple[Path, Path]:
    """``<directory>/<date>.json`` (the whole report) and ``<date>.csv`` (UTF-8 with BOM, so a spreadsheet
    opens the Chinese correctly). Neither holds a patient's name, a card number or a key."""
    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / f"{report.bill_date.isoformat()}.json"
    csv_path = directory / f"{report.bill_date.isoformat()}.csv"
    json_path.write_text(json.dumps(report.as_dict(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    csv_path.write_text(report_csv(report), encoding="utf-8-sig", newline="")
    return json_path, csv_path


def _yuan(fen: int) -> str:
    return f"¥{_fen_text(fen)}"


def format_summary(report: ReconciliationReport, resolutions: Sequence[Resolution] = ()) -> str:
    """The clerk's summary: per provider the two totals, then every line that is not plainly matched."""
    out = [f"对账日期 Reconciliation date: {report.bill_date.isoformat()} ({report.timezone})"]
    for p in report.providers:
        chinese, english = PROVIDER_LABELS.get(p.provider, (p.provider, p.provider))
        out.append("")
        if not p.available:
            out.append(f"[{chinese} {english}] 对账单不可用 STATEMENT UNAVAILABLE — 未对账 not reconciled")
            out.append(f"  原因 Reason: {p.reason}")
            continue
        state = "平账 all matched" if not p.differences else f"差异 {len(p.differences)} 笔 differences"
        out.append(f"[{chinese} {english}] {state}")
        for side, totals in (("渠道 Channel", p.channel), ("本方 Ours   ", p.ours)):
            out.append(f"  {side}: 收款 payments {totals.pay_count} 笔 {_yuan(totals.pay_fen)}  "
                       f"退款 refunds {totals.refund_count} 笔 {_yuan(totals.refund_fen)}  "
                       f"净额 net {_yuan(totals.net_fen)}")
        out.append(f"  平账 matched: {p.count(LineClass.MATCHED)}  跨日 across midnight: "
                   f"{p.count(LineClass.CROSS_DAY)}  待次日 pending: {p.count(LineClass.PENDING_NEXT_DAY)}")
        for line in p.lines:
            if line.line_class == LineClass.MATCHED:
                continue
            amounts = "  ".join(part for part in (
                f"渠道 channel {_yuan(line.channel_fen)}" if line.channel_fen is not None else "",
                f"本方 ours {_yuan(line.ours_fen)}" if line.ours_fen is not None else "") if part)
            refund = f" 退款单 {line.out_refund_no}" if line.kind == "REFUND" and line.out_refund_no else ""
            out.append(f"  - {line.label()}: {line.kind} {line.out_trade_no}{refund}"
                       f"{'  订单 order ' + line.order_no if line.order_no else ''}"
                       f"{'  [' + line.order_status + ']' if line.order_status else ''}  {amounts}"
                       f"{'  — ' + line.note if line.note else ''}")
    if resolutions:
        out.append("")
        out.append("自动处理 Resolved by asking the channel:")
        for r in resolutions:
            out.append(f"  - {r.provider} {r.out_trade_no}: {r.outcome}"
                       f"{'  订单 order ' + r.order_no if r.order_no else ''}"
                       f"{'  → ' + r.order_status if r.order_status else ''}{'  ' + r.note if r.note else ''}")
    out.append("")
    verdict = {0: "结果 Result: 全部平账 everything matched",
               1: f"结果 Result: 有差异 {len(report.differences)} 笔，请核对 differences to check",
               2: "结果 Result: 对账单不可用，当日未完成对账 "
                  "a statement could not be had; the day is not reconciled"}
    out.append(verdict[report.exit_status])
    return "\n".join(out)


def run_command(svc: Services, bill_date_text: str | None, *, provider: str | None = None,
                out_dir: Path | None = None, resolve_lost: bool = False) -> int:
    """``kiosk-central reconcile``: print the summary, write the JSON and CSV, return the exit status
    (0 matched, 1 differences, 2 statement unavailable, 3 bad input)."""
    try:
        bill_date = parse_bill_date(bill_date_text)
        providers = [provider] if provider else None
        report = reconcile(svc, bill_date, providers=providers)
    except (ValueError, TypeError) as exc:
        print(f"kiosk-central reconcile: {exc}", file=sys.stderr)
        return 3
    resolutions: list[Resolution] = []
    if resolve_lost:
        resolutions = resolve(svc, report)
        if any(r.outcome == "APPLIED" for r in resolutions):
            report = reconcile(svc, bill_date, providers=providers)
    directory = out_dir or Path(svc.settings.data_dir) / "reconciliation"
    json_path, csv_path = write_report(report, directory)
    print(format_summary(report, resolutions))
    print(f"报告 Report: {json_path}  差异明细 Differences: {csv_path}")
    return report.exit_status
