"""Fixtures for the fleet: a seeded server data directory (shared with tests/central), services on a clock the
test moves, the app in-process, and helpers that build heartbeats."""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from central.app import create_app
from central.config import Settings
from central.services import Services, build_services
from tests.central.conftest import Kiosk, data_dir, free_port, provision, seeded_template  # noqa: F401
from tests.central.fakes import FakeChannel


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime):
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 12, 1, 2, 0, tzinfo=timezone.utc))


@pytest.fixture
def fleet_settings(data_dir: Path) -> Settings:  # noqa: F811
    return Settings(data_dir=data_dir, port=free_port(), sweep_seconds=0, fleet_monitor=False,
                    fleet_heartbeat_seconds=10.0, access_log=False)


@pytest.fixture
def svc(fleet_settings: Settings, clock: Clock) -> Iterator[Services]:
    services = build_services(fleet_settings, channel=FakeChannel())
    services.clock = clock
    yield services
    services.close()


@pytest.fixture
def client(fleet_settings: Settings, svc: Services) -> Iterator[TestClient]:
    with TestClient(create_app(fleet_settings, svc), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def kiosk(svc: Services) -> Kiosk:
    return provision(svc, "KIOSK-037")


@dataclass
class BeatMaker:
    """Successive heartbeats of one agent run, as the agent sends them."""

    clock: Clock
    boot: str
    seq: int = 0

    def __call__(self, **changes: Any) -> dict[str, Any]:
        self.seq += 1
        beat: dict[str, Any] = {
            "boot": self.boot, "seq": self.seq, "sent_at": self.clock.now.isoformat(),
            "app": {"version": "1.4.2", "running": True, "uptime_s": 3600.0, "screen": "home", "service": ""},
            "devices": {"receipt_printer": {"status": "ok"}, "id_card": {"status": "ok"}},
            "system": {"cpu_pct": 12.5, "mem_pct": 40.0, "disk_pct": 55.0, "temp_c": None},
            "rtt_ms": 4.2, "queue": {"depth": 0, "parked": 0, "oldest_age_s": None}, "errors": 0,
        }
        for key, value in changes.items():
            if isinstance(value, dict) and isinstance(beat.get(key), dict) and key != "devices":
                beat[key] = {**beat[key], **value}
            else:
                beat[key] = value
        return beat


@pytest.fixture
def beats(clock: Clock) -> BeatMaker:
    return BeatMaker(clock, uuid.uuid4().hex)


__all__ = ["Clock", "BeatMaker", "replace"]
