"""Outpatient payment (门诊缴费, K6) and the refund of items not yet executed (退费, K7), as one service.

Paying: ID card → the patient's unpaid bills → one bill's items, amounts and where to go for each → the bill
order is created (its keys journaled first) → checkout, where the patient may show the 医保电子凭证 to see how
insurance splits the bill → the payment QR (or a payment code under the scanner) → the HIS records the bill as
paid → a slip listing every item and WHERE TO GO for it (K12) → done.

Refunding: from the bills screen, "我要退费" lists today's bill orders this kiosk took for the patient with the
items still refundable; the patient ticks items, confirms, and the server gives them back along the original
route (insurance part to the fund). Items already dispensed or performed are named and sent to the counter.

Money rules are the registration's (workflows.registration, docs/money-safety.md): before an order exists,
Cancel and the idle timeout go straight home; once it exists, leaving asks the server to close it and the
server's answer decides, honouring a payment that arrived first. The kiosk decides nothing about money.
"""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from transitions import EventData

from workflows.backend import BackendError, BackendUnavailable
from workflows.card_payment import CARD_STATES, INSURANCE_CARD_STATE, card_transitions, insurance_card_transitions
from workflows.bill_receipt import bill_slip, places_of
from workflows.payment_steps import PaymentSteps
from workflows.service_base import (JournaledService, Session, ending_transitions,
                                    identification_transitions)
from workflows.slips import print_slip
from workflows.view import View

log = logging.getLogger(__name__)

WORKFLOW = "outpatient_payment"

# No order exists yet: Cancel and the idle timeout simply end the visit.
BEFORE_ORDER = ["reading_card", "identifying", "choosing_bill", "reviewing_bill", "creating_order",
                "choosing_refund", "confirming_refund"]
# An order exists and may be paid: leaving means asking the server to close it.
ORDER_OPEN = ["checkout", "awaiting_payment"]

STATES = ["home", *BEFORE_ORDER, "checkout", "presettling", "awaiting_payment", "paying_by_code", "cancelling",
          "fulfilling", "printing", "refunding", "done", "failed"]

VOUCHER = "insurance_voucher"

TRANSITIONS: list[dict[str, Any]] = [
    *identification_transitions("choosing_bill"),
    {"trigger": "pick_bill", "source": "choosing_bill", "dest": "reviewing_bill", "prepare": "_keep_bill",
     "conditions": "_bill_chosen"},
    {"trigger": "back", "source": "reviewing_bill", "dest": "choosing_bill", "conditions": "_several_bills"},
    {"trigger": "confirm", "source": "reviewing_bill", "dest": "creating_order", "prepare": "_new_keys"},
    {"trigger": "order_created", "source": "creating_order", "dest": "checkout"},
    # The patient shows the insurance e-voucher before paying: the split, nothing charged yet.
    {"trigger": "code_scanned", "source": "checkout", "dest": "presettling", "conditions": "_voucher"},
    {"trigger": "presettled", "source": "presettling", "dest": "checkout"},
    {"trigger": "pay", "source": "checkout", "dest": "awaiting_payment"},
    {"trigger": "code_scanned", "source": "awaiting_payment", "dest": "paying_by_code",
     "prepare": "_new_code_key", "conditions": "_payment_code"},
    {"trigger": "code_answered", "source": "paying_by_code", "dest": "awaiting_payment"},
    {"trigger": "cancel", "source": BEFORE_ORDER, "dest": "home"},
    {"trigger": "timeout", "source": BEFORE_ORDER, "dest": "home"},
    {"trigger": "finish", "source": "choosing_bill", "dest": "home"},  # nothing to pay: the patient is done
    {"trigger": "cancel", "source": ORDER_OPEN, "dest": "cancelling"},
    {"trigger": "timeout", "source": ORDER_OPEN, "dest": "cancelling"},
    {"trigger": "closed", "source": "cancelling", "dest": "home"},
    {"trigger": "paid", "source": ["checkout", "awaiting_payment", "paying_by_code", "cancelling"],
     "dest": "fulfilling"},
    {"trigger": "fulfilled", "source": "fulfilling", "dest": "printing"},
    {"trigger": "printed", "source": "printing", "dest": "done"},
    # 退费
    {"trigger": "open_refunds", "source": ["choosing_bill", "reviewing_bill"], "dest": "choosing_refund"},
    {"trigger": "back", "source": "choosing_refund", "dest": "choosing_bill"},
    {"trigger": "request_refund", "source": "choosing_refund", "dest": "confirming_refund",
     "conditions": "_items_ticked"},
    {"trigger": "back", "source": "confirming_refund", "dest": "choosing_refund"},
    {"trigger": "confirm_refund", "source": "confirming_refund", "dest": "refunding"},
    {"trigger": "refunded", "source": "refunding", "dest": "done"},
    *ending_transitions(STATES),
]
# 银行卡 (K6): the bank-card steps every paying service shares (workflows.card_payment).
STATES += CARD_STATES
TRANSITIONS += card_transitions()
# 社保卡 at the checkout (K6): read the card, pre-settle, back to the checkout.
STATES.append(INSURANCE_CARD_STATE)
TRANSITIONS += insurance_card_transitions()

BUSY_TEXT = {
    "identifying": ("正在查询您的就诊信息…", "Looking up your patient record…"),
    "creating_order": ("正在生成缴费订单…", "Preparing your payment…"),
    "presettling": ("正在查询医保报销金额…", "Asking medical insurance what it covers…"),
    "cancelling": ("正在取消订单…", "Cancelling the order…"),
    "paying_by_code": ("正在扣款，请稍候…", "Charging your payment code…"),
    "fulfilling": ("支付成功，正在为您办理缴费…", "Paid. Recording your payment…"),
    "printing": ("正在打印缴费凭条…", "Printing your payment slip…"),
    "refunding": ("正在为您办理退费…", "Processing your refund…"),
}

IDLE = {"reading_card": "reading_card", "choosing_bill": "choosing", "reviewing_bill": "choosing",
        "checkout": "choosing", "choosing_refund": "choosing", "confirming_refund": "choosing",
        "awaiting_payment": "awaiting_payment", "done": "done", "failed": "failed"}

NO_BILLS = ("您目前没有待缴费用", "You have no bills to pay.")
NOTHING_REFUNDABLE = ("今天在本机缴费的项目中，没有可以自助退费的项目。其他退费请到人工窗口办理",
                      "Nothing paid at this kiosk today can be refunded here. For other refunds please go to a "
                      "counter.")
VOUCHER_TOO_LATE = ("支付已开始，不能再使用医保。如需医保结算，请取消支付后重新缴费",
                    "Payment has started, so insurance can no longer be added. To use insurance, cancel and "
                    "start again.")


@dataclass
class BillVisit(Session):
    """One patient's session in this service; replaced on every return home (the wipe)."""

    bills: list[dict[str, Any]] = field(default_factory=list)
    bill: dict[str, Any] | None = None
    order_key: str = ""
    pay_key: str = ""
    code_key: str = ""  # the payment-code charge, new for every code shown
    order: dict[str, Any] | None = None
    paid_at: float | None = None
    print_failed: bool = False
    refund_orders: list[dict[str, Any]] = field(default_factory=list)
    refund_order_no: str = ""  # refunds go one order at a time (the server's unit)
    refund_ids: list[str] = field(default_factory=list)
    refund_result: dict[str, Any] = field(default_factory=dict)

    def journal_data(self) -> dict[str, Any]:
        """Identifiers only: no name, no ID number, no insurance credential, no payment code."""
        return {
            **super().journal_data(),
            "bill_no": (self.bill or {}).get("bill_no"),
            "order_key": self.order_key or None,
            "pay_key": self.pay_key or None,
            "code_key": self.code_key or None,
            "order_no": (self.order or {}).get("order_no"),
            "order_status": (self.order or {}).get("status"),
            "refund_order_no": self.refund_order_no or None,
            "refund_items": list(self.refund_ids) or None,
        }


class OutpatientPayment(PaymentSteps, JournaledService):
    """门诊缴费 with 退费. `qr_channel` is the method whose QR the kiosk shows ("wechat_native",
    "alipay_native" or "aggregate", as the hospital configures the terminal)."""

    WORKFLOW = WORKFLOW
    STATES = STATES
    TRANSITIONS = TRANSITIONS
    REQUIRED_DEVICES = {"id_card": ("身份证读卡器", "ID-card reader"),
                        "receipt_printer": ("凭条打印机", "receipt printer")}
    BUSY_TEXT = BUSY_TEXT
    IDLE = IDLE
    CANCELLABLE = frozenset([*BEFORE_ORDER, *ORDER_OPEN])
    PAID_FROM = ("checkout", "awaiting_payment", "cancelling")
    PAYMENT_TEXT = {
        "closed": ("支付已超时，订单已关闭，未产生扣款。如需缴费请重新办理",
                   "The payment timed out and the order was closed. Nothing was charged. Start again to pay."),
        # The HIS would not take the payment (the bill was paid elsewhere or withdrawn meanwhile).
        "refunded": ("该缴费单已在其他地方缴费或已作废，本次支付的费用将原路退回，请勿重复缴费",
                     "This bill was paid elsewhere or withdrawn meanwhile. Your payment is being refunded to the "
                     "account it came from; do not pay again."),
        "slow": ("您已支付成功，医院系统确认较慢。请凭订单号 {no} 到人工窗口，无需重复支付",
                 "Your payment succeeded but the hospital system is slow to confirm it. "
                 "Please show order {no} at a counter; do not pay again."),
    }

    visit: BillVisit

    def new_session(self) -> BillVisit:
        return BillVisit()

    # ---- inputs -------------------------------------------------------------------------------------

    def handle(self, intent: str, **kwargs: Any) -> None:
        if intent == "toggle_item":  # a tick on the refund screen: the visit's selection, nothing journaled
            self._last_activity = self.clock()
            if self.state == "choosing_refund":
                self._toggle(str(kwargs.get("order_no", "")), str(kwargs.get("item_id", "")))
                self.publish(self._screen(self.state))
            return
        if intent == "code_scanned" and self.state == "awaiting_payment" and kwargs.get("kind") == VOUCHER:
            self._last_activity = self.clock()
            self.visit.notice = VOUCHER_TOO_LATE  # insurance is split before the first payment request only
            self.publish(self._screen(self.state))
            return
        super().handle(intent, **kwargs)

    # ---- conditions and prepare callbacks (run before the journal entry) ----------------------------

    def _keep_bill(self, event: EventData) -> None:
        wanted = str(event.kwargs.get("bill_no"))
        self.visit.bill = next((b for b in self.visit.bills if str(b.get("bill_no")) == wanted), None)

    def _bill_chosen(self, event: EventData) -> bool:
        return self.visit.bill is not None

    def _several_bills(self, event: EventData) -> bool:
        return len(self.visit.bills) > 1

    def _new_keys(self, event: EventData) -> None:
        self.visit.order_key = uuid.uuid4().hex
        self.visit.pay_key = uuid.uuid4().hex

    def _voucher(self, event: EventData) -> bool:
        return event.kwargs.get("kind") == VOUCHER and bool(event.kwargs.get("code"))

    def _items_ticked(self, event: EventData) -> bool:
        return bool(self.visit.refund_ids)

    # ---- paying -------------------------------------------------------------------------------------

    def _enter_choosing_bill(self, event: EventData) -> None:
        v = self.visit
        v.notice = ("", "")
        ok, bills = self._load(lambda: self.backend.bills(v.patient["patient_id"]))
        if not ok:
            return
        v.bills, v.bill = list(bills or []), None
        if not v.bills:
            v.notice = NO_BILLS
        elif len(v.bills) == 1 and event.event.name == "identified":
            self._go("pick_bill", bill_no=v.bills[0]["bill_no"])  # one bill: straight to its items

    def _enter_creating_order(self, event: EventData) -> None:
        v = self.visit
        self._create_order(lambda: self.backend.create_bill_order(v.patient["patient_id"], v.bill["bill_no"],
                                                                  v.order_key), self._bill_refused)

    def _bill_refused(self, exc: BackendError) -> bool:
        if exc.code != "BILL_NOT_PAYABLE":
            return False
        self._go("fail", message="该缴费单已在其他窗口或手机上缴费，或已被医生作废，无需再次缴费",
                 message_en="This bill has already been paid elsewhere (a counter or a phone) or was "
                            "withdrawn by the doctor. You do not need to pay it again.")
        return True

    def _enter_checkout(self, event: EventData) -> None:
        if event.event.name == "order_created":
            self.visit.notice = ("", "")

    def _enter_presettling(self, event: EventData) -> None:
        v = self.visit
        number = event.kwargs["code"]  # the patient's credential: never journaled, logged or kept
        try:
            v.order = self._retrying(lambda: self.backend.presettle_insurance(v.order["order_no"], "e_voucher",
                                                                              number))
            v.notice = ("医保报销金额已计算，请确认自付金额后支付",
                        "Insurance has been applied. Check the amount left for you to pay.")
        except BackendError as exc:
            v.notice = (exc.message, exc.message_en)
        except BackendUnavailable:
            v.notice = ("医保系统暂时无响应，可稍后再扫，或选择自费支付",
                        "Medical insurance is not answering. Scan again later, or pay it yourself.")
        self._go("presettled")

    def _enter_printing(self, event: EventData) -> None:
        v = self.visit
        print_slip(self, lambda hospital: bill_slip(hospital, v.order, self.terminal_id, self.now()),
                   f"order {v.order.get('order_no')}")

    # ---- refunding ----------------------------------------------------------------------------------

    def _enter_choosing_refund(self, event: EventData) -> None:
        v = self.visit
        if event.event.name == "back":
            return  # the list and the ticks are as the patient left them
        v.notice = ("", "")
        v.refund_order_no, v.refund_ids = "", []
        ok, orders = self._load(lambda: self.backend.patient_orders(v.patient["patient_id"], "bill"))
        if not ok:
            return
        v.refund_orders = [o for o in (orders or []) if any(i.get("status") == "PAID" for i in o.get("items", []))]
        if not v.refund_orders:
            v.notice = NOTHING_REFUNDABLE

    def _toggle(self, order_no: str, item_id: str) -> None:
        v = self.visit
        order = next((o for o in v.refund_orders if o.get("order_no") == order_no), None)
        if order is None or not any(i.get("item_id") == item_id and i.get("status") == "PAID"
                                    for i in order.get("items", [])):
            return
        if v.refund_order_no != order_no:  # one order per refund: ticking another order's item starts over
            v.refund_order_no, v.refund_ids = order_no, []
        if item_id in v.refund_ids:
            v.refund_ids.remove(item_id)
        else:
            v.refund_ids.append(item_id)

    def _enter_refunding(self, event: EventData) -> None:
        v = self.visit
        try:
            # Safe to ask again: items already given back are not given back twice (the server's rule).
            order = self._retrying(lambda: self.backend.refund_items(v.refund_order_no, list(v.refund_ids)))
        except BackendError as exc:
            if exc.code == "REFUND_AT_COUNTER":
                refused = set(exc.payload.get("items") or [])
                names = [i["name"] for i in self._refund_order().get("items", []) if i.get("item_id") in refused]
                v.refund_result = {"at_counter": names, "message": exc.message, "message_en": exc.message_en}
                self._go("refunded")
            else:
                self._go("fail", message=exc.message, message_en=exc.message_en)
            return
        except BackendUnavailable:
            self._go("fail", message="网络连接中断，退费结果未知。请到人工窗口查询，请勿重复申请",
                     message_en="The network is unavailable and the refund's outcome is unknown. Please ask at "
                                "a counter; do not request it again.")
            return
        chosen = [i for i in order.get("items", []) if i.get("item_id") in v.refund_ids]
        v.refund_result = {"refunded": [i for i in chosen if i.get("status") == "REFUNDED"],
                           "pending": [i for i in chosen if i.get("status") == "REFUND_PENDING"],
                           "order_no": order.get("order_no")}
        self._go("refunded")

    def _refund_order(self) -> dict[str, Any]:
        return next((o for o in self.visit.refund_orders if o.get("order_no") == self.visit.refund_order_no), {})

    def _refund_selection(self) -> tuple[list[dict[str, Any]], int]:
        items = [i for i in self._refund_order().get("items", []) if i.get("item_id") in self.visit.refund_ids]
        return items, sum(int(i.get("amount_fen", 0)) for i in items)

    # ---- view ---------------------------------------------------------------------------------------

    def _view_for(self, state: str) -> View:
        v = self.visit
        if state == "home":
            return self._home_view()
        base = self._base_view(state)
        msg, msg_en = v.notice
        if state == "reading_card":
            return View("insert_card", **base)
        if state in BUSY_TEXT:
            text = BUSY_TEXT[state]
            return View("busy", {"text": text[0], "text_en": text[1]}, **base)
        if state == "choosing_bill":
            return View("bills", {"bills": v.bills}, message=msg, message_en=msg_en, **base)
        if state == "reviewing_bill":
            return View("bill_detail", {"bill": v.bill, "places": places_of((v.bill or {}).get("items", []))},
                        can_back=len(v.bills) > 1, **base)
        if state == "checkout":
            return View("bill_checkout", {"order": v.order}, message=msg, message_en=msg_en, **base)
        if state == "awaiting_payment":
            return View("bill_payment", {"order": v.order, "channel": self.qr_channel}, message=msg,
                        message_en=msg_en, **base)
        if state == "choosing_refund":
            items, total = self._refund_selection()
            return View("refunds", {"orders": v.refund_orders, "order_no": v.refund_order_no,
                                    "selected": list(v.refund_ids), "total_fen": total},
                        message=msg, message_en=msg_en, can_back=True, **base)
        if state == "confirming_refund":
            items, total = self._refund_selection()
            return View("refund_confirm", {"order_no": v.refund_order_no, "items": items, "total_fen": total},
                        can_back=True, **base)
        if state == "done" and v.refund_result:
            return View("refund_done", dict(v.refund_result), **base)
        if state == "done":
            return View("bill_done", {"order": v.order, "print_failed": v.print_failed,
                                      "places": places_of((v.order or {}).get("items", [])),
                                      "way_to": [p["place"] for p in places_of((v.order or {}).get("items", []))]},
                        **base)
        return View("error", {}, message=msg, message_en=msg_en, **base)
