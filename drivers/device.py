"""The one shape every terminal device has, and the thread that owns each device.

Every driver offers `open`, `close`, `health` and `self_test` plus the verbs of its class (`read_card`,
`print_document`, ...). A `DeviceWorker` gives each device its own thread: all I/O with that device happens
there, so a slow printer never freezes the screen and two callers never interleave bytes on one port. The
worker also watches health and reopens a device that went away (unplugged, powered off) when it comes back.
"""
from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future
from typing import Any, Callable, Protocol, runtime_checkable

from drivers.health import Health, Status

log = logging.getLogger(__name__)


@runtime_checkable
class Device(Protocol):
    def open(self) -> None: ...
    def close(self) -> None: ...
    def health(self) -> Health: ...
    def self_test(self) -> Health: ...


class DeviceWorker:
    """Owns one device on one thread: runs submitted jobs in order and checks health between them."""

    def __init__(self, name: str, device: Device, on_health: Callable[[str, Health], None] | None = None,
                 health_interval: float = 2.0):
        self.name = name
        self.device = device
        self.on_health = on_health or (lambda _name, _health: None)
        self.health_interval = health_interval
        self.last_health = Health.fault("not_started", "the device has not been checked yet")
        self._jobs: queue.Queue[tuple[Callable[[], Any], Future[Any]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name=f"device-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._jobs.put(None)
        self._thread.join(timeout)

    def submit(self, job: Callable[[Device], Any]) -> Future[Any]:
        """Run `job(device)` on the device's thread; the future carries its result or its exception."""
        future: Future[Any] = Future()
        self._jobs.put((lambda: job(self.device), future))
        return future

    def call(self, job: Callable[[Device], Any], timeout: float | None = None) -> Any:
        """Submit and wait: for callers that are not the Qt thread (workflows run on their own thread)."""
        return self.submit(job).result(timeout)

    def _run(self) -> None:
        try:
            self.device.open()
        except Exception as exc:  # not plugged in at start-up: health says so and the worker keeps retrying
            log.warning("%s: cannot open: %s", self.name, exc)
        self._check_health()
        while True:
            try:
                item = self._jobs.get(timeout=self.health_interval)
            except queue.Empty:
                self._check_health()
                continue
            if item is None:
                break
            job, future = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(job())
            except BaseException as exc:  # the caller decides what a failure means; the thread lives on
                future.set_exception(exc)
            self._check_health()
        try:
            self.device.close()
        except Exception:
            log.exception("%s: close failed", self.name)

    def _check_health(self) -> None:
        try:
            health = self.device.health()
        except Exception as exc:  # a health check must never kill the thread that owns the device
            health = Health.fault("health_check_failed", str(exc))
        if health.status is Status.FAULT and health.reason == "disconnected":
            health = self._reconnect(health)
        if health != self.last_health:
            log.info("%s: %s %s", self.name, health.status.value, health.reason)
            self.last_health = health
            self.on_health(self.name, health)

    def _reconnect(self, health: Health) -> Health:
        try:
            self.device.close()
            self.device.open()
            return self.device.health()
        except Exception:
            return health


class DeviceProxy:
    """Calls a device's verbs on its worker thread, for code that holds a device and runs on another thread.

    The workflow prints a slip with `printer.print_document(blocks)` whether it holds the driver itself (in
    tests) or this proxy (in the kiosk); the proxy waits for the worker, so errors reach the caller as if the
    call had been direct.
    """

    def __init__(self, worker: DeviceWorker, timeout: float = 60.0):
        self._worker = worker
        self._timeout = timeout

    def health(self) -> Health:
        """The health the worker last saw, without queueing behind a long job."""
        return self._worker.last_health

    def __getattr__(self, verb: str) -> Callable[..., Any]:
        if verb.startswith("_"):
            raise AttributeError(verb)
        getattr(self._worker.device, verb)  # an unknown verb fails here, on the caller's thread

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._worker.call(lambda device: getattr(device, verb)(*args, **kwargs), self._timeout)

        return call


class Reporting:
    """For pollers (devices that speak unasked): hand results to the kiosk's callbacks, where a failing
    callback is logged and never kills the thread, and report one error of a kind once per outage."""

    on_error: Callable[[Exception], None]
    _last_error: str | None

    @staticmethod
    def _call(callback: Callable[[Any], None], value: Any, what: str) -> None:
        try:
            callback(value)
        except Exception:
            log.exception("%s handler failed", what)

    def _report(self, exc: Exception, dedupe: bool) -> None:
        key = type(exc).__name__
        if dedupe and key == self._last_error:
            return
        self._last_error = key
        self._call(self.on_error, exc, "on_error")
