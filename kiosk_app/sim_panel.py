"""A small window beside the kiosk when it runs on simulated devices: lay the demo patient's ID card on the
reader, take it away, pay the QR on screen with a simulated phone, and run the receipt printer out of paper
(and refill it) to watch the home screen switch the service off and on. For demos and developers only."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from kiosk_app.phone import qr_on_screen
from kiosk_app.simulated import SimulatedDevices, card_for


class SimulatorPanel(QWidget):
    def __init__(self, sims: SimulatedDevices, patient: dict[str, Any], kiosk_window: QWidget,
                 pay: Callable[[str], Any], receipts: Path):
        super().__init__()
        self.setWindowTitle("设备模拟器 Device simulator")
        self.setWindowFlag(Qt.WindowType.WindowStaysOnTopHint)
        self.sims, self.patient, self.kiosk_window, self.pay = sims, patient, kiosk_window, pay
        box = QVBoxLayout(self)
        box.setContentsMargins(8, 4, 8, 6)
        box.setSpacing(2)
        self.status = QLabel("模拟设备已就绪 Simulated devices ready")
        box.addWidget(self.status)
        row = QHBoxLayout()
        box.addLayout(row)
        for text, action in (("放置身份证（演示患者）  Put ID card on reader", self.put_card),
                             ("取走身份证  Take card away", self.take_card),
                             ("手机扫码支付  Pay the QR with a phone", self.pay_qr),
                             ("凭条纸用完/装纸  Paper out / refill", self.toggle_paper)):
            btn = QPushButton(text)
            btn.setMinimumHeight(56)
            btn.clicked.connect(action)
            row.addWidget(btn)
        self.receipts = receipts
        self._saved = 0
        timer = QTimer(self)
        timer.timeout.connect(self._save_receipts)
        timer.start(500)

    def _save_receipts(self) -> None:
        """Each slip the simulated printer received, as bytes and as a picture a developer can open."""
        from drivers.receipt.render import render_receipt

        jobs = list(self.sims.printer.jobs)
        for job in jobs[self._saved:]:
            self._saved += 1
            self.receipts.mkdir(parents=True, exist_ok=True)
            stem = self.receipts / f"receipt-{self._saved:03d}"
            stem.with_suffix(".bin").write_bytes(job)
            render_receipt(job).save(stem.with_suffix(".png"))
            self.status.setText(f"凭条已打印 Slip printed: {stem.with_suffix('.png')}")

    def place(self) -> None:
        """In the middle of the kiosk's header bar, the one strip of the screen a patient never touches."""
        self.adjustSize()
        area = self.kiosk_window.screen().availableGeometry()
        self.move(area.x() + (area.width() - self.width()) // 2 + 80, area.y() + 4)

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

    def toggle_paper(self) -> None:
        self.sims.printer.paper_out = not self.sims.printer.paper_out
        self.status.setText("凭条纸已用完 Receipt paper out" if self.sims.printer.paper_out
                            else "已装纸 Receipt paper refilled")
