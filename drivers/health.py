"""Device health as a value.

A device that is out of paper is not an exception: the home screen, the workflows and the fleet agent all
need to ask "can this device serve a patient right now?" and get an answer they can show and report.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Status(str, Enum):
    OK = "ok"
    DEGRADED = "degraded"  # still serves patients, but someone should look (paper low)
    FAULT = "fault"  # cannot serve patients (paper out, cover open, disconnected)


@dataclass(frozen=True)
class Health:
    status: Status
    reason: str = ""  # stable machine-readable code, e.g. "paper_out", "disconnected"
    detail: str = ""  # one human sentence for the technician

    @classmethod
    def ok(cls) -> "Health":
        return cls(Status.OK)

    @classmethod
    def degraded(cls, reason: str, detail: str = "") -> "Health":
        return cls(Status.DEGRADED, reason, detail)

    @classmethod
    def fault(cls, reason: str, detail: str = "") -> "Health":
        return cls(Status.FAULT, reason, detail)

    @property
    def usable(self) -> bool:
        return self.status is not Status.FAULT
