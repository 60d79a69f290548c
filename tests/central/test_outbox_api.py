"""The outbox route: terminal auth like the other kiosk routes, one stored copy per (terminal, key), 201 for a
new message, 200 ``{"duplicate": true}`` for a repeat, 422 for a key reused for a different message."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from central.api import outbox
from central.api.outbox import store_message
from central.models import KioskMessage
from central.app import create_app
from central.config import Settings
from central.db import Base
from central.services import Services
from tests.central.conftest import Kiosk, provision

URL = "/api/v1/kiosk/outbox"


def message(kind: str = "visit_event", **payload: Any) -> dict[str, Any]:
    return {"kind": kind, "payload": payload or {"session": "s-1", "event": "paid"},
            "created_at": "2026-11-23T08:00:00+00:00"}


@pytest.fixture
def outbox_client(settings: Settings, svc: Services) -> Iterator[TestClient]:
    """The real app plus the outbox router (until central/app.py includes it) and its table (until the
    migration adds it)."""
    Base.metadata.create_all(svc.engine, tables=[KioskMessage.__table__])
    app = create_app(settings, svc)
    if not any(getattr(route, "path", "") == URL for route in app.routes):
        app.include_router(outbox.router)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def stored(svc: Services) -> list[KioskMessage]:
    with svc.sessions() as session:
        return list(session.scalars(select(KioskMessage).order_by(KioskMessage.id)))


def test_new_message_is_201_and_a_repeat_is_200_duplicate(outbox_client: TestClient, kiosk: Kiosk,
                                                          svc: Services) -> None:
    first = outbox_client.post(URL, json=message(), auth=kiosk.auth, headers={"Idempotency-Key": "key-0001"})
    assert first.status_code == 201 and first.json()["duplicate"] is False
    again = outbox_client.post(URL, json=message(), auth=kiosk.auth, headers={"Idempotency-Key": "key-0001"})
    assert again.status_code == 200 and again.json() == {"id": first.json()["id"], "duplicate": True}
    rows = stored(svc)
    assert len(rows) == 1 and rows[0].terminal_id == kiosk.terminal_id and rows[0].copies == 2
    assert rows[0].payload == '{"event":"paid","session":"s-1"}'


def test_keys_are_per_terminal(outbox_client: TestClient, kiosk: Kiosk, svc: Services) -> None:
    other = provision(svc, "KIOSK-002")
    for who in (kiosk, other):
        reply = outbox_client.post(URL, json=message(), auth=who.auth, headers={"Idempotency-Key": "key-0001"})
        assert reply.status_code == 201
    assert sorted(r.terminal_id for r in stored(svc)) == ["KIOSK-001", "KIOSK-002"]


def test_needs_terminal_credentials(outbox_client: TestClient, kiosk: Kiosk, svc: Services) -> None:
    for auth in (None, (kiosk.terminal_id, "wrong-secret")):
        reply = outbox_client.post(URL, json=message(), auth=auth, headers={"Idempotency-Key": "key-0001"})
        assert reply.status_code == 401 and reply.json()["code"] == "UNAUTHORIZED"
    assert stored(svc) == []


@pytest.mark.parametrize("headers, body", [
    ({}, message()),  # no key
    ({"Idempotency-Key": "short"}, message()),
    ({"Idempotency-Key": "key with spaces"}, message()),
    ({"Idempotency-Key": "key-0001"}, message(kind="Bad Kind")),
    ({"Idempotency-Key": "key-0001"}, {"kind": "visit_event", "payload": {}}),  # no created_at
    ({"Idempotency-Key": "key-0001"}, {**message(), "created_at": "2026-11-23T08:00:00"}),  # naive time
])
def test_malformed_messages_are_422(outbox_client: TestClient, kiosk: Kiosk, svc: Services,
                                    headers: dict[str, str], body: dict[str, Any]) -> None:
    reply = outbox_client.post(URL, json=body, auth=kiosk.auth, headers=headers)
    assert reply.status_code == 422 and reply.json()["code"] == "BAD_REQUEST"
    assert stored(svc) == []


def test_a_key_reused_for_another_message_is_refused(outbox_client: TestClient, kiosk: Kiosk,
                                                     svc: Services) -> None:
    headers = {"Idempotency-Key": "key-0001"}
    assert outbox_client.post(URL, json=message(), auth=kiosk.auth, headers=headers).status_code == 201
    reply = outbox_client.post(URL, json=message(event="other"), auth=kiosk.auth, headers=headers)
    assert reply.status_code == 422 and reply.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert len(stored(svc)) == 1


def test_too_large_payload_is_413(outbox_client: TestClient, kiosk: Kiosk) -> None:
    reply = outbox_client.post(URL, json=message(blob="x" * (outbox.MAX_PAYLOAD_BYTES + 1)), auth=kiosk.auth,
                               headers={"Idempotency-Key": "key-0001"})
    assert reply.status_code == 413 and reply.json()["code"] == "PAYLOAD_TOO_LARGE"


def test_concurrent_repeats_store_one_copy(outbox_client: TestClient, kiosk: Kiosk, svc: Services) -> None:
    """Ten copies of one message at once (a kiosk retrying while its first request is still in flight)."""
    statuses: list[int] = []
    barrier = threading.Barrier(10)

    def send() -> None:
        barrier.wait()
        statuses.append(store_message(svc.sessions, kiosk.terminal_id, "key-0001", "visit_event", {"a": 1},
                                      svc.now())[1])

    threads = [threading.Thread(target=send) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [False] * 9 + [True]
    with svc.sessions() as session:
        assert session.scalar(select(func.count()).select_from(KioskMessage)) == 1
