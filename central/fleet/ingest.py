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
from central.fleet.models import (AlertStatus, CommandStatus, FleetAlert, FleetArtifact, FleetBeat, FleetCommand,
                                  FleetDeviceHealth, FleetEvent, FleetStatus)
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


_INSERT_NEW_BEATS: dict[str, Any] = {}


def _insert_new_beats(session: Any, rows: list[dict[str, Any]]) -> set[tuple[str, str, int]]:
    """Insert the beat rows the table does not hold yet, in one statement (INSERT … ON CONFLICT DO NOTHING …
    RETURNING, SQLite 3.35+ and PostgreSQL); returns the keys (terminal, boot, seq) that were new."""
    if not rows:
        return set()
    dialect = session.get_bind().dialect.name
    statement = _INSERT_NEW_BEATS.get(dialect)
    if statement is None:
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        else:
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        table = FleetBeat.__table__
        statement = _INSERT_NEW_BEATS[dialect] = dialect_insert(table).on_conflict_do_nothing() \
            .returning(table.c.terminal_id, table.c.agent_boot, table.c.seq)
    return {(r[0], r[1], r[2]) for r in session.execute(statement, rows)}


_STATUS = FleetStatus.__table__
_SNAPSHOTS = select(_STATUS.c.terminal_id, _STATUS.c.agent_boot, _STATUS.c.last_seq, _STATUS.c.last_sent_at,
                    _STATUS.c.last_beat_at, _STATUS.c.interval_s, _STATUS.c.devices, _STATUS.c.health,
                    _STATUS.c.beats).where(_STATUS.c.terminal_id.in_(bindparam("tids", expanding=True)))
_WITH_COMMANDS = select(FleetCommand.terminal_id).distinct().where(
    FleetCommand.terminal_id.in_(bindparam("tids", expanding=True)),
    FleetCommand.status.in_((CommandStatus.PENDING, CommandStatus.SENT)))
_ALERTS = FleetAlert.__table__
_WITH_ALERTS = select(_ALERTS.c.terminal_id).distinct().where(
    _ALERTS.c.terminal_id.in_(bindparam("tids", expanding=True)), _ALERTS.c.status.in_(AlertStatus.ACTIVE),
    _ALERTS.c.rule.in_(("silent", *alert_rules.BEAT_RULES)))
_UPDATES: dict[frozenset[str], Any] = {}


def _update_statement(shape: frozenset[str]) -> Any:
    statement = _UPDATES.get(shape)
    if statement is None:  # a handful of shapes: with or without devices, with or without facts
        statement = _UPDATES[shape] = update(_STATUS).where(_STATUS.c.terminal_id == bindparam("tid")) \
            .values({name: bindparam(f"v_{name}") for name in sorted(shape)})
    return statement


@dataclass(slots=True)
class BeatIn:
    """One validated beat on its way in: whose, the wire model as a dict, and whether it waited in the agent's
    offline queue (a late beat is recorded but never overwrites a newer snapshot and gets no commands)."""

    terminal_id: str
    beat: dict[str, Any]
    queued: bool


@dataclass(slots=True)
class _Snapshot:
    """What the newest-beat rule and the alert shortcut need of a terminal's status row, kept current in memory
    while a batch is applied (two beats of one terminal in one batch see each other)."""

    agent_boot: str
    last_seq: int
    last_sent_at: datetime
    last_beat_at: datetime
    interval_s: float
    devices: str
    health: str
    beats: int


def record_beat(svc: Services, terminal_id: str, beat: dict[str, Any], *, queued: bool) -> BeatResult:
    """Take in one heartbeat in its own transaction (``beat`` is the validated wire model as a dict, see
    ``central.api.fleet``). The HTTP routes go through ``central.fleet.batcher``, which commits many beats per
    transaction with ``record_beats``; this is its fallback for a batch that failed, and the direct way in."""
    limits = settings_of(svc)
    try:
        with svc.sessions() as session, session.begin():
            return record_beats(session, svc, [BeatIn(terminal_id, beat, queued)], limits=limits)[0]
    except IntegrityError:  # the same beat in two requests at once (another server instance): one won
        return BeatResult(True, limits.heartbeat_seconds)


def record_beats(session: Any, svc: Services, beats: list[BeatIn], *, limits: Any) -> list[BeatResult]:
    """Take in beats, in order, inside the caller's write transaction; they count only once that commits.
    Returns one result per beat, in the same order.

    A batch costs a fixed handful of statements whatever its size (insert the beat rows, read the snapshots,
    look for waiting commands, write device changes, insert or update the status rows, grouped by shape), each
    run over all its rows at once: per statement, SQLAlchemy's and the driver's overhead is far larger than
    SQLite's own work, and this runs for every terminal every few seconds. Alert rules and command delivery
    stay per beat, and run only when something could have changed."""
    now = svc.now()
    interval = limits.heartbeat_seconds
    results: list[BeatResult | None] = [None] * len(beats)
    rows, seen = [], set()
    for item in beats:
        beat = item.beat
        key = (item.terminal_id, beat["boot"], beat["seq"])
        if key not in seen:  # a copy within the batch is a duplicate like a copy already stored
            seen.add(key)
            rows.append({"terminal_id": item.terminal_id, "agent_boot": beat["boot"], "seq": beat["seq"],
                         "sent_at": beat["sent_at"], "received_at": now, "queued": item.queued})
    inserted = _insert_new_beats(session, rows)
    fresh: list[int] = []
    for i, item in enumerate(beats):
        key = (item.terminal_id, item.beat["boot"], item.beat["seq"])
        if key in inserted:
            inserted.discard(key)  # the first copy took the row; a later copy in the batch is a duplicate
            fresh.append(i)
        else:
            results[i] = BeatResult(True, interval)
    terminals = sorted({beats[i].terminal_id for i in fresh})
    snapshots: dict[str, _Snapshot | None] = dict.fromkeys(terminals)
    with_commands: set[str] = set()
    alerted: set[str] = set()  # terminals with an active alert of a rule that beats decide
    if terminals:
        for r in session.execute(_SNAPSHOTS, {"tids": terminals}):
            snapshots[r.terminal_id] = _Snapshot(r.agent_boot, r.last_seq, r.last_sent_at, r.last_beat_at,
                                                 r.interval_s, r.devices, r.health, r.beats)
        alerted = set(session.scalars(_WITH_ALERTS, {"tids": terminals}))
        live = sorted({beats[i].terminal_id for i in fresh if not beats[i].queued})
        if live:
            with_commands = set(session.scalars(_WITH_COMMANDS, {"tids": live}))
    created: dict[str, dict[str, Any]] = {}  # status rows to insert, by terminal
    changed: dict[str, dict[str, Any]] = {}  # status columns to update, by terminal
    device_rows: list[dict[str, Any]] = []
    for i in fresh:
        item = beats[i]
        tid, beat = item.terminal_id, item.beat
        sent_at: datetime = beat["sent_at"]
        row = snapshots[tid]
        newest = row is None or (beat["boot"] == row.agent_boot and beat["seq"] > row.last_seq) or \
            (beat["boot"] != row.agent_boot and sent_at >= row.last_sent_at)
        if newest:
            if tid in created:  # its first beat was earlier in this batch: fold into the row to insert
                pending: dict[str, Any] | None = created[tid]
            else:
                pending = None if row is None else changed.setdefault(tid, {})
            snapshots[tid] = _apply(session, tid, row, beat, now, limits, device_rows, pending, created, alerted)
        commands: list[dict[str, Any]] = []
        if not item.queued and tid in with_commands:
            out = command_rules.take_for_delivery(session, tid, now, interval * 3)
            commands = [command_rules.wire(c) for c in out]
        results[i] = BeatResult(False, interval, commands, max(0.0, (now - sent_at).total_seconds()))
    if device_rows:
        session.execute(insert(FleetDeviceHealth.__table__), device_rows)
    if created:
        session.execute(insert(_STATUS), list(created.values()))
    by_shape: dict[frozenset[str], list[dict[str, Any]]] = {}
    for tid, values in changed.items():
        by_shape.setdefault(frozenset(values), []).append(
            {"tid": tid, **{f"v_{k}": v for k, v in values.items()}})
    for shape, params in by_shape.items():
        session.execute(_update_statement(shape), params)
    assert all(r is not None for r in results)
    return results  # type: ignore[return-value]


def _apply(session: Any, terminal_id: str, row: _Snapshot | None, beat: dict[str, Any], now: datetime,
           limits: Any, device_rows: list[dict[str, Any]], values: dict[str, Any] | None,
           created: dict[str, dict[str, Any]], alerted: set[str]) -> _Snapshot:
    """Fold the newest beat into the terminal's pending status write (``values``, or a new row in ``created``
    for a terminal first seen in this batch), queue its device changes, reconcile alerts when needed; returns
    the snapshot as it now stands."""
    app = beat["app"]
    system = beat.get("system") or {}
    queue = beat.get("queue") or {}
    devices_json = row.devices if row is not None else None
    old_devices: dict[str, dict[str, str]] = loads(devices_json, {}) if devices_json is not None else {}
    new: dict[str, Any] = {}
    if beat.get("devices") is None:
        devices = old_devices
    else:
        devices = {name: {"status": d["status"], "reason": d.get("reason", ""), "detail": d.get("detail", "")}
                   for name, d in beat["devices"].items()}
        for name, health in devices.items():
            before = old_devices.get(name)
            if before is None or before.get("status") != health["status"] or before.get("reason") != health["reason"]:
                device_rows.append({"terminal_id": terminal_id, "device": name, "status": health["status"],
                                    "reason": health["reason"], "detail": health["detail"][:200],
                                    "at": beat["sent_at"]})
        for name in sorted(set(old_devices) - set(devices)):
            device_rows.append({"terminal_id": terminal_id, "device": name, "status": "removed", "reason": "",
                                "detail": "no longer reported", "at": beat["sent_at"]})
        if devices != old_devices:
            devices_json = new["devices"] = json.dumps(devices, sort_keys=True, ensure_ascii=False)
    if beat.get("facts") is not None:
        new["facts"] = json.dumps(beat["facts"], sort_keys=True, ensure_ascii=False)
    found = alert_rules.conditions(devices=devices, app_running=app["running"], errors=beat.get("errors", 0),
                                   queue_depth=queue.get("depth", 0), queue_oldest_s=queue.get("oldest_age_s"),
                                   limits=limits)
    maintenance = bool(app.get("maintenance", False))
    health = health_of(maintenance=maintenance, found=found, devices=devices)
    beats_count = (row.beats if row is not None else 0) + 1
    new.update(
        last_beat_at=now, last_sent_at=beat["sent_at"], last_seq=beat["seq"], agent_boot=beat["boot"],
        interval_s=limits.heartbeat_seconds, beats=beats_count, health=health,
        app_version=app["version"], app_running=app["running"], app_uptime_s=app["uptime_s"],
        screen=app.get("screen", ""), service=app.get("service", ""),
        payment_in_progress=bool(app.get("payment_in_progress", False)), maintenance=maintenance,
        paper=paper_state(devices), cpu_pct=system.get("cpu_pct"), mem_pct=system.get("mem_pct"),
        disk_pct=system.get("disk_pct"), temp_c=system.get("temp_c"), rtt_ms=beat.get("rtt_ms"),
        queue_depth=queue.get("depth", 0), queue_parked=queue.get("parked", 0),
        queue_oldest_s=queue.get("oldest_age_s"), errors_last=beat.get("errors", 0))
    if values is None:  # first beat ever of this terminal
        new.setdefault("devices", json.dumps(devices, sort_keys=True, ensure_ascii=False))
        new.setdefault("facts", "{}")
        devices_json = new["devices"]
        created[terminal_id] = {"terminal_id": terminal_id, "first_seen_at": now, **new}
    else:
        values.update(new)
    # Alerts change only when a rule's condition holds now, or an alert of these rules (silent included) is
    # active; ``alerted`` was read for the whole batch, so a healthy terminal's beat costs no query here.
    if found or terminal_id in alerted:
        alert_rules.reconcile(session, terminal_id, found, ("silent", *alert_rules.BEAT_RULES), now)
        if found:
            alerted.add(terminal_id)
        else:
            alerted.discard(terminal_id)
    assert devices_json is not None
    return _Snapshot(beat["boot"], beat["seq"], beat["sent_at"], now, limits.heartbeat_seconds, devices_json,
                     health, beats_count)


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
