"""What the staff layer refuses: a stable code, an HTTP status, and one sentence in Chinese and in English
that can be shown to the person as is (never a secret, never which half of a login was wrong)."""
from __future__ import annotations


class StaffError(Exception):
    status = 400

    def __init__(self, code: str, message: str, message_en: str, *, status: int | None = None):
        super().__init__(message_en)
        self.code, self.message, self.message_en = code, message, message_en
        if status is not None:
            self.status = status


class LoginFailed(StaffError):
    status = 401


class AccountLocked(StaffError):
    status = 423


class NotAllowed(StaffError):
    """Logged in, but the role does not allow this (a read-only user sending a command)."""

    status = 403


class SessionExpired(StaffError):
    status = 401


class BadCsrf(StaffError):
    status = 403


class InvalidStaffInput(StaffError):
    status = 422
