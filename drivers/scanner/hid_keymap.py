"""HID keyboard usage codes (USB HID Usage Tables, page 0x07) to characters, US layout, and back.

A keyboard-wedge scanner pretends to be a keyboard: it "types" each character of the code as a key press
report. It can only type what a US keyboard can, so payloads are ASCII; scanners that must send Chinese
do it with Alt+keypad codes or a serial/CDC mode instead, which this table does not attempt.
"""
from __future__ import annotations

LEFT_SHIFT, RIGHT_SHIFT = 0x02, 0x20
SHIFT = LEFT_SHIFT | RIGHT_SHIFT
ENTER, KEYPAD_ENTER, TAB = 0x28, 0x58, 0x2B
REPORT_LENGTH = 8  # boot keyboard report: modifiers, reserved, six key codes

# usage -> (unshifted, shifted)
KEYS: dict[int, tuple[str, str]] = {}
for _i, _c in enumerate("abcdefghijklmnopqrstuvwxyz"):
    KEYS[0x04 + _i] = (_c, _c.upper())
for _i, (_c, _s) in enumerate(zip("1234567890", "!@#$%^&*()")):
    KEYS[0x1E + _i] = (_c, _s)
KEYS.update({
    0x2C: (" ", " "), 0x2D: ("-", "_"), 0x2E: ("=", "+"), 0x2F: ("[", "{"), 0x30: ("]", "}"),
    0x31: ("\\", "|"), 0x33: (";", ":"), 0x34: ("'", '"'), 0x35: ("`", "~"), 0x36: (",", "<"),
    0x37: (".", ">"), 0x38: ("/", "?"),
})
# Keypad keys type the same regardless of shift (with NumLock on, which scanners assume).
for _i, _c in enumerate("1234567890"):
    KEYS[0x59 + _i] = (_c, _c)
KEYS.update({0x54: ("/", "/"), 0x55: ("*", "*"), 0x56: ("-", "-"), 0x57: ("+", "+"), 0x63: (".", ".")})

CHARS: dict[str, tuple[int, int]] = {}  # char -> (modifier, usage), main-block keys preferred
for _usage, (_plain, _shifted) in sorted(KEYS.items()):
    if _usage >= 0x54:
        continue
    CHARS.setdefault(_plain, (0, _usage))
    CHARS.setdefault(_shifted, (LEFT_SHIFT, _usage))


def char_for(usage: int, modifiers: int) -> str | None:
    pair = KEYS.get(usage)
    if pair is None:
        return None
    return pair[1] if modifiers & SHIFT else pair[0]


def reports_for(text: str, enter: bool = True) -> list[bytes]:
    """The press/release reports a wedge scanner sends to type `text` (then Enter); ValueError if it can't."""
    reports: list[bytes] = []
    for ch in text:
        try:
            modifier, usage = CHARS[ch]
        except KeyError:
            raise ValueError(f"a US keyboard cannot type {ch!r}") from None
        reports.append(bytes([modifier, 0, usage, 0, 0, 0, 0, 0]))
        reports.append(bytes(REPORT_LENGTH))
    if enter:
        reports.append(bytes([0, 0, ENTER, 0, 0, 0, 0, 0]))
        reports.append(bytes(REPORT_LENGTH))
    return reports
