"""A real kiosk-central process per test module, and a real kiosk (Qt window, simulated devices on their wire
protocols) per test."""
from __future__ import annotations

import httpx
import pytest

from kiosk_app.app import Kiosk
from kiosk_app.config import KioskConfig
from kiosk_app.local_central import LocalCentral
from kiosk_app.simulated import SimulatedDevices


@pytest.fixture(scope="module")
def central(tmp_path_factory):
    # The demo patient walks several visits of a module on one server; the HIS's limits per patient and day
    # have their own tests (tests/central/test_appointments.py).
    server = LocalCentral(tmp_path_factory.mktemp("central"), env={
        "KIOSK_CENTRAL_HIS_MAX_PER_DEPARTMENT_PER_DAY": "100", "KIOSK_CENTRAL_HIS_MAX_PER_DAY": "100"}).start()
    yield server
    server.stop()


@pytest.fixture
def terminal_id() -> str:
    return "KIOSK-E2E"


@pytest.fixture
def kiosk(central, tmp_path, qapp, terminal_id):
    sims = SimulatedDevices(tmp_path / "devices")
    devices = sims.start()
    config = KioskConfig(credentials=central.provision(terminal_id), data_dir=tmp_path / "kiosk",
                         devices=devices, fullscreen=False)
    k = Kiosk(config, qapp)
    k.window.resize(1920, 1080)
    k.start(show=True)
    yield k, sims
    k.stop()
    sims.stop()


def api(central, kiosk_obj, path):
    """GET a kiosk API path as this kiosk's terminal."""
    creds = kiosk_obj.config.credentials
    resp = httpx.get(f"{central.url}/api/v1/kiosk{path}", auth=(creds.terminal_id, creds.secret), timeout=10)
    resp.raise_for_status()
    return resp.json()
