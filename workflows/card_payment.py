"""Cards at the payment screens (K1, K6): the bank card (银行卡) next to the QR, and the social-security card
(社保卡) at the outpatient bill's checkout.

Bank card: the patient taps "银行卡" on the payment screen → inserts the card (the screen draws where) → the
PC/SC reader reads PAN and expiry (`read_bank_card`, on the reader's thread) → "请在密码键盘上输入密码" while
the PIN pad runs the entry (`read_pin`; the kiosk sees a digit count, never a digit) → the sale goes to the
server as channel `unionpay_card` under a key of its own, made and journaled in the `pin_entered`
transition, before the request → approved: "请取回银行卡", then the order is fulfilled as after a QR payment;
declined (wrong PIN, insufficient funds): the server's words, and the patient tries again or goes back to the
QR. The money rules are the payment code's (workflows.payment_steps): an answer that never came is asked
again with the same key, which makes the server query the acquirer instead of charging again, and a sale
whose outcome the server itself could not learn is reversed by the server before it says "not charged".

What never leaves the visit's memory: the PAN, expiry and PIN block travel in the event that carries them
from one step to the next and in the one request that needs them; the journal holds the attempt's key only
(in the session's `code_key`: a card and a payment code are both charges made while the patient stands
here, and never run at the same time). Logs name a card by its last four digits at most.

Social-security card at the bill checkout: inserted (or, when it is still in the reader from identifying
the patient, "读取社保卡" tapped) → `read_social_security_card` → the insurance pre-settlement with
credential `social_security_card` → back to the checkout with the split; the self-pay rest is paid as
before.

The card reader and the PIN pad come from `self.peripherals` (in the kiosk, proxies that run each call on
the device's own thread); a service offers the bank card only while both are there and usable, and the
social-security card while the reader is.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any, Callable

from transitions import EventData

from drivers.pcsc.errors import CardError
from drivers.pinpad.base import KeyEvent, Outcome, PinPadRefusedError, PinResult
from drivers.pinpad.protocol import ST_NO_KEY
from workflows.backend import Backend, BackendError, BackendUnavailable
from workflows.view import View

log = logging.getLogger(__name__)

#: The server's name for a bank card read at the kiosk with its PIN from the PIN pad.
CARD_CHANNEL = "unionpay_card"
#: The bank-card steps, added by every paying service to its own states.
CARD_STATES = ["card_inserting", "card_reading", "card_pin", "card_paying", "card_taking"]
#: The outpatient checkout's social-security card read.
INSURANCE_CARD_STATE = "reading_insurance_card"
#: Screens that ask for a card in the PC/SC reader (kiosk_app.card_watch posts `card_inserted` there).
CARD_SCREENS = ("bank_card", "bill_checkout")

PIN_LENGTH = 6  # UnionPay PINs in China are six digits
#: Seconds the PIN pad waits for the patient; below the device proxy's 60 s so the pad ends the entry itself.
PIN_SECONDS = 45
#: Seconds the "take your card" screen waits for the card to come out before the visit goes on.
TAKE_CARD_SECONDS = 15.0

INSERT_BANK_CARD = ("请插入银行卡", "Please insert your bank card")
ENTER_PIN = ("请在密码键盘上输入密码", "Enter your PIN on the PIN pad")
TAKE_CARD = ("请取回银行卡", "Please take your bank card")
NOT_A_BANK_CARD = ("无法读取该卡，请确认插入的是银行卡（芯片朝上，插到底）",
                   "This card cannot be read. Please insert a bank card, chip up, all the way in.")
NOT_A_SOCIAL_CARD = ("无法读取该卡，请确认插入的是社保卡", "This card cannot be read. Please insert your "
                     "social-security card.")
CARD_EXPIRED = ("银行卡已过期，请换一张卡", "This card has expired; please use another card")
READER_DOWN = ("读卡器暂不可用，请改用扫码支付或联系工作人员",
               "The card reader is not available. Please pay by QR code or ask staff.")
PINPAD_DOWN = ("密码键盘暂不可用，请改用扫码支付或联系工作人员",
               "The PIN pad is not available. Please pay by QR code or ask staff.")
CARD_UNKNOWN = ("网络不稳定，正在向银行确认本次交易，请勿重复付款",
                "Confirming this card payment with the bank; please do not pay again.")
CARD_NOT_TAKEN = ("银行未确认本次交易，已撤销，未扣款。请重试或改用扫码支付",
                  "The bank did not confirm this payment; it was cancelled and nothing was taken. Try again or "
                  "pay by QR code.")
QR_LEFT = ("本单已开始用银行卡支付，不能再改用扫码。请继续用银行卡支付，或取消后重新办理",
           "This order is being paid by card and cannot go back to the QR code. Pay by card, or cancel and start "
           "again.")
QR_OFFLINE = ("网络不稳定，暂时无法显示二维码。请稍后再试，或继续用银行卡支付",
              "The network is unstable and the QR code cannot be shown now. Try again shortly, or pay by card.")
INSURANCE_APPLIED = ("医保报销金额已计算，请确认自付金额后支付", "Insurance has been applied. Check the amount left "
                     "for you to pay.")
INSURANCE_DOWN = ("医保系统暂时无响应，可稍后再试，或选择自费支付",
                  "Medical insurance is not answering. Try again later, or pay it yourself.")

#: What the patient reads when the reader could not read a card, by `CardError.reason`.
CARD_READ_TEXT: dict[str, tuple[str, str]] = {
    "no_card": INSERT_BANK_CARD,
    "card_removed": ("读卡过程中卡片被取出，请重新插卡", "The card came out while it was being read; insert it again"),
    "card_mute": ("卡片无响应，请取出卡片后重新插入", "The card does not answer; take it out and insert it again"),
    "card_data": NOT_A_BANK_CARD,
    "card_refused": NOT_A_BANK_CARD,
    "disconnected": READER_DOWN,
    "pcscd_unavailable": READER_DOWN,
}


def card_transitions() -> list[dict[str, Any]]:
    """The bank-card steps between the QR (`awaiting_payment`) and fulfilment, for every paying service.

    Only `card_inserting` waits for the patient; the reading, PIN and sale steps run to their end (the PIN pad
    has its own cancel key and time limit), so Cancel and the idle timeout are taken there: they close the
    order as on the QR screen, and the server's answer decides.
    """
    return [
        {"trigger": "pay_by_card", "source": "awaiting_payment", "dest": "card_inserting",
         "conditions": "_bank_card_usable"},
        {"trigger": "card_inserted", "source": "card_inserting", "dest": "card_reading"},
        {"trigger": "card_retry", "source": "card_inserting", "dest": "card_reading"},
        {"trigger": "bank_card_read", "source": "card_reading", "dest": "card_pin"},
        {"trigger": "card_unreadable", "source": "card_reading", "dest": "card_inserting"},
        # The attempt's key is made here, so the journal holds it before the sale is sent.
        {"trigger": "pin_entered", "source": "card_pin", "dest": "card_paying", "prepare": "_new_code_key"},
        {"trigger": "pin_not_entered", "source": "card_pin", "dest": "card_inserting"},
        {"trigger": "card_answered", "source": "card_paying", "dest": "card_inserting"},
        {"trigger": "card_approved", "source": "card_paying", "dest": "card_taking"},
        {"trigger": "card_removed", "source": "card_taking", "dest": "fulfilling"},
        {"trigger": "timeout", "source": "card_taking", "dest": "fulfilling"},
        # A payment that arrived while the patient stood at the card screen (the QR paid on a phone, or a lost
        # answer the poll found): honoured.
        {"trigger": "paid", "source": "card_inserting", "dest": "fulfilling"},
        {"trigger": "back", "source": "card_inserting", "dest": "awaiting_payment"},
        # Back to the QR refused by the server (the QR's method was left for the card): the card screen again.
        {"trigger": "qr_refused", "source": "awaiting_payment", "dest": "card_inserting"},
        {"trigger": "cancel", "source": "card_inserting", "dest": "cancelling"},
        {"trigger": "timeout", "source": "card_inserting", "dest": "cancelling"},
        {"trigger": "fail", "source": list(CARD_STATES), "dest": "failed"},
    ]


def insurance_card_transitions() -> list[dict[str, Any]]:
    """The social-security card at the outpatient checkout: read, pre-settle, back to the checkout."""
    return [
        {"trigger": "card_inserted", "source": "checkout", "dest": INSURANCE_CARD_STATE,
         "conditions": "_insurance_card_usable"},
        {"trigger": "use_insurance_card", "source": "checkout", "dest": INSURANCE_CARD_STATE,
         "conditions": "_insurance_card_usable"},
        {"trigger": "presettled", "source": INSURANCE_CARD_STATE, "dest": "checkout"},
        {"trigger": "fail", "source": INSURANCE_CARD_STATE, "dest": "failed"},
    ]


def sign_on_pinpad(backend: Backend, pinpad: Any) -> None:
    """签到: the acquirer's PIN working key for this terminal, encrypted under the pad's master key, loaded
    into the pad, which checks it against its check value. Raises what the server or the pad raised."""
    key = backend.card_sign_on()
    pinpad.load_working_key(bytes.fromhex(str(key["encrypted_key"])), bytes.fromhex(str(key["check_value"])))
    log.info("PIN pad signed on (%s working key)", key.get("algorithm", "?"))


def masked(pan: str) -> str:
    """How a card is named in a log line: its last four digits."""
    return "****" + pan[-4:]


def _read_text(exc: CardError, wrong_card: tuple[str, str]) -> tuple[str, str]:
    if exc.reason in ("card_data", "card_refused"):
        return wrong_card
    return CARD_READ_TEXT.get(exc.reason, ("读卡失败，请重新插卡", "The card could not be read; insert it again"))


class CardSteps:
    """Mixin (through `workflows.payment_steps.PaymentSteps`) for a `JournaledService` whose session has
    `order`, `code_key` and `notice`. A service adds `CARD_STATES` and `card_transitions()` to its own, and
    the outpatient payment also `INSURANCE_CARD_STATE` and `insurance_card_transitions()`."""

    # ---- availability -------------------------------------------------------------------------------

    def _device_usable(self, role: str, device: Any) -> bool:
        if device is None:
            return False
        health = self.devices.get(role)  # type: ignore[attr-defined]
        if health is None:  # not reported yet: ask the device (a proxy answers from its last check)
            try:
                health = device.health()
            except Exception:  # a health question must not break a screen
                return False
        return bool(health.usable)

    def bank_card_available(self) -> bool:
        p = self.peripherals  # type: ignore[attr-defined]
        return self._device_usable("pcsc", p.card_reader) and self._device_usable("pinpad", p.pinpad)

    def insurance_card_available(self) -> bool:
        return self._device_usable("pcsc", self.peripherals.card_reader)  # type: ignore[attr-defined]

    def _bank_card_usable(self, event: EventData) -> bool:
        return self.bank_card_available()

    def _insurance_card_usable(self, event: EventData) -> bool:
        return self.insurance_card_available()

    # ---- the bank card ------------------------------------------------------------------------------

    def _enter_card_inserting(self, event: EventData) -> None:
        """Ask for the card, with what went wrong before if anything did. A card already in the reader when
        the patient chose the bank card is read at once."""
        v: Any = self.visit  # type: ignore[attr-defined]
        self._last_poll = self.clock()  # type: ignore[attr-defined]
        v.notice = (event.kwargs.get("message", ""), event.kwargs.get("message_en", ""))
        if event.event.name == "pay_by_card" and self._card_present():
            self._go("card_inserted")  # type: ignore[attr-defined]

    def _card_present(self) -> bool:
        try:
            return bool(self.peripherals.card_reader.card_present())  # type: ignore[attr-defined]
        except Exception as exc:  # no reader, pcscd down: the patient is asked to insert the card
            log.info("card presence unknown: %s", type(exc).__name__)
            return False

    def _enter_card_reading(self, event: EventData) -> None:
        self.publish(self._screen("card_reading"))  # type: ignore[attr-defined]
        today = self.now().date()  # type: ignore[attr-defined]
        try:
            card = self.peripherals.card_reader.read_bank_card(today)  # type: ignore[attr-defined]
        except CardError as exc:
            log.info("bank card not read: %s", exc.reason)
            zh, en = _read_text(exc, NOT_A_BANK_CARD)
            self._go("card_unreadable", message=zh, message_en=en)  # type: ignore[attr-defined]
            return
        except Exception as exc:  # the reader's thread gave no answer in time
            log.warning("bank card read failed: %s", type(exc).__name__)
            self._go("card_unreadable", message=READER_DOWN[0], message_en=READER_DOWN[1])  # type: ignore[attr-defined]
            return
        if card.expired(today):
            zh, en = CARD_EXPIRED
            self._go("card_unreadable", message=zh, message_en=en)  # type: ignore[attr-defined]
            return
        self._go("bank_card_read", card=card)  # type: ignore[attr-defined]

    def _enter_card_pin(self, event: EventData) -> None:
        card = event.kwargs["card"]  # money: never journaled, logged (but masked) or kept on the visit
        self.publish(self._pin_view(0))  # type: ignore[attr-defined]

        def on_key(key: KeyEvent) -> None:  # on the PIN pad's thread: only the glass changes
            self.publish(self._pin_view(key.count))  # type: ignore[attr-defined]

        try:
            result = self._read_pin(card.pan, on_key)
        except (BackendError, BackendUnavailable) as exc:
            log.warning("PIN pad sign-on failed: %s", exc)
            self._go("pin_not_entered", message=PINPAD_DOWN[0], message_en=PINPAD_DOWN[1])  # type: ignore[attr-defined]
            return
        except Exception as exc:  # PinPadError, or the pad's thread gave no answer in time
            log.warning("PIN entry failed: %s", type(exc).__name__)
            self._go("pin_not_entered", message=PINPAD_DOWN[0], message_en=PINPAD_DOWN[1])  # type: ignore[attr-defined]
            return
        if result.outcome is Outcome.ENTERED and result.pin_block:
            self._go("pin_entered", card=card, pin=result)  # type: ignore[attr-defined]
            return
        zh = f"{result.message_zh}。可重新输入密码，或改用扫码支付"
        en = f"{result.message_en}. Enter it again, or pay by QR code."
        self._go("pin_not_entered", message=zh, message_en=en)  # type: ignore[attr-defined]

    def _read_pin(self, pan: str, on_key: Callable[[KeyEvent], None]) -> PinResult:
        """One PIN entry; a pad without a working key (first use, or power-cycled) is signed on first."""
        pad = self.peripherals.pinpad  # type: ignore[attr-defined]

        def entry() -> PinResult:
            return pad.read_pin(pan, min_length=PIN_LENGTH, max_length=PIN_LENGTH, timeout=PIN_SECONDS,
                                on_key=on_key)
        try:
            return entry()
        except PinPadRefusedError as exc:
            if exc.code != ST_NO_KEY:
                raise
        sign_on_pinpad(self.backend, pad)  # type: ignore[attr-defined]
        return entry()

    def _enter_card_paying(self, event: EventData) -> None:
        """The sale, under the attempt's journaled key. Approved → take the card; declined → the server's
        words; no answer → asked again with the same key (the server queries, never charges twice)."""
        v: Any = self.visit  # type: ignore[attr-defined]
        card, pin = event.kwargs["card"], event.kwargs["pin"]
        data = {"pan": card.pan, "expiry": card.expiry.strftime("%y%m"),
                "pin_block": bytes(pin.pin_block).hex().upper(), "pin_algorithm": pin.algorithm or "sm4"}
        log.info("order %s: card %s sent for payment", v.order.get("order_no"), masked(card.pan))
        self._card_sale_session = v.session  # from now on the order is paid by card (see `_card_view`)
        go = self._go  # type: ignore[attr-defined]
        try:
            v.order = self._retrying(lambda: self.backend.pay(  # type: ignore[attr-defined]
                v.order["order_no"], CARD_CHANNEL, v.code_key, card=data))
        except BackendError as exc:  # declined, or the order cannot be paid: the server's words
            log.info("order %s: card payment refused (%s)", v.order.get("order_no"), exc.code)
            go("card_answered", message=exc.message, message_en=exc.message_en)
            return
        except BackendUnavailable:
            go("card_answered", message=CARD_UNKNOWN[0], message_en=CARD_UNKNOWN[1])  # the poll finds the outcome
            return
        finally:
            data.clear()
        status = v.order.get("status")
        if status in ("PAID", "FULFILLED"):
            go("card_approved")
        elif status == "AWAITING_PAYMENT":
            state = (v.order.get("payment") or {}).get("state")
            text = CARD_NOT_TAKEN if state in ("CLOSED", "PAYERROR") else CARD_UNKNOWN
            go("card_answered", message=text[0], message_en=text[1])
        else:
            self._apply_order_status()  # type: ignore[attr-defined]

    def _enter_card_taking(self, event: EventData) -> None:
        if not self._card_present():
            self._go("card_removed")  # type: ignore[attr-defined]

    # ---- the social-security card at the bill checkout ----------------------------------------------

    def _enter_reading_insurance_card(self, event: EventData) -> None:
        v: Any = self.visit  # type: ignore[attr-defined]
        self.publish(self._screen(INSURANCE_CARD_STATE))  # type: ignore[attr-defined]
        try:
            number = self.peripherals.card_reader.read_social_security_card().card_number  # type: ignore[attr-defined]
        except CardError as exc:
            log.info("social-security card not read: %s", exc.reason)
            v.notice = _read_text(exc, NOT_A_SOCIAL_CARD) if exc.reason != "no_card" else (
                "请插入社保卡", "Please insert your social-security card")
            self._go("presettled")  # type: ignore[attr-defined]
            return
        except Exception as exc:
            log.warning("social-security card read failed: %s", type(exc).__name__)
            v.notice = READER_DOWN
            self._go("presettled")  # type: ignore[attr-defined]
            return
        try:  # the number is the patient's credential: never journaled, logged or kept
            v.order = self._retrying(lambda: self.backend.presettle_insurance(  # type: ignore[attr-defined]
                v.order["order_no"], "social_security_card", number))
            v.notice = INSURANCE_APPLIED
        except BackendError as exc:
            v.notice = (exc.message, exc.message_en)
        except BackendUnavailable:
            v.notice = INSURANCE_DOWN
        finally:
            del number
        self._go("presettled")  # type: ignore[attr-defined]

    # ---- views --------------------------------------------------------------------------------------

    def _screen(self, state: str) -> View:
        """The card steps draw their own screen; the QR and the checkout say which cards are offered."""
        if state in CARD_STATES or state == INSURANCE_CARD_STATE:
            return self._card_view(state)
        view: View = super()._screen(state)  # type: ignore[misc]
        if state == "awaiting_payment" and view.screen != "busy":
            return replace(view, data={**view.data, "bank_card": self.bank_card_available()})
        if state == "checkout" and view.screen != "busy":
            return replace(view, data={**view.data, "insurance_card": self.insurance_card_available()})
        return view

    def _card_view(self, state: str, digits: int = 0) -> View:
        v: Any = self.visit  # type: ignore[attr-defined]
        base = self._base_view(state)  # type: ignore[attr-defined]
        if state == INSURANCE_CARD_STATE:
            return View("busy", {"text": "正在读取社保卡，请勿拔卡…", "text_en": "Reading your social-security "
                                 "card; please leave it in…"}, patient=base["patient"])
        step = {"card_inserting": "insert", "card_reading": "reading", "card_pin": "pin", "card_paying": "paying",
                "card_taking": "take"}[state]
        waiting = state == "card_inserting"
        base["can_cancel"] = waiting
        msg, msg_en = v.notice if waiting else ("", "")
        # "改用扫码支付" is the way back, unless a card sale left the QR's method for good (the server takes a left
        # method up again only as the aggregate code): then the screen offers another card or Cancel.
        qr_back = (getattr(self, "qr_channel", "") == "aggregate"
                   or getattr(self, "_card_sale_session", None) != v.session)
        return View("bank_card", {"order": v.order, "step": step, "digits": digits, "pin_length": PIN_LENGTH,
                                  "qr_back": qr_back}, message=msg, message_en=msg_en, **base)

    def _pin_view(self, digits: int) -> View:
        return self._card_view("card_pin", digits)

    # ---- hooks PaymentSteps calls -------------------------------------------------------------------

    def idle_limit(self, state: str) -> float | None:
        if state == "card_inserting":
            return float(self.timeouts.awaiting_payment)  # type: ignore[attr-defined]
        if state == "card_taking":
            return TAKE_CARD_SECONDS
        return super().idle_limit(state)  # type: ignore[misc]
