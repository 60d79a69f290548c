"""Appointments (预约挂号, 取消预约) and check-in (取号报到) screens.

The registration's screens are reused where they fit (doctors, slots, confirm, payment, done), retitled for a
day that is not today. New here: the department screen with its clinic groups, the letter keyboard for pinyin
initials (keys in alphabetical order, every key a full touch target: an elderly patient hunts for letters, a
QWERTY layout does not help), the days of the window with the places left, the appointments to give back, and
the check-in result where the queue number and the place to wait are the largest text.
"""
from __future__ import annotations

from datetime import date
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QGridLayout, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from ui import theme
from ui.screens.base import Screen, Send
from ui.screens.bills import BillPaymentScreen
from ui.screens.choose import DoctorsScreen, SlotsScreen
from ui.screens.confirm import ConfirmScreen
from ui.screens.result import Badge, DoneScreen, ShowWayButton
from ui.widgets import (PagedGrid, Tile, button, centered, label, notice_label, show_notice, title_block,
                        yuan)
from workflows.view import View

WEEKDAYS = "一二三四五六日"
WEEKDAYS_EN = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
KEY_ROWS = ("ABCDEFG", "HIJKLMN", "OPQRST", "UVWXYZ")


def _day_words(day: str) -> tuple[str, str]:
    """'2026-11-24' → ('11月24日 星期二', 'Tue 24 Nov'): patients think in weekdays, not in ISO dates."""
    try:
        d = date.fromisoformat(day)
    except ValueError:
        return day, ""
    return f"{d.month}月{d.day}日 星期{WEEKDAYS[d.weekday()]}", f"{WEEKDAYS_EN[d.weekday()]} {d:%d %b}"


def _empty() -> QLabel:
    empty = QLabel()
    empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
    empty.setStyleSheet(f"font-size: 32px; color: {theme.MUTED};")
    empty.setWordWrap(True)
    empty.hide()
    return empty


class _ListScreen(Screen):
    """A title, a notice, a paged grid of tiles, and what to say when there are none."""

    columns, rows = 3, 3

    def __init__(self, send: Send, zh: str, en: str):
        super().__init__(send)
        self.title = title_block(zh, en)
        self.body.addWidget(self.title)
        self.notice = notice_label()
        self.body.addWidget(self.notice)
        self.grid = PagedGrid(self.columns, self.rows, self.make_tile)
        self.body.addWidget(self.grid, 1)
        self.empty = _empty()
        self.body.addWidget(self.empty, 1)

    def make_tile(self, item: Any) -> Tile:
        raise NotImplementedError

    def show_items(self, items: list[Any], empty_text: str) -> None:
        self.grid.set_items(items)
        self.grid.setVisible(bool(items))
        self.empty.setText(empty_text)
        self.empty.setVisible(not items)


# ---- 预约挂号 -------------------------------------------------------------------------------------------

class AppointmentDepartmentsScreen(_ListScreen):
    """Departments by clinic group (general / 特需 / MDT), with the two other ways in: find a doctor, cancel."""

    columns, rows = 5, 3

    def __init__(self, send: Send):
        super().__init__(send, "预约挂号 · 请选择科室", "Appointments · choose a department")
        row = QHBoxLayout()
        row.setSpacing(18)
        self.tabs: dict[str, QPushButton] = {}
        for clinic_type in ("general", "special", "mdt"):
            tab = button("", on_click=self.intent("pick_clinic_type", clinic_type=clinic_type), min_width=290)
            self.tabs[clinic_type] = tab
            row.addWidget(tab)
        row.addStretch(1)
        row.addWidget(button("按医生查找  Find a doctor", "primary", self.intent("open_search"), 400))
        row.addWidget(button("取消预约  Cancel one", "danger", self.intent("open_cancel"), 360))
        self.body.insertLayout(1, row)

    def make_tile(self, d: dict[str, Any]) -> Tile:
        tile = Tile([(d["name"], 32, True), (d.get("name_en", ""), 17, False),
                     (d.get("location", ""), 18, False)], min_height=100)
        tile.clicked.connect(self.intent("pick_department", code=d["code"]))
        return tile

    def render(self, view: View) -> None:
        current = view.data.get("clinic_type", "general")
        for group in view.data.get("groups", []):
            tab = self.tabs[group["id"]]
            tab.setText(f"{group['name']} ({group['count']})")
            tab.setToolTip(group["name_en"])
            tab.setProperty("kind", "primary" if group["id"] == current else "")
            tab.style().unpolish(tab)
            tab.style().polish(tab)
        show_notice(self.notice, view)
        self.show_items(view.data.get("departments", []), "该类门诊暂无可预约科室\nNo clinics of this kind")


class DoctorSearchScreen(Screen):
    """Pinyin initials on a large alphabetical keyboard; the doctors found, one tile per department they sit in."""

    def __init__(self, send: Send):
        super().__init__(send)
        self.body.addWidget(title_block("按医生姓名拼音首字母查找",
                                        "Find a doctor: type the initials of the name, e.g. 王建国 → WJG"))
        row = QHBoxLayout()
        row.setSpacing(36)
        left = QVBoxLayout()
        left.setSpacing(14)
        self.query = label("", 60, True, theme.PRIMARY, Qt.AlignmentFlag.AlignCenter)
        self.query.setObjectName("Card")
        self.query.setMinimumHeight(theme.TOUCH_MIN)
        left.addWidget(self.query)
        keys = QGridLayout()
        keys.setSpacing(12)
        for r, letters in enumerate(KEY_ROWS):
            for c, letter in enumerate(letters):
                key = button(letter, on_click=self.intent("key", letter=letter), min_width=112)
                key.setStyleSheet("font-size: 40px; font-weight: bold; padding: 0;")
                keys.addWidget(key, r, c)
        keys.addWidget(button("⌫ 删除", on_click=self.intent("backspace"), min_width=112), 2, 6)
        keys.addWidget(button("清空", on_click=self.intent("clear_query"), min_width=112), 3, 6)
        left.addLayout(keys)
        left.addStretch(1)
        row.addLayout(left, 0)
        right = QVBoxLayout()
        self.notice = notice_label()  # beside the keys, where the results would be: the title keeps its place
        right.addWidget(self.notice)
        self.grid = PagedGrid(2, 3, self.make_tile)
        right.addWidget(self.grid, 1)
        self.empty = _empty()
        right.addWidget(self.empty, 1)
        row.addLayout(right, 1)
        self.body.addLayout(row, 1)

    def make_tile(self, f: dict[str, Any]) -> Tile:
        dept = f.get("department") or {}
        tile = Tile([(f"{f['name']}  {f.get('title') or ''}", 32, True), (dept.get("name", ""), 26, False),
                     (f"挂号费 {yuan(int(f.get('fee_fen') or 0))}", 20, False)], min_height=130)
        tile.clicked.connect(self.intent("pick_found", code=f["code"], department=dept.get("code")))
        return tile

    def render(self, view: View) -> None:
        query = view.data.get("query", "")
        found = view.data.get("found", [])
        self.query.setText(query or "请输入首字母")
        self.query.setStyleSheet(f"font-size: {60 if query else 34}px; font-weight: bold; letter-spacing: 8px; "
                                 f"color: {theme.PRIMARY if query else theme.MUTED}; background: {theme.CARD}; "
                                 f"border: 2px solid {theme.LINE}; border-radius: 18px;")
        show_notice(self.notice, view)
        self.grid.set_items(found)
        self.grid.setVisible(bool(found))
        self.empty.setText("" if view.message else
                           ("没有找到这位医生，请检查首字母\nNo doctor with these initials" if query else
                            "例如：王建国 → W J G\nFor 王建国 type W J G"))
        self.empty.setVisible(not found)


class AppointmentDoctorsScreen(DoctorsScreen):
    """The department's doctors, with the places left over the whole booking window."""

    def render(self, view: View) -> None:
        super().render(view)
        dept = view.data.get("department") or {}
        self.title.zh.setText(f"{dept.get('name', '')} · 请选择预约医生")
        self.show_items(view.data.get("doctors", []), "该科室近期号源已满\nNo free places in the booking window")


class DatesScreen(_ListScreen):
    """The days of the window the doctor sits, with the places left; a full day stays visible, greyed."""

    columns, rows = 5, 3

    def __init__(self, send: Send):
        super().__init__(send, "请选择就诊日期", "Choose a day")

    def make_tile(self, d: dict[str, Any]) -> Tile:
        zh, en = _day_words(d["date"])
        free = int(d.get("remaining", 0))
        tile = Tile([(zh, 30, True), (en, 18, False), (f"余号 {free}" if free else "已约满  Full", 24, False)],
                    enabled=free > 0, min_height=120)
        tile.clicked.connect(self.intent("pick_date", date=d["date"]))
        return tile

    def render(self, view: View) -> None:
        doctor, dept = view.data.get("doctor") or {}, view.data.get("department") or {}
        self.title.zh.setText(f"{doctor.get('name', '')} {doctor.get('title') or ''} · {dept.get('name', '')} · "
                              "请选择就诊日期")
        first, last = view.data.get("first", ""), view.data.get("last", "")
        self.title.en.setText(f"Choose a day  (可预约 {first} 至 {last})" if first else "Choose a day")
        show_notice(self.notice, view)
        self.show_items(view.data.get("dates", []), "该医生近期没有出诊\nThis doctor has no clinic in the window")


class AppointmentSlotsScreen(SlotsScreen):
    def render(self, view: View) -> None:
        doctor = view.data.get("doctor") or {}
        zh, en = _day_words(view.data.get("date", ""))
        self.title.zh.setText(f"{doctor.get('name', '')} · {zh} · 请选择就诊时段")
        self.title.en.setText(f"{en} · Choose a time")
        self.show_notice(view)
        self.show_items(view.data.get("slots", []), "这一天已无剩余号源，请返回选择其他日期\n"
                                                    "No free time left that day. Go back to choose another day.")


class AppointmentConfirmScreen(ConfirmScreen):
    def __init__(self, send: Send):
        super().__init__(send)
        title = self.body.itemAt(0).widget()
        title.zh.setText("请核对预约信息")
        title.en.setText("Please check your appointment")
        confirm = next(b for b in self.findChildren(QPushButton) if "Confirm" in b.text())
        confirm.setText("确认预约并支付  Confirm and pay")

    def render(self, view: View) -> None:
        super().render(view)
        s = view.data.get("slot") or {}
        zh, _ = _day_words(view.data.get("date", ""))
        self.values["time"].setText(f"{zh}  {s.get('start', '')} - {s.get('end', '')}")


class AppointmentPaymentScreen(BillPaymentScreen):
    """The outpatient payment screen (the terminal's QR, payment codes), saying what is being paid for."""

    def render(self, view: View) -> None:
        super().render(view)
        order = view.data.get("order") or {}
        dept, doctor, slot = (order.get(k) or {} for k in ("department", "doctor", "slot"))
        zh, _ = _day_words(slot.get("date", ""))
        self.what.setText(f"预约挂号 · {dept.get('name', '')} {doctor.get('name', '')}\n"
                          f"{zh} {slot.get('start', '')}-{slot.get('end', '')}")


class AppointmentDoneScreen(DoneScreen):
    def __init__(self, send: Send):
        super().__init__(send)
        for lbl in self.findChildren(QLabel):
            if lbl.text() == "挂号成功":
                lbl.setText("预约成功")
            elif lbl.text() == "Registration complete":
                lbl.setText("Appointment booked")

    def render(self, view: View) -> None:
        super().render(view)
        slot = (view.data.get("order") or {}).get("slot") or {}
        zh, _ = _day_words(slot.get("date", ""))
        self.rows["time"].setText(f"{zh}  {slot.get('start', '')} - {slot.get('end', '')}")
        if not view.data.get("print_failed"):
            self.slip.setText("请取走预约凭条，就诊当天先到自助机“取号报到”  Take your slip; check in on the day")


# ---- 取消预约 -----------------------------------------------------------------------------------------

def _appointment_lines(a: dict[str, Any]) -> list[tuple[str, int, bool]]:
    zh, en = _day_words(str(a.get("date", "")))
    dept, doctor = a.get("department") or {}, a.get("doctor") or {}
    return [(f"{zh}  {a.get('start', '')}-{a.get('end', '')}", 30, True),
            (f"{dept.get('name', '')}  {doctor.get('name', '')}", 28, False),
            (f"{en}   挂号费 {yuan(int(a.get('fee_fen') or 0))}", 20, False)]


class CancelListScreen(_ListScreen):
    columns, rows = 2, 3

    def __init__(self, send: Send):
        super().__init__(send, "取消预约 · 请选择要取消的预约", "Cancel an appointment · choose one")

    def make_tile(self, a: dict[str, Any]) -> Tile:
        tile = Tile(_appointment_lines(a), min_height=120)
        tile.clicked.connect(self.intent("pick_appointment", order_no=a["order_no"]))
        return tile

    def render(self, view: View) -> None:
        show_notice(self.notice, view)
        self.show_items(view.data.get("appointments", []), "")


class CancelConfirmScreen(Screen):
    def __init__(self, send: Send):
        super().__init__(send)
        self.body.addWidget(title_block("确认取消这个预约吗？", "Cancel this appointment?"))
        card = QFrame()
        card.setObjectName("Card")
        grid = QGridLayout(card)
        grid.setContentsMargins(60, 36, 60, 36)
        grid.setHorizontalSpacing(48)
        grid.setVerticalSpacing(18)
        self.values: dict[str, QLabel] = {}
        for row, (key, zh, en) in enumerate((("time", "就诊时间", "Time"), ("department", "科室", "Department"),
                                             ("doctor", "医生", "Doctor"), ("fee", "挂号费", "Fee"))):
            grid.addWidget(label(zh, 32, color=theme.MUTED), row, 0)
            grid.addWidget(label(en, 20, color=theme.MUTED), row, 1)
            self.values[key] = label("", 40, True)
            grid.addWidget(self.values[key], row, 2)
        grid.setColumnStretch(2, 1)
        self.body.addWidget(card, 1)
        self.body.addWidget(label("取消后号源将释放，挂号费按原支付方式退回。是否可以自助取消以医院规定为准。\n"
                                  "The place is given back and the fee refunded the way it was paid, "
                                  "if the hospital's rules still allow it here.", 26, color=theme.MUTED, wrap=True))
        self.body.addLayout(centered(button("确认取消预约  Yes, cancel it", "danger", self.intent("confirm_cancel"),
                                            560)))

    def render(self, view: View) -> None:
        a = view.data.get("appointment") or {}
        zh, _ = _day_words(str(a.get("date", "")))
        self.values["time"].setText(f"{zh}  {a.get('start', '')} - {a.get('end', '')}")
        self.values["department"].setText((a.get("department") or {}).get("name", ""))
        self.values["doctor"].setText((a.get("doctor") or {}).get("name", ""))
        self.values["fee"].setText(yuan(int(a.get("fee_fen") or 0)))


class CancelledScreen(Screen):
    def __init__(self, send: Send):
        super().__init__(send)
        heading = QWidget()
        hl = QVBoxLayout(heading)
        hl.addWidget(label("预约已取消", 60, True, theme.ACCENT))
        hl.addWidget(label("Appointment cancelled", 26, color=theme.MUTED))
        self.body.addStretch(1)
        self.body.addLayout(centered(Badge("tick", theme.ACCENT, 140), heading))
        self.what = label("", 36, True, align=Qt.AlignmentFlag.AlignCenter, wrap=True)
        self.money = label("", 40, True, theme.PRIMARY, Qt.AlignmentFlag.AlignCenter, wrap=True)
        self.money_en = label("", 24, color=theme.MUTED, align=Qt.AlignmentFlag.AlignCenter, wrap=True)
        for w in (self.what, self.money, self.money_en):
            self.body.addWidget(w)
        self.body.addStretch(1)
        self.body.addLayout(centered(button("完成，返回首页  Done", "primary", self.intent("finish"), 480)))
        self.body.addStretch(1)

    def render(self, view: View) -> None:
        a, order = view.data.get("appointment") or {}, view.data.get("order") or {}
        zh, _ = _day_words(str(a.get("date", "")))
        self.what.setText(f"{zh} {a.get('start', '')}  {(a.get('department') or {}).get('name', '')} "
                          f"{(a.get('doctor') or {}).get('name', '')}")
        amount = yuan(int(order.get("amount_fen") or a.get("fee_fen") or 0))
        if order.get("status") == "REFUNDED":
            self.money.setText(f"挂号费 {amount} 已按原支付方式退回")
            self.money_en.setText(f"The fee of {amount} has been refunded the way it was paid.")
        else:  # the server has it in hand; the refund finishes without the patient
            self.money.setText(f"挂号费 {amount} 正在退回原支付账户，请留意到账通知")
            self.money_en.setText(f"The fee of {amount} is on its way back to the account it came from.")


# ---- 取号报到 -----------------------------------------------------------------------------------------

class CheckinListScreen(_ListScreen):
    columns, rows = 2, 3

    def __init__(self, send: Send):
        super().__init__(send, "取号报到 · 请选择今天的预约", "Check-in · choose today's appointment")

    def make_tile(self, a: dict[str, Any]) -> Tile:
        dept, doctor = a.get("department") or {}, a.get("doctor") or {}
        done = a.get("status") == "CHECKED_IN"
        tile = Tile([(f"{a.get('start', '')}-{a.get('end', '')}", 36, True),
                     (f"{dept.get('name', '')}  {doctor.get('name', '')}", 28, False),
                     ("已报到，点此查看排队  Checked in: see the queue" if done else "点此报到  Tap to check in", 22,
                      done)], min_height=120)
        tile.clicked.connect(self.intent("pick_appointment", order_no=a["order_no"]))
        return tile

    def render(self, view: View) -> None:
        show_notice(self.notice, view)
        self.show_items(view.data.get("appointments", []), "")


class CheckinDoneScreen(Screen):
    """Checked in: the number, how long, and where to wait, the last two as large as the number itself."""

    def __init__(self, send: Send):
        super().__init__(send)
        heading = QWidget()
        hl = QVBoxLayout(heading)
        hl.addWidget(label("报到成功", 56, True, theme.ACCENT))
        hl.addWidget(label("You are checked in", 24, color=theme.MUTED))
        self.body.addLayout(centered(Badge("tick", theme.ACCENT, 110), heading))
        card = QFrame()
        card.setObjectName("Card")
        grid = QGridLayout(card)
        grid.setContentsMargins(60, 20, 60, 20)
        grid.setHorizontalSpacing(60)
        grid.setVerticalSpacing(10)
        grid.addWidget(label("就诊序号  Queue number", 28, color=theme.MUTED, align=Qt.AlignmentFlag.AlignCenter),
                       0, 0)
        grid.addWidget(label("前面还有  Ahead of you", 28, color=theme.MUTED, align=Qt.AlignmentFlag.AlignCenter),
                       0, 1)
        grid.addWidget(label("预计等候  Estimated wait", 28, color=theme.MUTED,
                             align=Qt.AlignmentFlag.AlignCenter), 0, 2)
        self.queue = label("", 96, True, theme.PRIMARY, Qt.AlignmentFlag.AlignCenter)
        self.ahead = label("", 64, True, align=Qt.AlignmentFlag.AlignCenter)
        self.wait = label("", 64, True, align=Qt.AlignmentFlag.AlignCenter)
        grid.addWidget(self.queue, 1, 0)
        grid.addWidget(self.ahead, 1, 1)
        grid.addWidget(self.wait, 1, 2)
        grid.addWidget(label("请到  Please go to", 28, color=theme.MUTED, align=Qt.AlignmentFlag.AlignCenter),
                       2, 0, 1, 3)
        self.where = label("", 48, True, theme.INK, Qt.AlignmentFlag.AlignCenter, wrap=True)
        grid.addWidget(self.where, 3, 0, 1, 3)
        self.who = label("", 28, color=theme.MUTED, align=Qt.AlignmentFlag.AlignCenter)
        grid.addWidget(self.who, 4, 0, 1, 3)
        self.body.addWidget(card, 1)
        self.slip = label("", 30, True, align=Qt.AlignmentFlag.AlignCenter, wrap=True)
        self.body.addWidget(self.slip)
        self.show_way = ShowWayButton(send)
        self.body.addLayout(centered(self.show_way, button("完成，返回首页  Done", "primary", self.intent("finish"), 480)))

    def render(self, view: View) -> None:
        self.show_way.render(view)
        q = view.data.get("queue") or {}
        self.queue.setText(f"{q.get('queue_no', '')} 号")
        self.ahead.setText(f"{q.get('ahead', 0)} 人")
        wait = q.get("estimated_wait_minutes")
        self.wait.setText("—" if wait is None else f"约 {wait} 分钟")
        self.where.setText(f"{q.get('location', '')} 候诊")
        self.who.setText(f"{q.get('department', '')}  {q.get('doctor', '')}  {q.get('start', '')}-{q.get('end', '')}"
                         "   请留意叫号屏  Watch the calling screen")
        if view.data.get("print_failed"):
            self.slip.setStyleSheet(f"font-size: 30px; font-weight: bold; color: {theme.WARN};")
            self.slip.setText("报到凭条打印失败，您已报到成功，请记住序号与候诊地点。\n"
                              "The slip could not be printed, but you are checked in. Note your number and place.")
        else:
            self.slip.setStyleSheet(f"font-size: 30px; font-weight: bold; color: {theme.INK};")
            self.slip.setText("请取走下方出口的报到凭条   Please take your slip below")


#: The screens of these services, by the View names the workflows publish (ui.window registers them).
APPOINTMENT_SCREENS: dict[str, type[Screen]] = {
    "appt_departments": AppointmentDepartmentsScreen, "doctor_search": DoctorSearchScreen,
    "appt_doctors": AppointmentDoctorsScreen, "appt_dates": DatesScreen, "appt_slots": AppointmentSlotsScreen,
    "appt_confirm": AppointmentConfirmScreen, "appt_payment": AppointmentPaymentScreen,
    "appt_done": AppointmentDoneScreen, "appt_cancel_list": CancelListScreen,
    "appt_cancel_confirm": CancelConfirmScreen, "appt_cancelled": CancelledScreen,
    "checkin_list": CheckinListScreen, "checkin_done": CheckinDoneScreen,
}
