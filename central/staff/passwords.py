"""Password hashing (scrypt, from the standard library) and the password policy.

scrypt is memory-hard, so a copied ``staff_users`` table costs an attacker real hardware per guess. The
parameters are stored with each hash: raising them later re-hashes a user's password at the next login.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import string

N, R, P = 2**14, 8, 1  # 16 MiB per hash: about 50 ms here, far more for a guessing rig per guess
SALT_BYTES = 16
KEY_BYTES = 32
MIN_LENGTH = 12

#: Passwords that meet the character rules yet are the first ones any attacker tries.
COMMON = frozenset({
    "password1234", "password123!", "passw0rd1234", "p@ssw0rd1234", "qwerty123456", "admin1234567",
    "administrator", "welcome12345", "changeme1234", "1qaz2wsx3edc", "1q2w3e4r5t6y", "abc123456789",
    "zaq12wsx!@#", "hospital1234", "kiosk1234567",
})


class WeakPassword(ValueError):
    """A password the policy refuses; the message says which rule (in English) for the person choosing it."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(SALT_BYTES)
    key = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=N, r=R, p=P, maxmem=64 * 1024 * 1024,
                         dklen=KEY_BYTES)
    return f"scrypt${N}${R}${P}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = _unb64(key)
        actual = hashlib.scrypt(password.encode("utf-8"), salt=_unb64(salt), n=int(n), r=int(r), p=int(p),
                                maxmem=64 * 1024 * 1024, dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def needs_rehash(stored: str) -> bool:
    return not stored.startswith(f"scrypt${N}${R}${P}$")


#: A hash of nothing anyone knows: checked against for unknown usernames, so a wrong name takes as long as a
#: wrong password and response times do not tell which names exist.
DUMMY_HASH = hash_password(secrets.token_urlsafe(16))


def check_policy(password: str, username: str = "") -> None:
    """No weak passwords anywhere (MLPS 2.0): long, mixed, not the username, not a well-known one."""
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"a password needs at least {MIN_LENGTH} characters")
    if len(password) > 256:
        raise WeakPassword("a password may have at most 256 characters")
    classes = sum(any(c in group for c in password) for group in
                  (string.ascii_lowercase, string.ascii_uppercase, string.digits))
    classes += any(not c.isalnum() for c in password)
    if classes < 3:
        raise WeakPassword("a password needs three of: lower case, upper case, digits, other characters")
    if username and username.casefold() in password.casefold():
        raise WeakPassword("a password must not contain the username")
    if password.casefold() in COMMON or len(set(password)) < 6:
        raise WeakPassword("this password is too easy to guess")


def generate_password() -> str:
    """A random password that meets the policy (for the first admin, or a reset)."""
    alphabet = string.ascii_letters + string.digits
    while True:
        candidate = "-".join("".join(secrets.choice(alphabet) for _ in range(5)) for _ in range(4))
        try:
            check_policy(candidate)
            return candidate
        except WeakPassword:
            continue
