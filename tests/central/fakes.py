"""An in-memory payment channel for order-rule tests: pay, lose answers, or refuse, on command."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from central.payments.channel import ChannelError, ChannelUnavailable, PaymentChannel, SignatureError, TradeState


@dataclass
class FakeTrade:
    out_trade_no: str
    amount_fen: int
    notify_url: str
    time_expire: datetime
    state: str = "NOTPAY"
    transaction_id: str | None = None
    refunds: dict[str, int] = field(default_factory=dict)


class FakeChannel(PaymentChannel):
    def __init__(self) -> None:
        self.trades: dict[str, FakeTrade] = {}
        self.unavailable = False
        self.calls: list[tuple[str, str]] = []

    def _check(self, verb: str, out_trade_no: str) -> None:
        self.calls.append((verb, out_trade_no))
        if self.unavailable:
            raise ChannelUnavailable(f"{verb}: timeout")

    def pay(self, out_trade_no: str, amount_fen: int | None = None) -> TradeState:
        """The patient's phone pays; returns what a notification would carry."""
        trade = self.trades[out_trade_no]
        trade.state = "SUCCESS"
        trade.transaction_id = "4200" + out_trade_no
        if amount_fen is not None:
            trade.amount_fen = amount_fen
        return self._state(trade)

    def _state(self, trade: FakeTrade) -> TradeState:
        paid = trade.state in ("SUCCESS", "REFUND")
        return TradeState(out_trade_no=trade.out_trade_no, state=trade.state, transaction_id=trade.transaction_id,
                          amount_fen=trade.amount_fen, success_time="2026-01-01T10:00:00+08:00" if paid else None)

    def create_native(self, out_trade_no: str, description: str, amount_fen: int, notify_url: str,
                      time_expire: datetime) -> str:
        self._check("create", out_trade_no)
        trade = self.trades.setdefault(out_trade_no, FakeTrade(out_trade_no, amount_fen, notify_url, time_expire))
        if trade.state == "SUCCESS":
            raise ChannelError("ORDERPAID", "paid")
        return f"weixin://wxpay/bizpayurl?pr=fake-{out_trade_no}"

    def query(self, out_trade_no: str) -> TradeState:
        self._check("query", out_trade_no)
        trade = self.trades.get(out_trade_no)
        if trade is None:
            raise ChannelError("ORDER_NOT_EXIST", "no such trade")
        return self._state(trade)

    def close(self, out_trade_no: str) -> None:
        self._check("close", out_trade_no)
        trade = self.trades.get(out_trade_no)
        if trade is None:
            raise ChannelError("ORDER_NOT_EXIST", "no such trade")
        if trade.state in ("SUCCESS", "REFUND"):
            raise ChannelError("ORDERPAID", "paid")
        trade.state = "CLOSED"

    def refund(self, out_trade_no: str, out_refund_no: str, refund_fen: int, total_fen: int, reason: str) -> str:
        self._check("refund", out_trade_no)
        trade = self.trades[out_trade_no]
        trade.refunds[out_refund_no] = refund_fen
        trade.state = "REFUND"
        return "SUCCESS"

    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> TradeState:
        raise SignatureError("the fake channel accepts no notifications")
