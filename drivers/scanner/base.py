"""What every scanner driver shares: its errors and the one verb the poller needs.

A scanner is a passive device: it speaks when a patient shows it a code. Drivers therefore offer
`read_scan(timeout)` and leave the waiting to `ScannerPoller`, which owns the device's thread.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from drivers.health import Health

MAX_SCAN_LENGTH = 4096  # bytes/characters before a terminator; a longer "scan" is a stuck or babbling device


class ScannerError(Exception):
    """Base of every error a scanner driver raises; callers catch this, never OSError or USBError."""


class ScannerDisconnectedError(ScannerError):
    """The port or USB device cannot be opened or vanished (cable pulled, adapter reset)."""


class ScanDecodeError(ScannerError):
    """A scan arrived but its bytes are not text we can read (line noise, wrong baud rate, too long)."""


@dataclass(frozen=True)
class ScanLine:
    """One scan as the scanner delivered it, before anyone decided what it means."""

    text: str
    symbology: str | None = None  # AIM identifier such as "]Q1" (QR) when the scanner sends one

    def __repr__(self) -> str:
        # A scan may be a payment code; logs get its shape, not its content.
        return f"ScanLine(<{len(self.text)} chars>, symbology={self.symbology!r})"

    __str__ = __repr__


@runtime_checkable
class Scanner(Protocol):
    def open(self) -> None: ...
    def close(self) -> None: ...
    def health(self) -> Health: ...
    def self_test(self) -> Health: ...
    def read_scan(self, timeout: float) -> ScanLine | None: ...


def strip_aim(text: str) -> tuple[str, str | None]:
    """Split an AIM symbology identifier (`]` + code letter + modifier, ISO/IEC 15424) off the front.

    Only called when the scanner is configured to send one: a payload that merely starts with `]` must
    not lose three characters on a scanner that sends none.
    """
    if len(text) >= 3 and text[0] == "]" and text[1].isascii() and text[1].isalpha() and text[2].isascii() \
            and text[2].isalnum():
        return text[3:], text[:3]
    return text, None
