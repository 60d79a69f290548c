"""Fakes for the card steps: a PC/SC reader and a PIN pad with the drivers' contracts, and the server's bank-card
and social-security-card rules (decline codes, one sale per key, lost answers, reversals) on top of the fake
backends of `fakes.py`. The real drivers are driven against their simulators in test_card_devices.py."""
from __future__ import annotations

from datetime import date
from typing import Any, Callable

from drivers.health import Health
from drivers.pcsc.cards import BankCard, SocialSecurityCard
from drivers.pcsc.errors import CardError, CardRefusedError, NoCardError
from drivers.pinpad.base import KeyEvent, KeyKind, Outcome, PinPadDisconnectedError, PinPadRefusedError, PinResult
from drivers.pinpad.protocol import ST_NO_KEY
from workflows.backend import BackendError, BackendUnavailable

from .fakes import VOUCHER, FakeAppointmentBackend, FakeBackend, FakeBillBackend

PAN = "6222021234567890128"
BANK_CARD = BankCard(pan=PAN, expiry=date(2030, 12, 31), label="UnionPay Debit")
OLD_CARD = BankCard(pan="6210810000000000017", expiry=date(2020, 1, 31))
SOCIAL_CARD = SocialSecurityCard(card_number="A12345678", name="张三", id_number="11010519491231002X")
RIGHT_BLOCK = bytes.fromhex("11" * 16)  # what the fake pad sends for the right PIN
WRONG_BLOCK = bytes.fromhex("22" * 16)
WORKING_KEY = {"terminal_id": "KIOSK-T01", "algorithm": "sm4", "encrypted_key": "AB" * 16, "check_value": "0A0B0C0D"}


class FakeCardReader:
    """`card` is what is in the slot: a card, a `CardError` to raise on reading, or None."""

    def __init__(self, card: Any = None) -> None:
        self.card = card
        self.health_now = Health.ok()
        self.reads: list[str] = []

    def health(self) -> Health:
        return self.health_now

    def card_present(self) -> bool:
        return self.card is not None

    def _read(self, kind: type) -> Any:
        self.reads.append(kind.__name__)
        if self.card is None:
            raise NoCardError("no card in the fake reader")
        if isinstance(self.card, CardError):
            raise self.card
        if not isinstance(self.card, kind):
            raise CardRefusedError("the application is not on this card", sw=0x6A82)
        return self.card

    def read_bank_card(self, today: date | None = None) -> BankCard:
        return self._read(BankCard)

    def read_social_security_card(self) -> SocialSecurityCard:
        return self._read(SocialSecurityCard)


class FakePinPad:
    """`entries` are what the next patients do at the pad: "right", "wrong" (a PIN the bank declines),
    "cancel", "timeout" or "unplugged". A pad `needs_key` refuses an entry until a working key is loaded."""

    def __init__(self, *entries: str, needs_key: bool = False) -> None:
        self.entries = list(entries)
        self.needs_key = needs_key
        self.keys: list[tuple[bytes, bytes]] = []
        self.pans: list[str] = []
        self.health_now = Health.ok()

    def health(self) -> Health:
        return self.health_now

    def load_working_key(self, encrypted_key: bytes, check_value: bytes) -> None:
        self.keys.append((encrypted_key, check_value))

    def read_pin(self, pan: str, *, min_length: int = 6, max_length: int = 6, timeout: float = 30.0,
                 on_key: Callable[[KeyEvent], None] | None = None) -> PinResult:
        if self.needs_key and not self.keys:
            raise PinPadRefusedError(ST_NO_KEY, "no working key is loaded")
        self.pans.append(pan)
        entry = self.entries.pop(0) if self.entries else "right"
        if entry == "unplugged":
            raise PinPadDisconnectedError("the PIN pad went away")
        if entry == "cancel":
            return PinResult(Outcome.CANCELLED)
        if entry == "timeout":
            return PinResult(Outcome.TIMED_OUT)
        for n in range(1, max_length + 1):
            if on_key:
                on_key(KeyEvent(KeyKind.DIGIT, n))
        return PinResult(Outcome.ENTERED, max_length, RIGHT_BLOCK if entry == "right" else WRONG_BLOCK, "sm4")


DECLINES = {"55": ("密码错误，请重新输入", "Wrong PIN; please try again"),
            "51": ("卡内余额不足，请换卡或选择其他支付方式", "Insufficient funds; use another card or payment method")}


class CardPayments:
    """The server's bank-card rules for a fake backend: one sale per key (the same key again is a query),
    the issuer's answer by PIN block, `card_declines` for the next sales' response codes, `lose_answers`
    for answers the network loses after the server acted, `bank_silent` for sales the server itself heard
    nothing about (it reverses them and answers 503), and the left-method rule for going back to the QR."""

    def __init__(self, journal: Any = None) -> None:
        super().__init__(journal)  # type: ignore[call-arg]
        self.card_requests: list[dict[str, Any]] = []  # every card sent, as the server received it
        self.card_charges: list[str] = []  # keys of approved sales: money taken
        self.card_keys: dict[str, str] = {}  # key -> "APPROVED" | "DECLINED" | "REVERSED"
        self.card_declines: list[str] = []
        self.lose_answers = 0
        self.bank_silent = 0
        self.sign_ons = 0

    def card_sign_on(self) -> dict[str, Any]:
        self._call("card_sign_on")  # type: ignore[attr-defined]
        self.sign_ons += 1
        return dict(WORKING_KEY)

    def pay(self, order_no: str, channel: str, idempotency_key: str, auth_code: str | None = None,
            card: dict[str, Any] | None = None) -> dict[str, Any]:
        order = self.orders[order_no]  # type: ignore[attr-defined]
        if channel != "unionpay_card":
            if order.get("payment_method") == "unionpay_card" and channel.endswith("_native"):
                self._call("pay", order_no, channel, idempotency_key)  # type: ignore[attr-defined]
                raise BackendError("CHANNEL_MISMATCH", "该支付方式已取消，请取消订单后重新下单",
                                   "That payment method was left; cancel the order and start again")
            return super().pay(order_no, channel, idempotency_key, auth_code)  # type: ignore[misc]
        self._call("pay", order_no, channel, idempotency_key)  # type: ignore[attr-defined]
        assert card is not None
        self.card_requests.append(dict(card))
        if idempotency_key in self.card_keys:  # the same key again: what the first request did
            return self._answer(order)
        if order["status"] != "AWAITING_PAYMENT":
            return dict(order)
        order["payment_method"] = "unionpay_card"
        if order.get("insurance"):
            order["insurance"]["state"] = "SUCCESS"
        if self.bank_silent:
            self.bank_silent -= 1
            self.card_keys[idempotency_key] = "REVERSED"
            order["payment"] = {"channel": "unionpay_card", "state": "CLOSED", "card": _masked(card["pan"])}
            raise BackendUnavailable("pay: HTTP 503")
        code = self.card_declines.pop(0) if self.card_declines else (
            "00" if card["pin_block"] == RIGHT_BLOCK.hex().upper() else "55")
        if code != "00":
            self.card_keys[idempotency_key] = "DECLINED"
            order["payment"] = {"channel": "unionpay_card", "state": "PAYERROR", "card": _masked(card["pan"])}
            zh, en = DECLINES.get(code, ("银行卡交易未成功", "Declined"))
            raise BackendError("CARD_DECLINED", zh, en, {"response_code": code})
        self.card_keys[idempotency_key] = "APPROVED"
        self.card_charges.append(idempotency_key)
        order["payment"] = {"channel": "unionpay_card", "state": "SUCCESS", "card": _masked(card["pan"])}
        self.phone_pays(order_no)  # type: ignore[attr-defined]
        if self.lose_answers:
            self.lose_answers -= 1
            raise BackendUnavailable("pay: ReadTimeout")
        return self._answer(order)

    @staticmethod
    def _answer(order: dict[str, Any]) -> dict[str, Any]:
        return dict(order, payment=dict(order.get("payment") or {}))

    def presettle_insurance(self, order_no: str, credential: str, number: str) -> dict[str, Any]:
        if credential == "social_security_card":  # the card's number stands for the e-voucher of the same person
            if number != SOCIAL_CARD.card_number:
                self._call("presettle_insurance", order_no, credential)  # type: ignore[attr-defined]
                raise BackendError("INSURANCE_CREDENTIAL_INVALID", "医保凭证无效", "Not valid")
            number = VOUCHER
        return super().presettle_insurance(order_no, credential, number)  # type: ignore[misc]


def _masked(pan: str) -> str:
    return pan[:6] + "*" * (len(pan) - 10) + pan[-4:]


class FakeCardBackend(CardPayments, FakeBackend):
    pass


class FakeCardBillBackend(CardPayments, FakeBillBackend):
    pass


class FakeCardAppointmentBackend(CardPayments, FakeAppointmentBackend):
    pass
