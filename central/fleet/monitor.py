"""The fleet's clock-driven rules, in a background thread of the server: terminals gone silent raise an alert,
commands past their time expire, old beat rows are trimmed. Beats drive everything else."""
from __future__ import annotations

import logging
import threading
import time

from central.fleet import ingest, service
from central.services import Services

log = logging.getLogger(__name__)

PRUNE_EVERY_S = 600.0


class FleetMonitor:
    def __init__(self, svc: Services, interval: float):
        self._svc = svc
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fleet-monitor", daemon=True)
        self._last_prune = 0.0

    def start(self) -> FleetMonitor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def run_once(self) -> None:
        raised, _ = service.check_silent_terminals(self._svc)
        expired = service.expire_commands(self._svc)
        if raised or expired:
            log.info("fleet monitor: %d terminal(s) went silent, %d command(s) expired", raised, expired)
        if time.monotonic() - self._last_prune > PRUNE_EVERY_S:
            self._last_prune = time.monotonic()
            ingest.prune_beats(self._svc)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.run_once()
            except Exception:  # one bad pass must not end monitoring
                log.exception("fleet monitor pass failed")


def start_fleet_monitor(svc: Services) -> FleetMonitor | None:
    """Start the monitor unless the settings turn it off (tests drive ``run_once`` by hand)."""
    if not getattr(svc.settings, "fleet_monitor", True):
        return None
    return FleetMonitor(svc, service.settings_of(svc).monitor_seconds).start()
