"""How the agent carries out each remote command on the terminal.

Each executor returns ``Done(ok, result, artifact)``; ``ok=False`` is a refusal or a failure with its reason
in one sentence for IT (the server records it as FAILED). A reboot is refused while the kiosk app says a
payment is in progress: a patient's money must not be cut off half-way.

Commands that change the terminal as a whole (reboot, update) run programs from the agent's configuration,
as argument lists without a shell (``{version}`` is replaced in the update command); nothing in a command's
arguments is ever run as code.
"""
from __future__ import annotations

import io
import logging
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleet_agent.link import LinkServer
from fleet_agent.watchdog import Watchdog

log = logging.getLogger(__name__)

MAX_LOG_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class Done:
    ok: bool
    result: str
    artifact: tuple[str, bytes] | None = None  # (kind, bytes): "screenshot" PNG or "logs" tar.gz


@dataclass
class Executors:
    link: LinkServer
    watchdog: Watchdog | None = None
    reboot_command: Sequence[str] = ()
    update_command: Sequence[str] = ()
    log_dirs: Sequence[Path] = ()
    work_dir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()))
    maintenance: bool = False  # what the agent last asked for; the app confirms it in its beats

    def run(self, kind: str, args: dict[str, Any]) -> Done:
        handler: Callable[[dict[str, Any]], Done] | None = getattr(self, f"_{kind}", None)
        if handler is None:
            return Done(False, f"this agent does not know the command {kind!r}")
        try:
            return handler(args)
        except Exception as exc:  # an executor bug is a failed command, not a dead agent
            log.exception("command %s failed", kind)
            return Done(False, f"{kind} failed: {type(exc).__name__}")

    def _ask(self, op: str, args: dict[str, Any] | None = None, timeout: float = 15.0) -> Done:
        try:
            reply = self.link.request(op, args, timeout=timeout)
        except TimeoutError as exc:
            return Done(False, str(exc))
        return Done(bool(reply.get("ok")), str(reply.get("result", ""))[:2000])

    # ---- the commands ----------------------------------------------------------------------------------

    def _restart_app(self, args: dict[str, Any]) -> Done:
        if self.watchdog is None:
            return Done(False, "this agent does not supervise the kiosk app")
        before = time.monotonic()
        self.watchdog.restart("command")
        state = self.link.wait_for_beat(before, timeout=max(30.0, self.watchdog.start_grace))
        if state is None:
            return Done(False, "kiosk app restarted but has not reported back")
        return Done(True, f"kiosk app restarted (pid {state.pid})")

    def _reboot(self, args: dict[str, Any]) -> Done:
        state = self.link.state
        if state is not None and state.payment_in_progress:
            return Done(False, "refused: a payment is in progress on this terminal; try again when it is idle")
        if not self.reboot_command:
            return Done(False, "no reboot command is configured for this terminal")
        completed = subprocess.run(list(self.reboot_command), capture_output=True, timeout=60)
        if completed.returncode != 0:
            return Done(False, f"reboot command exited with {completed.returncode}")
        return Done(True, "reboot started")

    def _maintenance_on(self, args: dict[str, Any]) -> Done:
        self.maintenance = True
        return self._ask("maintenance", {"on": True})

    def _maintenance_off(self, args: dict[str, Any]) -> Done:
        self.maintenance = False
        return self._ask("maintenance", {"on": False})

    def _reload_config(self, args: dict[str, Any]) -> Done:
        """The app reloads in place and says what still needs a restart; its answer is the outcome (IT decides
        on ``restart_app``). Only an app too old to know the request is restarted instead, since it reads its
        configuration when it starts, and never while a patient is paying."""
        try:
            reply = self.link.request("reload_config", {})
        except TimeoutError as exc:
            return Done(False, str(exc))
        done = Done(bool(reply.get("ok")), str(reply.get("result", ""))[:2000])
        if done.ok or not reply.get("unsupported") or self.watchdog is None:
            return done
        state = self.link.state
        if state is not None and state.payment_in_progress:
            return Done(False, "the kiosk app can only reload by restarting, and a payment is in progress; "
                               "try again when it is idle")
        restarted = self._restart_app(args)
        return Done(restarted.ok, f"reloaded by restarting the app ({restarted.result})")

    def _screenshot(self, args: dict[str, Any]) -> Done:
        target = self.work_dir / f"screenshot-{time.time_ns()}.png"
        done = self._ask("screenshot", {"path": str(target)})
        if not done.ok:
            return done
        try:
            data = target.read_bytes()
        except OSError:
            return Done(False, "the kiosk app said it took a screenshot, but no file was written")
        finally:
            target.unlink(missing_ok=True)
        return Done(True, f"screenshot {len(data)} bytes", ("screenshot", data))

    def _collect_logs(self, args: dict[str, Any]) -> Done:
        files = sorted((p for d in self.log_dirs if d.is_dir() for p in d.rglob("*") if p.is_file()),
                       key=lambda p: p.stat().st_mtime, reverse=True)
        buffer = io.BytesIO()
        total = count = 0
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            for path in files:
                size = path.stat().st_size
                if total + size > MAX_LOG_BYTES:
                    continue
                tar.add(path, arcname=f"{path.parent.name}/{path.name}")
                total += size
                count += 1
        if count == 0:
            return Done(False, "no log files found")
        return Done(True, f"{count} log file(s), {total} bytes before compression", ("logs", buffer.getvalue()))

    def _self_test(self, args: dict[str, Any]) -> Done:
        return self._ask("self_test", {"device": args.get("device")} if args.get("device") else {}, timeout=60)

    def _update(self, args: dict[str, Any]) -> Done:
        version = str(args.get("version", ""))
        if not self.update_command:
            return Done(False, "no update command is configured for this terminal")
        argv = [part.replace("{version}", version) for part in self.update_command]
        completed = subprocess.run(argv, capture_output=True, timeout=1800)
        if completed.returncode != 0:
            tail = completed.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
            return Done(False, f"update to {version} failed (exit {completed.returncode}): {tail[0][:300]}")
        if self.watchdog is not None:
            self.watchdog.restart("update")
        return Done(True, f"updated to {version}")
