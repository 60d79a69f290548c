"""The registration slip: what the patient carries to the clinic.

Built from the server's order as printer-agnostic blocks, so the same slip prints on any ESC/POS transport
and tests can read it back. Names are already masked by the server; nothing here unmasks them.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from drivers.receipt.document import Block, Feed, QrCode, Rule, Text


def yuan(fen: int) -> str:
    return f"{fen / 100:.2f}"


CHANNEL_NAMES = {"wechat_native": "微信支付", "alipay": "支付宝", "unionpay": "银联卡", "insurance": "医保"}


def registration_slip(hospital: str, order: dict[str, Any], terminal_id: str,
                      printed_at: datetime) -> list[Block]:
    reg = order["registration"]
    dept = order["department"]
    doctor = order["doctor"]
    slot = order["slot"]
    channel = CHANNEL_NAMES.get((order.get("payment") or {}).get("channel", ""), "")
    return [
        Text(hospital, align="center", bold=True, size=2),
        Text("当日挂号凭条", align="center", bold=True),
        Rule(),
        Text(f"患者：{order['patient_name_masked']}"),
        Text(f"科室：{dept['name']}"),
        Text(f"医生：{doctor['name']}  {doctor.get('title', '')}".rstrip()),
        Text(f"时间：{slot['date']} {slot['start']}-{slot['end']}"),
        Text("就诊序号", align="center"),
        Text(f"{reg['queue_no']} 号", align="center", bold=True, size=2),
        Text(f"就诊地点：{reg.get('location') or dept.get('location', '')}", bold=True),
        Text(f"挂号费：{yuan(order['amount_fen'])} 元  {channel}".rstrip()),
        Rule(),
        QrCode(reg["visit_code"]),
        Text(f"就诊码 {reg['visit_code']}", align="center"),
        Text("请按时到诊区候诊，过号请到分诊台报到", align="center"),
        Text(f"订单 {order['order_no']}  终端 {terminal_id}"),
        Text(f"打印时间 {printed_at:%Y-%m-%d %H:%M:%S}"),
        Feed(2),
    ]
