"""An in-memory backend that keeps the server's rules (capacity, order states, idempotency keys), so the
state machine can be driven through every branch without a network. The real server is exercised by the
end-to-end tests."""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from workflows.backend import BackendError, BackendUnavailable


@dataclass
class FakeCard:
    name: str = "李秀英"
    id_number: str = "360702195603140285"


class FakeBackend:
    def __init__(self, journal=None):
        self.journal = journal
        self.calls: list[tuple[str, tuple, Any]] = []  # (method, args, last journal entry at call time)
        self.offline: set[str] = set()  # methods that raise BackendUnavailable
        self.slot_table = {101: {"slot_id": 101, "start": "14:00", "end": "14:30", "capacity": 1, "booked": 0},
                      102: {"slot_id": 102, "start": "14:30", "end": "15:00", "capacity": 2, "booked": 0}}
        self.orders: dict[str, dict[str, Any]] = {}
        self.keys: dict[str, str] = {}
        self.code_outcomes: dict[str, str] = {}  # payment code -> "SUCCESS" | "USERPAYING" | "REFUSED"
        self._seq = itertools.count(1)

    def _call(self, name: str, *args: Any) -> None:
        last = self.journal.entries()[-1] if self.journal and self.journal.entries() else None
        self.calls.append((name, args, last))
        if name in self.offline:
            raise BackendUnavailable(f"{name}: connection refused")

    def hospital(self):
        self._call("hospital")
        return {"name": "示范市人民医院", "name_en": "Demo City People's Hospital"}

    def identify_by_id_card(self, id_number, name):
        self._call("identify_by_id_card", id_number, name)
        if id_number != FakeCard.id_number:
            raise BackendError("PATIENT_NOT_FOUND", "未找到您的就诊档案，请到人工窗口建档", "No record found")
        return {"patient_id": "P0001", "name_masked": "李*英", "gender": "女", "age": 70}

    def departments(self):
        self._call("departments")
        return [{"code": "NK", "name": "内科", "name_en": "Internal Medicine", "location": "门诊楼2层",
                 "remaining": 3}]

    def doctors(self, department):
        self._call("doctors", department)
        return [{"code": "D01", "name": "王医生", "title": "主任医师", "fee_fen": 5000, "remaining": 3}]

    def slots_list(self):
        return [{k: s[k] for k in ("slot_id", "start", "end")} | {"remaining": s["capacity"] - s["booked"]}
                for s in self.slot_table.values() if s["booked"] < s["capacity"]]

    def slots(self, department, doctor):
        self._call("slots", department, doctor)
        return self.slots_list()

    def create_registration(self, patient_id, slot_id, idempotency_key):
        self._call("create_registration", patient_id, slot_id, idempotency_key)
        if idempotency_key in self.keys:
            return dict(self.orders[self.keys[idempotency_key]])
        slot = self.slot_table[int(slot_id)]
        if slot["booked"] >= slot["capacity"]:
            raise BackendError("SLOT_TAKEN", "该时段号源已被他人挂走，请重新选择", "Slot taken",
                               {"slots": self.slots_list()})
        slot["booked"] += 1
        no = f"R{next(self._seq):04d}"
        self.keys[idempotency_key] = no
        self.orders[no] = {
            "order_no": no, "status": "AWAITING_PAYMENT", "amount_fen": 5000, "patient_name_masked": "李*英",
            "department": {"code": "NK", "name": "内科", "location": "门诊楼2层"},
            "doctor": {"code": "D01", "name": "王医生", "title": "主任医师"},
            "slot": {"slot_id": slot_id, "date": "2026-11-23", "start": slot["start"], "end": slot["end"]},
            "payment": None, "registration": None}
        return dict(self.orders[no])

    def registration_by_key(self, idempotency_key):
        self._call("registration_by_key", idempotency_key)
        no = self.keys.get(idempotency_key)
        return dict(self.orders[no]) if no else None

    def pay(self, order_no, channel, idempotency_key, auth_code=None):
        self._call("pay", order_no, channel, idempotency_key)
        order = self.orders[order_no]
        if auth_code is None:
            order["payment"] = {"channel": channel, "out_trade_no": order_no + "P",
                                "code_url": f"weixin://wxpay/bizpayurl?pr={order_no}", "state": "NOTPAY"}
            return dict(order)
        # A payment code: what the channel answers is set per code by the test (default: paid at once).
        outcome = self.code_outcomes.get(auth_code, "SUCCESS")
        if outcome == "REFUSED":
            raise BackendError("PAYMENT_REFUSED", "付款未成功，请取消后重新下单或到人工窗口办理", "Refused")
        order["payment"] = {"channel": channel, "out_trade_no": order_no + "C", "code_url": None,
                            "state": outcome}
        if outcome == "SUCCESS":
            self.phone_pays(order_no)
        return dict(order)

    def order(self, order_no):
        self._call("order", order_no)
        return dict(self.orders[order_no])

    def cancel(self, order_no):
        self._call("cancel", order_no)
        order = self.orders[order_no]
        if order["status"] == "AWAITING_PAYMENT":
            order["status"] = "CLOSED"
        return dict(order)

    # the phone and the HIS, as the server would see them
    def phone_pays(self, order_no: str, fulfil: bool = True) -> None:
        order = self.orders[order_no]
        order["status"] = "FULFILLED" if fulfil else "PAID"
        if fulfil:
            order["registration"] = {"queue_no": 7, "visit_code": f"V{order_no}", "location": "门诊楼2层 3诊室"}


class Clock:
    """A monotonic clock the test moves by hand (`clock.t += 5`)."""

    def __init__(self):
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class RecordingPrinter:
    def __init__(self, fail: bool = False):
        self.documents: list[list[Any]] = []
        self.fail = fail

    def print_document(self, blocks):
        if self.fail:
            raise OSError("paper out")
        self.documents.append(list(blocks))


# ---- outpatient bills (门诊缴费) and item refunds (退费), with the server's rules -------------------------------

VOUCHER = "ecXk3v9Q2mWJ7TzL0pRb5NfY8uHsAe1D"  # an insured person's 医保电子凭证 as the scanner reads it


def demo_bills() -> list[dict[str, Any]]:
    def item(item_id, category, name, amount, place):
        return {"item_id": item_id, "category": category, "name": name, "amount_fen": amount,
                "insurance_class": "A", "place": place, "place_en": "", "status": "PENDING"}
    return [
        {"bill_no": "B001", "status": "PENDING", "total_fen": 7700, "issued_at": "2026-11-23T09:10+08:00",
         "department": {"code": "NK", "name": "内科"}, "doctor": {"code": "D01", "name": "王医生"},
         "items": [item("11", "西药费", "阿莫西林胶囊", 3700, "门诊西药房 1–4 号窗口"),
                   item("12", "化验费", "血常规", 2000, "检验科（门诊楼二楼）"),
                   item("13", "检查费", "心电图检查", 2000, "医学影像科（医技楼一楼）")]},
        {"bill_no": "B002", "status": "PENDING", "total_fen": 1200, "issued_at": "2026-11-23T10:40+08:00",
         "department": {"code": "NK", "name": "内科"}, "doctor": {"code": "D01", "name": "王医生"},
         "items": [item("21", "治疗费", "雾化吸入", 1200, "门诊治疗室（门诊楼一楼）")]},
    ]


class FakeBillBackend(FakeBackend):
    """FakeBackend plus the bill endpoints: bill orders, the insurance split, item refunds, today's orders."""

    def __init__(self, journal=None):
        super().__init__(journal)
        self.bill_table = {b["bill_no"]: b for b in demo_bills()}
        self.executed: set[str] = set()  # item ids the pharmacy or lab already executed
        self.insurance_down = False

    def bills(self, patient_id):
        self._call("bills", patient_id)
        return [dict(b) for b in self.bill_table.values() if b["status"] == "PENDING"]

    def create_bill_order(self, patient_id, bill_no, idempotency_key):
        self._call("create_bill_order", patient_id, bill_no, idempotency_key)
        if idempotency_key in self.keys:
            return dict(self.orders[self.keys[idempotency_key]])
        bill = self.bill_table[bill_no]
        if bill["status"] != "PENDING":
            raise BackendError("BILL_NOT_PAYABLE", "该缴费单已缴费或已作废", "This bill has been paid or withdrawn")
        no = f"MZ{next(self._seq):04d}"
        self.keys[idempotency_key] = no
        self.orders[no] = {
            "order_no": no, "kind": "bill", "status": "AWAITING_PAYMENT", "amount_fen": bill["total_fen"],
            "self_pay_fen": bill["total_fen"], "payment_method": None, "insurance": None,
            "patient_name_masked": "李*英", "department": dict(bill["department"]), "doctor": dict(bill["doctor"]),
            "payment": None, "registration": None, "bill_no": bill_no,
            "items": [dict(i, status="DUE") for i in bill["items"]]}
        return dict(self.orders[no])

    def presettle_insurance(self, order_no, credential, number):
        self._call("presettle_insurance", order_no, credential)
        if self.insurance_down:
            raise BackendUnavailable("insurance: 503")
        order = self.orders[order_no]
        if number != VOUCHER:
            raise BackendError("INSURANCE_CREDENTIAL_INVALID", "医保凭证无效，请重新出示", "Not valid")
        fund = order["amount_fen"] * 6 // 10
        order["insurance"] = {"state": "PRESETTLED", "amount_fen": fund, "name_masked": "李*英",
                              "split": {"fund_fen": fund, "account_fen": 0,
                                        "self_pay_fen": order["amount_fen"] - fund}}
        order["self_pay_fen"] = order["amount_fen"] - fund
        return dict(order)

    def pay(self, order_no, channel, idempotency_key, auth_code=None):
        order = self.orders[order_no]
        if order.get("kind") == "bill" and order.get("insurance"):
            order["insurance"]["state"] = "SUCCESS"  # settled when the patient goes on to pay the rest
        order["payment_method"] = channel
        return super().pay(order_no, channel, idempotency_key, auth_code)

    def phone_pays(self, order_no: str, fulfil: bool = True) -> None:
        order = self.orders[order_no]
        if order.get("kind") != "bill":
            return super().phone_pays(order_no, fulfil)
        bill = self.bill_table[order["bill_no"]]
        if fulfil and bill["status"] != "PENDING":  # paid elsewhere meanwhile: the HIS refuses, money goes back
            order["status"] = "REFUND_PENDING"
            return
        order["status"] = "FULFILLED" if fulfil else "PAID"
        if fulfil:
            bill["status"] = "PAID"
            for item in order["items"]:
                item["status"] = "PAID"

    def refund_items(self, order_no, item_ids):
        self._call("refund_items", order_no, tuple(item_ids))
        order = self.orders[order_no]
        refused = [i for i in item_ids if i in self.executed]
        if refused:
            names = "、".join(i["name"] for i in order["items"] if i["item_id"] in refused)
            raise BackendError("REFUND_AT_COUNTER", f"以下项目已发药或已执行，不能自助退费，请到人工窗口办理：{names}",
                               "Some items were already dispensed or performed; please go to a service counter",
                               {"items": refused})
        for item in order["items"]:
            if item["item_id"] in item_ids and item["status"] == "PAID":
                item["status"] = "REFUNDED"
        return dict(order)

    def patient_orders(self, patient_id, kind="bill"):
        self._call("patient_orders", patient_id, kind)
        return [dict(o, items=[dict(i) for i in o["items"]]) for o in self.orders.values()
                if o.get("kind") == kind and o["status"] in ("FULFILLED", "REFUNDED")]
