"""Fixtures for the central server: a seeded data directory (built once, copied per test), services over it
with either the in-memory channel or the real WeChat Pay channel, and the app in-process or on a real port."""
from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from central.app import create_app
from central.bootstrap import initialize
from central.config import Settings
from central.services import Services, build_services
from central.terminals import provision_terminal
from tests.central.fakes import FakeChannel


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def seeded_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One initialised data directory (schema, keys, demo hospital); tests get copies, not this."""
    directory = tmp_path_factory.mktemp("central-template")
    initialize(Settings(data_dir=directory, sweep_seconds=0))
    return directory


@pytest.fixture
def data_dir(seeded_template: Path, tmp_path: Path) -> Path:
    target = tmp_path / "central"
    shutil.copytree(seeded_template, target)
    return target


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir, port=free_port(), sweep_seconds=0)


@pytest.fixture
def fake_channel() -> FakeChannel:
    return FakeChannel()


@pytest.fixture
def svc(settings: Settings, fake_channel: FakeChannel) -> Iterator[Services]:
    services = build_services(settings, channel=fake_channel)
    yield services
    services.close()


@dataclass
class Kiosk:
    terminal_id: str
    secret: str

    @property
    def auth(self) -> tuple[str, str]:
        return (self.terminal_id, self.secret)


def provision(svc: Services, terminal_id: str) -> Kiosk:
    return Kiosk(terminal_id, provision_terminal(svc.sessions, terminal_id))


@pytest.fixture
def client(settings: Settings, svc: Services) -> Iterator[TestClient]:
    with TestClient(create_app(settings, svc), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def kiosk(svc: Services) -> Kiosk:
    return provision(svc, "KIOSK-001")


class LiveCentral:
    """The whole app (kiosk API, notifications, WeChat Pay sandbox) on a real loopback port, in this process,
    with the real WeChat Pay channel: notifications travel over HTTP like in production."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.svc = build_services(settings)
        self.url = f"http://127.0.0.1:{settings.port}"
        self.server = uvicorn.Server(uvicorn.Config(create_app(settings, self.svc), host="127.0.0.1",
                                                    port=settings.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> LiveCentral:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("central did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.svc.close()

    def api(self, kiosk: Kiosk, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, f"{self.url}/api/v1/kiosk{path}", auth=kiosk.auth, timeout=15, **kwargs)

    def pay_as_phone(self, code_url: str) -> httpx.Response:
        return httpx.post(f"{self.url}/sandbox/wechatpay/simulate/pay", json={"code_url": code_url}, timeout=15)

    def sandbox_trade(self, out_trade_no: str) -> dict[str, Any]:
        return httpx.get(f"{self.url}/sandbox/wechatpay/simulate/trades/{out_trade_no}", timeout=15).json()


@pytest.fixture
def live_settings(data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir, port=free_port(), sweep_seconds=0)


@pytest.fixture
def live(live_settings: Settings) -> Iterator[LiveCentral]:
    server = LiveCentral(live_settings).start()
    yield server
    server.stop()


def wait_until(predicate: Any, timeout: float = 10.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)
