"""The thread that owns a scanner: waits for scans, classifies them, and rides out unplugging.

A scanner speaks only when a patient shows it a code, so someone has to be listening all the time; that
someone must not be the Qt thread. Callbacks run on this thread: a screen posts them to its own thread.
Works with any driver that has `open`, `close` and `read_scan(timeout)` (serial or HID).
"""
from __future__ import annotations

import logging
import threading
from typing import Callable

from drivers.device import Reporting
from drivers.health import Health
from drivers.scanner.base import ScanDecodeError, Scanner, ScannerDisconnectedError
from drivers.scanner.classify import DEFAULT_RULES, Rules, Scan, classify, unreadable

log = logging.getLogger(__name__)


class ScannerPoller(Reporting):
    def __init__(self, scanner: Scanner, on_scan: Callable[[Scan], None],
                 on_error: Callable[[Exception], None] | None = None,
                 on_health: Callable[[Health], None] | None = None, *, rules: Rules = DEFAULT_RULES,
                 read_timeout: float = 0.2, reopen_interval: float = 0.5, name: str = "scanner") -> None:
        self.scanner = scanner
        self.on_scan = on_scan
        self.on_error = on_error or (lambda exc: log.warning("%s: %s", name, exc))
        self.on_health = on_health or (lambda health: None)
        self.rules = rules
        self.read_timeout = read_timeout
        self.reopen_interval = reopen_interval
        self.name = name
        self._health = Health.fault("not_started", "the scanner has not been opened yet")
        self._last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"{self.name}-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=self.read_timeout + self.reopen_interval + 3)
            self._thread = None
        self.scanner.close()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def health(self) -> Health:
        """The outcome of the last read: the poller owns the device, so this asks no one."""
        return self._health

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self.poll_once():
                self._stop.wait(self.reopen_interval)

    def poll_once(self) -> bool:
        """One open-and-read round; False when the caller should back off before the next one."""
        try:
            self.scanner.open()
            line = self.scanner.read_scan(self.read_timeout)
            self._last_error = None
            self._set_health(Health.ok())
            if line is not None:
                self._deliver(classify(line.text, self.rules))
            return True
        except ScannerDisconnectedError as exc:
            self.scanner.close()
            self._set_health(Health.fault("disconnected", str(exc)))
            self._report(exc, dedupe=True)
            return False
        except ScanDecodeError as exc:  # noise or a foreign code page: tell the patient to scan again
            self._report(exc, dedupe=False)
            self._deliver(unreadable())
            return True
        except Exception as exc:  # a poller that dies silently leaves the kiosk blind; keep going
            log.exception("%s: unexpected error while reading", self.name)
            self._report(exc, dedupe=False)
            return False

    def _set_health(self, health: Health) -> None:
        # One outage is one notification: the detail changes ("went away" -> "cannot open"), the state not.
        if (health.status, health.reason) != (self._health.status, self._health.reason):
            self._health = health
            self._call(self.on_health, health, "on_health")

    def _deliver(self, scan: Scan) -> None:
        self._call(self.on_scan, scan, "on_scan")
