"""``kiosk-central demo-fleet``: the server plus a simulated fleet in one process, for the demo and the console.

Provisions ``SIM-0001`` … (spread over two campuses and five floors), serves the whole app on the configured
port, and runs that many simulated agents (``fleet_agent.simulated``) against it. Faults: ``--fault-rate``
puts a random fault on that share of terminals, ``--fault SIM-0037=paper_out`` on one terminal; while it runs,
writing ``SIM-0012=disconnected`` lines to ``<data-dir>/fleet-faults.txt`` injects more (``SIM-0012=clear``
clears them). The file is looked at every ``FAULT_FILE_CHECK_SECONDS``, well inside any heartbeat interval, so
a fault written there is in the terminal's next beat: on the console within one interval. Every
``STATUS_EVERY_SECONDS`` it prints one line of counts by status.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path

import uvicorn

from central.config import Settings
from central.fleet import service
from central.services import build_services
from central.terminals import provision_terminal
from fleet_agent.simulated import SimTerminal, SimulatedFleet, make_terminals

log = logging.getLogger(__name__)

CAMPUSES = ("Main campus", "East campus")
FAULT_FILE_CHECK_SECONDS = 0.25  # a stat() per check; the shortest heartbeat interval is one second
STATUS_EVERY_SECONDS = 10.0
FLOORS = ("1F", "2F", "3F", "4F", "5F")


def parse_faults(items: list[str]) -> dict[str, str]:
    faults = {}
    for item in items:
        terminal_id, _, fault = item.partition("=")
        if not terminal_id or not fault:
            raise ValueError(f"a fault is TERMINAL=FAULT, not {item!r}")
        faults[terminal_id.strip()] = fault.strip()
    return faults


def _apply(by_id: dict[str, SimTerminal], faults: dict[str, str]) -> None:
    for terminal_id, fault in faults.items():
        term = by_id.get(terminal_id)
        if term is None:
            log.warning("fault file: no simulated terminal %s", terminal_id)
            continue
        try:
            if fault == "clear":
                term.clear()
            else:
                term.inject(fault)
        except ValueError as exc:  # an unknown fault: say so, keep the others
            log.warning("fault file: %s: %s", terminal_id, exc)
            continue
        log.info("fault file: %s=%s", terminal_id, fault)


class FaultFile:
    """``<data-dir>/fleet-faults.txt``, applied each time it changes (size or modification time)."""

    def __init__(self, path: Path, by_id: dict[str, SimTerminal]):
        self.path = path
        self.by_id = by_id
        self._seen: tuple[int, int] | None = None

    def check(self) -> bool:
        """Apply the file if it changed since the last check; True if it was applied."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return False
        mark = (stat.st_mtime_ns, stat.st_size)
        if mark == self._seen:
            return False
        self._seen = mark
        try:
            faults = parse_faults([line for line in self.path.read_text(encoding="utf-8").split() if line])
        except ValueError as exc:
            log.warning("fault file %s ignored: %s", self.path.name, exc)
            return False
        _apply(self.by_id, faults)
        return True


def run(settings: Settings, *, terminals: int, duration: float | None, fault_rate: float,
        faults: list[str]) -> int:
    svc = build_services(settings)
    credentials = []
    for i in range(1, terminals + 1):
        terminal_id = f"SIM-{i:04d}"
        credentials.append((terminal_id, provision_terminal(svc.sessions, terminal_id, name=f"Kiosk {i}")))
        service.register_terminal_info(svc, terminal_id, campus=CAMPUSES[i % len(CAMPUSES)],
                                       floor=FLOORS[i % len(FLOORS)], location=f"Hall {chr(65 + i % 6)}, kiosk {i}")
    from central.app import create_app

    server = uvicorn.Server(uvicorn.Config(create_app(settings, svc), host=settings.host, port=settings.port,
                                           log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            return 1
        time.sleep(0.05)
    url = f"http://127.0.0.1:{settings.port}"
    sims = make_terminals(credentials, seed=settings.seed)
    by_id = {t.terminal_id: t for t in sims}
    _apply(by_id, parse_faults(faults))
    fleet = SimulatedFleet(url, sims, interval=service.settings_of(svc).heartbeat_seconds, fault_rate=fault_rate)
    faults_file = Path(settings.data_dir) / "fleet-faults.txt"
    print(f"demo fleet: {terminals} simulated terminals against {url} (console data in {settings.data_dir}); "
          f"inject faults by writing TERMINAL=FAULT lines to {faults_file}", flush=True)

    fault_file = FaultFile(faults_file, by_id)

    def watch() -> None:
        next_status = time.monotonic() + STATUS_EVERY_SECONDS
        while not fleet._stopping:
            time.sleep(FAULT_FILE_CHECK_SECONDS)
            try:
                fault_file.check()
                if time.monotonic() >= next_status:
                    next_status += STATUS_EVERY_SECONDS
                    summary = service.fleet_summary(svc)
                    print(" ".join(f"{k}={v}" for k, v in summary.by_status.items()),
                          f"open_alerts={summary.open_alerts} beats_ok={fleet.stats.ok} lost={fleet.stats.lost}",
                          flush=True)
            except Exception:
                log.exception("demo fleet status failed")

    threading.Thread(target=watch, daemon=True).start()
    try:
        asyncio.run(fleet.run(duration))
    except KeyboardInterrupt:
        pass
    finally:
        fleet.stop()
        server.should_exit = True
        thread.join(timeout=15)
        svc.close()
    return 0
