"""The link's Qt paths on the real kiosk (``kiosk_app.app.Kiosk``: the real ``KioskWindow``, device threads
on the device simulators): the agent's screenshot command grabs the window on the Qt thread and yields a PNG
of the window's size, and its self-test runs every device's own test and answers per device."""
from __future__ import annotations

import struct
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtGui import QImage

from fleet_agent.executors import Done, Executors
from fleet_agent.link import LinkServer
from kiosk_app.app import Kiosk
from kiosk_app.config import Credentials, KioskConfig
from kiosk_app.simulated import SimulatedDevices


@pytest.fixture
def linked(tmp_path: Path, qapp: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Kiosk, SimulatedDevices,
                                                                                      Executors]]:
    server = LinkServer(port=0).start()
    monkeypatch.setenv("KIOSK_AGENT_LINK_PORT", str(server.port))  # the link Kiosk.start opens talks to us
    sims = SimulatedDevices(tmp_path / "devices")
    devices = sims.start()
    config = KioskConfig(credentials=Credentials("K-LINK", "s", "http://127.0.0.1:9"), data_dir=tmp_path / "kiosk",
                         devices=devices, fullscreen=False, device_poll_seconds=0.5)
    kiosk = Kiosk(config, qapp)
    kiosk.window.resize(1920, 1080)
    kiosk.start(show=True)
    try:
        yield kiosk, sims, Executors(link=server, work_dir=tmp_path)
    finally:
        kiosk.stop()
        sims.stop()
        server.stop()


def run_off_the_qt_thread(qtbot: Any, executors: Executors, kind: str, args: dict[str, Any],
                          timeout: float = 60) -> Done:
    """The agent asks from its own thread while the Qt thread keeps its event loop running, as in the app."""
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(executors.run, kind, args)
        qtbot.waitUntil(future.done, timeout=int(timeout * 1000))
        return future.result()


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_a_screenshot_is_a_png_of_the_window(qtbot: Any, linked: tuple[Kiosk, SimulatedDevices, Executors]) -> None:
    kiosk, _, executors = linked
    qtbot.waitUntil(lambda: executors.link.state is not None, timeout=10_000)  # the app has beaten once
    done = run_off_the_qt_thread(qtbot, executors, "screenshot", {})
    assert done.ok, done.result
    kind, data = done.artifact
    assert kind == "screenshot"
    ratio = kiosk.window.devicePixelRatioF()
    size = kiosk.window.size()
    assert png_size(data) == (round(size.width() * ratio), round(size.height() * ratio))
    assert (size.width(), size.height()) == (1920, 1080)
    image = QImage.fromData(data, "PNG")  # the window drawn, not an empty frame
    assert len({image.pixel(x, y) for x in range(0, image.width(), 97) for y in range(0, image.height(), 89)}) > 2


def test_a_self_test_answers_per_device(qtbot: Any, linked: tuple[Kiosk, SimulatedDevices, Executors]) -> None:
    kiosk, sims, executors = linked
    qtbot.waitUntil(lambda: executors.link.state is not None and len(kiosk.health) >= 7, timeout=30_000)
    sims.inject("receipt_printer", "paper_out")
    reply: dict[str, Any] = {}

    def ask() -> None:
        reply.update(executors.link.request("self_test", {}, timeout=60))

    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(ask)
        qtbot.waitUntil(future.done, timeout=60_000)
        future.result()
    devices = reply["devices"]
    assert set(devices) == {"id_card", "pcsc", "scanner", "camera", "receipt_printer", "report_printer", "pinpad"}
    assert devices["receipt_printer"]["status"] == "fault" and devices["receipt_printer"]["reason"] == "paper_out"
    assert devices["receipt_printer"]["source"] == "self-test"
    assert devices["id_card"]["source"] == "last report"  # the ID-card reader belongs to its poller
    assert reply["ok"] is False and "receipt_printer fault (paper_out)" in reply["result"]
    # Through the executor, as the command's outcome IT reads: the one device named.
    done = run_off_the_qt_thread(qtbot, executors, "self_test", {"device": "receipt_printer"})
    assert not done.ok and done.result.startswith("1 failed: receipt_printer fault (paper_out)")
    sims.printer.paper_out = False
    time.sleep(0.1)
    done = run_off_the_qt_thread(qtbot, executors, "self_test", {"device": "receipt_printer"})
    assert done.ok and done.result == "all passed: receipt_printer ok", done.result
