"""Simulated terminals: many agents in one process, for ``kiosk-central demo-fleet`` and
``bench/heartbeats.py``. Each speaks the real fleet API over HTTP with its own credentials, beats at the
interval the server sets (starting at a random offset, so a fleet does not beat in step), and carries out
commands like the real agent would: it acknowledges, answers, uploads a rendered screenshot, and refuses a
reboot while its simulated patient is paying.

Faults can be switched on per terminal (``SimTerminal.inject``) or at random (``fault_rate``): paper running
low then out, a device disconnected, a burst of errors, a backlog in the offline queue, or going silent.
"""
from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import httpx

from fleet_agent.png import status_card
from fleet_agent.wire import JsonPool, WireError

FAULTS = ("paper_low", "paper_out", "disconnected", "error_burst", "backlog", "silent", "app_down")
DEVICES = ("id_card", "pcsc", "scanner", "camera", "receipt_printer", "report_printer", "pinpad")
SCREENS = ("home", "reading_card", "choosing_department", "choosing_doctor", "choosing_slot", "awaiting_payment")


@dataclass
class Stats:
    sent: int = 0
    ok: int = 0
    lost: int = 0  # no 2xx answer (error status, refused, timed out)
    latencies_ms: list[float] = field(default_factory=list)
    commands: int = 0


@dataclass
class SimTerminal:
    terminal_id: str
    secret: str
    rng: random.Random
    version: str = "1.4.2"
    boot: str = field(default_factory=lambda: uuid.uuid4().hex)
    seq: int = 0
    faults: set[str] = field(default_factory=set)
    started: float = field(default_factory=time.time)
    maintenance: bool = False
    payment: bool = False
    _sent_devices: dict[str, Any] | None = None

    @property
    def auth(self) -> tuple[str, str]:
        return (self.terminal_id, self.secret)

    def inject(self, fault: str) -> None:
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
        self.faults.add(fault)

    def clear(self) -> None:
        self.faults.clear()

    def devices(self) -> dict[str, dict[str, str]]:
        out = {name: {"status": "ok"} for name in DEVICES}
        if "paper_low" in self.faults:
            out["receipt_printer"] = {"status": "degraded", "reason": "paper_low", "detail": "receipt paper is low"}
        if "paper_out" in self.faults:
            out["receipt_printer"] = {"status": "fault", "reason": "paper_out", "detail": "receipt paper is out"}
        if "disconnected" in self.faults:
            out["id_card"] = {"status": "fault", "reason": "disconnected", "detail": "no answer on the port"}
        return out

    def beat(self) -> dict[str, Any]:
        self.seq += 1
        if self.rng.random() < 0.1:
            self.payment = not self.payment and not self.maintenance
        screen = "awaiting_payment" if self.payment else self.rng.choice(SCREENS[:5])
        beat: dict[str, Any] = {
            "boot": self.boot, "seq": self.seq, "sent_at": datetime.now(timezone.utc).isoformat(),
            "app": {"version": self.version, "running": "app_down" not in self.faults,
                    "uptime_s": round(time.time() - self.started, 1), "screen": screen,
                    "service": "" if screen == "home" else "registration", "payment_in_progress": self.payment,
                    "maintenance": self.maintenance},
            "system": {"cpu_pct": round(self.rng.uniform(3, 35), 1), "mem_pct": round(self.rng.uniform(30, 60), 1),
                       "disk_pct": 41.0, "temp_c": round(self.rng.uniform(40, 62), 1)},
            "rtt_ms": round(self.rng.uniform(1, 20), 1),
            "queue": {"depth": 600 if "backlog" in self.faults else 0, "parked": 0, "oldest_age_s": None},
            "errors": 40 if "error_burst" in self.faults else 0}
        devices = self.devices()
        if devices != self._sent_devices or self.seq == 1:
            beat["devices"] = devices
            self._sent_devices = devices
        if self.seq == 1:
            beat["facts"] = {"hostname": self.terminal_id.lower(), "os": "simulated", "agent_version": "sim"}
        return beat


class SimulatedFleet:
    """Runs ``terminals`` against ``server_url`` until ``stop()`` or ``duration`` seconds have passed."""

    def __init__(self, server_url: str, terminals: list[SimTerminal], *, interval: float = 10.0,
                 fault_rate: float = 0.0, timeout: float = 10.0, max_connections: int = 200,
                 beat_connections: int = 64):
        self.url = server_url.rstrip("/") + "/api/v1/fleet"
        self.terminals = terminals
        self.interval = interval
        self.fault_rate = fault_rate
        self.timeout = timeout
        self.max_connections = max_connections
        self.beat_connections = beat_connections  # keep-alive connections the beats share (a real fleet: one each)
        self.stats = Stats()
        self._stopping = False

    def stop(self) -> None:
        self._stopping = True

    async def run(self, duration: float | None = None) -> Stats:
        limits = httpx.Limits(max_connections=self.max_connections, max_keepalive_connections=self.max_connections)
        async with httpx.AsyncClient(limits=limits, timeout=self.timeout) as http, \
                JsonPool(self.url, connections=self.beat_connections, timeout=self.timeout) as pool:
            self._pool = pool
            deadline = None if duration is None else time.monotonic() + duration
            await asyncio.gather(*(self._terminal(http, t, deadline) for t in self.terminals))
        return self.stats

    async def _terminal(self, http: httpx.AsyncClient, term: SimTerminal, deadline: float | None) -> None:
        await asyncio.sleep(term.rng.uniform(0, self.interval))
        if self.fault_rate and term.rng.random() < self.fault_rate:
            term.inject(term.rng.choice(FAULTS))
        interval = self.interval
        while not self._stopping and (deadline is None or time.monotonic() < deadline):
            started = time.monotonic()
            if "silent" not in term.faults:
                interval = await self._beat(http, term) or interval
            pause = interval - (time.monotonic() - started)
            if deadline is not None:
                pause = min(pause, deadline - time.monotonic())
            await asyncio.sleep(max(0.0, pause))

    async def _beat(self, http: httpx.AsyncClient, term: SimTerminal) -> float | None:
        body = term.beat()
        self.stats.sent += 1
        started = time.perf_counter()
        try:
            status, answer = await self._pool.post("/heartbeat", body, term.auth)
        except WireError:
            self.stats.lost += 1
            return None
        self.stats.latencies_ms.append((time.perf_counter() - started) * 1000)
        if status != 200 or not isinstance(answer, dict):
            self.stats.lost += 1
            return None
        self.stats.ok += 1
        for command in answer.get("commands") or []:
            asyncio.get_running_loop().create_task(self._command(http, term, command))
        interval = answer.get("interval_s")
        return float(interval) if isinstance(interval, (int, float)) and interval > 0 else None

    async def _command(self, http: httpx.AsyncClient, term: SimTerminal, command: dict[str, Any]) -> None:
        self.stats.commands += 1
        base = f"{self.url}/commands/{command['id']}"
        try:
            if (await http.post(base + "/ack", auth=term.auth)).status_code != 200:
                return
            await asyncio.sleep(term.rng.uniform(0.2, 1.0))
            ok, result, artifact_id = True, "done", None
            kind = command.get("kind")
            if kind == "reboot" and term.payment:
                ok, result = False, "refused: a payment is in progress on this terminal; try again when it is idle"
            elif kind == "reboot" or kind == "restart_app":
                term.started, term.boot, term.seq, term._sent_devices = time.time(), uuid.uuid4().hex, 0, None
                term.payment = False
                result = "restarted (simulated)"
            elif kind in ("maintenance_on", "maintenance_off"):
                term.maintenance = kind == "maintenance_on"
                term.payment = False
                result = f"maintenance {'on' if term.maintenance else 'off'}"
            elif kind == "screenshot":
                png = status_card([d["status"] for d in term.devices().values()])
                up = await http.post(base + "/artifact", params={"kind": "screenshot"}, content=png, auth=term.auth)
                ok, artifact_id = up.status_code == 201, (up.json().get("id") if up.status_code == 201 else None)
                result = "screenshot taken" if ok else f"upload failed: HTTP {up.status_code}"
            elif kind == "self_test":
                faults = [n for n, d in term.devices().items() if d["status"] == "fault"]
                ok, result = not faults, ("all devices passed" if not faults else f"failed: {', '.join(faults)}")
            elif kind == "update":
                term.version = str(command.get("args", {}).get("version", term.version))
                result = f"updated to {term.version}"
            elif kind == "reload_config":
                term.clear()  # a simulated fix: a fresh configuration clears the injected faults
                result = "configuration reloaded"
            elif kind == "collect_logs":
                ok, result = False, "a simulated terminal has no logs"
            await http.post(base + "/result", json={"status": "EXECUTED" if ok else "FAILED", "result": result,
                                                    "artifact_id": artifact_id}, auth=term.auth)
        except httpx.HTTPError:
            pass  # the server will expire the command; the console shows it


def make_terminals(credentials: list[tuple[str, str]], seed: int = 1) -> list[SimTerminal]:
    rng = random.Random(seed)
    return [SimTerminal(tid, secret, random.Random(rng.random())) for tid, secret in credentials]


def percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(p / 100 * len(ordered) + 0.5)) - 1))]
