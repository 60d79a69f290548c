"""Every screen fits a 1920×1080 lobby display with touch targets a finger can hit, in Chinese."""
from __future__ import annotations

import time

import pytest
from PySide6.QtWidgets import QLabel, QPushButton

from ui import theme
from ui.widgets import Tile
from ui.window import KioskWindow
from workflows.view import View

PATIENT = "李*英  女  70岁"
DEPTS = [{"code": f"D{i}", "name": n, "name_en": "Department", "remaining": i % 4}
         for i, n in enumerate("心血管内科 呼吸内科 消化内科 神经内科 内分泌科 肾内科 血液科 风湿免疫科 普通外科 骨科 "
                               "泌尿外科 神经外科 妇科 产科 儿科 眼科 耳鼻咽喉科 口腔科 皮肤科 中医科 急诊内科".split())]
DOCTORS = [{"code": f"X{i}", "name": "王建国", "title": "主任医师", "fee_fen": 5000, "remaining": 2,
            "specialty": "冠心病、高血压、心力衰竭的诊治与介入治疗"} for i in range(14)]
SLOTS = [{"slot_id": i, "start": "08:00", "end": "08:30", "remaining": 2} for i in range(17)]
ORDER = {"order_no": "R1", "amount_fen": 5000, "department": {"name": "心血管内科", "location": "门诊楼2层 B区"},
         "doctor": {"name": "王建国", "title": "主任医师"}, "slot": {"date": "2026-11-23", "start": "14:00",
                                                                  "end": "14:30"},
         "payment": {"code_url": "weixin://wxpay/bizpayurl?pr=abc"},
         "registration": {"queue_no": 12, "visit_code": "V1", "location": "门诊楼2层 B区 5诊室"}}
DEVICES = [{"role": r, "name": "社保卡/银行卡读卡器", "name_en": "PC/SC card reader", "status": st, "reason": "paper_out",
            "detail": "纸张用完 / the printer is out of paper"}
           for r, st in zip(["id_card", "pcsc", "scanner", "camera", "receipt_printer", "report_printer", "pinpad"],
                            ["ok", "ok", "fault", "ok", "degraded", "fault", "ok"])]
def home_tile(service_id: str, name: str, *, built: bool = True, available: bool = True, reason: str = "",
              reason_en: str = "") -> dict:
    return {"id": service_id, "name": name, "name_en": "Service", "built": built, "available": available,
            "reason": reason, "reason_en": reason_en}


VIEWS = [
    View("home"), View("insert_card", can_cancel=True),
    View("busy", {"text": "正在查询您的就诊信息…", "text_en": "Looking up"}, patient=PATIENT),
    View("departments", {"departments": DEPTS}, patient=PATIENT, can_cancel=True, deadline=time.monotonic() + 9),
    View("doctors", {"department": DEPTS[0], "doctors": DOCTORS}, patient=PATIENT, can_cancel=True, can_back=True),
    View("slots", {"doctor": DOCTORS[0], "slots": SLOTS}, message="该时段号源已被他人挂走，请重新选择",
         message_en="Taken", patient=PATIENT, can_cancel=True, can_back=True),
    View("confirm", {"department": DEPTS[0], "doctor": DOCTORS[0], "slot": SLOTS[0], "date": "2026-11-23"},
         patient=PATIENT, can_cancel=True, can_back=True),
    View("payment", {"order": ORDER}, patient=PATIENT, can_cancel=True, deadline=time.monotonic() + 170),
    View("payment", {"order": ORDER}, message="请在手机上确认付款", message_en="Please confirm the payment on your phone",
         patient=PATIENT, can_cancel=True, deadline=time.monotonic() + 120),
    View("done", {"order": ORDER, "print_failed": True}, patient=PATIENT),
    View("error", message="网络连接中断，请稍后再试或到人工窗口办理", message_en="The network is unavailable."),
    View("home", {"services": [home_tile("registration", "当日挂号", available=False,
                                         reason="身份证读卡器、凭条打印机暂时故障，请到其他自助机或人工窗口办理",
                                         reason_en="Out of order: ID-card reader, receipt printer. "
                                                   "Please use another kiosk or a counter."),
                               home_tile("appointment", "预约挂号", built=False)]}),
    View("home", {"services": [home_tile("registration", "当日挂号"), home_tile("appointment", "预约挂号", built=False)],
                  "maintenance": {"reason": "设备维护中", "reason_en": "Under maintenance"}}),
    View("diag_pin", {"length": 6}, message="密码错误", message_en="Wrong PIN"),
    View("diag", {"devices": DEVICES, "result": {"role": "id_card", "lines": ["读卡成功 / card read", "x" * 200]},
                  "log": ["09:41 I drivers.device: receipt_printer: degraded paper_low"] * 40}),
]

# Outpatient payment (门诊缴费) and item refunds (退费)
BILL_ITEMS = [{"item_id": str(i), "name": n, "amount_fen": 2000 + i, "place": p, "place_en": "", "status": "PAID"}
              for i, (n, p) in enumerate([("阿莫西林胶囊", "门诊西药房 1–4 号窗口"), ("血常规", "检验科（门诊楼二楼）"),
                                          ("头颅CT平扫", "医学影像科（医技楼一楼）"), ("静脉输液", "门诊治疗室（门诊楼一楼）"),
                                          ("硝苯地平控释片", "门诊西药房 1–4 号窗口"), ("血脂四项", "检验科（门诊楼二楼）"),
                                          ("连花清瘟胶囊", "门诊中药房 5 号窗口"), ("雾化吸入", "门诊治疗室（门诊楼一楼）")])]
BILLS = [{"bill_no": f"B{i}", "total_fen": 8000 + i, "issued_at": "2026-11-23T09:10+08:00",
          "department": {"name": "呼吸与危重症医学科"}, "doctor": {"name": "王建国"}, "items": BILL_ITEMS[:i + 1]}
         for i in range(8)]
BILL_ORDER = {"order_no": "MZ1", "kind": "bill", "amount_fen": 16036, "self_pay_fen": 6414,
              "department": {"name": "呼吸与危重症医学科"}, "code_url": "weixin://wxpay/bizpayurl?pr=abc",
              "insurance": {"state": "SUCCESS", "amount_fen": 9622,
                            "split": {"fund_fen": 8622, "account_fen": 1000, "self_pay_fen": 6414}},
              "payment": {"code_url": "weixin://wxpay/bizpayurl?pr=abc"}, "items": BILL_ITEMS}
PLACES = [{"place": "门诊西药房 1–4 号窗口", "place_en": "Pharmacy windows 1–4", "items": ["阿莫西林胶囊", "硝苯地平控释片"]},
          {"place": "检验科（门诊楼二楼）", "place_en": "", "items": ["血常规", "血脂四项"]},
          {"place": "医学影像科（医技楼一楼）", "place_en": "", "items": ["头颅CT平扫"]},
          {"place": "门诊治疗室（门诊楼一楼）", "place_en": "", "items": ["静脉输液", "雾化吸入"]},
          {"place": "门诊中药房 5 号窗口", "place_en": "", "items": ["连花清瘟胶囊"]}]
VIEWS += [
    View("bills", {"bills": BILLS}, patient=PATIENT, can_cancel=True),
    View("bills", {"bills": []}, message="您目前没有待缴费用", message_en="You have no bills to pay.", patient=PATIENT,
         can_cancel=True),
    View("bill_detail", {"bill": BILLS[-1], "places": PLACES}, patient=PATIENT, can_cancel=True, can_back=True),
    View("bill_checkout", {"order": BILL_ORDER}, message="医保报销金额已计算，请确认自付金额后支付",
         message_en="Insurance has been applied.", patient=PATIENT, can_cancel=True),
    View("bill_checkout", {"order": dict(BILL_ORDER, insurance=None)}, patient=PATIENT, can_cancel=True),
    View("bill_payment", {"order": BILL_ORDER, "channel": "aggregate"}, message="请在手机上确认付款",
         message_en="Please confirm the payment on your phone", patient=PATIENT, can_cancel=True,
         deadline=time.monotonic() + 170),
    View("bill_done", {"order": BILL_ORDER, "print_failed": True, "places": PLACES}, patient=PATIENT),
    View("refunds", {"orders": [{"order_no": "MZ1", "items": BILL_ITEMS}], "order_no": "MZ1", "selected": ["1"],
                     "total_fen": 2001}, patient=PATIENT, can_cancel=True, can_back=True),
    View("refunds", {"orders": [], "selected": [], "total_fen": 0}, message="今天在本机缴费的项目中，没有可以自助退费的项目",
         message_en="Nothing paid at this kiosk today can be refunded here.", patient=PATIENT, can_back=True),
    View("refund_confirm", {"items": BILL_ITEMS, "total_fen": 16036}, patient=PATIENT, can_cancel=True, can_back=True),
    View("refund_done", {"refunded": BILL_ITEMS[:2], "pending": []}, patient=PATIENT),
    View("refund_done", {"at_counter": ["阿莫西林胶囊", "血常规"]}, patient=PATIENT),
]


@pytest.fixture
def window(qtbot):
    sent = []
    w = KioskWindow(lambda intent, **kw: sent.append((intent, kw)), "示范市人民医院", "KIOSK-001")
    qtbot.addWidget(w)
    w.resize(theme.SCREEN_W, theme.SCREEN_H)
    w.show()
    w.sent = sent
    return w


@pytest.mark.parametrize("view", VIEWS, ids=[v.screen for v in VIEWS])
def test_screen_fits_and_targets_are_large(window, view, qtbot):
    window.render(view)
    qtbot.wait(10)
    hint = window.minimumSizeHint()
    assert hint.width() <= theme.SCREEN_W and hint.height() <= theme.SCREEN_H
    assert window.size().toTuple() == (theme.SCREEN_W, theme.SCREEN_H)
    for btn in window.findChildren(QPushButton):
        if btn.isVisible():
            assert btn.height() >= theme.TOUCH_MIN, btn.text()
    for tile in window.findChildren(Tile):
        if tile.isVisible():
            assert tile.height() >= theme.TOUCH_MIN and tile.width() >= 200


def test_tiles_send_intents(window, qtbot):
    from kiosk_app.scripted import click_tile
    window.render(VIEWS[3])
    click_tile(window, "呼吸内科")
    assert window.sent[-1] == ("pick_department", {"code": "D1"})
    window.render(VIEWS[0])
    click_tile(window, "当日挂号")
    assert window.sent[-1] == ("open_service", {"service": "registration"})


def test_full_departments_are_not_clickable(window):
    from kiosk_app.scripted import ScriptError, click_tile
    window.render(VIEWS[3])
    with pytest.raises(ScriptError):
        click_tile(window, "心血管内科")  # remaining 0 → disabled


def test_cancel_hidden_once_paid(window):
    window.render(next(v for v in VIEWS if v.screen == "done"))
    assert not window.cancel_btn.isVisible()
    window.render(next(v for v in VIEWS if v.screen == "payment"))
    assert window.cancel_btn.isVisible() and "取消支付" in window.cancel_btn.text()


def test_home_switches_a_service_off_with_the_reason_and_back_on(window, qtbot):
    from kiosk_app.scripted import ScriptError, click_tile
    window.render(next(v for v in VIEWS if v.data.get("services")))
    qtbot.wait(10)
    with pytest.raises(ScriptError):
        click_tile(window, "当日挂号")
    texts = " ".join(lbl.text() for lbl in window.findChildren(QLabel) if lbl.isVisible())
    assert "暂停服务" in texts and "凭条打印机暂时故障" in texts and "Out of order" in texts
    window.render(View("home", {"services": [home_tile("registration", "当日挂号")]}))
    qtbot.wait(10)
    click_tile(window, "当日挂号")
    assert window.sent[-1] == ("open_service", {"service": "registration"})


def test_maintenance_switches_every_service_off_and_says_where_to_go(window, qtbot):
    from kiosk_app.scripted import ScriptError, click_tile
    window.render(next(v for v in VIEWS if v.data.get("maintenance")))
    qtbot.wait(10)
    with pytest.raises(ScriptError):
        click_tile(window, "当日挂号")
    texts = " ".join(lbl.text() for lbl in window.findChildren(QLabel) if lbl.isVisible())
    assert "暂停服务" in texts and "设备维护中" in texts and "其他自助机" in texts


def _view(screen: str, **match) -> View:
    return next(v for v in VIEWS if v.screen == screen and all(v.data.get(k) == m for k, m in match.items()))


def test_bill_screens_send_their_intents(window, qtbot):
    from kiosk_app.scripted import ScriptError, click_button, click_tile
    window.render(_view("bills", bills=BILLS))
    click_tile(window, "¥80.03")
    assert window.sent[-1] == ("pick_bill", {"bill_no": "B3"})
    click_button(window, "我要退费")
    assert window.sent[-1] == ("open_refunds", {})
    window.render(_view("bill_detail"))
    click_button(window, "去缴费 ¥80.07")
    assert window.sent[-1] == ("confirm", {})
    window.render(_view("bill_checkout", order=BILL_ORDER))
    click_button(window, "支付自付部分 ¥64.14")
    assert window.sent[-1] == ("pay", {})
    window.render(_view("refunds", total_fen=2001))
    click_tile(window, "阿莫西林胶囊")
    assert window.sent[-1] == ("toggle_item", {"order_no": "MZ1", "item_id": "0"})
    click_button(window, "申请退费")
    assert window.sent[-1] == ("request_refund", {})
    window.render(_view("refunds", total_fen=0))
    with pytest.raises(ScriptError):
        click_button(window, "申请退费")  # nothing to refund: no button to press


def test_bill_payment_asks_only_the_self_pay_part_and_cancel_says_payment(window):
    window.render(_view("bill_payment"))
    screen = window.screens["bill_payment"]
    assert screen.amount.text() == "¥64.14" and "医保已支付 ¥96.22" in screen.due.text()
    assert "微信或支付宝" in screen.title.zh.text()
    assert window.cancel_btn.isVisible() and "取消支付" in window.cancel_btn.text()


def test_bill_done_says_where_to_go_and_where_to_get_a_missing_slip(window):
    window.render(_view("bill_done"))
    texts = " ".join(lbl.text() for lbl in window.findChildren(QLabel) if lbl.isVisible())
    assert "门诊西药房 1–4 号窗口" in texts and "头颅CT平扫" in texts and "MZ1" in texts and "人工收费窗口" in texts
    assert not window.cancel_btn.isVisible()


# Report printing (报告打印) and queries (信息查询)
def _records_views() -> list[View]:
    from tests.workflows.fakes import demo_documents, FakeRecordsBackend
    docs = demo_documents() * 3  # enough for a second page
    groups = [{"kind": k, "name": n, "name_en": "", "documents": [d for d in docs if d["kind"] == k]}
              for k, n in (("lab", "检验报告"), ("imaging", "检查报告"), ("invoice", "电子发票"), ("record", "病历"))]
    fake = FakeRecordsBackend()
    tabs = [{"id": t, "name": n, "name_en": ""} for t, n in (("registrations", "挂号记录"), ("payments", "缴费记录"),
                                                            ("bills", "费用明细"), ("queue", "排队进度"))]
    jobs = [{"kind": d["kind"], "doc_no": d["doc_no"], "title": d["title"], "status": s, "message": m, "message_en": ""}
            for d, (s, m) in zip(docs, [("printed", "已打印"), ("not_printed", "打印未完成（打印机故障），未计入打印次数"),
                                        ("unknown", "打印结果未知，未计入打印次数。请查看出纸口；如未取到，请到服务台补打"),
                                        ("refused", "自助打印次数已用完，如需再次打印请到门诊楼一楼服务台办理"),
                                        ("skipped", "打印机故障，本份未开始打印")])]
    return [
        View("documents", {"groups": groups, "selected": [["lab", "LAB001"]]}, patient=PATIENT, can_cancel=True),
        View("documents", {"groups": [], "selected": []}, message="暂无可查询的报告、发票或病历", message_en="None",
             patient=PATIENT, can_cancel=True),
        View("print_result", {"jobs": jobs, "printer_fault": True}, message="报告打印机暂时无法使用。未打印的报告可稍后再来"
             "打印，或到其他自助机、门诊楼一楼服务台打印", message_en="The report printer is out of order.", patient=PATIENT),
        View("print_result", {"jobs": jobs[:1], "printer_fault": False}, patient=PATIENT),
        *[View("records", {"tabs": tabs, "tab": t, "rows": rows * 4}, patient=PATIENT, can_cancel=True)
          for t, rows in (("registrations", fake.registrations), ("payments", fake.payments),
                          ("bills", fake.bill_rows), ("queue", fake.queue_rows))],
        View("records", {"tabs": tabs, "tab": "payments", "rows": []}, message="网络连接中断，请稍后再试或到人工窗口办理",
             message_en="The network is unavailable.", patient=PATIENT, can_cancel=True),
        View("record_bill", {"bill": dict(BILLS[-1], status="PAID")}, patient=PATIENT, can_cancel=True, can_back=True),
    ]


RECORD_VIEWS = _records_views()


@pytest.mark.parametrize("view", RECORD_VIEWS, ids=[f"{v.screen}-{i}" for i, v in enumerate(RECORD_VIEWS)])
def test_records_screens_fit_and_targets_are_large(window, view, qtbot):
    test_screen_fits_and_targets_are_large(window, view, qtbot)


def test_documents_toggle_print_and_say_why_others_cannot(window, qtbot):
    from kiosk_app.scripted import ScriptError, click_button, click_tile
    window.render(RECORD_VIEWS[0])
    qtbot.wait(10)
    click_tile(window, "胸部X线")
    assert window.sent[-1] == ("toggle_document", {"kind": "imaging", "doc_no": "IMG001"})
    with pytest.raises(ScriptError):
        click_tile(window, "腹部超声")  # not ready: the tile says when, and does nothing
    texts = " ".join(lbl.text() for lbl in window.findChildren(QLabel) if lbl.isVisible())
    assert "预计 11-24 16:00 可取" in texts and "补打请到服务台" in texts and "李*英" in texts
    click_button(window, "打印 1 份")
    assert window.sent[-1] == ("print", {})


def test_print_result_names_what_was_not_printed_and_where_else_to_print(window, qtbot):
    window.render(RECORD_VIEWS[2])
    qtbot.wait(10)
    texts = " ".join(lbl.text() for lbl in window.findChildren(QLabel) if lbl.isVisible())
    assert "已打印 1 份，4 份未打印" in texts and "其他自助机" in texts and "结果未知" in texts
    assert not window.cancel_btn.isVisible()


def test_records_tabs_and_bills_send_their_intents(window, qtbot):
    from kiosk_app.scripted import click_button, click_tile
    bills_view = next(v for v in RECORD_VIEWS if v.data.get("tab") == "bills")
    window.render(bills_view)
    qtbot.wait(10)
    click_tile(window, "¥77.00")
    assert window.sent[-1] == ("open_bill", {"bill_no": "B001"})
    click_button(window, "排队进度")
    assert window.sent[-1] == ("show_tab", {"tab": "queue"})
    window.render(next(v for v in RECORD_VIEWS if v.data.get("tab") == "queue"))
    qtbot.wait(10)
    texts = " ".join(lbl.text() for lbl in window.findChildren(QLabel) if lbl.isVisible())
    assert "前面还有 2 人" in texts and "约 15 分钟" in texts and "¥77.00" not in texts


# Appointments (预约挂号, 取消预约) and check-in (取号报到)
def _appointment_views() -> list[View]:
    depts = [{"code": f"A{i}", "name": n, "name_en": "Department", "clinic_type": "general",
              "location": "门诊楼3层A区"} for i, n in enumerate(
        "心血管内科 呼吸与危重症医学科 消化内科 神经内科 内分泌科 肾内科 血液科 风湿免疫科 普通外科 骨科 泌尿外科 神经外科 妇科 "
        "产科 儿科 眼科 耳鼻咽喉科".split())]
    groups = [{"id": "general", "name": "普通门诊", "name_en": "General clinics", "count": 17},
              {"id": "special", "name": "特需门诊", "name_en": "Special-needs clinics", "count": 1},
              {"id": "mdt", "name": "MDT 多学科门诊", "name_en": "MDT clinics", "count": 1}]
    found = [{"code": "D01", "name": "王建国", "title": "主任医师", "fee_fen": 5000,
              "department": {"code": c, "name": n}} for c, n in (("XXG", "心血管内科"), ("TXMZ", "特需门诊"))]
    dates = [{"date": f"2026-{11 if d <= 30 else 12}-{d if d <= 30 else d - 30:02d}", "remaining": d % 4}
             for d in range(23, 38)]
    upcoming = [{"order_no": f"RG{i}", "status": "BOOKED", "date": "2026-11-24", "start": "09:00", "end": "09:30",
                 "department": {"code": "XXG", "name": "心血管内科"}, "doctor": {"code": "D01", "name": "王建国"},
                 "fee_fen": 5000, "queue_no": 3} for i in range(3)]
    order = dict(ORDER, slot={"date": "2026-11-24", "start": "09:00", "end": "09:30"})
    queue = {"order_no": "RG0", "queue_no": 12, "ahead": 4, "estimated_wait_minutes": 32,
             "location": "门诊楼3层A区 5诊室", "department": "心血管内科", "doctor": "王建国", "start": "14:00",
             "end": "14:30"}
    return [
        View("appt_departments", {"groups": groups, "clinic_type": "general", "departments": depts},
             patient=PATIENT, can_cancel=True),
        View("appt_departments", {"groups": groups, "clinic_type": "mdt", "departments": depts[:1]},
             patient=PATIENT, can_cancel=True),
        View("doctor_search", {"query": "WJG", "found": found}, patient=PATIENT, can_cancel=True, can_back=True),
        View("doctor_search", {"query": "", "found": []}, patient=PATIENT, can_cancel=True, can_back=True),
        View("doctor_search", {"query": "W", "found": []}, message="暂时无法查询医生，请稍后再试或按科室选择",
             message_en="Doctor search is not available now", patient=PATIENT, can_cancel=True, can_back=True),
        View("appt_doctors", {"department": depts[0], "doctors": DOCTORS}, patient=PATIENT, can_cancel=True,
             can_back=True),
        View("appt_dates", {"department": depts[0], "doctor": DOCTORS[0], "dates": dates, "first": "2026-11-23",
                            "last": "2026-12-07"}, message="同一就诊日同一科室最多预约 1 个号，请选择其他日期",
             message_en="At most 1 per department per day", patient=PATIENT, can_cancel=True, can_back=True),
        View("appt_slots", {"doctor": DOCTORS[0], "date": "2026-11-24", "slots": SLOTS},
             message="该时段号源已被他人挂走，请重新选择", message_en="Taken", patient=PATIENT, can_cancel=True,
             can_back=True),
        View("appt_confirm", {"department": depts[0], "doctor": DOCTORS[0], "slot": SLOTS[0], "date": "2026-11-24"},
             patient=PATIENT, can_cancel=True, can_back=True),
        View("appt_payment", {"order": order, "channel": "wechat_native"}, patient=PATIENT, can_cancel=True,
             deadline=time.monotonic() + 170),
        View("appt_done", {"order": order, "print_failed": False}, patient=PATIENT),
        View("appt_cancel_list", {"appointments": upcoming}, patient=PATIENT, can_cancel=True, can_back=True),
        View("appt_cancel_list", {"appointments": []}, message="您没有可以取消的预约",
             message_en="You have no upcoming appointment to cancel.", patient=PATIENT, can_cancel=True,
             can_back=True),
        View("appt_cancel_confirm", {"appointment": upcoming[0]}, patient=PATIENT, can_cancel=True, can_back=True),
        View("appt_cancelled", {"appointment": upcoming[0], "order": {"status": "REFUNDED", "amount_fen": 5000}},
             patient=PATIENT),
        View("checkin_list", {"appointments": [dict(upcoming[0], start="14:00", end="14:30"),
                                               dict(upcoming[1], status="CHECKED_IN")]},
             message="还未到报到时间。请于 11-23 13:00 至 11-23 14:15 之间报到",
             message_en="Too early to check in. Please check in between 11-23 13:00 and 11-23 14:15.",
             patient=PATIENT, can_cancel=True),
        View("checkin_done", {"queue": queue, "print_failed": True}, patient=PATIENT),
    ]


APPOINTMENT_VIEWS = _appointment_views()


@pytest.mark.parametrize("view", APPOINTMENT_VIEWS, ids=[f"{v.screen}-{i}" for i, v in enumerate(APPOINTMENT_VIEWS)])
def test_appointment_screens_fit_and_targets_are_large(window, view, qtbot):
    test_screen_fits_and_targets_are_large(window, view, qtbot)


def _appt(screen: str, n: int = 0) -> View:
    return [v for v in APPOINTMENT_VIEWS if v.screen == screen][n]


def test_appointment_screens_send_their_intents(window, qtbot):
    from kiosk_app.scripted import ScriptError, click_button, click_tile
    window.render(_appt("appt_departments"))
    click_button(window, "特需门诊 (1)")
    assert window.sent[-1] == ("pick_clinic_type", {"clinic_type": "special"})
    click_button(window, "按医生查找")
    assert window.sent[-1] == ("open_search", {})
    click_button(window, "取消预约")
    assert window.sent[-1] == ("open_cancel", {})
    click_tile(window, "呼吸与危重症医学科")
    assert window.sent[-1] == ("pick_department", {"code": "A1"})
    window.render(_appt("doctor_search"))
    for letter in "LXY":
        click_button(window, letter)
    assert window.sent[-3:] == [("key", {"letter": "L"}), ("key", {"letter": "X"}), ("key", {"letter": "Y"})]
    click_button(window, "删除")
    assert window.sent[-1] == ("backspace", {})
    click_tile(window, "特需门诊")
    assert window.sent[-1] == ("pick_found", {"code": "D01", "department": "TXMZ"})
    window.render(_appt("appt_dates"))
    with pytest.raises(ScriptError):
        click_tile(window, "11月24日")  # 24 % 4 == 0 places left: greyed, not clickable
    click_tile(window, "11月25日")
    assert window.sent[-1] == ("pick_date", {"date": "2026-11-25"})
    window.render(_appt("appt_confirm"))
    click_button(window, "确认预约并支付")
    assert window.sent[-1] == ("confirm", {})
    window.render(_appt("appt_cancel_list"))
    click_tile(window, "王建国")
    assert window.sent[-1] == ("pick_appointment", {"order_no": "RG0"})
    window.render(_appt("appt_cancel_confirm"))
    click_button(window, "确认取消预约")
    assert window.sent[-1] == ("confirm_cancel", {})
    window.render(_appt("checkin_list"))
    click_tile(window, "已报到")
    assert window.sent[-1] == ("pick_appointment", {"order_no": "RG1"})


def test_appointment_payment_says_what_is_paid_and_cancel_says_payment(window, qtbot):
    window.render(_appt("appt_payment"))
    screen = window.screens["appt_payment"]
    assert screen.amount.text() == "¥50.00" and "预约挂号" in screen.what.text()
    assert "11月24日 星期二" in screen.what.text()
    assert window.cancel_btn.isVisible() and "取消支付" in window.cancel_btn.text()


def test_check_in_result_shows_number_wait_and_place(window, qtbot):
    window.render(_appt("checkin_done"))
    qtbot.wait(10)
    texts = " ".join(lbl.text() for lbl in window.findChildren(QLabel) if lbl.isVisible())
    assert "12 号" in texts and "4 人" in texts and "约 32 分钟" in texts and "门诊楼3层A区 5诊室 候诊" in texts
    assert "打印失败" in texts and not window.cancel_btn.isVisible()


# Guidance (就诊导航) and the satisfaction survey (满意度评价): views made by the real service, so the screens
# draw what the workflow really publishes.
def _guidance_views() -> list[View]:
    import tempfile
    from pathlib import Path

    from tests.workflows.fakes import FakeBackend, RecordingPrinter
    from workflows.guidance import Guidance
    from workflows.journal import Journal

    journal = Journal(Path(tempfile.mkdtemp()) / "journal.db")
    views: list[View] = []
    wf = Guidance(FakeBackend(journal), RecordingPrinter(), journal, views.append, "KIOSK-001")
    wf.handle("start")
    wf.handle("pick_group", group="medicine")
    for place in ("OPD3-B", "emergency", "火星门诊"):  # upstairs by lift; two buildings away; not on the map
        wf.handle("pick_place", place=place)
        wf.handle("back")
    wf.handle("pick_place", place="pharmacy-west")
    wf.handle("rate")
    wf.handle("answer", question="overall", score=5)
    journal.close()
    wanted = ("guidance_places", "guidance_map", "survey")
    return [v for v in views if v.screen in wanted]


GUIDANCE_VIEWS = _guidance_views()


@pytest.mark.parametrize("view", GUIDANCE_VIEWS, ids=[f"{v.screen}-{i}" for i, v in enumerate(GUIDANCE_VIEWS)])
def test_guidance_and_survey_screens_fit_and_targets_are_large(window, view, qtbot):
    test_screen_fits_and_targets_are_large(window, view, qtbot)


def _orange_pixels(widget) -> int:
    from PySide6.QtGui import QColor

    from ui.screens.guidance import ROUTE
    image = widget.grab().toImage()
    target = QColor(ROUTE)
    step = 3
    return sum(1 for x in range(0, image.width(), step) for y in range(0, image.height(), step)
               if image.pixelColor(x, y) == target)


def test_the_map_draws_the_route_you_are_here_and_the_words(window, qtbot):
    upstairs = next(v for v in GUIDANCE_VIEWS if v.screen == "guidance_map"
                    and v.data["route"]["destination"]["id"] == "OPD3-B")
    window.render(upstairs)
    qtbot.wait(10)
    screen = window.screens["guidance_map"]
    assert screen.map.width() >= 900 and screen.map.height() >= 500  # the map is the screen's main thing
    assert _orange_pixels(screen.map) > 200  # the route is drawn
    texts = " ".join(lbl.text() for lbl in window.findChildren(QLabel) if lbl.isVisible())
    assert "门诊楼3层 B区" in texts and "乘电梯到 3 层" in texts and "您在：门诊楼1层 大厅" in texts
    assert "左手边" in texts and "Neurology" in texts
    assert window.back_btn.isVisible() and not window.cancel_btn.isVisible()
    window.render(View("guidance_map", {"route": None}))  # nothing to draw: no line, no crash
    qtbot.wait(10)
    assert _orange_pixels(screen.map) == 0


def test_an_unknown_place_says_ask_the_help_desk(window, qtbot):
    unknown = next(v for v in GUIDANCE_VIEWS if v.screen == "guidance_map" and v.message)
    window.render(unknown)
    qtbot.wait(10)
    texts = " ".join(lbl.text() for lbl in window.findChildren(QLabel) if lbl.isVisible())
    assert "服务台" in texts and "help desk" in texts


def test_guidance_and_survey_send_their_intents(window, qtbot):
    from kiosk_app.scripted import click, click_button, click_tile
    from ui.screens.survey import FaceButton
    window.render(next(v for v in GUIDANCE_VIEWS if v.screen == "guidance_places"
                       and v.data["group"] == "medicine"))
    qtbot.wait(10)
    click_tile(window, "神经内科")
    assert window.sent[-1] == ("pick_place", {"place": "OPD3-B"})
    click_button(window, "外科")
    assert window.sent[-1] == ("pick_group", {"group": "surgery"})
    window.render(next(v for v in GUIDANCE_VIEWS if v.screen == "guidance_map"))
    click_button(window, "评价")
    assert window.sent[-1] == ("rate", {})
    click_button(window, "返回首页")
    assert window.sent[-1] == ("finish", {})
    survey = next(v for v in GUIDANCE_VIEWS if v.screen == "survey" and v.data["answers"])
    window.render(survey)
    qtbot.wait(10)
    faces = [f for f in window.findChildren(FaceButton) if f.isVisible()]
    assert len(faces) == 5 * len(survey.data["questions"])
    assert all(f.width() >= 150 and f.height() >= theme.TOUCH_MIN for f in faces)
    assert [f.score for f in faces if f.chosen] == [5]
    click(next(f for f in faces if f.score == 2))
    assert window.sent[-1][0] == "answer" and window.sent[-1][1]["score"] == 2
    click_button(window, "提交")
    assert window.sent[-1] == ("submit", {})
    click_button(window, "跳过")
    assert window.sent[-1] == ("skip", {})


# The end of a visit (K12, K13): "查看路线 Show the way" on every result that names a place, as the hub adds
# the places the map knows (`ways`, from the guidance service), and the survey the hub offers afterwards.
def _way_views() -> list[View]:
    import tempfile
    from pathlib import Path

    from tests.workflows.fakes import FakeBackend, RecordingPrinter, demo_bills
    from workflows.bill_receipt import places_of
    from workflows.guidance import Guidance
    from workflows.journal import Journal
    from workflows.visit_survey import VisitSurvey

    journal = Journal(Path(tempfile.mkdtemp()) / "journal.db")
    views: list[View] = []
    args = (FakeBackend(journal), RecordingPrinter(), journal, views.append, "KIOSK-001")
    guide = Guidance(*args)

    def ways(*texts: str) -> list[dict]:
        found = [(t, guide.destination(t)) for t in texts]
        return [{**f, "text": t} for t, f in found if f is not None]

    items = [dict(i, status="PAID") for b in demo_bills() for i in b["items"]]
    items.append(dict(items[0], item_id="99", name="复方甘草片", place="门诊中药房 5 号窗口"))
    bill_order = {"order_no": "MZ0001", "amount_fen": 8900, "items": items}
    queue = {"queue_no": 8, "ahead": 3, "estimated_wait_minutes": 24, "location": "门诊楼3层 B区 5诊室",
             "department": "神经内科", "doctor": "王建国", "start": "14:00", "end": "14:30"}
    jobs = [{"kind": "lab", "doc_no": "L1", "title": "血常规", "status": "printed", "message": "已打印"},
            {"kind": "imaging", "doc_no": "I1", "title": "胸部CT", "status": "skipped",
             "message": "打印机故障，本份未开始打印"}]
    survey = VisitSurvey(*args)
    survey.handle("start", service="registration")
    survey.handle("answer", question="overall", score=4)
    journal.close()
    return [
        View("done", {"order": ORDER, "ways": ways("门诊楼2层 B区 5诊室")}, patient=PATIENT),
        View("appt_done", {"order": ORDER, "ways": ways("门诊楼2层 B区 5诊室")}, patient=PATIENT),
        View("checkin_done", {"queue": queue, "ways": ways(queue["location"])}, patient=PATIENT),
        View("bill_done", {"order": bill_order, "places": places_of(items),
                           "ways": ways(*(p["place"] for p in places_of(items)))}, patient=PATIENT),
        View("bill_done", {"order": bill_order, "places": places_of(items[:2]),
                           "ways": ways(*(p["place"] for p in places_of(items[:2])))}, patient=PATIENT),
        View("print_result", {"jobs": jobs, "printer_fault": True, "ways": ways("门诊楼一楼服务台")},
             message="报告打印机暂时无法使用。未打印的报告可稍后再来打印，或到其他自助机、门诊楼一楼服务台打印",
             message_en="The report printer is out of order.", patient=PATIENT),
        View("done", {"order": ORDER, "ways": []}, patient=PATIENT),  # a place the map does not know
        *[v for v in views if v.screen == "survey"][-1:],
    ]


WAY_VIEWS = _way_views()


@pytest.mark.parametrize("view", WAY_VIEWS, ids=[f"{v.screen}-{i}" for i, v in enumerate(WAY_VIEWS)])
def test_result_screens_with_the_way_fit_and_targets_are_large(window, view, qtbot):
    test_screen_fits_and_targets_are_large(window, view, qtbot)


def _way_buttons(window) -> list:
    from ui.screens.result import ShowWayButton
    return [b for b in window.findChildren(ShowWayButton) if b.isVisible()]


def test_show_the_way_sends_the_place_and_hides_for_places_off_the_map(window, qtbot):
    from kiosk_app.scripted import click
    for view in WAY_VIEWS[:3] + WAY_VIEWS[5:6]:
        window.render(view)
        qtbot.wait(10)
        [btn] = _way_buttons(window)
        click(btn)
        assert window.sent[-1] == ("show_way", {"place": view.data["ways"][0]["place"]}), view.screen
    window.render(WAY_VIEWS[6])
    qtbot.wait(10)
    assert _way_buttons(window) == []
    bill = WAY_VIEWS[3]
    window.render(bill)
    qtbot.wait(10)
    buttons = _way_buttons(window)
    assert len(buttons) == len(bill.data["ways"]) == 5  # one per place on the screen, each to its own room
    click(buttons[2])
    assert window.sent[-1] == ("show_way", {"place": bill.data["ways"][2]["place"]})


def test_the_survey_after_a_visit_has_skip_and_no_back(window, qtbot):
    from kiosk_app.scripted import click_button
    view = WAY_VIEWS[-1]
    assert view.screen == "survey" and view.data["answers"] == {"overall": 4}
    window.render(view)
    qtbot.wait(10)
    assert not window.back_btn.isVisible() and not window.cancel_btn.isVisible()
    click_button(window, "跳过")
    assert window.sent[-1] == ("skip", {})


# Cards (办卡绑卡): views made by the real service against the fake server, so the screens draw what the workflow
# really publishes: the menu in its states, the scanner screen with a refusal, the QR with and without a slip.
def _card_views() -> list[View]:
    import tempfile
    from pathlib import Path

    from drivers.health import Health
    from tests.workflows.fakes import FakeCard, FakeCardsBackend, RecordingPrinter
    from workflows.journal import Journal
    from workflows.patient_cards import PatientCards

    journal = Journal(Path(tempfile.mkdtemp()) / "journal.db")
    views: list[View] = []
    printer = RecordingPrinter()
    backend = FakeCardsBackend(journal)
    wf = PatientCards(backend, printer, journal, views.append, "KIOSK-001", sleep=lambda s: None)
    wf.handle("start")
    wf.handle("card_read", card=FakeCard())
    wf.handle("bind_card")
    wf.handle("code_scanned", kind="visit_card", code="6000000009")  # someone else's card: refused in words
    wf.handle("code_scanned", kind="visit_card", code="6123451234")
    wf.handle("apply_ehealth")
    printer.fail = True
    wf.handle("back")
    wf.handle("apply_ehealth")
    wf.handle("finish")
    backend.ehealth.clear()
    backend.held_elsewhere.add("P0001")  # next patient: a card from the regional platform, and a broken scanner
    wf.handle("device_health", device="scanner", health=Health.fault("disconnected", "unplugged"))
    wf.handle("start")
    wf.handle("card_read", card=FakeCard())
    journal.close()
    return [v for v in views if v.screen in ("card_menu", "scan_visit_card", "ehealth_card")]


CARD_VIEWS = _card_views()


@pytest.mark.parametrize("view", CARD_VIEWS, ids=[f"{v.screen}-{i}" for i, v in enumerate(CARD_VIEWS)])
def test_card_screens_fit_and_targets_are_large(window, view, qtbot):
    window.render(view)
    qtbot.wait(10)
    # The screen's own share of the glass: below the header (110) and the patient bar (70), above the footer's
    # touch-size buttons (96 + margins), so it fits whatever the other screens of the stack ask for.
    screen = window.screens[view.screen]
    assert screen.minimumSizeHint().height() <= theme.SCREEN_H - 110 - 70 - 120
    assert screen.minimumSizeHint().width() <= theme.SCREEN_W
    for btn in window.findChildren(QPushButton):
        if btn.isVisible():
            assert btn.height() >= theme.TOUCH_MIN, btn.text()
    for tile in window.findChildren(Tile):
        if tile.isVisible():
            assert tile.height() >= theme.TOUCH_MIN and tile.width() >= 200


def _cards(screen: str, n: int = 0) -> View:
    return [v for v in CARD_VIEWS if v.screen == screen][n]


def test_card_menu_says_what_is_held_and_sends_its_intents(window, qtbot):
    from kiosk_app.scripted import ScriptError, click_button, click_tile
    window.render(_cards("card_menu"))
    qtbot.wait(10)
    assert "未申领" in " ".join(lbl.text() for lbl in window.findChildren(QLabel) if lbl.isVisible())
    click_tile(window, "申领电子健康卡")
    assert window.sent[-1] == ("apply_ehealth", {})
    click_tile(window, "绑定就诊卡")
    assert window.sent[-1] == ("bind_card", {})
    click_button(window, "完成，返回首页")
    assert window.sent[-1] == ("finish", {})
    bound = _cards("card_menu", 1)
    window.render(bound)
    qtbot.wait(10)
    shown = " ".join(lbl.text() for lbl in window.findChildren(QLabel) if lbl.isVisible())
    assert "就诊卡  6*****1234" in shown and "6123451234" not in shown and "绑定成功" in shown
    window.render(_cards("card_menu", -1))  # a card from elsewhere, the scanner broken: both tiles say why
    qtbot.wait(10)
    shown = " ".join(lbl.text() for lbl in window.findChildren(QLabel) if lbl.isVisible())
    assert "已有电子健康卡" in shown and "扫码器暂时故障" in shown
    for words in ("申领电子健康卡", "绑定就诊卡"):
        with pytest.raises(ScriptError):
            click_tile(window, words)


def test_scanner_screen_shows_a_refusal_and_goes_back(window, qtbot):
    from kiosk_app.scripted import click_button
    refused = _cards("scan_visit_card", 1)
    window.render(refused)
    qtbot.wait(10)
    assert "已绑定其他就诊人" in window.screens["scan_visit_card"].notice.text()
    assert window.back_btn.isVisible() and window.cancel_btn.isVisible()
    click_button(window, "上一步")
    assert window.sent[-1] == ("back", {})


def test_e_health_card_screen_draws_the_qr_and_the_slip_s_fate(window, qtbot):
    import qrcode

    from kiosk_app.scripted import click_button
    issued, reprinted = _cards("ehealth_card"), _cards("ehealth_card", 1)
    window.render(issued)
    qtbot.wait(10)
    screen = window.screens["ehealth_card"]
    expected = qrcode.QRCode(border=2, error_correction=qrcode.constants.ERROR_CORRECT_M)
    expected.add_data(issued.data["code"])
    expected.make(fit=True)
    assert screen.qr.matrix == expected.get_matrix() and screen.qr.height() >= 360
    assert "申领成功" in screen.title.text() and "取走" in screen.slip.text()
    window.render(reprinted)
    qtbot.wait(10)
    assert "打印失败" in screen.slip.text() and not window.cancel_btn.isVisible()
    click_button(window, "返回办卡绑卡")
    assert window.sent[-1] == ("back", {})
    click_button(window, "完成，返回首页")
    assert window.sent[-1] == ("finish", {})


# Bank cards (银行卡) beside the QR, their steps, and the social-security card at the bill checkout (K6);
# tests/ui/test_card_screens.py drives them further and saves each as a PNG.
def _card_payment_views() -> list[View]:
    from tests.ui.test_card_screens import CARD_VIEWS
    return list(CARD_VIEWS.values())


@pytest.mark.parametrize("view", _card_payment_views(), ids=lambda v: f"{v.screen}-{v.data.get('step', '')}")
def test_card_payment_screens_fit_and_targets_are_large(window, view, qtbot):
    test_screen_fits_and_targets_are_large(window, view, qtbot)
