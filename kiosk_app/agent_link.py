"""The kiosk app's side of the local link to its fleet agent (``fleet_agent.link``).

A daemon thread sends a beat every two seconds (alive; screen and service by name; payment in progress or
not; device health; error count) and answers the agent's requests through handlers the app registers
(``screenshot``, ``maintenance``, ``reload_config``, ``self_test``). The beat is built from a callable the app
provides, so this module knows nothing of Qt or workflows. When the agent is not running, datagrams go
nowhere and nothing waits.

Handlers run on the link's thread; one that must touch Qt has to hand the work to the Qt thread itself.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from fleet_agent.link import DEFAULT_PORT, LINK_BEAT_SECONDS, MAX_DATAGRAM, decode, encode

log = logging.getLogger(__name__)

ENV_PORT = "KIOSK_AGENT_LINK_PORT"

Handler = Callable[[dict[str, Any]], dict[str, Any]]


class AgentLink:
    def __init__(self, state: Callable[[], dict[str, Any]], *, version: str, port: int | None = None,
                 interval: float = LINK_BEAT_SECONDS):
        self.state = state
        self.version = version
        self.port = port or int(os.environ.get(ENV_PORT, DEFAULT_PORT))
        self.interval = interval
        self.handlers: dict[str, Handler] = {}
        self.errors = 0  # the app counts its errors here (see ErrorCounter)
        self.started_at = time.time()
        self.paused = False  # tests: stop beating while the process stays (a hung app, as the agent sees it)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="agent-link", daemon=True)

    def handle(self, op: str, handler: Handler) -> AgentLink:
        self.handlers[op] = handler
        return self

    def start(self) -> AgentLink:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._sock.close()

    def beat(self) -> None:
        try:
            state = dict(self.state())
        except Exception:  # a broken state callable must not end the beats: the watchdog would kill a good app
            log.exception("agent link: state unavailable")
            state = {}
        message = {"type": "beat", "pid": os.getpid(), "version": self.version, "started_at": self.started_at,
                   "errors": self.errors, **{k: state[k] for k in ("screen", "service", "payment_in_progress",
                                                                   "maintenance", "devices") if k in state}}
        try:
            self._sock.sendto(encode(message), ("127.0.0.1", self.port))
        except OSError:
            pass  # no agent: nobody to tell

    def _run(self) -> None:
        next_beat = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_beat and not self.paused:
                self.beat()
                next_beat = now + self.interval
            try:
                data, peer = self._sock.recvfrom(MAX_DATAGRAM)
            except (TimeoutError, OSError):
                continue
            message = decode(data)
            if message is None or message.get("type") != "request" or peer[0] != "127.0.0.1":
                continue
            self._answer(message, peer)

    def _answer(self, message: dict[str, Any], peer: tuple[str, int]) -> None:
        op = str(message.get("op", ""))
        handler = self.handlers.get(op)
        if handler is None:
            reply: dict[str, Any] = {"ok": False, "result": f"the kiosk app does not support {op!r}"}
        else:
            try:
                reply = dict(handler(message.get("args") or {}))
            except Exception as exc:
                log.exception("agent link: %s failed", op)
                reply = {"ok": False, "result": f"{op} failed: {type(exc).__name__}"}
        try:
            self._sock.sendto(encode({"type": "reply", "id": message.get("id"), **reply}), peer)
        except OSError:
            pass


class ErrorCounter(logging.Handler):
    """Counts the app's ERROR log records into the link's beat ("errors since the last beat" for IT)."""

    def __init__(self, link: AgentLink):
        super().__init__(level=logging.ERROR)
        self.link = link

    def emit(self, record: logging.LogRecord) -> None:
        self.link.errors += 1


PAYING_STATES = frozenset({"awaiting_payment", "fulfilling", "cancelling"})


def link_kiosk(kiosk: Any, version: str = "") -> AgentLink:
    """Start the link for a running ``kiosk_app.app.Kiosk``: its visit state and device health in the beats, a
    screenshot of its window on request (grabbed on the Qt thread), and its errors counted."""
    from PySide6.QtCore import QObject, Qt, Signal

    class _Grabber(QObject):
        requested = Signal(str, object)

        def __init__(self) -> None:
            super().__init__()
            self.requested.connect(self._grab, Qt.ConnectionType.QueuedConnection)

        def _grab(self, path: str, done: threading.Event) -> None:
            try:
                kiosk.window.grab().save(path, "PNG")
            finally:
                done.set()

    grabber = _Grabber()

    def state() -> dict[str, Any]:
        current = str(getattr(kiosk.workflow, "state", ""))
        return {"screen": current, "service": "" if current == "home" else "registration",
                "payment_in_progress": current in PAYING_STATES,
                "devices": {role: {"status": h.status.value, "reason": h.reason, "detail": h.detail}
                            for role, h in dict(kiosk.health).items()}}

    def screenshot(args: dict[str, Any]) -> dict[str, Any]:
        done = threading.Event()
        grabber.requested.emit(str(args["path"]), done)
        if not done.wait(10):
            return {"ok": False, "result": "the screen could not be grabbed in time"}
        return {"ok": True, "result": "screenshot taken"}

    def self_test(args: dict[str, Any]) -> dict[str, Any]:
        roles = [args["device"]] if args.get("device") else sorted(kiosk.workers)
        failed = []
        for role in roles:
            worker = kiosk.workers.get(role)
            health = worker.call(lambda device: device.self_test()) if worker is not None and \
                hasattr(worker, "call") else kiosk.health.get(role)
            if health is None or getattr(health, "status", None) is None or health.status.value == "fault":
                failed.append(role)
        return {"ok": not failed, "result": "all passed" if not failed else f"failed: {', '.join(failed)}"}

    link = AgentLink(state, version=version or _version())
    link.handle("screenshot", screenshot).handle("self_test", self_test)
    link._grabber = grabber  # type: ignore[attr-defined]  (lives as long as the link)
    logging.getLogger().addHandler(ErrorCounter(link))
    return link.start()


def _version() -> str:
    try:
        from importlib.metadata import version
        return version("hospital-kiosk")
    except Exception:
        return "dev"
