"""The login rules' numbers: how many misses lock an account and for how long, when an idle login ends.

Defaults follow MLPS 2.0 level 3 practice (lock after five failures, end idle sessions); a hospital can change
them through ``Settings.console_idle_minutes`` and ``Settings.extra["staff"]`` (the field names below).
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any


@dataclass(frozen=True)
class StaffPolicy:
    #: Consecutive failed logins (wrong password or wrong code) that lock the account.
    max_failures: int = 5
    lock_minutes: float = 15.0
    #: A login nobody used for this long is over.
    idle_minutes: float = 30.0
    #: A login is over after this long even when used (a console left open on a shared desk).
    absolute_hours: float = 12.0
    #: Time between the password and the code.
    totp_stage_minutes: float = 5.0


def staff_policy(settings: Any) -> StaffPolicy:
    base = StaffPolicy(idle_minutes=float(getattr(settings, "console_idle_minutes", 30.0)))
    extra = (getattr(settings, "extra", None) or {}).get("staff") or {}
    known = {f.name for f in fields(StaffPolicy)}
    return replace(base, **{k: v for k, v in dict(extra).items() if k in known})
