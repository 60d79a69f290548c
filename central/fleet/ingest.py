"""What terminals send: heartbeats (live, or late through their offline queue), one-off events, command
acknowledgements and outcomes, screenshots and log bundles.

A heartbeat is one short write transaction: a beat row (so a copy of the same beat, live or queued, is seen
and dropped), the snapshot row updated in place when the beat is the newest, a device-health row only for a
device that changed, the alert rules reconciled, and, for a live beat, the commands waiting for the terminal.
A late beat (it waited in the terminal's offline queue) is recorded for the record but never overwrites a
newer snapshot.

Heartbeats carry no patient data: the wire model (``central.api.fleet.Heartbeat``) forbids unknown fields, and
what it allows is the terminal's own state (screens and services by name, counts, device health).
"""
from __future__ import annotations

import hashlib
import json
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from central.fleet import alerts as alert_rules
from central.fleet import commands as command_rules
from central.fleet.errors import Invalid, NotFound
from central.fleet.models import (CommandStatus, FleetArtifact, FleetBeat, FleetCommand, FleetDeviceHealth, FleetEvent,
                                  FleetStatus)
from central.fleet.service import artifact_dir, settings_of
from central.fleet.views import loads
from central.services import Services

log = logging.getLogger(__name__)

PRINTERS = ("receipt_printer", "report_printer")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
GZIP_MAGIC = b"\x1f\x8b"


@dataclass
class BeatResult:
    """What the server answers a beat: how often to beat, and the commands to run (live beats only)."""

    duplicate: bool
    interval_s: float
    commands: list[dict[str, Any]] = field(default_factory=list)
    lag_s: float = 0.0


def paper_state(devices: dict[str, dict[str, str]]) -> str:
    printers = {name: d for name, d in devices.items() if name in PRINTERS or name.endswith("printer")}
    if not printers:
        return "unknown"
    reasons = {d.get("reason", "") for d in printers.values()}
    if "paper_out" in reasons:
        return "out"
    if "paper_low" in reasons:
        return "low"
    return "ok"


def health_of(*, maintenance: bool, found: list[alert_rules.Condition], devices: dict[str, dict[str, str]]) -> str:
    if maintenance:
        return "maintenance"
    if any(c.severity == "critical" for c in found) or any(d.get("status") == "fault" for d in devices.values()):
        return "fault"
    if found or any(d.get("status") == "degraded" for d in devices.values()):
        return "degraded"
    return "ok"


_INSERT_IGNORE: dict[tuple[str, str], Any] = {}


def _insert_ignore(session: Any, table: Any, values: dict[str, Any]) -> bool:
    """INSERT … ON CONFLICT DO NOTHING on SQLite and PostgreSQL; True if the row is new. The statement is built
    once per (dialect, table) and run with parameters, so SQLAlchemy's compiled cache serves every call."""
    dialect = session.get_bind().dialect.name
    statement = _INSERT_IGNORE.get((dialect, table.name))
    if statement is None:
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        else:
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        statement = _INSERT_IGNORE[(dialect, table.name)] = dialect_insert(table).on_conflict_do_nothing()
    return session.execute(statement, values).rowcount == 1


_STATUS = FleetStatus.__table__
_SNAPSHOT = select(_STATUS.c.agent_boot, _STATUS.c.last_seq, _STATUS.c.last_sent_at, _STATUS.c.last_beat_at,
                   _STATUS.c.interval_s, _STATUS.c.devices, _STATUS.c.health, _STATUS.c.beats) \
    .where(_STATUS.c.terminal_id == bindparam("tid"))
_HAS_COMMANDS = select(FleetCommand.id).where(
    FleetCommand.terminal_id == bindparam("tid"),
    FleetCommand.status.in_((CommandStatus.PENDING, CommandStatus.SENT))).limit(1)
_BEAT_COLUMNS = ("last_beat_at", "last_sent_at", "last_seq", "agent_boot", "interval_s", "beats", "health",
                 "app_version", "app_running", "app_uptime_s", "screen", "service", "payment_in_progress",
                 "maintenance", "paper", "cpu_pct", "mem_pct", "disk_pct", "temp_c", "rtt_ms", "queue_depth",
                 "queue_parked", "queue_oldest_s", "errors_last")
_UPDATES: dict[frozenset[str], Any] = {}


def _update_status(session: Any, terminal_id: str, values: dict[str, Any]) -> None:
    key = frozenset(values)
    statement = _UPDATES.get(key)
    if statement is None:  # at most four shapes: with or without devices, with or without facts
        statement = _UPDATES[key] = update(_STATUS).where(_STATUS.c.terminal_id == bindparam("tid")) \
            .values({name: bindparam(f"v_{name}") for name in sorted(values)})
    session.execute(statement, {"tid": terminal_id, **{f"v_{k}": v for k, v in values.items()}})


def record_beat(svc: Services, terminal_id: str, beat: dict[str, Any], *, queued: bool) -> BeatResult:
    """Take in one heartbeat (``beat`` is the validated wire model as a dict, see ``central.api.fleet``).

    Written with Core statements rather than the ORM: this runs for every terminal every few seconds, and the
    ORM's unit of work was most of its cost."""
    limits = settings_of(svc)
    now = svc.now()
    sent_at: datetime = beat["sent_at"]
    boot, seq = beat["boot"], beat["seq"]
    commands: list[dict[str, Any]] = []
    try:
        with svc.sessions() as session, session.begin():
            if not _insert_ignore(session, FleetBeat.__table__, {
                    "terminal_id": terminal_id, "agent_boot": boot, "seq": seq, "sent_at": sent_at,
                    "received_at": now, "queued": queued}):
                return BeatResult(True, limits.heartbeat_seconds)
            row = session.execute(_SNAPSHOT, {"tid": terminal_id}).first()
            newest = row is None or (boot == row.agent_boot and seq > row.last_seq) or \
                (boot != row.agent_boot and sent_at >= row.last_sent_at)
            if newest:
                _apply(session, terminal_id, row, beat, now, limits)
            if not queued and session.scalar(_HAS_COMMANDS, {"tid": terminal_id}) is not None:
                out = command_rules.take_for_delivery(session, terminal_id, now, limits.heartbeat_seconds * 3)
                commands = [command_rules.wire(c) for c in out]
    except IntegrityError:  # the same beat in two requests at once (another server instance): one won
        return BeatResult(True, limits.heartbeat_seconds)
    return BeatResult(False, limits.heartbeat_seconds, commands, max(0.0, (now - sent_at).total_seconds()))


def _apply(session: Any, terminal_id: str, row: Any, beat: dict[str, Any], now: datetime, limits: Any) -> None:
    app = beat["app"]
    system = beat.get("system") or {}
    queue = beat.get("queue") or {}
    old_devices: dict[str, dict[str, str]] = loads(row.devices, {}) if row is not None else {}
    values: dict[str, Any] = {}
    if beat.get("devices") is None:
        devices = old_devices
    else:
        devices = {name: {"status": d["status"], "reason": d.get("reason", ""), "detail": d.get("detail", "")}
                   for name, d in beat["devices"].items()}
        changes = []
        for name, health in devices.items():
            before = old_devices.get(name)
            if before is None or before.get("status") != health["status"] or before.get("reason") != health["reason"]:
                changes.append({"terminal_id": terminal_id, "device": name, "status": health["status"],
                                "reason": health["reason"], "detail": health["detail"][:200], "at": beat["sent_at"]})
        for name in sorted(set(old_devices) - set(devices)):
            changes.append({"terminal_id": terminal_id, "device": name, "status": "removed", "reason": "",
                            "detail": "no longer reported", "at": beat["sent_at"]})
        if changes:
            session.execute(insert(FleetDeviceHealth.__table__), changes)
        if devices != old_devices:
            values["devices"] = json.dumps(devices, sort_keys=True, ensure_ascii=False)
    if beat.get("facts") is not None:
        values["facts"] = json.dumps(beat["facts"], sort_keys=True, ensure_ascii=False)
    found = alert_rules.conditions(devices=devices, app_running=app["running"], errors=beat.get("errors", 0),
                                   queue_depth=queue.get("depth", 0), queue_oldest_s=queue.get("oldest_age_s"),
                                   limits=limits)
    maintenance = bool(app.get("maintenance", False))
    health = health_of(maintenance=maintenance, found=found, devices=devices)
    values.update(
        last_beat_at=now, last_sent_at=beat["sent_at"], last_seq=beat["seq"], agent_boot=beat["boot"],
        interval_s=limits.heartbeat_seconds, beats=(row.beats if row is not None else 0) + 1, health=health,
        app_version=app["version"], app_running=app["running"], app_uptime_s=app["uptime_s"],
        screen=app.get("screen", ""), service=app.get("service", ""),
        payment_in_progress=bool(app.get("payment_in_progress", False)), maintenance=maintenance,
        paper=paper_state(devices), cpu_pct=system.get("cpu_pct"), mem_pct=system.get("mem_pct"),
        disk_pct=system.get("disk_pct"), temp_c=system.get("temp_c"), rtt_ms=beat.get("rtt_ms"),
        queue_depth=queue.get("depth", 0), queue_parked=queue.get("parked", 0),
        queue_oldest_s=queue.get("oldest_age_s"), errors_last=beat.get("errors", 0))
    if row is None:
        values.setdefault("devices", json.dumps(devices, sort_keys=True, ensure_ascii=False))
        values.setdefault("facts", "{}")
        session.execute(insert(_STATUS), [{"terminal_id": terminal_id, "first_seen_at": now, **values}])
    else:
        _update_status(session, terminal_id, values)
    # Alerts change only when a rule's condition holds now or held before (health not ok), or the terminal was
    # silent long enough for the monitor to have raised "silent"; a healthy terminal's beat skips the query.
    was_silent = row is not None and \
        (now - row.last_beat_at).total_seconds() > row.interval_s * limits.silent_intervals
    if found or health != "ok" or row is None or row.health != "ok" or was_silent:
        alert_rules.reconcile(session, terminal_id, found, ("silent", *alert_rules.BEAT_RULES), now)


def record_event(svc: Services, terminal_id: str, event: dict[str, Any]) -> bool:
    """Store one event once per (terminal, key); returns False for a copy already stored."""
    now = svc.now()
    try:
        with svc.sessions() as session, session.begin():
            if session.scalar(select(FleetEvent.id).where(FleetEvent.terminal_id == terminal_id,
                                                          FleetEvent.key == event["key"])) is not None:
                return False
            session.add(FleetEvent(terminal_id=terminal_id, key=event["key"], kind=event["kind"],
                                   severity=event.get("severity", "info"), message=event.get("message", "")[:500],
                                   detail=json.dumps(event.get("detail") or {}, sort_keys=True, ensure_ascii=False),
                                   at=event["at"], received_at=now))
    except IntegrityError:
        return False
    return True


def acknowledge_command(svc: Services, terminal_id: str, command_id: int) -> str:
    with svc.sessions() as session, session.begin():
        return command_rules.acknowledge(session, terminal_id, command_id, svc.now()).status


def finish_command(svc: Services, terminal_id: str, command_id: int, status: str, result: str,
                   artifact_id: int | None = None) -> str:
    with svc.sessions() as session, session.begin():
        if artifact_id is not None:
            artifact = session.get(FleetArtifact, artifact_id)
            if artifact is None or artifact.terminal_id != terminal_id:
                raise NotFound(f"no artifact {artifact_id} from this terminal", code="UNKNOWN_ARTIFACT")
        return command_rules.finish(session, terminal_id, command_id, status, result, svc.now(), artifact_id).status


def store_artifact(svc: Services, terminal_id: str, command_id: int, kind: str, data: bytes) -> int:
    """Keep a screenshot (PNG) or log bundle (gzip) a command produced; returns its id. The file is written
    before the row, so a row never points at nothing."""
    limits = settings_of(svc)
    if kind not in ("screenshot", "logs"):
        raise Invalid("artifact kind is screenshot or logs", code="BAD_ARTIFACT")
    if not data or len(data) > limits.max_artifact_bytes:
        raise Invalid(f"artifact must be 1 byte to {limits.max_artifact_bytes} bytes", code="BAD_ARTIFACT")
    if kind == "screenshot" and not data.startswith(PNG_MAGIC):
        raise Invalid("a screenshot must be a PNG", code="BAD_ARTIFACT")
    if kind == "logs" and not data.startswith(GZIP_MAGIC):
        raise Invalid("a log bundle must be gzip-compressed", code="BAD_ARTIFACT")
    with svc.sessions() as session:
        command = session.get(FleetCommand, command_id)
        if command is None or command.terminal_id != terminal_id:
            raise NotFound(f"no command {command_id} for this terminal", code="UNKNOWN_COMMAND_ID")
    directory = artifact_dir(svc) / terminal_id
    directory.mkdir(parents=True, exist_ok=True)
    suffix = ".png" if kind == "screenshot" else ".tar.gz"
    path = directory / f"{command_id}-{uuid.uuid4().hex[:8]}{suffix}"
    path.write_bytes(data)
    rel = str(path.relative_to(Path(svc.settings.data_dir)))
    with svc.sessions() as session, session.begin():
        row = FleetArtifact(terminal_id=terminal_id, command_id=command_id, kind=kind,
                            content_type="image/png" if kind == "screenshot" else "application/gzip", path=rel,
                            size=len(data), sha256=hashlib.sha256(data).hexdigest(), created_at=svc.now())
        session.add(row)
        session.flush()
        return row.id


def prune_beats(svc: Services) -> int:
    """Drop beat rows older than the retention (the snapshot and the timelines stay)."""
    from datetime import timedelta
    cutoff = svc.now() - timedelta(hours=settings_of(svc).beat_retention_hours)
    with svc.sessions() as session, session.begin():
        return session.execute(delete(FleetBeat).where(FleetBeat.received_at < cutoff)).rowcount or 0
