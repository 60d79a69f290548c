"""The technician's PIN: stored as a salted PBKDF2 hash in the terminal's config, never in clear.

A lobby kiosk is touched by thousands of strangers a day, so a wrong PIN counts: after a few misses the
diagnostic entry locks for a while, which turns guessing a six-digit PIN into years of tapping.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
from typing import Callable

ALGORITHM = "pbkdf2_sha256"
ITERATIONS = 200_000
MAX_ATTEMPTS = 3
LOCKOUT_SECONDS = 300.0
# Only for simulated terminals, which guard nothing; a real terminal has no diagnostic mode until its
# configuration holds a hash made with `kiosk pin-hash`.
SIMULATED_TECHNICIAN_PIN = "246810"


class PinFormatError(ValueError):
    pass


def hash_pin(pin: str, iterations: int = ITERATIONS, salt: bytes | None = None) -> str:
    if not (pin.isascii() and pin.isdigit() and 4 <= len(pin) <= 12):
        raise PinFormatError("the PIN must be 4 to 12 digits")
    salt = salt or os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", pin.encode(), salt, iterations)
    return "$".join([ALGORITHM, str(iterations), base64.b64encode(salt).decode(), base64.b64encode(digest).decode()])


def verify_pin(pin: str, stored: str) -> bool:
    """False for a wrong PIN and for a stored value that is not one of ours (a config typo locks, not opens)."""
    try:
        algorithm, iterations, salt, digest = stored.split("$")
        if algorithm != ALGORITHM:
            return False
        expected = base64.b64decode(digest, validate=True)
        actual = hashlib.pbkdf2_hmac("sha256", pin.encode(), base64.b64decode(salt, validate=True), int(iterations))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


class PinGate:
    def __init__(self, stored_hash: str, clock: Callable[[], float] = time.monotonic,
                 max_attempts: int = MAX_ATTEMPTS, lockout: float = LOCKOUT_SECONDS):
        self.stored_hash = stored_hash
        self.clock = clock
        self.max_attempts = max_attempts
        self.lockout = lockout
        self._misses = 0
        self._locked_until = 0.0

    @property
    def enabled(self) -> bool:
        """No PIN configured means no diagnostic mode on the glass: there is no default PIN to leak."""
        return bool(self.stored_hash)

    def locked_for(self) -> float:
        return max(0.0, self._locked_until - self.clock())

    def check(self, pin: str) -> bool:
        if not self.enabled or self.locked_for() > 0:
            return False
        if verify_pin(pin, self.stored_hash):
            self._misses = 0
            return True
        self._misses += 1
        if self._misses >= self.max_attempts:
            self._misses = 0
            self._locked_until = self.clock() + self.lockout
        return False
