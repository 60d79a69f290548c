"""The e-health card slip (电子健康卡凭条): the card's QR on paper, for a patient without a smartphone.

Printer-agnostic blocks like the other slips. The QR is the credential itself, so the code is printed only as
the QR (nothing to copy down from the paper) and the slip says to keep it like a card.
"""
from __future__ import annotations

from datetime import datetime

from drivers.receipt.document import Block, Feed, QrCode, Rule, Text


def ehealth_card_slip(hospital: str, code: str, patient_masked: str, terminal_id: str,
                      printed_at: datetime) -> list[Block]:
    return [
        Text(hospital, align="center", bold=True, size=2),
        Text("电子健康卡", align="center", bold=True),
        Rule(),
        Text(f"持卡人：{patient_masked}"),
        QrCode(code),
        Text("就诊时在自助机或窗口扫码口出示此二维码", align="center", bold=True),
        Text("Show this QR code to the scanner at a kiosk or counter", align="center"),
        Rule(),
        Text("请像保管就诊卡一样保管本凭条，勿转交他人", align="center"),
        Text(f"终端 {terminal_id}"),
        Text(f"打印时间 {printed_at:%Y-%m-%d %H:%M:%S}"),
        Feed(2),
    ]
