"""Fixtures for the console: a seeded data directory, the app in-process, staff accounts with their TOTP
secrets, terminals that beat through the real fleet API, and a browser-like login."""
from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from central.app import create_app
from central.bootstrap import initialize
from central.config import Settings
from central.fleet import service as fleet
from central.services import Services, build_services
from central.staff import accounts, totp
from central.terminals import provision_terminal

PASSWORD = "Night-Shift-2026"


class Clock:
    """A clock the test moves by hand (lockout and idle expiry without sleeping)."""

    def __init__(self) -> None:
        self.now = datetime.now(timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@pytest.fixture(scope="session")
def console_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("console-template")
    initialize(Settings(data_dir=directory, sweep_seconds=0))
    return directory


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def svc(console_template: Path, tmp_path: Path, clock: Clock) -> Iterator[Services]:
    target = tmp_path / "central"
    shutil.copytree(console_template, target)
    services = build_services(Settings(data_dir=target, sweep_seconds=0, fleet_monitor=False))
    services.clock = clock
    yield services
    services.close()


@pytest.fixture
def client(svc: Services) -> Iterator[TestClient]:
    with TestClient(create_app(svc.settings, svc), raise_server_exceptions=False) as test_client:
        yield test_client


@dataclass
class Staff:
    username: str
    password: str
    secret: str
    role: str

    def code(self, when: datetime) -> str:
        return totp.code_at(self.secret, when)


@pytest.fixture
def make_staff(svc: Services) -> Callable[..., Staff]:
    def make(username: str = "alice", role: str = "it") -> Staff:
        new = accounts.create_staff(svc, username, role, password=PASSWORD, display_name=username.title())
        return Staff(username, PASSWORD, new.totp_secret, role)
    return make


CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def form_csrf(html: str) -> str:
    match = CSRF.search(html)
    assert match, "no csrf field in the page"
    return match.group(1)


def log_in(client: TestClient, staff: Staff, clock: Clock, *, code: str | None = None) -> Any:
    """Password then code, like a browser; returns the last response (a redirect to the fleet on success)."""
    page = client.get("/console/login")
    answer = client.post("/console/login", data={"csrf": form_csrf(page.text), "username": staff.username,
                                                 "password": staff.password}, follow_redirects=False)
    if answer.status_code != 303:
        return answer
    page = client.get("/console/login/code")
    return client.post("/console/login/code", data={"csrf": form_csrf(page.text),
                                                    "code": code or staff.code(clock.now)},
                       follow_redirects=False)


def page_csrf(client: TestClient) -> str:
    match = re.search(r'<meta name="csrf-token" content="([^"]+)"', client.get("/console/").text)
    assert match
    return match.group(1)


@dataclass
class Terminal:
    terminal_id: str
    secret: str
    seq: int = 0
    boot: str = ""

    @property
    def auth(self) -> tuple[str, str]:
        return (self.terminal_id, self.secret)


def add_terminals(svc: Services, count: int, *, campus: str = "本部", floors: tuple[str, ...] = ("1F", "2F")) -> list[Terminal]:
    made = []
    for i in range(1, count + 1):
        tid = f"KIOSK-{i:03d}"
        secret = provision_terminal(svc.sessions, tid, name=f"自助机 {i}", location=f"门诊大厅 {i}")
        fleet.register_terminal_info(svc, tid, campus=campus, floor=floors[i % len(floors)], location=f"门诊大厅 {i} 号")
        made.append(Terminal(tid, secret, boot=uuid.uuid4().hex[:16]))
    return made


def beat(client: TestClient, terminal: Terminal, clock: Clock, *, paper: str = "ok", maintenance: bool = False) -> Any:
    """One heartbeat through the real agent API."""
    terminal.seq += 1
    printer = {"status": "ok", "reason": ""}
    if paper == "out":
        printer = {"status": "fault", "reason": "paper_out"}
    elif paper == "low":
        printer = {"status": "degraded", "reason": "paper_low"}
    body = {"boot": terminal.boot, "seq": terminal.seq, "sent_at": clock.now.isoformat(),
            "app": {"version": "1.3.0", "running": True, "uptime_s": 3600, "maintenance": maintenance},
            "devices": {"id_card": {"status": "ok"}, "receipt_printer": printer},
            "system": {"cpu_pct": 12, "mem_pct": 40, "disk_pct": 33}, "queue": {"depth": 0}}
    response = client.post("/api/v1/fleet/heartbeat", json=body, auth=terminal.auth)
    assert response.status_code == 200, response.text
    return response.json()
