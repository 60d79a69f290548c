"""The paying part every service shares once its order exists: the QR on screen, a payment code shown instead,
polling while money is in flight, closing the order when the patient leaves, and reading the order's status.

The money rules (docs/money-safety.md) live here once: the kiosk decides nothing about money; leaving a screen
with an open order asks the server to close it and the server's answer decides (a payment that arrived first
is honoured); a payment code is charged under its own idempotency key, and an answer that never came is asked
again with that key, which makes the server query rather than charge twice.

A service mixes this in before `JournaledService`, names its states `awaiting_payment`, `paying_by_code`,
`cancelling` and `fulfilling`, keeps `order`, `pay_key`, `code_key` and `paid_at` on its session, and words
its own messages (`PAYMENT_TEXT`). The bank card next to the QR comes with it (workflows.card_payment): a service
adds `CARD_STATES` and `card_transitions()` to its machine.
"""
from __future__ import annotations

import logging
import uuid
from typing import Any, Callable, ClassVar

from transitions import EventData

from workflows.backend import BackendError, BackendUnavailable
from workflows.card_payment import QR_LEFT, QR_OFFLINE, TAKE_CARD, CardSteps

log = logging.getLogger(__name__)

#: The payment method a scanned code pays with (drivers.scanner.classify kinds).
CODE_METHODS = {"wechat_pay": "wechat_code", "alipay": "alipay_code"}
#: States in which the order is asked about every `poll_interval`.
POLLED = ("awaiting_payment", "cancelling", "fulfilling", "card_inserting")
#: States besides a service's PAID_FROM from which a paid order moves on (the bank card's waiting screen).
CARD_PAID_FROM = ("card_inserting",)


class PaymentSteps(CardSteps):
    """Mixin for a `JournaledService` whose session has `order`, `pay_key`, `code_key` and `paid_at`."""

    #: States from which a paid order moves on to fulfilment.
    PAID_FROM: ClassVar[tuple[str, ...]] = ("awaiting_payment", "cancelling")
    #: The patient's words for the ends of a payment: "closed" (timed out), "refunded" (the HIS refused),
    #: "slow" (paid, the HIS is slow; formatted with the order number as {no}), each (Chinese, English).
    PAYMENT_TEXT: ClassVar[dict[str, tuple[str, str]]] = {}

    def __init__(self, *args: Any, qr_channel: str = "wechat_native", **kwargs: Any):
        self.qr_channel = qr_channel  # the method whose QR the kiosk shows: the terminal's `payment_qr`
        self._last_poll = 0.0
        super().__init__(*args, **kwargs)

    def _create_order(self, create: Callable[[], Any],
                      refused: Callable[[BackendError], bool] = lambda exc: False) -> None:
        """The creating_order step of every paying service. A device that broke while the patient was choosing
        stops the visit before any money is asked for; a lost answer is asked again with the order's key;
        `refused` turns the refusals the service has a screen for into its own trigger (True when it did), the
        rest end the visit in the server's words. With no answer at all no QR was shown, so no one can pay an
        order the server may have made: it expires there, and a restarted kiosk cancels it at once
        (workflows.recovery finds it by the journaled key)."""
        usable, why, why_en = self.availability()  # type: ignore[attr-defined]
        if not usable:
            self._go("fail", message=why, message_en=why_en)  # type: ignore[attr-defined]
            return
        try:
            self.visit.order = self._retrying(create)  # type: ignore[attr-defined]
        except BackendError as exc:
            if not refused(exc):
                self._go("fail", message=exc.message, message_en=exc.message_en)  # type: ignore[attr-defined]
            return
        except BackendUnavailable:
            self._fail_offline()  # type: ignore[attr-defined]
            return
        self._go("order_created")  # type: ignore[attr-defined]

    def _slot_taken(self, exc: BackendError) -> bool:
        """SLOT_TAKEN while booking: back to the slots, with the ones still free."""
        if exc.code != "SLOT_TAKEN":
            return False
        self.visit.slot = None  # type: ignore[attr-defined]
        self._go("slot_taken", slots=exc.payload.get("slots", []), message=exc.message,  # type: ignore[attr-defined]
                 message_en=exc.message_en)
        return True

    def _enter_awaiting_payment(self, event: EventData) -> None:
        """Put the QR on screen (the order's self-pay part, in the terminal's QR method). Coming back from a
        code charge the QR is there already. Insurance covering everything needs no trade: the server may
        answer PAID or FULFILLED at once."""
        v: Any = self.visit  # type: ignore[attr-defined]
        self._last_poll = self.clock()  # type: ignore[attr-defined]
        if event.event.name == "code_answered":
            return
        v.notice = ("", "")
        back_from_card = event.event.name == "back"
        try:
            v.order = self._retrying(lambda: self.backend.pay(  # type: ignore[attr-defined]
                v.order["order_no"], self.qr_channel, v.pay_key))
        except BackendError as exc:
            if back_from_card:  # the QR's method was left for the card (the server's rule): stay with the card
                log.info("back to the QR refused (%s)", exc.code)
                self._go("qr_refused", message=QR_LEFT[0], message_en=QR_LEFT[1])  # type: ignore[attr-defined]
                return
            self._go("fail", message=exc.message, message_en=exc.message_en)  # type: ignore[attr-defined]
            return
        except BackendUnavailable:
            if back_from_card:  # the order may hold a card attempt: stay where the poll keeps asking about it
                self._go("qr_refused", message=QR_OFFLINE[0], message_en=QR_OFFLINE[1])  # type: ignore[attr-defined]
                return
            # No QR was shown, so no one can have paid: the order expires at the server, and a restarted
            # kiosk cancels it at once (workflows.recovery).
            self._fail_offline()  # type: ignore[attr-defined]
            return
        if back_from_card and self._card_present():
            v.notice = TAKE_CARD
        self._apply_order_status()

    def _new_code_key(self, event: EventData) -> None:
        self.visit.code_key = uuid.uuid4().hex  # type: ignore[attr-defined]

    def _payment_code(self, event: EventData) -> bool:
        return event.kwargs.get("kind") in CODE_METHODS and bool(event.kwargs.get("code"))

    def _poll(self) -> None:
        """While money is in flight the order is asked about every `poll_interval`."""
        if self.state not in POLLED:  # type: ignore[attr-defined]
            return
        now = self.clock()  # type: ignore[attr-defined]
        if now - getattr(self, "_last_poll", 0.0) < self.timeouts.poll_interval:  # type: ignore[attr-defined]
            return
        self._last_poll = now
        if self.state == "cancelling":  # type: ignore[attr-defined]
            self._close_order()
            return
        try:
            self.visit.order = self.backend.order(self.visit.order["order_no"])  # type: ignore[attr-defined]
        except (BackendError, BackendUnavailable) as exc:
            log.warning("order poll failed: %s", exc)  # the next tick asks again
            return
        self._apply_order_status()

    def _enter_paying_by_code(self, event: EventData) -> None:
        """Charge the code the patient showed. The server closes the QR's trade first, so the order cannot be
        paid twice; an answer that never came is asked again with the same key (it queries, never recharges)."""
        v: Any = self.visit  # type: ignore[attr-defined]
        method = CODE_METHODS[event.kwargs["kind"]]
        code = event.kwargs["code"]  # money: never journaled, logged or kept on the visit
        try:
            v.order = self._retrying(lambda: self.backend.pay(  # type: ignore[attr-defined]
                v.order["order_no"], method, v.code_key, auth_code=code))
        except BackendError as exc:
            v.notice = (exc.message, exc.message_en)
            self._go("code_answered")  # type: ignore[attr-defined]
            return
        except BackendUnavailable:
            v.notice = ("网络不稳定，正在确认付款结果，请勿重复付款", "Confirming the payment; please do not pay again")
            self._go("code_answered")  # type: ignore[attr-defined]
            return
        if v.order.get("status") in ("PAID", "FULFILLED"):
            self._go("paid")  # type: ignore[attr-defined]
            return
        if (v.order.get("payment") or {}).get("state") == "USERPAYING":
            v.notice = ("请在手机上确认付款", "Please confirm the payment on your phone")
        else:
            v.notice = ("付款未成功，请重试或扫码支付", "The payment did not go through; try again or scan the QR")
        self._go("code_answered")  # type: ignore[attr-defined]

    def _waited_too_long(self, paid_at: float | None) -> bool:
        return bool(self.clock() - (paid_at or 0) > self.timeouts.fulfilment)  # type: ignore[attr-defined]

    def _enter_cancelling(self, event: EventData) -> None:
        self._close_order()

    def _enter_fulfilling(self, event: EventData) -> None:
        self.visit.paid_at = self.clock()  # type: ignore[attr-defined]
        self._last_poll = self.clock()  # type: ignore[attr-defined]
        self._apply_order_status()

    def _close_order(self) -> None:
        try:
            self.visit.order = self.backend.cancel(self.visit.order["order_no"])  # type: ignore[attr-defined]
        except (BackendError, BackendUnavailable) as exc:
            log.warning("closing the order failed, retrying: %s", exc)  # never walk away unconfirmed
            return
        self._apply_order_status()

    def _apply_order_status(self) -> None:
        v: Any = self.visit  # type: ignore[attr-defined]
        state: str = self.state  # type: ignore[attr-defined]
        go = self._go  # type: ignore[attr-defined]
        status = v.order.get("status")
        if status in ("PAID", "FULFILLED") and (state in self.PAID_FROM or state in CARD_PAID_FROM):
            go("paid")
        elif status == "FULFILLED" and state == "fulfilling":
            go("fulfilled")
        elif status == "CLOSED":
            if state == "cancelling":
                go("closed")
            else:
                zh, en = self.PAYMENT_TEXT["closed"]
                go("fail", message=zh, message_en=en)
        elif status in ("REFUND_PENDING", "REFUNDED"):
            zh, en = self.PAYMENT_TEXT["refunded"]
            go("fail", message=zh, message_en=en)
        elif state == "fulfilling" and self._waited_too_long(v.paid_at):
            no = v.order.get("order_no", "")
            zh, en = self.PAYMENT_TEXT["slow"]
            go("fail", message=zh.format(no=no), message_en=en.format(no=no))
