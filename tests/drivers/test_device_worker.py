"""The worker thread that owns a device: jobs in order, health reported on change, reconnect after unplug."""
from __future__ import annotations

import threading
import time

import pytest

from drivers.device import DeviceProxy, DeviceWorker
from drivers.health import Health
from drivers.receipt.document import Text
from drivers.receipt.printer import NetworkReceiptPrinter, PrinterError
from drivers.receipt.simulator import PrinterListener


class FlakyDevice:
    """Goes away and comes back like a USB device pulled and replugged."""

    def __init__(self) -> None:
        self.plugged = True
        self.opened = 0
        self.stale = False  # pulled since it was opened: the old handle is dead even once replugged
        self.threads: set[str] = set()

    def open(self) -> None:
        if not self.plugged:
            raise OSError("no such device")
        self.opened += 1
        self.stale = False

    def unplug(self) -> None:
        self.plugged, self.stale = False, True

    def close(self) -> None:
        pass

    def health(self) -> Health:
        self.threads.add(threading.current_thread().name)
        return Health.ok() if self.plugged and not self.stale else Health.fault("disconnected", "unplugged")

    def self_test(self) -> Health:
        return self.health()

    def echo(self, value: object) -> object:
        self.threads.add(threading.current_thread().name)
        return value

    def explode(self) -> None:
        raise RuntimeError("jammed")


def wait_until(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


@pytest.fixture
def flaky():
    device = FlakyDevice()
    seen: list[tuple[str, Health]] = []
    worker = DeviceWorker("flaky", device, on_health=lambda name, h: seen.append((name, h)), health_interval=0.05)
    worker.start()
    yield device, worker, seen
    worker.stop()


def test_jobs_run_in_order_on_the_device_thread(flaky):
    device, worker, _ = flaky
    futures = [worker.submit(lambda d, i=i: d.echo(i)) for i in range(20)]
    assert [f.result(5) for f in futures] == list(range(20))
    assert device.threads == {"device-flaky"}


def test_a_failing_job_reports_to_its_caller_and_the_thread_lives_on(flaky):
    _, worker, _ = flaky
    with pytest.raises(RuntimeError, match="jammed"):
        worker.call(lambda d: d.explode(), timeout=5)
    assert worker.call(lambda d: d.echo("still here"), timeout=5) == "still here"


def test_unplug_is_reported_once_and_replug_reconnects(flaky):
    device, worker, seen = flaky
    wait_until(lambda: seen and seen[-1][1] == Health.ok())
    opened_before = device.opened
    device.unplug()
    wait_until(lambda: seen[-1][1].reason == "disconnected")
    time.sleep(0.3)  # several health checks while unplugged: still one report
    assert [h.reason for _, h in seen].count("disconnected") == 1
    device.plugged = True
    wait_until(lambda: seen[-1][1] == Health.ok())
    assert device.opened > opened_before  # the worker reopened it; nobody had to restart the kiosk


def test_a_health_check_that_raises_is_a_fault_not_a_dead_thread():
    class Broken(FlakyDevice):
        def health(self) -> Health:
            raise ValueError("driver bug")

    seen: list[Health] = []
    worker = DeviceWorker("broken", Broken(), on_health=lambda _n, h: seen.append(h), health_interval=0.05)
    worker.start()
    try:
        wait_until(lambda: bool(seen))
        assert seen[0].reason == "health_check_failed" and "driver bug" in seen[0].detail
        assert worker.call(lambda d: d.echo(1), timeout=5) == 1
    finally:
        worker.stop()


def test_proxy_prints_on_the_worker_thread_and_sees_paper_out():
    with PrinterListener() as sim:
        seen: list[Health] = []
        worker = DeviceWorker("receipt_printer", NetworkReceiptPrinter("127.0.0.1", sim.port),
                              on_health=lambda _n, h: seen.append(h), health_interval=0.05)
        worker.start()
        try:
            printer = DeviceProxy(worker, timeout=10)
            printer.print_document([Text("测试 test")])
            assert "测试".encode("gb18030") in sim.wait_for_job(5)
            sim.paper_out = True
            wait_until(lambda: printer.health().reason == "paper_out")
            assert seen[-1].reason == "paper_out"
            sim.stop()  # printer switched off
            with pytest.raises(PrinterError):
                printer.print_document([Text("lost")])
            with pytest.raises(AttributeError):
                printer.no_such_verb
        finally:
            worker.stop()
