"""The contract every payment channel implements, and the three ways a channel call can fail.

The failure classes encode the money-safety rules: a ``ChannelError`` is a definite answer from the provider;
``ChannelUnavailable`` means the outcome is unknown and must be resolved by querying later, never treated as a
failure; ``SignatureError`` means a message claims to come from the provider but cannot be proven to, so
nothing in it may be acted on.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime

#: Trade states shared by all channels (WeChat Pay's names, which the others map onto).
TRADE_STATES = frozenset({"SUCCESS", "NOTPAY", "CLOSED", "USERPAYING", "REFUND", "PAYERROR"})


@dataclass(frozen=True)
class TradeState:
    """What the channel says about one trade, reduced to what order handling needs."""

    out_trade_no: str
    state: str  # "SUCCESS" | "NOTPAY" | "CLOSED" | "USERPAYING" | "REFUND" | "PAYERROR"
    transaction_id: str | None
    amount_fen: int | None
    success_time: str | None

    @property
    def paid(self) -> bool:
        """A refunded trade was paid first: both mean the money arrived once."""
        return self.state in ("SUCCESS", "REFUND")


@dataclass(frozen=True)
class BillLine:
    """One line of a channel's daily statement, for reconciliation against our own payments and refunds."""

    out_trade_no: str
    transaction_id: str
    kind: str  # "PAY" | "REFUND"
    amount_fen: int  # positive for both kinds; `kind` says which way the money went
    time: str  # as the channel states it (RFC 3339 or "YYYY-MM-DD HH:MM:SS" in China time)
    out_refund_no: str | None = None


class ChannelError(Exception):
    """The channel answered and said no; ``code`` is the provider's error code, kept for reconciliation."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class ChannelUnavailable(Exception):
    """No trustworthy answer (network, timeout, server error): the outcome is unknown, query again later."""


class SignatureError(Exception):
    """A response or notification whose signature does not verify: it must be refused, not interpreted."""


class PaymentChannel(ABC):
    """One payment provider, as seen by the order logic.

    Every method is idempotent on the merchant's own numbers (``out_trade_no``, ``out_refund_no``), so a call
    whose outcome was unknown may simply be repeated.
    """

    @abstractmethod
    def create_native(self, out_trade_no: str, description: str, amount_fen: int, notify_url: str,
                      time_expire: datetime) -> str:
        """Open a trade paid by scanning a QR code; returns the code URL to draw on the screen."""

    @abstractmethod
    def query(self, out_trade_no: str) -> TradeState:
        """The authoritative state of a trade: what decides a payment whose outcome was unknown."""

    @abstractmethod
    def close(self, out_trade_no: str) -> None:
        """Stop a trade from being paid later (patient walked away, order expired)."""

    @abstractmethod
    def refund(self, out_trade_no: str, out_refund_no: str, refund_fen: int, total_fen: int,
               reason: str) -> str:
        """Ask for money back; returns the provider's refund status (e.g. "PROCESSING", "SUCCESS")."""

    @abstractmethod
    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> TradeState:
        """Verify and decode an asynchronous notification; raises SignatureError for anything unproven."""

    # Optional capabilities: a channel that lacks one says so by raising NotImplementedError, and the order
    # logic offers only what the channel can do.

    def pay_by_code(self, out_trade_no: str, description: str, amount_fen: int, auth_code: str) -> TradeState:
        """Charge the payment code the patient's phone shows (scanned at the kiosk). "USERPAYING" means the
        patient must confirm on the phone: poll `query` until the deadline, then `reverse`."""
        raise NotImplementedError(f"{type(self).__name__} does not take payment codes")

    def reverse(self, out_trade_no: str) -> None:
        """Undo a code payment whatever its state (WeChat "reverse", Alipay "cancel"): close it if unpaid,
        refund it if the patient confirmed at the last second. Idempotent."""
        raise NotImplementedError(f"{type(self).__name__} cannot reverse")

    def query_refund(self, out_refund_no: str) -> str:
        """A refund's status: "PROCESSING", "SUCCESS", "CLOSED" or "ABNORMAL"."""
        raise NotImplementedError(f"{type(self).__name__} cannot query refunds")

    def download_bill(self, bill_date: date) -> list[BillLine]:
        """The channel's statement for one day (China time), for reconciliation."""
        raise NotImplementedError(f"{type(self).__name__} has no daily statement")
