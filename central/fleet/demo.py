"""``kiosk-central demo-fleet``: the server plus a simulated fleet in one process, for the demo and the console.

Provisions ``SIM-0001`` … (spread over two campuses and five floors), serves the whole app on the configured
port, and runs that many simulated agents (``fleet_agent.simulated``) against it. Faults: ``--fault-rate``
puts a random fault on that share of terminals, ``--fault SIM-0037=paper_out`` on one terminal; while it runs,
writing ``SIM-0012=disconnected`` lines to ``<data-dir>/fleet-faults.txt`` injects more (``SIM-0012=clear``
clears them). Every ten seconds it prints one line of counts by status.
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
            continue
        if fault == "clear":
            term.clear()
        else:
            term.inject(fault)


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

    def watch() -> None:
        seen = 0.0
        while not fleet._stopping:
            time.sleep(10)
            try:
                if faults_file.exists() and faults_file.stat().st_mtime > seen:
                    seen = faults_file.stat().st_mtime
                    _apply(by_id, parse_faults([line for line in faults_file.read_text().split() if line]))
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
