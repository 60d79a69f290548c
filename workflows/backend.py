"""What a workflow needs from the central server, as an interface.

Workflows depend on this, not on HTTP, so they run in tests against any implementation and the kiosk's
HTTP client (kiosk_app.backend_client) can change transport without touching a state machine.
"""
from __future__ import annotations

from typing import Any, Protocol

Json = dict[str, Any]


class BackendError(Exception):
    """The server answered and said no. `code` is stable; `message` is written for the patient."""

    def __init__(self, code: str, message: str, message_en: str = "", payload: Json | None = None):
        super().__init__(f"{code}: {message_en or message}")
        self.code = code
        self.message = message
        self.message_en = message_en
        self.payload = payload or {}


class BackendUnavailable(Exception):
    """No answer (network down, server restarting, timeout). The outcome of a write is unknown and must be
    found out by asking again, never assumed."""


class Backend(Protocol):
    def hospital(self) -> Json: ...
    def identify_by_id_card(self, id_number: str, name: str) -> Json: ...
    def departments(self) -> list[Json]: ...
    def doctors(self, department: str) -> list[Json]: ...
    def slots(self, department: str, doctor: str) -> list[Json]: ...
    def create_registration(self, patient_id: str, slot_id: int | str, idempotency_key: str) -> Json: ...
    def registration_by_key(self, idempotency_key: str) -> Json | None: ...
    def pay(self, order_no: str, channel: str, idempotency_key: str, auth_code: str | None = None) -> Json: ...
    def order(self, order_no: str) -> Json: ...
    def cancel(self, order_no: str) -> Json: ...
