"""The outpatient payment slip (缴费凭条): every item paid, and WHERE TO GO for it (K12).

A patient who has just paid wants to know one thing: where next. So the slip leads with the places (pharmacy
window, lab, imaging) and the items to collect or have done at each, then lists the items with their amounts
for the record. Printer-agnostic blocks, as the registration slip; names come masked from the server.
"""
from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Any

from drivers.receipt.document import Block, Feed, Rule, Text
from workflows.receipt import yuan

COLUMNS = 48  # 80 mm paper, font A; a CJK character takes two

CHANNELS = {"wechat_native": "微信支付", "wechat_code": "微信支付", "alipay_native": "支付宝",
            "alipay_code": "支付宝", "aggregate": "扫码支付", "unionpay_card": "银联卡"}


def places_of(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Items grouped by where the patient goes for them, in the order the bill lists them. Items given back
    (退费) need no visit and are left out."""
    groups: dict[str, dict[str, Any]] = {}
    for item in items:
        if item.get("status") in ("REFUNDED", "REFUND_PENDING"):
            continue
        place = item.get("place") or "请咨询导诊台"
        group = groups.setdefault(place, {"place": place, "place_en": item.get("place_en") or "",
                                          "items": []})
        group["items"].append(item.get("name", ""))
    return list(groups.values())


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def _line(left: str, right: str) -> str:
    """Left text and a right-aligned amount on one printed line; a long name is shortened, never wrapped
    under the amount."""
    room = COLUMNS - _width(right) - 1
    while _width(left) > room:
        left = left[:-2] + "…"
    return left + " " * (COLUMNS - _width(left) - _width(right)) + right


def bill_slip(hospital: str, order: dict[str, Any], terminal_id: str, printed_at: datetime) -> list[Block]:
    items = order.get("items") or []
    insurance = order.get("insurance") or {}
    insured = insurance.get("state") == "SUCCESS"
    self_pay = order.get("self_pay_fen", order.get("amount_fen", 0)) if insured else order.get("amount_fen", 0)
    channel = CHANNELS.get(order.get("payment_method") or (order.get("payment") or {}).get("channel", ""), "")
    blocks: list[Block] = [
        Text(hospital, align="center", bold=True, size=2),
        Text("门诊缴费凭条", align="center", bold=True),
        Rule(),
        Text(f"患者：{order.get('patient_name_masked', '')}"),
        Text(f"科室：{(order.get('department') or {}).get('name', '')}  "
             f"医生：{(order.get('doctor') or {}).get('name', '')}"),
        Rule(),
        Text("请按以下地点取药 / 检查 / 治疗", bold=True),
    ]
    for group in places_of(items):
        head = f"◆{group['place']}"
        blocks.append(Text(head, bold=True, size=2 if _width(head) <= COLUMNS // 2 else 1))
        blocks += [Text(f"    {name}") for name in group["items"]]
    blocks.append(Rule())
    for item in items:
        blocks.append(Text(_line(item.get("name", ""), yuan(int(item.get("amount_fen", 0))))))
    blocks.append(Text(_line("合计", yuan(int(order.get("amount_fen", 0)))), bold=True))
    if insured:
        blocks.append(Text(_line("医保支付", yuan(int(insurance.get("amount_fen", 0))))))
    blocks.append(Text(_line(f"个人支付 {channel}".strip(), yuan(int(self_pay))), bold=True))
    blocks += [
        Rule(),
        Text("未取药、未检查的项目可在本机或人工窗口办理退费", align="center"),
        Text(f"订单 {order.get('order_no', '')}  终端 {terminal_id}"),
        Text(f"打印时间 {printed_at:%Y-%m-%d %H:%M:%S}"),
        Feed(2),
    ]
    return blocks
