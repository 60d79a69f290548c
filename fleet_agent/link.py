"""The local link between the kiosk app and its fleet agent: small JSON datagrams over UDP on loopback.

The kiosk app (``kiosk_app.agent_link``) sends a *beat* every ``LINK_BEAT_SECONDS``: it is alive, which screen
and service are up, whether a payment is in progress, its devices' health, its error count. The watchdog
restarts the app when these stop. The agent answers nothing to beats; it sends *requests* back to the address
the beats come from (take a screenshot, maintenance on/off, reload the configuration, run a self-test) and
the app answers each with a *reply* carrying the same id.

UDP because either side may be gone at any moment: nothing blocks, nothing needs reconnecting, and a lost
datagram is just a late beat. Loopback only; no patient data crosses it (names of screens, counts, health).
"""
from __future__ import annotations

import itertools
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_PORT = 47_150
LINK_BEAT_SECONDS = 2.0
MAX_DATAGRAM = 60_000


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def decode(data: bytes) -> dict[str, Any] | None:
    try:
        message = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return message if isinstance(message, dict) else None


@dataclass
class AppState:
    """The kiosk app's last beat as the agent saw it."""

    received_at: float  # time.monotonic() on the agent
    pid: int = 0
    version: str = ""
    started_at: float = 0.0  # the app's own wall clock at start, for its uptime
    screen: str = ""
    service: str = ""
    payment_in_progress: bool = False
    maintenance: bool = False
    errors: int = 0  # cumulative since the app started
    devices: dict[str, dict[str, str]] = field(default_factory=dict)


class LinkServer:
    """The agent's end: keeps the app's last beat and sends it requests."""

    def __init__(self, port: int = DEFAULT_PORT, host: str = "127.0.0.1"):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.port = self.sock.getsockname()[1]
        self.state: AppState | None = None
        self._peer: tuple[str, int] | None = None
        self._ids = itertools.count(1)
        self._replies: dict[int, dict[str, Any]] = {}
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="agent-link", daemon=True)
        self.on_beat: Callable[[AppState], None] | None = None

    def start(self) -> LinkServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        try:
            self.sock.close()
        except OSError:
            pass

    def _run(self) -> None:
        self.sock.settimeout(0.5)
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(MAX_DATAGRAM)
            except TimeoutError:
                continue
            except OSError:
                return
            message = decode(data)
            if message is None:
                continue
            if message.get("type") == "beat":
                self._peer = peer
                state = AppState(received_at=time.monotonic(), pid=int(message.get("pid", 0)),
                                 version=str(message.get("version", ""))[:40],
                                 started_at=float(message.get("started_at", 0.0)),
                                 screen=str(message.get("screen", ""))[:60], service=str(message.get("service", ""))[:60],
                                 payment_in_progress=bool(message.get("payment_in_progress", False)),
                                 maintenance=bool(message.get("maintenance", False)),
                                 errors=int(message.get("errors", 0)),
                                 devices=_devices(message.get("devices")))
                with self._cond:
                    self.state = state
                    self._cond.notify_all()
                if self.on_beat is not None:
                    self.on_beat(state)
            elif message.get("type") == "reply" and isinstance(message.get("id"), int):
                with self._cond:
                    self._replies[message["id"]] = message
                    self._cond.notify_all()

    def seconds_since_beat(self) -> float | None:
        state = self.state
        return None if state is None else time.monotonic() - state.received_at

    def wait_for_beat(self, after: float, timeout: float) -> AppState | None:
        """The first beat received after ``after`` (a monotonic time), or None."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.state is None or self.state.received_at <= after:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)
            return self.state

    def request(self, op: str, args: dict[str, Any] | None = None, timeout: float = 15.0) -> dict[str, Any]:
        """Ask the app to do something; its reply (``{"ok": bool, "result": str, ...}``). Raises TimeoutError
        if the app does not answer (not running, hung, or too old to know ``op``)."""
        peer = self._peer
        if peer is None:
            raise TimeoutError("the kiosk app has not been heard from")
        request_id = next(self._ids)
        self.sock.sendto(encode({"type": "request", "id": request_id, "op": op, "args": args or {}}), peer)
        deadline = time.monotonic() + timeout
        with self._cond:
            while request_id not in self._replies:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"the kiosk app did not answer {op!r}")
                self._cond.wait(remaining)
            return self._replies.pop(request_id)


def _devices(value: Any) -> dict[str, dict[str, str]]:
    if not isinstance(value, dict):
        return {}
    out = {}
    for name, health in list(value.items())[:32]:
        if isinstance(health, dict) and health.get("status") in ("ok", "degraded", "fault"):
            out[str(name)[:40]] = {"status": health["status"], "reason": str(health.get("reason", ""))[:60],
                                   "detail": str(health.get("detail", ""))[:200]}
    return out
