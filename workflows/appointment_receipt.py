"""The slips of appointments (预约挂号凭条) and check-in (报到凭条): what the patient carries to the clinic.

Printer-agnostic blocks, like the registration slip (workflows.receipt), so the same slip prints on any ESC/POS
transport and tests read it back. Names come masked from the server; nothing here unmasks them.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from drivers.receipt.document import Block, Feed, QrCode, Rule, Text
from workflows.receipt import CHANNEL_NAMES, yuan

CHANNEL_NAMES_MORE = {**CHANNEL_NAMES, "alipay_native": "支付宝", "aggregate": "扫码支付",
                      "wechat_code": "微信支付", "alipay_code": "支付宝"}


def appointment_slip(hospital: str, order: dict[str, Any], terminal_id: str, printed_at: datetime) -> list[Block]:
    """A booked appointment: when and where, the visit code, and that check-in happens on the day."""
    reg = order.get("registration") or {}
    dept = order.get("department") or {}
    doctor = order.get("doctor") or {}
    slot = order.get("slot") or {}
    channel = CHANNEL_NAMES_MORE.get((order.get("payment") or {}).get("channel", "")
                                     or order.get("payment_method") or "", "")
    blocks: list[Block] = [
        Text(hospital, align="center", bold=True, size=2),
        Text("预约挂号凭条", align="center", bold=True),
        Rule(),
        Text(f"患者：{order.get('patient_name_masked', '')}"),
        Text(f"科室：{dept.get('name', '')}"),
        Text(f"医生：{doctor.get('name', '')}  {doctor.get('title') or ''}".rstrip()),
        Text(f"就诊日期：{slot.get('date', '')}", bold=True),
        Text(f"就诊时段：{slot.get('start', '')}-{slot.get('end', '')}", bold=True),
        Text(f"预约序号：{reg.get('queue_no', '')} 号"),
        Text(f"就诊地点：{reg.get('location') or dept.get('location', '')}"),
        Text(f"挂号费：{yuan(int(order.get('amount_fen', 0)))} 元  {channel}".rstrip()),
        Rule(),
    ]
    if reg.get("visit_code"):
        blocks += [QrCode(reg["visit_code"]), Text(f"就诊码 {reg['visit_code']}", align="center")]
    blocks += [
        Text("就诊当天请提前到自助机“取号报到”", align="center", bold=True),
        Text("如需取消：自助机“预约挂号”→“取消预约”", align="center"),
        Text(f"订单 {order.get('order_no', '')}  终端 {terminal_id}"),
        Text(f"打印时间 {printed_at:%Y-%m-%d %H:%M:%S}"),
        Feed(2),
    ]
    return blocks


def checkin_slip(hospital: str, queue: dict[str, Any], terminal_id: str, printed_at: datetime) -> list[Block]:
    """Checked in: the queue number large, how many are ahead, the estimated wait and where to wait."""
    wait = queue.get("estimated_wait_minutes")
    blocks: list[Block] = [
        Text(hospital, align="center", bold=True, size=2),
        Text("报到凭条", align="center", bold=True),
        Rule(),
        Text("就诊序号", align="center"),
        Text(f"{queue.get('queue_no', '')} 号", align="center", bold=True, size=2),
        Text(f"前面还有 {queue.get('ahead', 0)} 人", align="center"),
    ]
    if wait is not None:
        blocks.append(Text(f"预计等候约 {wait} 分钟", align="center"))
    blocks += [
        Rule(),
        Text(f"候诊地点：{queue.get('location', '')}", bold=True),
        Text(f"科室：{queue.get('department', '')}"),
        Text(f"医生：{queue.get('doctor', '')}"),
        Text(f"就诊时间：{queue.get('date', '')} {queue.get('start', '')}-{queue.get('end', '')}"),
        Text("请留意叫号屏，过号请到分诊台", align="center"),
        Text(f"订单 {queue.get('order_no', '')}  终端 {terminal_id}"),
        Text(f"打印时间 {printed_at:%Y-%m-%d %H:%M:%S}"),
        Feed(2),
    ]
    return blocks
