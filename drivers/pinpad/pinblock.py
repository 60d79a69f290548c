"""ISO 9564-1 format-0 PIN blocks (ANSI X9.8 "with PAN"), and the 16-byte widening used with SM4.

Format 0: PIN field `0 | L | PIN | F...` (16 nibbles) XOR PAN field `0000 | 12 rightmost PAN digits
excluding the check digit` (16 nibbles). Binding the PIN to the card number means a block captured for one
card is useless for another.

SM4 has a 16-byte block, so the 8-byte format-0 block does not fit it. Chinese acquirers commonly widen both
fields to 32 nibbles (PIN field F-padded, PAN field zero-padded on the left), e.g. PIN 123654 with PAN
6230606601007726888 gives 06123654FFFFFFFFFFFF99FEFF88D977. That is what `format0_wide` builds; confirm the
layout with the acquirer, some expect the 8-byte block padded instead.

These functions run inside the pad (here: its simulator) and inside the host security module (here: the
tests). The kiosk's driver never calls them: it never holds a clear PIN.
"""
from __future__ import annotations

MIN_PIN, MAX_PIN = 4, 12


class PinBlockError(ValueError):
    pass


def pan_digits(pan: str) -> str:
    """The 12 rightmost digits excluding the check digit, zero-padded on the left for short numbers."""
    if not pan.isascii() or not pan.isdigit() or len(pan) < 2:
        raise PinBlockError("the PAN must be at least 2 ASCII digits")
    return pan[:-1][-12:].rjust(12, "0")


def _pin_field(pin: str, nibbles: int) -> bytes:
    if not pin.isascii() or not pin.isdigit() or not MIN_PIN <= len(pin) <= MAX_PIN:
        raise PinBlockError(f"a PIN is {MIN_PIN}-{MAX_PIN} ASCII digits")
    return bytes.fromhex(f"0{len(pin):X}{pin}".ljust(nibbles, "F"))


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def format0(pin: str, pan: str) -> bytes:
    """The 8-byte ISO 9564 format-0 block."""
    return _xor(_pin_field(pin, 16), bytes.fromhex("0000" + pan_digits(pan)))


def format0_wide(pin: str, pan: str) -> bytes:
    """The 16-byte widening for SM4 (see the module docstring)."""
    return _xor(_pin_field(pin, 32), bytes.fromhex(pan_digits(pan).rjust(32, "0")))


def parse_format0(block: bytes, pan: str) -> str:
    """The PIN inside a clear format-0 block (8 bytes, or 16 for the wide form); the HSM's side."""
    if len(block) == 8:
        pan_field = bytes.fromhex("0000" + pan_digits(pan))
    elif len(block) == 16:
        pan_field = bytes.fromhex(pan_digits(pan).rjust(32, "0"))
    else:
        raise PinBlockError(f"a format-0 block is 8 or 16 bytes, got {len(block)}")
    field = _xor(block, pan_field).hex().upper()
    if field[0] != "0":
        raise PinBlockError("not a format-0 block (control nibble is not 0)")
    length = int(field[1], 16)
    pin, fill = field[2:2 + length], field[2 + length:]
    if not MIN_PIN <= length <= MAX_PIN or not pin.isdigit() or fill != "F" * len(fill):
        raise PinBlockError("the block does not decode to a PIN for this PAN (wrong key or wrong card?)")
    return pin
