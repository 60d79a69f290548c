"""View state: everything a screen needs to draw itself, and nothing it could use to act on its own."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class View:
    screen: str  # which screen the UI shows: "home", "insert_card", "departments", ...
    data: dict[str, Any] = field(default_factory=dict)
    message: str = ""  # a notice for the patient, Chinese
    message_en: str = ""
    patient: str = ""  # masked banner, e.g. "李*英  女  70岁"
    can_cancel: bool = False  # only while no money has been asked for
    can_back: bool = False
    deadline: float | None = None  # monotonic time the screen times out at, for a countdown
