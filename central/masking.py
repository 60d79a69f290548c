"""Masking personal data for screens and slips (PIPL: show the minimum that lets a patient recognise it is them)."""
from __future__ import annotations


def mask_name(name: str) -> str:
    """李秀英 → 李*英, 张三 → 张*, 欧阳娜娜 → 欧**娜: first and (for three or more characters) last stay."""
    name = name.strip()
    if len(name) <= 1:
        return name
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]
