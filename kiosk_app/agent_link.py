"""The kiosk app's side of the local link to its fleet agent (``fleet_agent.link``).

A daemon thread sends a beat every two seconds (alive; screen and service by name; payment in progress or
not; maintenance; device health; error count) and answers the agent's requests through handlers the app
registers (``screenshot``, ``maintenance``, ``reload_config``, ``self_test``). ``AgentLink`` itself knows
nothing of Qt or workflows: the beat comes from a callable. When the agent is not running, datagrams go
nowhere and nothing waits.

``KioskHandlers`` are the requests a running kiosk carries out itself (maintenance, reload of the
configuration, device self-test), written against the few attributes of ``kiosk_app.app.Kiosk`` they use so
they can be tested without a screen; ``link_kiosk`` adds the screenshot, which needs the Qt thread.

Handlers run on the link's thread; one that must touch Qt has to hand the work to the Qt thread itself.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import socket
import sys
import threading
import time
import tomllib
from collections.abc import Callable, Sequence
from concurrent.futures import Future, TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any, Protocol

from drivers.health import Health
from fleet_agent.link import DEFAULT_PORT, LINK_BEAT_SECONDS, MAX_DATAGRAM, decode, encode
from kiosk_app.config import KioskConfig

log = logging.getLogger(__name__)

ENV_PORT = "KIOSK_AGENT_LINK_PORT"

Handler = Callable[[dict[str, Any]], dict[str, Any]]


class AgentLink:
    """Beats to the agent and answers its requests, on one daemon thread."""

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
            # "unsupported" lets the agent tell an app too old for the request from one that refused it.
            reply: dict[str, Any] = {"ok": False, "unsupported": True,
                                     "result": f"the kiosk app does not support {op!r}"}
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


PAYING_STATES = frozenset({"awaiting_payment", "paying_by_code", "fulfilling", "cancelling"})

#: What the home screen says while IT has the terminal in maintenance, unless the request names a reason.
MAINTENANCE_REASON = ("本机正在维护，请到其他自助机或人工窗口办理",
                      "This kiosk is under maintenance. Please use another kiosk or a service counter.")
MAX_REASON = 200

#: Configuration keys the running app takes over on reload, with the range it accepts (seconds).
RUNTIME_LIMITS = {"idle_seconds": (10.0, 3600.0), "device_poll_seconds": (0.2, 60.0)}
#: Keys read only at start-up: a change to one of these needs the app restarted (``restart_app``).
RESTART_KEYS = ("credentials", "data_dir", "devices", "hospital_name", "fullscreen", "timezone",
                "technician_pin_hash")

SELF_TEST_SECONDS = 45.0  # all devices together; the agent waits 60 s for the answer


class Runner(Protocol):
    def post(self, intent: str, **kwargs: Any) -> None: ...


class Worker(Protocol):
    health_interval: float

    def submit(self, job: Callable[[Any], Any]) -> Future[Any]: ...


class KioskLike(Protocol):
    """What the handlers use of ``kiosk_app.app.Kiosk``."""

    config: KioskConfig
    runner: Runner
    workflow: Any  # has ``state`` and ``timeouts`` (workflows.registration.Timeouts)
    workers: dict[str, Worker]
    health: dict[str, Health]


class KioskHandlers:
    """The requests a kiosk carries out itself. Each returns the reply ``{"ok": bool, "result": str}``; a
    refusal or failure says why in one sentence, because IT reads it as the command's outcome."""

    def __init__(self, kiosk: KioskLike, config_path: Path | None = None):
        self.kiosk = kiosk
        self.config_path = config_path
        self.maintenance_on = False  # what IT last asked for; reported in every beat
        # The file as it was when the app started: start-up keys are compared with it, not with the running
        # config, which the command line may have changed (--windowed, simulated devices).
        self._started_with: KioskConfig | None = None
        if config_path is not None:
            try:
                self._started_with = KioskConfig.load(config_path)
            except Exception as exc:  # reported when a reload is asked for
                log.warning("configuration %s not readable for later reloads: %s", config_path.name, exc)

    def register(self, link: AgentLink) -> AgentLink:
        return link.handle("maintenance", self.maintenance).handle("reload_config", self.reload_config) \
            .handle("self_test", self.self_test)

    # ---- maintenance -------------------------------------------------------------------------------

    def maintenance(self, args: dict[str, Any]) -> dict[str, Any]:
        """Hand the intent to the workflow runner: the home screen takes the terminal out of service (a visit
        in progress finishes first). Executed once posted; the beats then report maintenance."""
        on = args.get("on")
        if not isinstance(on, bool):
            return {"ok": False, "result": "maintenance needs 'on': true or false"}
        reason_zh = args.get("reason_zh", MAINTENANCE_REASON[0])
        reason_en = args.get("reason_en", MAINTENANCE_REASON[1])
        for name, value in (("reason_zh", reason_zh), ("reason_en", reason_en)):
            if not isinstance(value, str) or not value.strip() or len(value) > MAX_REASON:
                return {"ok": False, "result": f"maintenance: {name} must be text of 1 to {MAX_REASON} characters"}
        self.kiosk.runner.post("maintenance", on=on, reason_zh=reason_zh, reason_en=reason_en)
        self.maintenance_on = on
        log.info("maintenance %s requested by the fleet agent", "on" if on else "off")
        return {"ok": True, "result": f"maintenance {'on' if on else 'off'}: handed to the kiosk screen"}

    # ---- reload ------------------------------------------------------------------------------------

    def reload_config(self, args: dict[str, Any]) -> dict[str, Any]:
        """Read the configuration file again and take over what the running app can change (idle timeout,
        device poll interval). A changed key that is read only at start-up is named in a FAILED answer, so
        IT knows a ``restart_app`` is still needed; the run-time keys are applied all the same. A file that
        cannot be read, or a value out of range, changes nothing."""
        path = self.config_path
        if path is None:
            return {"ok": False, "result": "this kiosk app was not started from a configuration file "
                                           "(kiosk run --config FILE); there is nothing to reload"}
        try:
            fresh = KioskConfig.load(path)
        except FileNotFoundError as exc:
            return {"ok": False, "result": f"configuration not reloaded: {Path(exc.filename or path).name} "
                                           "does not exist"}
        except tomllib.TOMLDecodeError as exc:
            return {"ok": False, "result": f"configuration not reloaded: {path.name} is not valid TOML ({exc})"}
        except (OSError, KeyError, ValueError, TypeError) as exc:
            return {"ok": False, "result": f"configuration not reloaded: {path.name}: "
                                           f"{type(exc).__name__}: {exc}"}
        current = self.kiosk.config
        for key, (low, high) in RUNTIME_LIMITS.items():
            value = getattr(fresh, key)
            if not low <= value <= high:
                return {"ok": False, "result": f"configuration not reloaded: {key} = {value:g} is outside "
                                               f"{low:g} to {high:g} seconds"}
        applied = []
        if fresh.idle_seconds != current.idle_seconds:
            applied.append(f"idle_seconds {current.idle_seconds:g} → {fresh.idle_seconds:g}")
            self._set_idle(fresh.idle_seconds)
            current.idle_seconds = fresh.idle_seconds
        if fresh.device_poll_seconds != current.device_poll_seconds:
            applied.append(f"device_poll_seconds {current.device_poll_seconds:g} → {fresh.device_poll_seconds:g}")
            for worker in self.kiosk.workers.values():
                worker.health_interval = fresh.device_poll_seconds  # read before each wait of the device thread
            current.device_poll_seconds = fresh.device_poll_seconds
        started = self._started_with or current
        pending = [key for key in RESTART_KEYS if getattr(fresh, key) != getattr(started, key)]
        done = "applied " + ", ".join(applied) if applied else "nothing to apply at run time"
        log.info("configuration reloaded from %s: %s; needing a restart: %s", path.name, done,
                 ", ".join(pending) or "none")
        if pending:
            return {"ok": False, "result": f"{done}; {', '.join(pending)} changed and take effect only when the "
                                           "kiosk app restarts (send restart_app)"}
        return {"ok": True, "result": f"configuration reloaded: {done}"}

    def _set_idle(self, seconds: float) -> None:
        """The idle limit of the choosing screens (``Timeouts.choosing``, which ``idle_seconds`` sets at start).
        The workflow reads its timeouts at every tick, so replacing the object is enough."""
        hub = getattr(self.kiosk, "hub", None)
        workflows = list(hub.services.values()) if hub is not None else [self.kiosk.workflow]
        for workflow in workflows:
            timeouts = getattr(workflow, "timeouts", None)
            if timeouts is not None and dataclasses.is_dataclass(timeouts):
                workflow.timeouts = dataclasses.replace(timeouts, choosing=seconds)

    # ---- self-test ---------------------------------------------------------------------------------

    def self_test(self, args: dict[str, Any]) -> dict[str, Any]:
        """Every device's own self-test on its own thread (all at once), or the named device's; devices
        owned by a poller (ID-card reader, scanner) answer with their last health report. The reply names
        each device with its result and carries them as ``devices``."""
        kiosk = self.kiosk
        known = sorted({*kiosk.workers, *kiosk.health})
        device = args.get("device")
        if device is not None and device not in known:
            return {"ok": False, "result": f"no device {device!r} on this terminal (known: {', '.join(known)})"}
        roles = [device] if device else known
        futures = {role: kiosk.workers[role].submit(lambda d: d.self_test()) for role in roles
                   if role in kiosk.workers}
        deadline = time.monotonic() + SELF_TEST_SECONDS
        results: dict[str, dict[str, str]] = {}
        for role in roles:
            if role in futures:
                try:
                    health = futures[role].result(max(0.0, deadline - time.monotonic()))
                except FutureTimeout:
                    results[role] = {"status": "fault", "reason": "no_answer",
                                     "detail": f"no answer within {SELF_TEST_SECONDS:g} s"}
                    continue
                except Exception as exc:
                    results[role] = {"status": "fault", "reason": "test_failed", "detail": type(exc).__name__}
                    continue
                source = "self-test"
            else:
                health = kiosk.health[role]
                source = "last report"
            results[role] = {"status": health.status.value, "reason": health.reason, "detail": health.detail,
                             "source": source}
        failed = [role for role, r in results.items() if r["status"] == "fault"]
        lines = [f"{role} {r['status']}" + (f" ({r['reason']})" if r["reason"] else "") +
                 (" [last report]" if r.get("source") == "last report" else "") for role, r in results.items()]
        return {"ok": not failed, "result": ("all passed: " if not failed else
                                             f"{len(failed)} failed: ") + "; ".join(lines), "devices": results}

    # ---- the beat ----------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        hub = getattr(self.kiosk, "hub", None)
        if hub is not None:  # the service that has the glass now, if any
            service = hub.current
            current = str(getattr(service, "state", "home")) if service is not None else "home"
            service_id = hub.active or ""
        else:
            current = str(getattr(self.kiosk.workflow, "state", ""))
            service_id = "" if current == "home" else "registration"
        return {"screen": current, "service": service_id,
                "payment_in_progress": current in PAYING_STATES, "maintenance": self.maintenance_on,
                "devices": {role: {"status": h.status.value, "reason": h.reason, "detail": h.detail}
                            for role, h in dict(self.kiosk.health).items()}}


def config_path_from_argv(argv: Sequence[str]) -> Path | None:
    """The ``--config FILE`` this process was started with (``kiosk run --config FILE``), if any."""
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            return Path(argv[i + 1])
        if arg.startswith("--config="):
            return Path(arg.split("=", 1)[1])
    return None


def link_kiosk(kiosk: Any, version: str = "", *, port: int | None = None,
               config_path: Path | None = None) -> AgentLink:
    """Start the link for a running ``kiosk_app.app.Kiosk``: its visit state and device health in the beats,
    maintenance, reload and self-test (``KioskHandlers``), a screenshot of its window on request (grabbed on
    the Qt thread), and its errors counted. The configuration file is ``config_path``, else the kiosk's
    ``config_path`` attribute, else the ``--config`` of this process's command line."""
    from PySide6.QtCore import QObject, Qt, Signal

    class _Grabber(QObject):
        requested = Signal(str, object)

        def __init__(self) -> None:
            super().__init__()
            self.requested.connect(self._grab, Qt.ConnectionType.QueuedConnection)

        def _grab(self, path: str, done: dict[str, Any]) -> None:
            try:
                done["saved"] = kiosk.window.grab().save(path, "PNG")
            finally:
                done["event"].set()

    grabber = _Grabber()

    def screenshot(args: dict[str, Any]) -> dict[str, Any]:
        path = args.get("path")
        if not isinstance(path, str) or not path:
            return {"ok": False, "result": "screenshot needs the 'path' to write the PNG to"}
        done: dict[str, Any] = {"event": threading.Event(), "saved": False}
        grabber.requested.emit(path, done)
        if not done["event"].wait(10):
            return {"ok": False, "result": "the screen could not be grabbed in time"}
        if not done["saved"]:
            return {"ok": False, "result": "the screen was grabbed but could not be written as PNG"}
        return {"ok": True, "result": "screenshot taken"}

    path = config_path or getattr(kiosk, "config_path", None) or config_path_from_argv(sys.argv)
    handlers = KioskHandlers(kiosk, Path(path) if path else None)
    link = AgentLink(handlers.state, version=version or _version(), port=port)
    handlers.register(link).handle("screenshot", screenshot)
    link._grabber = grabber  # type: ignore[attr-defined]  (lives as long as the link)
    link._handlers = handlers  # type: ignore[attr-defined]
    logging.getLogger().addHandler(ErrorCounter(link))
    return link.start()


def _version() -> str:
    try:
        from importlib.metadata import version
        return version("hospital-kiosk")
    except Exception:
        return "dev"
