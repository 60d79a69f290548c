"""The receipt as printer-agnostic blocks: workflows say what a slip holds, drivers decide the bytes."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union


@dataclass(frozen=True)
class Text:
    text: str
    align: str = "left"  # "left" | "center" | "right"
    bold: bool = False
    size: int = 1  # 1 normal, 2 double width and height


@dataclass(frozen=True)
class QrCode:
    data: str
    size: int = 8  # module size in dots


@dataclass(frozen=True)
class Rule:
    """A dashed line across the paper."""


@dataclass(frozen=True)
class Feed:
    lines: int = 1


Block = Union[Text, QrCode, Rule, Feed]
