"""The technician PIN: hashed at rest, locked after repeated misses, and no default PIN anywhere."""
from __future__ import annotations

import pytest

from kiosk_app.pin import PinFormatError, PinGate, hash_pin, verify_pin


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_hash_is_salted_and_verifies():
    a, b = hash_pin("246810", iterations=1000), hash_pin("246810", iterations=1000)
    assert a != b and "246810" not in a
    assert verify_pin("246810", a) and not verify_pin("246811", a)


@pytest.mark.parametrize("stored", ["", "246810", "md5$1$x$y", "pbkdf2_sha256$abc$!!$??", "pbkdf2_sha256$1$$"])
def test_a_stored_value_that_is_not_a_hash_never_opens(stored):
    assert not verify_pin("246810", stored)


@pytest.mark.parametrize("pin", ["", "12", "abcdef", "1234567890123", "１２３４５６"])
def test_pin_format(pin):
    with pytest.raises(PinFormatError):
        hash_pin(pin)


def test_gate_locks_after_three_misses_then_opens_again():
    clock = Clock()
    gate = PinGate(hash_pin("246810", iterations=1000), clock=clock)
    assert not gate.check("000000") and not gate.check("111111") and gate.locked_for() == 0
    assert not gate.check("222222")
    assert gate.locked_for() == pytest.approx(300)
    assert not gate.check("246810"), "the right PIN is refused while locked"
    clock.t += 301
    assert gate.check("246810")


def test_no_pin_configured_means_no_diagnostic_mode():
    gate = PinGate("")
    assert not gate.enabled and not gate.check("")
