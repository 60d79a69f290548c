"""Time-based one-time passwords (RFC 6238: HMAC-SHA1, 6 digits, 30-second steps), the staff's second factor.

Codes are checked against the server's clock (``Services.now``) with one step of tolerance either way for a
phone whose clock drifts, and each step is accepted once: ``verify`` returns the step it matched so the caller
can store it and refuse the same code again.
"""
from __future__ import annotations

import hmac
from datetime import datetime

import pyotp

ISSUER = "Kiosk Central"
STEP_SECONDS = 30
DIGITS = 6
DRIFT_STEPS = 1


def new_secret() -> str:
    return pyotp.random_base32()  # 160 bits, as RFC 4226 recommends


def provisioning_uri(secret: str, username: str) -> str:
    """The otpauth:// URI an authenticator app takes (as a QR code or typed)."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(name=username,
                                                                                    issuer_name=ISSUER)


def code_at(secret: str, when: datetime) -> str:
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).at(when)


def verify(secret: str, code: str, now: datetime, last_step: int) -> int | None:
    """The time step ``code`` belongs to, if it is valid now and newer than ``last_step``; else None."""
    code = code.strip().replace(" ", "")
    if len(code) != DIGITS or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)
    current = int(now.timestamp()) // STEP_SECONDS
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if step > last_step and hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None
