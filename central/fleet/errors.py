"""What the fleet service layer refuses, with an HTTP status the API passes on and a sentence for IT."""
from __future__ import annotations


class FleetError(Exception):
    status = 400
    code = "FLEET_ERROR"

    def __init__(self, message_en: str, *, code: str | None = None, status: int | None = None):
        super().__init__(message_en)
        self.message_en = message_en
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status


class NotFound(FleetError):
    status = 404
    code = "NOT_FOUND"


class Invalid(FleetError):
    """Input the caller must change (unknown command, bad argument, malformed heartbeat)."""

    status = 422
    code = "INVALID"


class Conflict(FleetError):
    """The request came too late or twice in a different form (a result for an expired command)."""

    status = 409
    code = "CONFLICT"
