"""The kiosk window: header, patient bar, the current screen, and the Back / Cancel footer.

It draws whatever View the workflow publishes and turns taps into intents; it never calls a device or the
network itself.
"""
from __future__ import annotations

import time
from datetime import datetime
from typing import Callable

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QSizePolicy, QStackedWidget, QVBoxLayout, QWidget

from ui import theme
from ui.screens.base import Screen, Send
from ui.screens.bills import (BillCheckoutScreen, BillDetailScreen, BillDoneScreen, BillPaymentScreen, BillsScreen,
                              RefundConfirmScreen, RefundDoneScreen, RefundsScreen)
from ui.screens.card import InsertCardScreen, NewFileScreen
from ui.screens.identify import IDENTIFY_SCREENS
from ui.screens.choose import DepartmentsScreen, DoctorsScreen, SlotsScreen
from ui.screens.confirm import ConfirmScreen
from ui.screens.diag import DiagPinScreen, DiagScreen
from ui.screens.home import HomeScreen
from ui.screens.guidance import GuidanceMapScreen, GuidancePlacesScreen
from ui.screens.survey import SurveyScreen, SurveyThanksScreen
from ui.screens.payment import BankCardScreen, PaymentScreen
from ui.screens.result import BusyScreen, DoneScreen, ErrorScreen
from ui.screens.records import DocumentsScreen, PrintResultScreen, RecordBillScreen, RecordsScreen
from ui.screens.appointments import APPOINTMENT_SCREENS
from ui.screens.patient_cards import PATIENT_CARD_SCREENS
from ui.widgets import button, label
from workflows.view import View

SCREENS: dict[str, type[Screen]] = {
    "home": HomeScreen, "insert_card": InsertCardScreen, "new_file": NewFileScreen, "departments": DepartmentsScreen,
    "doctors": DoctorsScreen, "slots": SlotsScreen, "confirm": ConfirmScreen, "payment": PaymentScreen,
    "busy": BusyScreen, "done": DoneScreen, "error": ErrorScreen,
    "diag_pin": DiagPinScreen, "diag": DiagScreen,
    # outpatient payment (门诊缴费) and item refunds (退费)
    "bills": BillsScreen, "bill_detail": BillDetailScreen, "bill_checkout": BillCheckoutScreen,
    "bill_payment": BillPaymentScreen, "bill_done": BillDoneScreen, "refunds": RefundsScreen,
    "refund_confirm": RefundConfirmScreen, "refund_done": RefundDoneScreen,
    # report printing (报告打印) and queries (信息查询)
    "documents": DocumentsScreen, "print_result": PrintResultScreen, "records": RecordsScreen,
    "record_bill": RecordBillScreen,
    # appointments (预约挂号, 取消预约) and check-in (取号报到)
    **APPOINTMENT_SCREENS,
    # guidance (就诊导航) and the satisfaction survey (满意度评价)
    "guidance_places": GuidancePlacesScreen, "guidance_map": GuidanceMapScreen, "survey": SurveyScreen,
    "survey_thanks": SurveyThanksScreen,
    # identification besides the ID card: a family's e-health account, passport / permit number, 刷脸
    **IDENTIFY_SCREENS,
    # cards (办卡绑卡): the menu, a visit card under the scanner, the e-health card's QR
    **PATIENT_CARD_SCREENS,
    # the bank card's steps on every payment screen (银行卡)
    "bank_card": BankCardScreen,
}
#: Screens with money in flight: Cancel there asks the server to close the order, and they show their own countdown.
PAYMENT_SCREENS = ("payment", "bill_payment", "appt_payment", "bank_card")
WEEKDAYS = "一二三四五六日"


class ViewBridge(QObject):
    """Carries views from the workflow thread to the Qt thread (a queued signal across threads)."""

    changed = Signal(object)

    def publish(self, view: View) -> None:
        self.changed.emit(view)


class HiddenGesture(QObject):
    """Five taps on the header within three seconds: easy for a technician who knows, never done by chance."""

    TAPS, WINDOW = 5, 3.0

    def __init__(self, on_gesture: Callable[[], None], clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.on_gesture = on_gesture
        self.clock = clock
        self._taps: list[float] = []

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802
        if event.type() == QEvent.Type.MouseButtonPress:
            now = self.clock()
            self._taps = [t for t in self._taps if now - t < self.WINDOW] + [now]
            if len(self._taps) >= self.TAPS:
                self._taps.clear()
                self.on_gesture()
        return False


class KioskWindow(QWidget):
    def __init__(self, send: Send, hospital_name: str, terminal_id: str = "",
                 now: Callable[[], datetime] = datetime.now):
        super().__init__()
        self.send = send
        self.now = now
        self.view = View("home")
        self.setObjectName("Root")
        self.setStyleSheet(theme.STYLESHEET)
        self.setWindowTitle(hospital_name)
        self.resize(theme.SCREEN_W, theme.SCREEN_H)
        root = QVBoxLayout(self)
        root.setContentsMargins(0, 0, 0, 0)
        root.setSpacing(0)

        header = QFrame()
        header.setObjectName("Header")
        header.setFixedHeight(110)
        hl = QHBoxLayout(header)
        hl.setContentsMargins(48, 0, 48, 0)
        hl.addWidget(label(hospital_name, 44, True, "white"))
        hl.addWidget(label("  自助服务终端  Self-service", 24, color="white"))
        hl.addStretch(1)
        self.clock = label("", 30, color="white", align=Qt.AlignmentFlag.AlignRight)
        hl.addWidget(self.clock)
        root.addWidget(header)
        self.gesture = HiddenGesture(self._diag_gesture)
        header.installEventFilter(self.gesture)

        self.patient_bar = QFrame()
        self.patient_bar.setObjectName("PatientBar")
        self.patient_bar.setFixedHeight(70)
        pl = QHBoxLayout(self.patient_bar)
        pl.setContentsMargins(48, 0, 48, 0)
        pl.addWidget(label("就诊人", 26, color=theme.MUTED))
        self.patient = label("", 32, True)
        pl.addWidget(self.patient)
        pl.addStretch(1)
        self.countdown = label("", 26, color=theme.MUTED)
        pl.addWidget(self.countdown)
        root.addWidget(self.patient_bar)

        self.stack = QStackedWidget()
        self.screens: dict[str, Screen] = {}
        for name, cls in SCREENS.items():
            screen = cls(self._send)
            self.screens[name] = screen
            # Only the screen on the glass counts for the window's size: a stacked widget otherwise asks for the
            # tallest of all fifty, and a long list drawn once would push every later screen off the glass.
            screen.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
            self.stack.addWidget(screen)
        root.addWidget(self.stack, 1)

        footer = QFrame()
        footer.setObjectName("Footer")
        fl = QHBoxLayout(footer)
        fl.setContentsMargins(48, 8, 48, 16)
        self.back_btn = button("‹ 上一步  Back", on_click=lambda: self._send("back"), min_width=320)
        self.cancel_btn = button("取消  Cancel", "danger", lambda: self._send("cancel"), 320)
        fl.addWidget(self.back_btn)
        fl.addStretch(1)
        self.terminal = label(terminal_id, 18, color=theme.MUTED)
        fl.addWidget(self.terminal)
        fl.addStretch(1)
        fl.addWidget(self.cancel_btn)
        root.addWidget(footer)

        self._timer = QTimer(self)
        self._timer.timeout.connect(self._tick)
        self._timer.start(500)
        self.render(self.view)

    def _diag_gesture(self) -> None:
        if self.view.screen == "home":  # never in the middle of a patient's visit
            self._send("diag_open")

    def _send(self, intent: str, **kwargs) -> None:
        self.send(intent, **kwargs)

    def render(self, view: View) -> None:
        self.view = view
        screen = self.screens.get(view.screen, self.screens["error"])
        screen.render(view)
        shown = self.stack.currentWidget()
        if shown is not screen:
            shown.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        if screen.sizePolicy().verticalPolicy() is not QSizePolicy.Policy.Preferred:
            screen.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        self.stack.setCurrentWidget(screen)
        self.patient_bar.setVisible(bool(view.patient))
        self.patient.setText(view.patient)
        self.back_btn.setVisible(view.can_back)
        self.cancel_btn.setVisible(view.can_cancel)
        self.cancel_btn.setText("取消支付  Cancel payment" if view.screen in PAYMENT_SCREENS else "取消  Cancel")
        self._tick()
        if not self.isFullScreen() and self.height() > theme.SCREEN_H:
            # A window (not the kiosk's full screen) grows while one frame needs more room and never shrinks by
            # itself; back to the display's height once this screen fits it, so a grab shows what the glass does.
            self.layout().activate()
            if self.minimumSizeHint().height() <= theme.SCREEN_H:
                self.resize(self.width(), theme.SCREEN_H)

    def _tick(self) -> None:
        now = self.now()
        self.clock.setText(f"{now:%Y年%m月%d日} 星期{WEEKDAYS[now.weekday()]}  {now:%H:%M}")
        if self.view.deadline is not None and self.view.screen not in PAYMENT_SCREENS:
            left = max(0, int(self.view.deadline - time.monotonic()))
            self.countdown.setText(f"{left} 秒后自动返回首页" if left <= 30 else "")
        else:
            self.countdown.setText("")

    def show_notice(self, zh: str, en: str, seconds: float = 6.0) -> None:
        """A short notice over the current screen, for what a device reports outside any screen's own words
        (a card the reader could not read on the insert-card screen); it goes by itself."""
        notice = getattr(self, "_notice", None)
        if notice is None:
            notice = self._notice = QLabel(self)
            notice.setObjectName("Notice")
            notice.setWordWrap(True)
            notice.setAlignment(Qt.AlignmentFlag.AlignCenter)
            notice.setStyleSheet(f"background: {theme.WARN}; color: white; font-size: 34px; font-weight: bold;"
                                 "border-radius: 18px; padding: 24px 40px;")
            self._notice_timer = QTimer(self)
            self._notice_timer.setSingleShot(True)
            self._notice_timer.timeout.connect(notice.hide)
        notice.setText(f"{zh}\n{en}")
        notice.setFixedWidth(min(1400, self.width() - 120))
        notice.adjustSize()
        notice.move((self.width() - notice.width()) // 2, (self.height() - notice.height()) // 2)
        notice.show()
        notice.raise_()
        self._notice_timer.start(int(seconds * 1000))
