"""Order summary before any money is asked for: the patient sees exactly what they will pay for."""
from __future__ import annotations

from PySide6.QtWidgets import QFrame, QGridLayout

from ui import theme
from ui.screens.base import Screen, Send
from ui.widgets import button, centered, label, title_block, yuan
from workflows.view import View


class ConfirmScreen(Screen):
    ROWS = (("patient", "就诊人", "Patient"), ("department", "科室", "Department"),
            ("doctor", "医生", "Doctor"), ("time", "就诊时间", "Time"), ("location", "就诊地点", "Where"),
            ("fee", "挂号费", "Fee"))

    def __init__(self, send: Send):
        super().__init__(send)
        self.body.addWidget(title_block("请核对挂号信息", "Please check your registration"))
        card = QFrame()
        card.setObjectName("Card")
        grid = QGridLayout(card)
        grid.setContentsMargins(60, 36, 60, 36)
        grid.setHorizontalSpacing(48)
        grid.setVerticalSpacing(18)
        self.values = {}
        for row, (key, zh, en) in enumerate(self.ROWS):
            grid.addWidget(label(zh, 32, color=theme.MUTED), row, 0)
            grid.addWidget(label(en, 20, color=theme.MUTED), row, 1)
            value = label("", 44 if key == "fee" else 36, True, theme.DANGER if key == "fee" else theme.INK)
            self.values[key] = value
            grid.addWidget(value, row, 2)
        grid.setColumnStretch(2, 1)
        self.body.addWidget(card, 1)
        self.body.addLayout(centered(button("确认挂号并支付  Confirm and pay", "primary", self.intent("confirm"),
                                            620)))

    def render(self, view: View) -> None:
        d, doc, s = (view.data.get(k) or {} for k in ("department", "doctor", "slot"))
        self.values["patient"].setText(view.patient)
        self.values["department"].setText(d.get("name", ""))
        self.values["doctor"].setText(f"{doc.get('name', '')}  {doc.get('title', '')}")
        self.values["time"].setText(f"{view.data.get('date', '')}  {s.get('start', '')} - {s.get('end', '')}")
        self.values["location"].setText(d.get("location", ""))
        self.values["fee"].setText(yuan(doc.get("fee_fen", 0)))
