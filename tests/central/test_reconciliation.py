"""Daily reconciliation against the real channels and their sandboxes: orders made and paid through
``central.orders``, statements downloaded from the WeChat Pay and Alipay sandboxes mounted in a live server.

The sandboxes date trades by the wall clock and serve no future day, so the day-boundary tests move the times
of one real trade on both sides (the sandbox's trade, our recorded times) to straddle midnight."""
from __future__ import annotations

import csv
import io
import json
import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from central import cli, orders
from central.his.tables import HisPatient
from central.models import Order, OrderEvent, OrderStatus, Payment
from central.reconciliation import (LineClass, ReconciliationReport, format_summary, parse_bill_date, reconcile,
                                    reconcile_and_resolve, report_csv, resolve)
from central.services import Services
from tests.central.conftest import LiveCentral, provision, wait_until

TERMINAL = "KIOSK-REC"
CHINA = timezone(timedelta(hours=8))


# --- helpers --------------------------------------------------------------------------------------------------

@dataclass
class Paid:
    order_no: str
    out_trade_no: str
    amount_fen: int


class Hospital:
    """The live server's services, its two sandboxes, and a supply of patients and slots."""

    def __init__(self, live: LiveCentral):
        self.live = live
        self.svc: Services = live.svc
        provision(self.svc, TERMINAL)
        with self.svc.sessions() as session:
            self._patients = list(session.scalars(select(HisPatient.patient_id).order_by(HisPatient.patient_id)))

    def sandbox(self, prefix: str) -> Any:
        app = self.live.server.config.app
        return next(route.app for route in app.routes if getattr(route, "path", None) == prefix)

    @property
    def wechat_trades(self) -> dict[str, Any]:
        return self.sandbox("/sandbox/wechatpay").state.trades

    @property
    def alipay_trades(self) -> dict[str, Any]:
        return self.sandbox("/sandbox/alipay").state.trades

    def simulate(self, provider: str, control: str, **body: Any) -> httpx.Response:
        prefix = "/sandbox/wechatpay" if provider == "wechat" else "/sandbox/alipay"
        response = httpx.post(f"{self.live.url}{prefix}/simulate/{control}", json=body, timeout=15)
        assert response.status_code == 200, response.text
        return response

    def open_order(self, method: str = "wechat_native") -> orders.Order:
        """A registration order with its QR trade open at the channel, for the next free patient."""
        svc, now = self.svc, self.svc.now()
        patient = self._patients.pop(0)
        slot = next(s for d in svc.his.list_doctors("JZNK", svc.today(), now)
                    for s in svc.his.list_free_slots("JZNK", d.code, svc.today(), now))
        order, _ = orders.create_registration_order(svc, TERMINAL, patient, slot.slot_id, uuid.uuid4().hex)
        return orders.start_payment(svc, TERMINAL, order.order_no, method, uuid.uuid4().hex)

    def pay(self, order: orders.Order) -> Paid:
        """The patient's phone pays the QR code (the notification goes wherever the sandbox is set to send it)."""
        payment = order.payment
        assert payment is not None and payment.code_url
        if payment.channel.startswith("wechat"):
            self.simulate("wechat", "pay", code_url=payment.code_url)
        else:
            self.simulate("alipay", "pay", qr_code=payment.code_url)
        return Paid(order.order_no, payment.out_trade_no, payment.amount_fen or order.amount_fen)

    def paid_and_fulfilled(self, method: str = "wechat_native") -> Paid:
        paid = self.pay(self.open_order(method))
        wait_until(lambda: orders.get_order(self.svc, paid.order_no).status == OrderStatus.FULFILLED)
        return paid

    def refund(self, paid: Paid) -> None:
        order = orders.request_refund(self.svc, TERMINAL, paid.order_no)
        assert order.status == OrderStatus.REFUNDED

    def today(self) -> date:
        return datetime.now(CHINA).date()


@pytest.fixture
def hospital(live: LiveCentral) -> Hospital:
    return Hospital(live)


def the_day(hospital: Hospital, *out_trade_nos: str) -> date:
    """The China-time day the sandbox booked these payments on; a test that straddled midnight is skipped
    rather than reconciled across two days it did not mean to."""
    days = {datetime.fromisoformat(hospital.wechat_trades[n].success_time).date() if n in hospital.wechat_trades
            else date.fromisoformat(hospital.alipay_trades[n].gmt_payment[:10]) for n in out_trade_nos}
    if len(days) != 1 or days != {hospital.today()}:
        pytest.skip("the payments straddled midnight China time")
    return days.pop()


def lines(report: ReconciliationReport, provider: str, line_class: str | None = None) -> list[Any]:
    result = next(p for p in report.providers if p.provider == provider)
    return [line for line in result.lines if line_class is None or line.line_class == line_class]


def classes(report: ReconciliationReport, provider: str, out_trade_no: str) -> list[str]:
    return sorted(line.line_class for line in lines(report, provider) if line.out_trade_no == out_trade_no)


def at_china(day: date, hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime.combine(day, time(hh, mm, ss), tzinfo=CHINA)


# --- everything matched ---------------------------------------------------------------------------------------

def test_a_day_of_payments_and_a_refund_all_match_on_both_channels(hospital: Hospital) -> None:
    first = hospital.paid_and_fulfilled("wechat_native")
    second = hospital.paid_and_fulfilled("wechat_native")
    hospital.refund(second)
    ali = hospital.paid_and_fulfilled("alipay_native")
    day = the_day(hospital, first.out_trade_no, second.out_trade_no, ali.out_trade_no)

    report = reconcile(hospital.svc, day)

    assert report.exit_status == 0 and report.differences == [] and report.unavailable == []
    wechat = next(p for p in report.providers if p.provider == "wechat")
    assert (wechat.channel.pay_count, wechat.channel.pay_fen) == (2, first.amount_fen + second.amount_fen)
    assert (wechat.channel.refund_count, wechat.channel.refund_fen) == (1, second.amount_fen)
    assert wechat.channel.as_dict() == wechat.ours.as_dict() and wechat.ours.net_fen == first.amount_fen
    assert classes(report, "wechat", second.out_trade_no) == [LineClass.MATCHED, LineClass.MATCHED]
    refund_line = next(line for line in lines(report, "wechat") if line.kind == "REFUND")
    assert refund_line.out_refund_no == second.order_no + "RF" and refund_line.order_status == "REFUNDED"
    alipay = next(p for p in report.providers if p.provider == "alipay")
    assert alipay.channel.as_dict() == alipay.ours.as_dict() == {
        "pay_count": 1, "pay_fen": ali.amount_fen, "refund_count": 0, "refund_fen": 0, "net_fen": ali.amount_fen}
    assert classes(report, "alipay", ali.out_trade_no) == [LineClass.MATCHED]
    assert "全部平账 everything matched" in format_summary(report)

    # One provider only, on request.
    only = reconcile(hospital.svc, day, providers=["alipay"])
    assert [p.provider for p in only.providers] == ["alipay"]
    assert {p.provider for p in report.providers} == {"wechat", "alipay"}  # the channels with a statement
    with pytest.raises(ValueError, match="not configured"):
        reconcile(hospital.svc, day, providers=["paypal"])


# --- 长款 from a lost notification, settled by the resolver ----------------------------------------------------

@pytest.mark.parametrize("provider, method", [("wechat", "wechat_native"), ("alipay", "alipay_native")])
def test_a_lost_notification_is_long_money_until_the_resolver_asks(hospital: Hospital, provider: str,
                                                                   method: str) -> None:
    matched = hospital.paid_and_fulfilled(method)
    if provider == "wechat":
        hospital.simulate("wechat", "notifications", mode="drop")
    else:
        hospital.simulate("alipay", "notify/drop", count=-1)
    lost = hospital.pay(hospital.open_order(method))
    day = the_day(hospital, matched.out_trade_no, lost.out_trade_no)
    assert orders.get_order(hospital.svc, lost.order_no).status == OrderStatus.AWAITING_PAYMENT

    report = reconcile(hospital.svc, day, providers=[provider])

    assert report.exit_status == 1
    assert classes(report, provider, lost.out_trade_no) == [LineClass.CHANNEL_ONLY, LineClass.UNDELIVERED]
    long_line = lines(report, provider, LineClass.CHANNEL_ONLY)[0]
    assert long_line.resolvable and long_line.order_no == lost.order_no and long_line.ours_fen is None
    assert long_line.channel_fen == lost.amount_fen and long_line.order_status == OrderStatus.AWAITING_PAYMENT
    result = report.providers[0]
    assert (result.channel.pay_count, result.ours.pay_count) == (2, 1)
    assert result.channel.pay_fen - result.ours.pay_fen == lost.amount_fen
    assert classes(report, provider, matched.out_trade_no) == [LineClass.MATCHED]

    resolutions = resolve(hospital.svc, report)

    assert [(r.out_trade_no, r.outcome, r.order_status) for r in resolutions] == [
        (lost.out_trade_no, "APPLIED", OrderStatus.FULFILLED)]
    events = [e for e in orders.order_events(hospital.svc, lost.order_no) if e.event == "PAID"]
    assert len(events) == 1 and events[0].actor == "system:reconciliation"
    again = reconcile(hospital.svc, day, providers=[provider])
    assert again.exit_status == 0 and again.providers[0].channel.as_dict() == again.providers[0].ours.as_dict()
    assert resolve(hospital.svc, again) == []  # nothing left to resolve, nothing done twice


def test_the_resolver_changes_nothing_when_the_channel_gives_no_answer(hospital: Hospital) -> None:
    hospital.simulate("wechat", "notifications", mode="drop")
    lost = hospital.pay(hospital.open_order())
    day = the_day(hospital, lost.out_trade_no)
    report = reconcile(hospital.svc, day)
    hospital.simulate("wechat", "fault", kind="error500", path="/v3/pay/transactions/out-trade-no", times=1)

    resolutions = resolve(hospital.svc, report)

    assert [(r.outcome, r.order_status) for r in resolutions] == [("NO_ANSWER", OrderStatus.AWAITING_PAYMENT)]
    assert orders.get_order(hospital.svc, lost.order_no).status == OrderStatus.AWAITING_PAYMENT
    report, resolutions = reconcile_and_resolve(hospital.svc, day)  # the scheduled job, next time round
    assert [r.outcome for r in resolutions] == ["APPLIED"] and report.exit_status == 0


def test_a_trade_that_is_not_ours_is_long_money_for_the_clerk(hospital: Hospital) -> None:
    paid = hospital.paid_and_fulfilled()
    day = the_day(hospital, paid.out_trade_no)
    statement = httpx.get(f"{hospital.live.url}/sandbox/wechatpay/simulate/bill",
                          params={"bill_date": day.isoformat()}, timeout=15).text
    # The same statement with our trade number replaced: a payment to the merchant account we never opened.
    foreign = statement.replace(paid.out_trade_no, "XX" + paid.out_trade_no[2:])
    hospital.simulate("wechat", "bill", bill_date=day.isoformat(), content=foreign)

    report = reconcile(hospital.svc, day, providers=["wechat"])

    assert report.exit_status == 1
    assert classes(report, "wechat", "XX" + paid.out_trade_no[2:]) == [LineClass.CHANNEL_ONLY]
    assert not lines(report, "wechat", LineClass.CHANNEL_ONLY)[0].resolvable
    assert classes(report, "wechat", paid.out_trade_no) == [LineClass.OURS_ONLY]  # 短款: ours, not on the bill
    assert resolve(hospital.svc, report) == []  # a stranger's trade is never "applied" to an order


# --- amount and refund differences, and the invariant breaker ----------------------------------------------------

def test_amount_differs_and_money_taken_without_delivery(hospital: Hospital) -> None:
    order = hospital.open_order()
    assert order.payment is not None
    hospital.wechat_trades[order.payment.out_trade_no].total += 100  # the channel charged one yuan more
    wrong = hospital.pay(order)
    wait_until(lambda: any(e.event == "AMOUNT_MISMATCH" for e in orders.order_events(hospital.svc, wrong.order_no)))
    day = the_day(hospital, wrong.out_trade_no)

    report = reconcile(hospital.svc, day, providers=["wechat"])

    assert report.exit_status == 1
    assert classes(report, "wechat", wrong.out_trade_no) == [LineClass.AMOUNT_MISMATCH, LineClass.UNDELIVERED]
    mismatch = lines(report, "wechat", LineClass.AMOUNT_MISMATCH)[0]
    assert (mismatch.channel_fen, mismatch.ours_fen) == (wrong.amount_fen + 100, wrong.amount_fen)
    undelivered = lines(report, "wechat", LineClass.UNDELIVERED)[0]
    assert undelivered.order_status == OrderStatus.AWAITING_PAYMENT and "AWAITING_PAYMENT" in undelivered.note
    assert resolve(hospital.svc, report) == []  # an amount difference is the clerk's, never fixed by itself
    assert orders.get_order(hospital.svc, wrong.order_no).status == OrderStatus.AWAITING_PAYMENT


def test_the_resolver_records_a_wrong_amount_and_leaves_it_to_the_clerk(hospital: Hospital) -> None:
    hospital.simulate("wechat", "notifications", mode="drop")
    order = hospital.open_order()
    assert order.payment is not None
    hospital.wechat_trades[order.payment.out_trade_no].total -= 1  # one fen short, and nobody heard of it
    short = hospital.pay(order)
    day = the_day(hospital, short.out_trade_no)
    report = reconcile(hospital.svc, day, providers=["wechat"])
    assert classes(report, "wechat", short.out_trade_no) == [LineClass.CHANNEL_ONLY, LineClass.UNDELIVERED]

    resolutions = resolve(hospital.svc, report)

    assert [(r.outcome, r.order_status) for r in resolutions] == [("AMOUNT_DIFFERS", OrderStatus.AWAITING_PAYMENT)]
    assert orders.get_order(hospital.svc, short.order_no).status == OrderStatus.AWAITING_PAYMENT
    after = reconcile(hospital.svc, day, providers=["wechat"])
    assert classes(after, "wechat", short.out_trade_no) == [LineClass.AMOUNT_MISMATCH, LineClass.UNDELIVERED]
    assert resolve(hospital.svc, after) == []


def test_a_paid_order_stuck_before_the_his_is_reported(hospital: Hospital) -> None:
    paid = hospital.paid_and_fulfilled()
    day = the_day(hospital, paid.out_trade_no)
    with hospital.svc.sessions() as session, session.begin():  # as if the HIS had never confirmed it
        session.execute(update(Order).where(Order.order_no == paid.order_no).values(status=OrderStatus.PAID))

    report = reconcile(hospital.svc, day, providers=["wechat"])

    assert classes(report, "wechat", paid.out_trade_no) == [LineClass.MATCHED, LineClass.UNDELIVERED]
    assert report.exit_status == 1


def test_refund_on_one_side_only(hospital: Hospital) -> None:
    ours_only = hospital.paid_and_fulfilled()
    hospital.refund(ours_only)
    theirs_only = hospital.paid_and_fulfilled()
    day = the_day(hospital, ours_only.out_trade_no, theirs_only.out_trade_no)
    trades = hospital.wechat_trades
    refund = trades[ours_only.out_trade_no].refunds.pop(ours_only.order_no + "RF")  # the channel never booked it
    refund["out_refund_no"] = "MANUAL-RF-1"  # and a refund made by hand at the merchant platform instead
    trades[theirs_only.out_trade_no].refunds["MANUAL-RF-1"] = {**refund, "out_trade_no": theirs_only.out_trade_no}

    report = reconcile(hospital.svc, day, providers=["wechat"])

    assert report.exit_status == 1
    assert classes(report, "wechat", ours_only.out_trade_no) == [LineClass.MATCHED, LineClass.REFUND_OURS_ONLY]
    assert classes(report, "wechat", theirs_only.out_trade_no) == [LineClass.MATCHED,
                                                                   LineClass.REFUND_CHANNEL_ONLY]
    manual = lines(report, "wechat", LineClass.REFUND_CHANNEL_ONLY)[0]
    assert manual.out_refund_no == "MANUAL-RF-1" and manual.order_status == OrderStatus.FULFILLED
    result = report.providers[0]
    assert result.channel.refund_count == result.ours.refund_count == 1
    assert resolve(hospital.svc, report) == []


def test_a_bill_item_refund_matches_with_its_partial_amount(hospital: Hospital) -> None:
    from central import bill_orders

    svc = hospital.svc
    patient, bill = next((p, b) for p in hospital._patients for b in svc.his.list_bills(p) if len(b.items) > 1)
    order, _ = bill_orders.create_bill_order(svc, TERMINAL, patient, bill.bill_no, uuid.uuid4().hex)
    order = orders.start_payment(svc, TERMINAL, order.order_no, "wechat_native", uuid.uuid4().hex)
    paid = hospital.pay(order)
    wait_until(lambda: orders.get_order(svc, paid.order_no).status == OrderStatus.FULFILLED)
    item = orders.get_order(svc, paid.order_no).items[0]
    bill_orders.refund_items(svc, TERMINAL, paid.order_no, [item.item_id])
    day = the_day(hospital, paid.out_trade_no)

    report = reconcile(svc, day, providers=["wechat"])

    assert report.exit_status == 0, format_summary(report)
    refund = next(line for line in lines(report, "wechat") if line.kind == "REFUND")
    assert refund.line_class == LineClass.MATCHED and refund.out_refund_no == paid.order_no + "R1"
    assert refund.channel_fen == refund.ours_fen == item.amount_fen < paid.amount_fen


# --- statements that cannot be had -------------------------------------------------------------------------------

def test_a_corrupt_or_unavailable_statement_is_never_reported_as_matched(hospital: Hospital) -> None:
    wechat = hospital.paid_and_fulfilled("wechat_native")
    ali = hospital.paid_and_fulfilled("alipay_native")
    day = the_day(hospital, wechat.out_trade_no, ali.out_trade_no)

    hospital.simulate("wechat", "bill", corrupt_next=1)  # the file does not match its announced hash
    report = reconcile(hospital.svc, day)
    assert report.exit_status == 2 and [p.provider for p in report.unavailable] == ["wechat"]
    broken = report.unavailable[0]
    assert broken.lines == [] and broken.channel.pay_count == 0 and "hash" in broken.reason
    assert classes(report, "alipay", ali.out_trade_no) == [LineClass.MATCHED]  # the other channel still counts
    summary = format_summary(report)
    assert "对账单不可用 STATEMENT UNAVAILABLE" in summary and "全部平账" not in summary
    assert "STATEMENT_UNAVAILABLE" in report_csv(report)

    # A file that matches its hash but is not a statement: refused, not half-read.
    hospital.simulate("wechat", "bill", bill_date=day.isoformat(), content="交易时间,商户订单号\n`garbage\n")
    report = reconcile(hospital.svc, day, providers=["wechat"])
    assert report.exit_status == 2 and "INVALID_BILL" in report.unavailable[0].reason
    hospital.simulate("wechat", "reset")

    # Alipay's gateway failing: the outcome is unknown, so is the day.
    hospital.simulate("alipay", "fault", kind="http500", method="alipay.data.dataservice.bill.downloadurl.query")
    report = reconcile(hospital.svc, day)
    assert report.exit_status == 2 and [p.provider for p in report.unavailable] == ["alipay"]
    assert lines(report, "alipay") == [] and classes(report, "wechat", wechat.out_trade_no) == [LineClass.MATCHED]
    assert reconcile(hospital.svc, day).exit_status == 0  # the fault was one call: asked again, it matches


# --- the day boundary ----------------------------------------------------------------------------------------------

def test_a_trade_paid_at_235959_belongs_to_that_day_not_to_when_we_heard(hospital: Hospital) -> None:
    hospital.simulate("wechat", "notifications", mode="drop")
    late = hospital.pay(hospital.open_order())
    today = hospital.today()
    yesterday = today - timedelta(days=1)
    # The patient paid at 23:59:59; we heard of it only today, by asking.
    hospital.wechat_trades[late.out_trade_no].success_time = at_china(yesterday, 23, 59, 59).isoformat()

    report = reconcile(hospital.svc, yesterday, providers=["wechat"])
    assert classes(report, "wechat", late.out_trade_no) == [LineClass.CHANNEL_ONLY, LineClass.UNDELIVERED]
    assert [r.outcome for r in resolve(hospital.svc, report)] == ["APPLIED"]
    order = orders.get_order(hospital.svc, late.order_no)
    assert order.paid_at is not None and order.paid_at.astimezone(CHINA).date() == today  # we heard today

    settled = reconcile(hospital.svc, yesterday, providers=["wechat"])
    assert settled.exit_status == 0 and classes(settled, "wechat", late.out_trade_no) == [LineClass.MATCHED]
    assert settled.providers[0].ours.pay_count == 1
    todays = reconcile(hospital.svc, today, providers=["wechat"])
    assert lines(todays, "wechat") == [] and todays.providers[0].ours.pay_count == 0  # not counted twice


def test_a_refund_recorded_before_midnight_and_booked_after_is_pending_then_across_midnight(
        hospital: Hospital) -> None:
    paid = hospital.paid_and_fulfilled()
    hospital.refund(paid)
    today = hospital.today()
    yesterday = today - timedelta(days=1)
    # Paid yesterday evening; refund recorded by us at 23:58, booked by the channel at 00:00:30.
    trade = hospital.wechat_trades[paid.out_trade_no]
    trade.success_time = at_china(yesterday, 23, 30).isoformat()
    trade.refunds[paid.order_no + "RF"]["success_time"] = at_china(today, 0, 0, 30).isoformat()
    with hospital.svc.sessions() as session, session.begin():
        order_id = session.scalar(select(Order.id).where(Order.order_no == paid.order_no))
        session.execute(update(Payment).where(Payment.out_trade_no == paid.out_trade_no)
                        .values(success_time=trade.success_time))
        session.execute(update(OrderEvent).where(OrderEvent.order_id == order_id,
                                                 OrderEvent.event.in_(("TRADE_REFUNDED", "REFUNDED")))
                        .values(at=at_china(yesterday, 23, 58)))

    hospital.svc.clock = lambda: at_china(yesterday, 23, 59)  # the clerk closes the day before midnight
    report = reconcile(hospital.svc, yesterday, providers=["wechat"])
    assert report.exit_status == 0
    assert classes(report, "wechat", paid.out_trade_no) == [LineClass.MATCHED, LineClass.PENDING_NEXT_DAY]
    assert report.providers[0].ours.refund_count == 1 and report.providers[0].channel.refund_count == 0

    hospital.svc.clock = lambda: at_china(today + timedelta(days=1), 9, 0)  # the next day's statement is final
    report = reconcile(hospital.svc, yesterday, providers=["wechat"])
    assert report.exit_status == 0
    assert classes(report, "wechat", paid.out_trade_no) == [LineClass.CROSS_DAY, LineClass.MATCHED]
    next_day = reconcile(hospital.svc, today, providers=["wechat"])
    assert next_day.exit_status == 0 and classes(next_day, "wechat", paid.out_trade_no) == [LineClass.CROSS_DAY]

    # Had the channel not booked it the next day either, it is a real difference, not "pending" for ever.
    del trade.refunds[paid.order_no + "RF"]
    report = reconcile(hospital.svc, yesterday, providers=["wechat"])
    assert report.exit_status == 1
    missing = lines(report, "wechat", LineClass.REFUND_OURS_ONLY)
    assert len(missing) == 1 and str(today) in missing[0].note


def test_a_payment_we_dated_far_from_midnight_on_another_day_is_a_date_difference(hospital: Hospital) -> None:
    paid = hospital.paid_and_fulfilled()
    day = the_day(hospital, paid.out_trade_no)
    earlier = day - timedelta(days=1)
    with hospital.svc.sessions() as session, session.begin():  # our record says it was paid yesterday noon
        session.execute(update(Payment).where(Payment.out_trade_no == paid.out_trade_no)
                        .values(success_time=at_china(earlier, 12, 0).isoformat()))

    report = reconcile(hospital.svc, day, providers=["wechat"])
    assert report.exit_status == 1 and classes(report, "wechat", paid.out_trade_no) == [LineClass.DATE_DIFFERS]
    assert str(earlier) in lines(report, "wechat")[0].note
    old_day = reconcile(hospital.svc, earlier, providers=["wechat"])
    assert classes(old_day, "wechat", paid.out_trade_no) == [LineClass.OURS_ONLY]  # 短款 on that day


# --- input ---------------------------------------------------------------------------------------------------------

def test_bad_dates_are_refused_clearly(hospital: Hospital) -> None:
    for text in ("2026-13-01", "20261101", "yesterday", "", None, "2026-1-1"):
        with pytest.raises(ValueError, match="YYYY-MM-DD"):
            parse_bill_date(text)
    assert parse_bill_date("2026-02-28") == date(2026, 2, 28)
    with pytest.raises(ValueError, match="not begun"):
        reconcile(hospital.svc, hospital.svc.today() + timedelta(days=1))
    with pytest.raises(TypeError):
        reconcile(hospital.svc, datetime.now(CHINA))  # type: ignore[arg-type]


# --- the command line ------------------------------------------------------------------------------------------------

def run_cli(hospital: Hospital, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["--port", str(hospital.live.settings.port), "reconcile",
                     "--data-dir", str(hospital.live.settings.data_dir), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_clerks_command(hospital: Hospital, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    matched = hospital.paid_and_fulfilled()
    day = the_day(hospital, matched.out_trade_no)
    code, out, _ = run_cli(hospital, capsys, "--date", day.isoformat())
    assert code == 0 and "全部平账 everything matched" in out and "微信支付 WeChat Pay" in out
    written = hospital.live.settings.data_dir / "reconciliation" / f"{day.isoformat()}.json"
    document = json.loads(written.read_text(encoding="utf-8"))
    assert document["exit_status"] == 0 and document["bill_date"] == day.isoformat()
    wechat = next(p for p in document["providers"] if p["provider"] == "wechat")
    assert wechat["channel_totals"]["pay_fen"] == matched.amount_fen and wechat["lines"][0]["label"].startswith("平账")

    hospital.simulate("wechat", "notifications", mode="drop")
    lost = hospital.pay(hospital.open_order())
    if the_day(hospital, matched.out_trade_no, lost.out_trade_no) != day:
        pytest.skip("crossed midnight")
    code, out, _ = run_cli(hospital, capsys, "--date", day.isoformat(), "--provider", "wechat",
                           "--out", str(tmp_path / "out"))
    assert code == 1
    assert "长款 on the channel, not ours" in out and lost.out_trade_no in out and "已收款未履约" in out
    rows = list(csv.DictReader(io.StringIO((tmp_path / "out" / f"{day}.csv").read_text(encoding="utf-8-sig"))))
    assert sorted((r["class"], r["out_trade_no"]) for r in rows) == [
        ("CHANNEL_ONLY", lost.out_trade_no), ("UNDELIVERED", lost.out_trade_no)]
    long_row = next(r for r in rows if r["class"] == "CHANNEL_ONLY")
    assert long_row["类别"] == "长款" and long_row["channel_yuan"] == f"{lost.amount_fen / 100:.2f}"
    assert long_row["resolvable"] == "yes" and long_row["ours_yuan"] == ""

    code, out, _ = run_cli(hospital, capsys, "--date", day.isoformat(), "--resolve")
    assert code == 0 and "APPLIED" in out and "全部平账" in out
    assert orders.get_order(hospital.svc, lost.order_no).status == OrderStatus.FULFILLED

    hospital.simulate("wechat", "bill", corrupt_next=1)
    code, out, _ = run_cli(hospital, capsys, "--date", day.isoformat())
    assert code == 2 and "STATEMENT UNAVAILABLE" in out
    document = json.loads(written.read_text(encoding="utf-8"))
    assert next(p for p in document["providers"] if p["provider"] == "wechat")["statement_available"] is False

    keys = hospital.svc.wechatpay_keys
    assert keys is not None
    everything = out + written.read_text(encoding="utf-8")
    assert keys.apiv3_key not in everything and "PRIVATE KEY" not in everything

    code, out, err = run_cli(hospital, capsys, "--date", "2026/11/01")
    assert code == 3 and "YYYY-MM-DD" in err and out == ""
    code, _, err = run_cli(hospital, capsys)
    assert code == 3 and "YYYY-MM-DD" in err
