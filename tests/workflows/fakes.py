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
        if id_number != FakeCard.id_number and id_number not in (getattr(self, "created_files", None) or {}):
            raise BackendError("PATIENT_NOT_FOUND", "未找到您的就诊档案，请到人工窗口建档", "No record found",
                               {"code": "PATIENT_NOT_FOUND", "can_create": self.can_create})
        return {"patient_id": "P0001", "name_masked": "李*英", "gender": "女", "age": 70}

    #: Codes the fake server knows: (method, code) -> the patient; a list is a family on one e-health account.
    known_codes: dict[tuple[str, str], Any] = {
        ("e_health_code", "ab" * 32): {"patient_id": "P0001", "name_masked": "李*英", "gender": "女", "age": 70},
        ("visit_code", "123456789012"): {"patient_id": "P0001", "name_masked": "李*英", "gender": "女", "age": 70},
        ("insurance_voucher", "ecXk3v9Q2mWJ7TzL0pRb5NfY8uHsAe1D"): {
            "patient_id": "P0002", "name_masked": "张*", "gender": "男", "age": 76},
        ("social_security_card", "A12345678"): {"patient_id": "P0002", "name_masked": "张*", "gender": "男", "age": 76},
        ("e_health_code", "cd" * 32): {"patients": [
            {"patient_id": "P0001", "name_masked": "李*英", "gender": "女", "age": 70},
            {"patient_id": "P0003", "name_masked": "李*明", "gender": "男", "age": 11}]},
    }
    #: Whether an unknown ID card may make a file here (the server's ``can_create``).
    can_create = False

    def identify_by_code(self, method, code):
        self._call("identify_by_code", method, code)
        found = self.known_codes.get((method, code))
        if found is None:
            raise BackendError("PATIENT_NOT_FOUND", "未找到您的就诊档案，可用身份证自助建档或到人工窗口建档",
                               "No patient file found", {"code": "PATIENT_NOT_FOUND", "can_create": False})
        return found

    def create_patient(self, id_number, name, gender, birth, phone):
        self._call("create_patient", id_number, name, gender, birth, phone)
        created = getattr(self, "created_files", None)
        if created is None:
            created = self.created_files = {}
        patient_id = created.setdefault(id_number, f"P9{len(created):03d}")
        return {"patient_id": patient_id, "name_masked": name[:1] + "*" * (len(name) - 1), "gender": gender,
                "age": 36, "created": True}

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

    #: Passports and permits the fake server knows: number -> (the name on file, the patient).
    known_documents: dict[str, tuple[str, dict[str, Any]]] = {
        "E12345678": ("SMITH JOHN", {"patient_id": "P0004", "name_masked": "S**** J***", "gender": "男", "age": 46}),
        "C12345678": ("LI XIUYING", {"patient_id": "P0001", "name_masked": "李*英", "gender": "女", "age": 70})}

    def identify_by_document(self, document_number, name):
        self._call("identify_by_document", document_number, name)
        on_file = self.known_documents.get(document_number.strip().upper())
        if on_file is None:
            raise BackendError("PATIENT_NOT_FOUND", "未找到您的就诊档案，可用身份证自助建档或到人工窗口建档",
                               "No patient file found", {"code": "PATIENT_NOT_FOUND", "can_create": False})
        if "".join(on_file[0].split()).upper() != "".join(name.split()).upper():
            raise BackendError("NAME_MISMATCH", "姓名与档案不符，请到人工窗口核对", "The name does not match",
                               {"code": "NAME_MISMATCH"})
        return dict(on_file[1])

    #: Photos the fake face platform recognises: the JPEG's bytes -> the patient, or a family's e-health account.
    known_faces: dict[bytes, Any] = {}

    def identify_by_face(self, image_jpeg):
        self._call("identify_by_face", len(image_jpeg))  # the size only: a test's call log holds no photo
        found = self.known_faces.get(bytes(image_jpeg))
        if found is None:
            raise BackendError("FACE_NOT_RECOGNISED", "未能识别您的身份，请使用身份证或扫码",
                               "You could not be recognised. Please use your ID card or scan a code.",
                               {"code": "FACE_NOT_RECOGNISED"})
        return found


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


# ---- printing (报告打印, K8) and queries (信息查询, K10), with the server's rules -----------------------------------

PDF = b"%PDF-1.4\n% a report\n%%EOF\n"


def demo_documents() -> list[dict[str, Any]]:
    def doc(kind, doc_no, title, ready=True, printed=0, expected=None):
        can = ready and printed < 1
        d = {"kind": kind, "doc_no": doc_no, "title": title, "department": "内科", "ready": ready,
             "created_at": "2026-11-23T09:00+08:00", "expected_at": expected, "printed_count": printed,
             "print_limit": 1, "can_print": can}
        if not ready:
            d["note"], d["note_en"] = f"报告尚未出具，预计 {expected} 可取", f"Not ready yet; expected at {expected}"
        elif not can:
            d["note"], d["note_en"] = "自助打印次数已用完，如需再次打印请到门诊楼一楼服务台办理", "Used up"
        return d
    return [doc("lab", "LAB001", "血常规"), doc("lab", "LAB002", "肝功能", printed=1),
            doc("imaging", "IMG001", "胸部X线"), doc("imaging", "IMG002", "腹部超声", ready=False,
                                                   expected="2026-11-24T16:00+08:00"),
            doc("invoice", "INV001", "门诊缴费 内科"), doc("record", "REC001", "门诊病历")]


class FakeRecordsBackend(FakeBackend):
    """FakeBackend plus documents (print counts kept once per key, like the server) and the history reads."""

    def __init__(self, journal=None):
        super().__init__(journal)
        self.docs = {(d["kind"], d["doc_no"]): d for d in demo_documents()}
        self.print_keys: dict[str, tuple[str, str]] = {}
        self.registrations = [{"visit_code": "V1", "order_no": "R0001", "status": "CHECKED_IN", "date": "2026-11-23",
                               "start": "14:00", "end": "14:30", "queue_no": 7,
                               "department": {"code": "NK", "name": "内科"}, "doctor": {"code": "D01", "name": "王医生"},
                               "location": "门诊楼2层 3诊室", "fee_fen": 5000, "booked_at": "2026-11-23T08:10+08:00",
                               "checked_in_at": "2026-11-23T13:40+08:00"}]
        self.payments = [{"order_no": "MZ0002", "kind": "bill", "status": "FULFILLED",
                          "created_at": "2026-11-23T09:30+08:00", "paid_at": "2026-11-23T09:31+08:00",
                          "amount_fen": 7700, "insurance_fen": 4620, "self_pay_fen": 3080,
                          "payment_method": "wechat_native", "insurance": {"state": "SUCCESS", "amount_fen": 4620},
                          "department": "内科", "doctor": "王医生",
                          "items": [{"item_id": "11", "name": "阿莫西林胶囊", "amount_fen": 3700, "status": "REFUNDED"}],
                          "refunds": [{"refund_no": "RF1", "status": "REFUNDED", "amount_fen": 3700, "items": ["11"]}],
                          "refunded_fen": 3700}]
        self.bill_rows = [dict(b, status="PAID") for b in demo_bills()]
        self.queue_rows = [{"visit_code": "V1", "status": "WAITING", "queue_no": 7, "position": 3, "ahead": 2,
                            "estimated_wait_minutes": 15, "location": "门诊楼2层 3诊室", "department": "内科",
                            "doctor": "王医生", "start": "14:00", "end": "14:30"}]

    def documents(self, patient_id):
        self._call("documents", patient_id)
        return [dict(d) for d in self.docs.values()]

    def document_pdf(self, patient_id, kind, doc_no):
        self._call("document_pdf", patient_id, kind, doc_no)
        d = self.docs[(kind, doc_no)]
        if not d["ready"]:
            raise BackendError("REPORT_NOT_READY", d["note"], d["note_en"], {"expected_at": d["expected_at"]})
        if d["printed_count"] >= d["print_limit"]:
            raise BackendError("PRINT_LIMIT_REACHED", "自助打印次数已用完，如需再次打印请到门诊楼一楼服务台办理",
                               "The kiosk print allowance is used up")
        return PDF + doc_no.encode()

    def record_printed(self, patient_id, kind, doc_no, idempotency_key):
        self._call("record_printed", patient_id, kind, doc_no, idempotency_key)
        d = self.docs[(kind, doc_no)]
        if idempotency_key not in self.print_keys:  # the same key again counts nothing
            self.print_keys[idempotency_key] = (kind, doc_no)
            d["printed_count"] += 1
            d["can_print"] = False
        return {"kind": kind, "doc_no": doc_no, "printed_count": d["printed_count"], "print_limit": 1}

    def registration_history(self, patient_id):
        self._call("registration_history", patient_id)
        return [dict(r) for r in self.registrations]

    def payment_history(self, patient_id):
        self._call("payment_history", patient_id)
        return [dict(p) for p in self.payments]

    def bill_history(self, patient_id):
        self._call("bill_history", patient_id)
        return [dict(b) for b in self.bill_rows]

    def bill_detail(self, patient_id, bill_no):
        self._call("bill_detail", patient_id, bill_no)
        return dict(next(b for b in self.bill_rows if b["bill_no"] == bill_no))

    def queue(self, patient_id):
        self._call("queue", patient_id)
        return [dict(q) for q in self.queue_rows]


class FakeReportPrinter:
    """The report printer's contract as CupsReportPrinter offers it: `print_pdf` returns a job id, `wait_for_job`
    ends the job. `fail_on` makes the n-th job (1-based) end as a real printer would: "paper_out" (CUPS cancels
    it, with a result), "lost" (CUPS stops answering: no result) or "refused" (never submitted)."""

    def __init__(self):
        from drivers.health import Health
        self.health_now = Health.ok()
        self.jobs: list[bytes] = []
        self.completed: list[int] = []
        self.fail_on: dict[int, str] = {}

    def health(self):
        return self.health_now

    def print_pdf(self, pdf, title):
        from drivers.report.printer import ReportPrinterError
        n = len(self.jobs) + 1
        if self.fail_on.get(n) == "refused":
            raise ReportPrinterError("打印服务不可用 / CUPS is unreachable")
        self.jobs.append(pdf)
        return n

    def wait_for_job(self, job_id, timeout=None):
        from drivers.health import Health
        from drivers.report.printer import JOB_COMPLETED, JobResult, ReportPrinterError, JOB_PROCESSING
        fault = self.fail_on.get(job_id)
        if fault == "paper_out":
            self.health_now = Health.fault("paper_out", "纸张用完 / the printer is out of paper")
            raise ReportPrinterError("打印超时 / cancelled", JobResult(job_id, JOB_PROCESSING, ("media-empty",)))
        if fault == "lost":
            raise ReportPrinterError("打印服务不可用 / CUPS is unreachable")
        self.completed.append(job_id)
        return JobResult(job_id, JOB_COMPLETED)


# ---- appointments (预约挂号) and check-in (取号报到), with the server's rules --------------------------------------

class FakeAppointmentBackend(FakeBackend):
    """FakeBackend plus the appointment routes: departments by clinic type, doctor search by pinyin initials (a
    doctor in two departments), the window's days, booking with the HIS's daily limits, cancellation before the
    cut-off with the refund, and check-in inside the window."""

    TODAY = "2026-11-23"
    TOMORROW = "2026-11-24"

    def __init__(self, journal=None):
        super().__init__(journal)
        self.departments_table = [
            {"code": "XXG", "name": "心血管内科", "name_en": "Cardiology", "clinic_type": "general",
             "location": "门诊楼3层A区"},
            {"code": "HX", "name": "呼吸内科", "name_en": "Respiratory", "clinic_type": "general",
             "location": "门诊楼3层B区"},
            {"code": "TXMZ", "name": "特需门诊", "name_en": "Special-needs clinic", "clinic_type": "special",
             "location": "门诊楼5层"},
            {"code": "MDT", "name": "肿瘤MDT门诊", "name_en": "Oncology MDT", "clinic_type": "mdt",
             "location": "门诊楼6层"}]
        self.doctor_table = {"D01": {"code": "D01", "name": "王建国", "initials": "WJG", "title": "主任医师",
                                     "specialty": "冠心病", "fee_fen": 5000, "departments": ["XXG", "TXMZ"]},
                             "D02": {"code": "D02", "name": "李晓燕", "initials": "LXY", "title": "副主任医师",
                                     "specialty": "哮喘", "fee_fen": 3000, "departments": ["HX"]}}
        self.booked_days: dict[tuple[str, str], int] = {}  # (patient, date) → appointments held that day
        self.max_per_day = 3
        self.cancel_at_counter: set[str] = set()  # order numbers past the HIS's cancellation cut-off
        self.checkin_window = "open"  # "open" | "early" | "late"
        self.queue_ahead = 4

    def appointment_departments(self, clinic_type=None):
        self._call("appointment_departments", clinic_type)
        return [dict(d) for d in self.departments_table if clinic_type in (None, d["clinic_type"])]

    def appointment_doctors(self, department):
        self._call("appointment_doctors", department)
        return [{k: d[k] for k in ("code", "name", "title", "specialty", "fee_fen")} | {"remaining": 3, "days": 2}
                for d in self.doctor_table.values() if department in d["departments"]]

    def appointment_dates(self, department, doctor):
        self._call("appointment_dates", department, doctor)
        free = sum(s["capacity"] - s["booked"] for s in self.slot_table.values())
        return {"first": self.TODAY, "last": "2026-12-07",
                "dates": [{"date": self.TOMORROW, "remaining": free}, {"date": "2026-11-25", "remaining": 0}]}

    def appointment_slots(self, department, doctor, day):
        self._call("appointment_slots", department, doctor, day)
        return self.slots_list()

    def search_doctors(self, text):
        self._call("search_doctors", text)
        names = {d["code"]: d["name"] for d in self.departments_table}
        return [{k: d[k] for k in ("code", "name", "initials", "title", "specialty", "fee_fen")}
                | {"departments": [{"code": c, "name": names[c]} for c in d["departments"]]}
                for d in self.doctor_table.values() if d["initials"].startswith(text.upper()) or text in d["name"]]

    def book_appointment(self, patient_id, slot_id, idempotency_key):
        self._call("book_appointment", patient_id, slot_id, idempotency_key)
        if idempotency_key in self.keys:
            return dict(self.orders[self.keys[idempotency_key]])
        if self.booked_days.get((patient_id, self.TOMORROW), 0) >= self.max_per_day:
            raise BackendError("BOOKING_LIMIT_DAY", f"同一就诊日最多预约 {self.max_per_day} 个号",
                               f"At most {self.max_per_day} registrations per day", {"limit": self.max_per_day})
        order = FakeBackend.create_registration(self, patient_id, slot_id, idempotency_key)
        self.calls.pop(-1)  # counted as book_appointment above
        no = order["order_no"]
        self.orders[no]["slot"]["date"] = self.TOMORROW
        self.orders[no]["department"] = {"code": "XXG", "name": "心血管内科", "location": "门诊楼3层A区"}
        self.booked_days[(patient_id, self.TOMORROW)] = self.booked_days.get((patient_id, self.TOMORROW), 0) + 1
        return dict(self.orders[no])

    def phone_pays(self, order_no: str, fulfil: bool = True) -> None:
        super().phone_pays(order_no, fulfil)
        if fulfil:
            self.orders[order_no]["registration"]["location"] = "门诊楼3层A区 5诊室"

    def registration_history(self, patient_id):
        self._call("registration_history", patient_id)
        rows = []
        for no, o in self.orders.items():
            if o.get("registration") is None:
                continue
            status = {"FULFILLED": "BOOKED", "CHECKED_IN": "CHECKED_IN"}.get(o["status"], "CANCELLED")
            rows.append({"visit_code": o["registration"]["visit_code"], "order_no": no, "status": status,
                         "date": o["slot"]["date"], "start": o["slot"]["start"], "end": o["slot"]["end"],
                         "queue_no": o["registration"]["queue_no"], "department": dict(o["department"]),
                         "doctor": {k: o["doctor"][k] for k in ("code", "name")},
                         "location": o["registration"]["location"], "fee_fen": o["amount_fen"]})
        # one the HIS holds without a platform order (booked by phone at the switchboard): not ours to touch
        rows.append({"visit_code": "VHIS", "order_no": None, "status": "BOOKED", "date": self.TOMORROW,
                     "start": "09:00", "end": "09:30", "queue_no": 1, "department": {"code": "HX", "name": "呼吸内科"},
                     "doctor": {"code": "D02", "name": "李晓燕"}, "location": "", "fee_fen": 3000})
        return rows

    def cancel_appointment(self, order_no, patient_id):
        self._call("cancel_appointment", order_no, patient_id)
        order = self.orders[order_no]
        if order["status"] == "REFUNDED":
            return dict(order)
        if order_no in self.cancel_at_counter:
            raise BackendError("CANCEL_AT_COUNTER", "已超过自助取消时间（2026-11-23 18:00），请到人工窗口办理",
                               "Self-service cancellation closed at 2026-11-23 18:00; please go to a service counter",
                               {"deadline": "2026-11-23T18:00+08:00"})
        if order["status"] != "FULFILLED":
            raise BackendError("APPOINTMENT_NOT_CANCELLABLE", "该预约尚未支付成功，无需取消", "Not paid")
        order["status"] = "REFUNDED"
        slot = self.slot_table[int(order["slot"]["slot_id"])]
        slot["booked"] -= 1
        return dict(order)

    def check_in(self, order_no, patient_id):
        self._call("check_in", order_no, patient_id)
        order = self.orders[order_no]
        if self.checkin_window != "open":
            code = "CHECKIN_TOO_EARLY" if self.checkin_window == "early" else "CHECKIN_TOO_LATE"
            raise BackendError(code, "还未到报到时间" if code.endswith("EARLY") else "已超过报到时间", "Outside",
                               {"opens_at": f"{self.TODAY}T13:00+08:00", "closes_at": f"{self.TODAY}T14:15+08:00"})
        order["status"] = "CHECKED_IN"
        reg = order["registration"]
        return {"order_no": order_no, "visit_code": reg["visit_code"], "status": "CHECKED_IN",
                "queue_no": reg["queue_no"], "position": self.queue_ahead + 1, "ahead": self.queue_ahead,
                "estimated_wait_minutes": self.queue_ahead * 8, "location": reg["location"],
                "department": order["department"]["name"], "doctor": order["doctor"]["name"],
                "date": order["slot"]["date"], "start": order["slot"]["start"], "end": order["slot"]["end"]}


# ---- cards (办卡绑卡, K2), with the server's rules: one e-health card per patient, one patient per visit card ----

def mask_card(card_no: str) -> str:
    return card_no[0] + "*" * (len(card_no) - 5) + card_no[-4:]


class FakeCardsBackend(FakeBackend):
    def __init__(self, journal=None):
        super().__init__(journal)
        self.ehealth: dict[str, str] = {}  # patient id -> the code issued here
        self.held_elsewhere: set[str] = set()  # patients holding a card the regional platform issued
        self.visit_cards: dict[str, str] = {"6000000009": "P0002"}  # card number -> patient id
        self.lost_answers: set[str] = set()  # methods whose next answer is lost after the server acted

    def _answer(self, name: str, answer):
        if name in self.lost_answers:
            self.lost_answers.discard(name)
            raise BackendUnavailable(f"{name}: read timed out")
        return answer

    def identify_by_code(self, method, code):
        if method == "visit_card" and code in self.visit_cards:
            self._call("identify_by_code", method, code)
            return {"patient_id": self.visit_cards[code], "name_masked": "李*英", "gender": "女", "age": 70}
        return super().identify_by_code(method, code)

    def _cards(self, patient_id):
        held = patient_id in self.ehealth or patient_id in self.held_elsewhere
        return {"ehealth_card": {"held": held, "can_show": patient_id in self.ehealth},
                "visit_cards": [mask_card(no) for no, pid in self.visit_cards.items() if pid == patient_id]}

    def patient_cards(self, patient_id):
        self._call("patient_cards", patient_id)
        return self._cards(patient_id)

    def issue_ehealth_card(self, patient_id):
        self._call("issue_ehealth_card", patient_id)
        if patient_id in self.held_elsewhere:
            return {"code": None, "created": False, "held_elsewhere": True}
        created = patient_id not in self.ehealth
        code = self.ehealth.setdefault(patient_id, f"{len(self.ehealth) + 1:x}".rjust(64, "a"))
        return self._answer("issue_ehealth_card", {"code": code, "created": created, "held_elsewhere": False})

    def bind_visit_card(self, patient_id, card_no):
        self._call("bind_visit_card", patient_id, card_no)
        holder = self.visit_cards.get(card_no)
        if holder is not None and holder != patient_id:
            raise BackendError("VISIT_CARD_TAKEN", "该就诊卡已绑定其他就诊人，无法再次绑定",
                               "This visit card is already bound to another patient.")
        self.visit_cards[card_no] = patient_id
        return self._answer("bind_visit_card", {"card_masked": mask_card(card_no), "created": holder is None,
                                                **self._cards(patient_id)})
