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
