"""A small window beside the kiosk when it runs on simulated devices: lay the demo patient's ID card on the
reader, take it away, and pay the QR on screen with a simulated phone. For demos and developers only."""
from __future__ import annotations

from typing import Any, Callable

from PySide6.QtWidgets import QLabel, QPushButton, QVBoxLayout, QWidget

from kiosk_app.phone import qr_on_screen
from kiosk_app.simulated import SimulatedDevices, card_for


class SimulatorPanel(QWidget):
    def __init__(self, sims: SimulatedDevices, patient: dict[str, Any], kiosk_window: QWidget,
                 pay: Callable[[str], Any]):
        super().__init__()
        self.setWindowTitle("设备模拟器 Device simulator")
        self.sims, self.patient, self.kiosk_window, self.pay = sims, patient, kiosk_window, pay
        box = QVBoxLayout(self)
        self.status = QLabel("模拟设备已就绪 Simulated devices ready")
        box.addWidget(self.status)
        for text, action in (("放置身份证（演示患者）  Put ID card on reader", self.put_card),
                             ("取走身份证  Take card away", self.take_card),
                             ("手机扫码支付  Pay the QR with a phone", self.pay_qr)):
            btn = QPushButton(text)
            btn.setMinimumHeight(56)
            btn.clicked.connect(action)
            box.addWidget(btn)

    def put_card(self) -> None:
        self.sims.id_card.insert(card_for(self.patient))
        self.status.setText("身份证已放置 Card on the reader")

    def take_card(self) -> None:
        self.sims.id_card.remove()
        self.status.setText("身份证已取走 Card removed")

    def pay_qr(self) -> None:
        code = qr_on_screen(self.kiosk_window)
        if not code:
            self.status.setText("屏幕上没有支付二维码 No payment QR on screen")
            return
        try:
            self.pay(code)
            self.status.setText("已支付 Paid")
        except Exception as exc:  # shown to the developer, not to a patient
            self.status.setText(f"支付失败 Payment failed: {exc}")
