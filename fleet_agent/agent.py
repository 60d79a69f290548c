"""The fleet agent: beats to the server at the interval the server sets, runs the commands its answers carry,
and keeps everything it could not deliver in the terminal's offline queue.

One beat carries the app's version, uptime, screen and service (by name), every device's health (as the kiosk
app reports it over the local link), CPU, memory, disk, temperature, the network round trip of the previous
beat, the offline queue's depth and the errors counted since the previous beat. The device list is sent when
it changes (and every ``FULL_EVERY`` beats); the rarely changing facts (os, hostname ...) when they change.

When the server cannot be reached, the beat goes into the offline queue (``offline_queue.Outbox``, kind
``fleet_beat``, key ``beat-<boot>-<seq>``) and so do events and command outcomes; the queue's deliverer sends
them to ``/api/v1/fleet/queued`` in order once the server answers again, and the server drops copies.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from fleet_agent import collectors
from fleet_agent.client import FleetClient, Refused, Unreachable
from fleet_agent.executors import Executors
from fleet_agent.link import LinkServer
from fleet_agent.watchdog import Watchdog
from offline_queue.delivery import Deliverer
from offline_queue.outbox import Outbox

log = logging.getLogger(__name__)

AGENT_VERSION = "0.1.0"
FULL_EVERY = 30


def _now() -> datetime:
    return datetime.now(timezone.utc)


class ErrorCount(logging.Handler):
    """Counts the agent's own ERROR records, reported with the app's as "errors since the last beat"."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


class Agent:
    def __init__(self, client: FleetClient, outbox: Outbox, deliverer: Deliverer, link: LinkServer,
                 executors: Executors, *, watchdog: Watchdog | None = None, interval: float = 10.0,
                 disk_path: str = "/"):
        self.client = client
        self.outbox = outbox
        self.deliverer = deliverer
        self.link = link
        self.executors = executors
        self.watchdog = watchdog
        self.interval = interval
        self.disk_path = disk_path
        self.boot = uuid.uuid4().hex
        self.seq = 0
        self.errors = ErrorCount()
        self._errors_reported = 0
        self._app_errors_seen: tuple[int, int] | None = None  # (pid, count) at the previous beat
        self._sent_devices: dict[str, Any] | None = None
        self._sent_facts: dict[str, Any] | None = None
        self._known_commands: set[int] = set()
        # Commands from the server, and the agent's own follow-ups (callables), one at a time on one thread.
        self._commands: queue.Queue[dict[str, Any] | Callable[[], None] | None] = queue.Queue()
        self._reasserting = False
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._beat_loop, name="agent-beat", daemon=True),
                         threading.Thread(target=self._command_loop, name="agent-commands", daemon=True)]
        logging.getLogger().addHandler(self.errors)
        if watchdog is not None:
            watchdog.on_restart = self.app_restarted

    # ---- life ----------------------------------------------------------------------------------------

    def start(self) -> Agent:
        self.deliverer.start()
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._commands.put(None)
        for thread in self._threads:
            thread.join(timeout=15)
        self.deliverer.stop()
        logging.getLogger().removeHandler(self.errors)

    def _beat_loop(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.beat_once()
                self.keep_maintenance()
            except Exception:
                log.exception("heartbeat failed")
            self._stop.wait(max(0.1, self.interval - (time.monotonic() - started)))

    # ---- the beat --------------------------------------------------------------------------------------

    def build_beat(self) -> dict[str, Any]:
        self.seq += 1
        state = self.link.state
        fresh = state is not None and (self.watchdog is None or self.watchdog.running) and \
            (self.link.seconds_since_beat() or 0) < max(3 * 2.0, 10.0)
        app: dict[str, Any] = {"version": state.version if state else "", "running": bool(fresh),
                               "uptime_s": max(0.0, time.time() - state.started_at) if state and fresh else 0.0,
                               "screen": state.screen if state and fresh else "",
                               "service": state.service if state and fresh else "",
                               "payment_in_progress": bool(state and fresh and state.payment_in_progress),
                               "maintenance": bool(state.maintenance) if state and fresh else
                               self.executors.maintenance}
        errors = self.errors.count - self._errors_reported
        self._errors_reported = self.errors.count
        if state is not None:
            previous = self._app_errors_seen
            if previous is not None and previous[0] == state.pid:
                errors += max(0, state.errors - previous[1])
            elif previous is not None:
                errors += state.errors  # a new app process: all of its errors are new
            self._app_errors_seen = (state.pid, state.errors)
        stats = self.outbox.stats()
        beat: dict[str, Any] = {
            "boot": self.boot, "seq": self.seq, "sent_at": _now().isoformat(), "app": app,
            "system": collectors.system(self.disk_path), "rtt_ms": self.client.last_rtt_ms,
            "queue": {"depth": stats.depth, "parked": stats.parked, "oldest_age_s": stats.oldest_age},
            "errors": errors}
        devices = dict(state.devices) if state and fresh else {}
        if devices != self._sent_devices or self.seq % FULL_EVERY == 1:
            beat["devices"] = devices
        facts = collectors.facts(AGENT_VERSION)
        if facts != self._sent_facts:
            beat["facts"] = facts
        return beat

    def beat_once(self) -> dict[str, Any]:
        """Build and send one beat; queue it when the server cannot be reached. Returns the beat."""
        beat = self.build_beat()
        try:
            answer = self.client.heartbeat(beat)
        except Unreachable as exc:
            self.outbox.put("fleet_beat", beat, f"beat-{beat['boot']}-{beat['seq']}")
            log.warning("heartbeat %d queued: server unreachable (%s)", beat["seq"], exc)
            return beat
        except Refused as exc:
            log.error("heartbeat %d refused: %s", beat["seq"], exc.code)
            return beat
        if "devices" in beat:
            self._sent_devices = beat["devices"]
        if "facts" in beat:
            self._sent_facts = beat["facts"]
        interval = answer.get("interval_s")
        if isinstance(interval, (int, float)) and 1 <= interval <= 3600:
            self.interval = float(interval)
        for command in answer.get("commands") or []:
            if isinstance(command, dict) and isinstance(command.get("id"), int) \
                    and command["id"] not in self._known_commands:
                self._known_commands.add(command["id"])
                self._commands.put(command)
        if self.outbox.stats().depth:
            self.deliverer.wake()
        return beat

    # ---- events ----------------------------------------------------------------------------------------

    def report_event(self, kind: str, message: str, severity: str = "info", **detail: Any) -> None:
        event = {"key": f"evt-{self.boot[:12]}-{uuid.uuid4().hex[:16]}", "kind": kind, "severity": severity,
                 "message": message[:500], "detail": detail, "at": _now().isoformat()}
        try:
            self.client.events([event])
        except (Unreachable, Refused):
            self.outbox.put("fleet_event", event, event["key"])

    def app_restarted(self, reason: str) -> None:
        severity = "info" if reason in ("command", "update", "reload") else "warning"
        self.report_event("app_restarted", f"kiosk app restarted: {reason}", severity, reason=reason)

    # ---- commands --------------------------------------------------------------------------------------

    def _command_loop(self) -> None:
        while True:
            command = self._commands.get()
            if command is None:
                return
            try:
                if callable(command):
                    command()
                else:
                    self.run_command(command)
            except Exception:
                log.exception("command %s failed", "follow-up" if callable(command) else command.get("id"))

    def keep_maintenance(self) -> None:
        """A restarted app comes up serving patients; if IT put the terminal in maintenance, tell the new app
        again. Queued behind the commands, so a ``maintenance_off`` already on its way wins."""
        state = self.link.state
        if not self.executors.maintenance or self._reasserting or state is None or state.maintenance \
                or (self.link.seconds_since_beat() or 0) > 3 * 2.0:
            return
        self._reasserting = True

        def reassert() -> None:
            try:
                if self.executors.maintenance:
                    done = self.executors.run("maintenance_on", {})
                    log.info("maintenance told again to the kiosk app: %s", done.result)
            finally:
                self._reasserting = False

        self._commands.put(reassert)

    def run_command(self, command: dict[str, Any]) -> None:
        command_id, kind = command["id"], str(command.get("kind", ""))
        try:
            self.client.ack(command_id)
        except Refused as exc:
            log.warning("command %d (%s) dropped: %s", command_id, kind, exc.code)  # expired or not ours
            return
        except Unreachable:
            pass  # run it anyway: it was handed to us and has not expired; the outcome will be queued
        log.info("command %d: %s", command_id, kind)
        done = self.executors.run(kind, dict(command.get("args") or {}))
        artifact_id = None
        if done.artifact is not None:
            try:
                artifact_id = self.client.upload(command_id, *done.artifact)
            except (Unreachable, Refused) as exc:
                done = type(done)(False, f"{done.result}; upload failed ({exc})")
        status = "EXECUTED" if done.ok else "FAILED"
        try:
            self.client.result(command_id, status, done.result, artifact_id)
        except Unreachable:
            self.outbox.put("fleet_result", {"command_id": command_id, "status": status, "result": done.result,
                                             "artifact_id": artifact_id}, f"result-{command_id}-{self.boot[:12]}")
        except Refused as exc:
            log.warning("command %d outcome refused: %s", command_id, exc.code)
