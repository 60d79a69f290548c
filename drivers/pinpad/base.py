"""What every PIN-pad driver offers, whatever its vendor protocol, and what it hands back.

The contract is shaped so the clear PIN cannot reach the kiosk: the verbs return an encrypted block and a
digit count, and key events carry a count, never a digit.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Callable, Protocol, runtime_checkable

from drivers.health import Health


class PinPadError(Exception):
    """Base of every error a PIN-pad driver raises."""


class PinPadDisconnectedError(PinPadError):
    """The port cannot be opened, vanished, or the pad stopped answering."""


class PinPadRefusedError(PinPadError):
    """The pad understood the command and said no (bad key check value, no key loaded, ...)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class PinPadTamperedError(PinPadRefusedError):
    """The pad's tamper switch fired: it has erased its keys and must go back to the key-injection room."""


class KeyKind(str, Enum):
    DIGIT = "digit"  # a digit key went down; which one is the pad's secret
    CLEAR = "clear"  # 更正: the pad emptied the entry
    CANCEL = "cancel"  # 取消
    ENTER = "enter"  # 确认
    TIMEOUT = "timeout"  # the pad gave up waiting


@dataclass(frozen=True)
class KeyEvent:
    kind: KeyKind
    count: int  # digits entered so far: what the screen shows as ●●●

    @property
    def masked(self) -> str:
        return "*" * self.count


class Outcome(str, Enum):
    ENTERED = "entered"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"


@dataclass(frozen=True)
class PinResult:
    outcome: Outcome
    digits: int = 0
    pin_block: bytes | None = None  # encrypted under the working key; only the bank's HSM can open it
    algorithm: str | None = None

    @property
    def message_zh(self) -> str:
        return {Outcome.ENTERED: "密码已输入", Outcome.CANCELLED: "您已取消输入密码",
                Outcome.TIMED_OUT: "输入密码超时，请重试"}[self.outcome]

    @property
    def message_en(self) -> str:
        return {Outcome.ENTERED: "PIN entered", Outcome.CANCELLED: "You cancelled the PIN entry",
                Outcome.TIMED_OUT: "PIN entry timed out, please try again"}[self.outcome]

    def __repr__(self) -> str:
        block = f"<{len(self.pin_block)} encrypted bytes>" if self.pin_block else None
        return f"PinResult({self.outcome.value}, digits={self.digits}, pin_block={block}, {self.algorithm})"

    __str__ = __repr__


@runtime_checkable
class PinPadDriver(Protocol):
    def open(self) -> None: ...
    def close(self) -> None: ...
    def health(self) -> Health: ...
    def self_test(self) -> Health: ...
    def load_working_key(self, encrypted_key: bytes, check_value: bytes) -> None: ...
    def read_pin(self, pan: str, *, min_length: int = 6, max_length: int = 6, timeout: float = 30.0,
                 on_key: Callable[[KeyEvent], None] | None = None) -> PinResult: ...
