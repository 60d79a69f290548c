"""The real agent process (``python -m fleet_agent``) against the real server on loopback, watching a real
child process that speaks the real local link: beats, commands through their whole life, the watchdog, and
an outage of the server during which beats wait in the offline queue."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from central.config import Settings
from central.fleet import service
from central.fleet.models import FleetBeat
from tests.central.conftest import LiveCentral, free_port, provision, wait_until


@dataclass
class Terminal:
    live: LiveCentral
    agent: subprocess.Popen[str]
    control: Path
    pids: Path
    marker: Path
    terminal_id: str
    config: Path  # the stand-in kiosk's kiosk.toml
    intents: Path  # what the kiosk app posted to its workflow runner, one JSON a line

    def posted(self) -> list[dict[str, object]]:
        if not self.intents.exists():
            return []
        return [json.loads(line) for line in self.intents.read_text(encoding="utf-8").splitlines() if line]

    def steer(self, **control: object) -> None:
        self.control.write_text(json.dumps(control))

    def app_pids(self) -> list[int]:
        return [int(p) for p in self.pids.read_text().split()] if self.pids.exists() else []


@pytest.fixture
def live(data_dir: Path) -> Iterator[LiveCentral]:  # noqa: F811
    settings = Settings(data_dir=data_dir, port=free_port(), sweep_seconds=0, fleet_heartbeat_seconds=0.5,
                        access_log=False, extra={"fleet": {"monitor_seconds": 0.5}})
    server = LiveCentral(settings).start()
    yield server
    server.stop()


@pytest.fixture
def terminal(live: LiveCentral, tmp_path: Path) -> Iterator[Terminal]:
    kiosk = provision(live.svc, "KIOSK-037")
    creds = tmp_path / "credentials.json"
    creds.write_text(json.dumps({"terminal_id": kiosk.terminal_id, "secret": kiosk.secret, "server_url": live.url}))
    control, pids, marker = tmp_path / "control.json", tmp_path / "pids", tmp_path / "rebooted"
    control.write_text("{}")
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "kiosk.log").write_text("2026-12-01 10:00:00 INFO started\n")
    config, intents = tmp_path / "kiosk.toml", tmp_path / "intents.jsonl"
    config.write_text(KIOSK_TOML.format(idle=90, poll=2.0, name="自助服务"), encoding="utf-8")
    kiosk_cmd = (f"{sys.executable} -m tests.fleet.fake_kiosk --control {control} --pids {pids} "
                 f"--config {config} --intents {intents}")
    agent = subprocess.Popen(
        [sys.executable, "-m", "fleet_agent", "--credentials", str(creds), "--data-dir", str(tmp_path / "agent"),
         "--kiosk-cmd", kiosk_cmd, "--link-port", str(free_port()), "--interval", "0.5", "--hang-seconds", "2",
         "--start-grace", "20", "--reboot-cmd", f"touch {marker}", "--log-dir", str(logs)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=Path(__file__).parents[2],
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    term = Terminal(live, agent, control, pids, marker, kiosk.terminal_id, config, intents)
    yield term
    agent.send_signal(signal.SIGTERM)
    try:
        agent.wait(20)
    except subprocess.TimeoutExpired:
        agent.kill()
        agent.wait()
    for pid in term.app_pids():  # nothing may outlive the test
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


KIOSK_TOML = """credentials = "credentials.json"
data_dir = "kiosk-data"
hospital_name = "{name}"
idle_seconds = {idle}
device_poll_seconds = {poll}
"""


def finished(live: LiveCentral, command_id: int) -> service.CommandView | None:
    view = service.get_command(live.svc, command_id)
    return view if view.status in ("EXECUTED", "FAILED", "EXPIRED") else None


def test_the_agent_reports_the_terminal_and_runs_commands(terminal: Terminal) -> None:
    live, tid = terminal.live, terminal.terminal_id
    view = wait_until(lambda: next((v for v in service.list_terminals(live.svc) if v.status == "ok"), None), 30)
    assert view.app_version == "1.4.2" and view.devices == {"id_card": "ok", "receipt_printer": "ok"}
    metrics = service.terminal_detail(live.svc, tid).metrics
    assert metrics.mem_pct is not None and metrics.facts["agent_version"]

    terminal.steer(devices={"receipt_printer": {"status": "fault", "reason": "paper_out"}})
    wait_until(lambda: service.list_terminals(live.svc)[0].paper == "out", 15)
    assert [a.key for a in service.list_alerts(live.svc, status="active")] == ["paper_out:receipt_printer"]

    shot = service.issue_command(live.svc, tid, "screenshot", actor="it.li")
    done = wait_until(lambda: finished(live, shot.id), 20)
    assert done.status == "EXECUTED" and done.artifact_id is not None
    assert service.screenshot_png(live.svc, done.artifact_id).startswith(b"\x89PNG")
    assert [h.status for h in done.history] == ["PENDING", "SENT", "ACKED", "EXECUTED"]

    maint = service.issue_command(live.svc, tid, "maintenance_on", actor="it.li")
    assert wait_until(lambda: finished(live, maint.id), 20).status == "EXECUTED"
    wait_until(lambda: service.list_terminals(live.svc)[0].status == "maintenance", 15)

    logs = service.issue_command(live.svc, tid, "collect_logs", actor="it.li")
    collected = wait_until(lambda: finished(live, logs.id), 20)
    kind, content_type, data = service.artifact_bytes(live.svc, collected.artifact_id)
    assert (kind, content_type, data[:2]) == ("logs", "application/gzip", b"\x1f\x8b")

    update = service.issue_command(live.svc, tid, "update", args={"version": "1.5.0"}, actor="it.li")
    failed = wait_until(lambda: finished(live, update.id), 20)
    assert failed.status == "FAILED" and "no update command" in failed.result


def test_reboot_is_refused_while_a_payment_is_in_progress(terminal: Terminal) -> None:
    live, tid = terminal.live, terminal.terminal_id
    terminal.steer(payment=True)
    wait_until(lambda: service.terminal_detail(live.svc, tid).metrics.payment_in_progress, 30)
    refused = service.issue_command(live.svc, tid, "reboot", actor="it.li")
    done = wait_until(lambda: finished(live, refused.id), 20)
    assert done.status == "FAILED" and "payment is in progress" in done.result
    assert not terminal.marker.exists()
    terminal.steer(payment=False)
    wait_until(lambda: not service.terminal_detail(live.svc, tid).metrics.payment_in_progress, 15)
    allowed = service.issue_command(live.svc, tid, "reboot", actor="it.li")
    assert wait_until(lambda: finished(live, allowed.id), 20).status == "EXECUTED"
    assert terminal.marker.exists()


def test_the_watchdog_restarts_a_killed_and_a_hung_app(terminal: Terminal) -> None:
    live, tid = terminal.live, terminal.terminal_id
    first = wait_until(lambda: terminal.app_pids(), 30)[0]
    wait_until(lambda: service.list_terminals(live.svc)[0].status == "ok", 30)
    os.kill(first, signal.SIGKILL)
    second = wait_until(lambda: terminal.app_pids()[1:], 30)[0]
    assert second != first
    terminal.steer(hang=True)  # the process lives on but stops beating
    wait_until(lambda: len(terminal.app_pids()) >= 3, 30)
    terminal.steer()
    with pytest.raises(ProcessLookupError):
        os.kill(second, 0)  # the hung one was ended, not left behind
    events = wait_until(lambda: [e for e in service.terminal_detail(live.svc, tid).events
                                 if e.kind == "app_restarted"][1:] and
                        service.terminal_detail(live.svc, tid).events, 30)
    reasons = sorted(e.detail["reason"] for e in events if e.kind == "app_restarted")
    assert reasons[0].startswith("exited_") and "heartbeat_lost" in reasons


def test_beats_wait_out_a_server_outage_and_arrive_in_order(terminal: Terminal, data_dir: Path) -> None:
    live, tid = terminal.live, terminal.terminal_id
    wait_until(lambda: service.terminal_detail(live.svc, tid).metrics.beats >= 2, 30)
    settings = live.settings
    live.stop()  # the server is gone; the agent keeps beating into its offline queue
    time.sleep(4)
    back = LiveCentral(settings).start()
    terminal.live = back
    try:
        def all_in() -> list[tuple[int, bool]] | None:
            with back.svc.sessions() as session:
                rows = session.execute(select(FleetBeat.seq, FleetBeat.queued, FleetBeat.id)
                                       .where(FleetBeat.terminal_id == tid).order_by(FleetBeat.seq)).all()
            seqs = [r.seq for r in rows]
            queued = [r for r in rows if r.queued]
            if len(queued) >= 3 and seqs == list(range(1, seqs[-1] + 1)):
                return rows
            return None

        rows = wait_until(all_in, 60)
        queued = [r for r in rows if r.queued]
        # The beats of the outage arrived after it, in the order they were made, none missing, none twice.
        assert [r.id for r in sorted(queued, key=lambda r: r.seq)] == sorted(r.id for r in queued)
        assert service.list_terminals(back.svc)[0].status in ("ok", "degraded")
    finally:
        back.stop()
        terminal.live = live


def test_maintenance_and_reload_are_carried_out_by_the_kiosk_app(terminal: Terminal) -> None:
    live, tid = terminal.live, terminal.terminal_id
    wait_until(lambda: terminal.app_pids() and service.list_terminals(live.svc)[0].status == "ok", 30)
    first = terminal.app_pids()[0]

    on = service.issue_command(live.svc, tid, "maintenance_on", actor="it.li")
    done = wait_until(lambda: finished(live, on.id), 20)
    assert done.status == "EXECUTED" and "maintenance on" in done.result
    posted = [i for i in terminal.posted() if i["intent"] == "maintenance"]
    assert posted[0]["on"] is True and posted[0]["pid"] == first
    assert "维护" in str(posted[0]["reason_zh"]) and "maintenance" in str(posted[0]["reason_en"])
    wait_until(lambda: service.list_terminals(live.svc)[0].status == "maintenance", 15)

    # The watchdog restarts a killed app; the new one comes up serving, and the agent tells it again.
    os.kill(first, signal.SIGKILL)
    second = wait_until(lambda: terminal.app_pids()[1:], 30)[0]
    wait_until(lambda: [i for i in terminal.posted() if i["intent"] == "maintenance" and i["pid"] == second
                        and i["on"] is True], 30)
    wait_until(lambda: service.list_terminals(live.svc)[0].status == "maintenance", 15)

    off = service.issue_command(live.svc, tid, "maintenance_off", actor="it.li")
    assert wait_until(lambda: finished(live, off.id), 20).status == "EXECUTED"
    assert terminal.posted()[-1]["intent"] == "maintenance" and terminal.posted()[-1]["on"] is False
    wait_until(lambda: service.list_terminals(live.svc)[0].status == "ok", 15)

    # A run-time key is taken over in place: EXECUTED, the app not restarted.
    terminal.config.write_text(KIOSK_TOML.format(idle=45, poll=1.0, name="自助服务"), encoding="utf-8")
    reload = service.issue_command(live.svc, tid, "reload_config", actor="it.li")
    done = wait_until(lambda: finished(live, reload.id), 20)
    assert done.status == "EXECUTED", done.result
    assert "idle_seconds 90 → 45" in done.result and "device_poll_seconds 2 → 1" in done.result
    # A start-up key is named in a FAILED answer; the run-time one beside it is still applied; no restart.
    terminal.config.write_text(KIOSK_TOML.format(idle=60, poll=1.0, name="第一医院"), encoding="utf-8")
    reload = service.issue_command(live.svc, tid, "reload_config", actor="it.li")
    done = wait_until(lambda: finished(live, reload.id), 20)
    assert done.status == "FAILED"
    assert "idle_seconds 45 → 60" in done.result and "hospital_name" in done.result and "restart" in done.result
    # A broken file changes nothing and says why.
    terminal.config.write_text("idle_seconds = [", encoding="utf-8")
    reload = service.issue_command(live.svc, tid, "reload_config", actor="it.li")
    done = wait_until(lambda: finished(live, reload.id), 20)
    assert done.status == "FAILED" and "not valid TOML" in done.result
    assert terminal.app_pids() == [first, second]
