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


class RecordingPrinter:
    def __init__(self, fail: bool = False):
        self.documents: list[list[Any]] = []
        self.fail = fail

    def print_document(self, blocks):
        if self.fail:
            raise OSError("paper out")
        self.documents.append(list(blocks))
