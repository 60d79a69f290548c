from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from offline_queue.delivery import Backoff, Deliverer
from offline_queue.outbox import Outbox
from tests.offline_queue.server import ClientTransport, FakeClock, FaultyTransport, OutboxServerDb


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """The kiosk's local database: the journal's file, which the outbox shares."""
    return tmp_path / "kiosk" / "journal.db"


@pytest.fixture
def outbox(db_path: Path, clock: FakeClock) -> Iterator[Outbox]:
    box = Outbox(db_path, clock=clock)
    yield box
    box.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[OutboxServerDb]:
    db = OutboxServerDb(tmp_path / "central.db")
    yield db
    db.close()


@pytest.fixture
def transport(server: OutboxServerDb) -> Iterator[FaultyTransport]:
    with TestClient(server.app(), raise_server_exceptions=False) as client:
        yield FaultyTransport(ClientTransport(client, server.auth))


@pytest.fixture
def deliverer(outbox: Outbox, transport: FaultyTransport, clock: FakeClock) -> Deliverer:
    import random
    return Deliverer(outbox, transport, clock=clock, backoff=Backoff(base=1.0, cap=300.0, rng=random.Random(7)))
