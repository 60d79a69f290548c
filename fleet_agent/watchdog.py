"""The watchdog: the agent runs the kiosk app as its child and restarts it when it dies or hangs.

"Hangs" means its local beats (``fleet_agent.link``) stopped for ``hang_seconds`` while the process still
exists: a frozen Qt thread, a deadlock. Such a child gets SIGTERM, then SIGKILL after ``kill_grace`` seconds,
and a fresh one is started. Restarts back off (2 s doubling to 60 s) while the app keeps failing soon after
start, so a broken build does not spin the CPU; a run that lasted ``stable_seconds`` resets the backoff.
Every restart is reported through ``on_restart(reason)`` (the agent turns it into an event for IT).
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence

from fleet_agent.link import LinkServer

log = logging.getLogger(__name__)


class Watchdog:
    def __init__(self, argv: Sequence[str], link: LinkServer, *, hang_seconds: float = 20.0,
                 start_grace: float = 30.0, kill_grace: float = 5.0, stable_seconds: float = 120.0,
                 env: dict[str, str] | None = None, on_restart: Callable[[str], None] | None = None):
        self.argv = list(argv)
        self.link = link
        self.hang_seconds = hang_seconds
        self.start_grace = start_grace  # a starting app has this long to send its first beat
        self.kill_grace = kill_grace
        self.stable_seconds = stable_seconds
        self.env = env
        self.on_restart = on_restart
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self._started_at = 0.0
        self._backoff = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="watchdog", daemon=True)

    # ---- life of the child --------------------------------------------------------------------------------

    def start(self) -> Watchdog:
        self._spawn()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        with self._lock:
            self._end(self.proc)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def uptime(self) -> float:
        return time.monotonic() - self._started_at if self.running else 0.0

    def _spawn(self) -> None:
        env = {**os.environ, **(self.env or {}), "KIOSK_AGENT_LINK_PORT": str(self.link.port)}
        self.proc = subprocess.Popen(self.argv, env=env, start_new_session=True)
        self._started_at = time.monotonic()
        log.info("watchdog: kiosk app started (pid %d)", self.proc.pid)

    def _end(self, proc: subprocess.Popen[bytes] | None) -> None:
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)  # the app's own children (simulators, viewers) go with it
        except ProcessLookupError:
            return
        try:
            proc.wait(self.kill_grace)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(10)

    def restart(self, reason: str) -> None:
        """End the app (if running) and start it again; ``reason`` goes to IT."""
        with self._lock:
            lasted = time.monotonic() - self._started_at
            self._end(self.proc)
            self._backoff = 0.0 if lasted >= self.stable_seconds else min(60.0, max(2.0, self._backoff * 2))
            self.restarts += 1
            log.warning("watchdog: restarting the kiosk app (%s)", reason)
            if reason not in ("command", "update", "reload"):
                self._stop.wait(self._backoff)
            if self._stop.is_set():
                return
            self._spawn()
        if self.on_restart is not None:
            self.on_restart(reason)

    def check(self) -> str | None:
        """Why the app must be restarted now, or None."""
        proc = self.proc
        if proc is None:
            return "not_started"
        if proc.poll() is not None:
            return f"exited_{proc.returncode}"
        since_start = time.monotonic() - self._started_at
        quiet = self.link.seconds_since_beat()
        state = self.link.state
        heard_since_start = state is not None and state.pid == proc.pid
        if not heard_since_start:
            return "no_heartbeat" if since_start > self.start_grace else None
        if quiet is not None and quiet > self.hang_seconds:
            return "heartbeat_lost"
        return None

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            reason = self.check()
            if reason is not None:
                self.restart(reason)
