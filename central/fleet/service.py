"""The fleet's service layer: what the IT console (and the CLI, and tests) call.

Plain functions over ``central.services.Services``; each opens its own session and returns frozen
dataclasses from ``central.fleet.views`` (never ORM objects). Writes follow the project's rule
(``with svc.sessions() as session, session.begin():``); reads use an autobegun read-only session.
Refusals raise ``central.fleet.errors.FleetError`` subclasses (``NotFound`` 404, ``Invalid`` 422,
``Conflict`` 409) whose ``message_en`` can be shown to IT as is.

What terminals send (heartbeats, events, command outcomes, screenshots) is taken in by
``central.fleet.ingest``; the background monitor (``central.fleet.monitor``) raises "silent" alerts and
expires commands.

The names and shapes here are a contract with the console: add, do not change.
"""
from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from central.fleet import alerts as alert_rules
from central.fleet import commands as command_rules
from central.fleet.errors import Invalid, NotFound
from central.fleet.models import (AlertStatus, CommandStatus, FleetAlert, FleetAlertLog, FleetArtifact,
                                  FleetCommand, FleetCommandLog, FleetDeviceHealth, FleetEvent, FleetStatus,
                                  FleetTerminalInfo)
from central.fleet.settings import FleetSettings, fleet_settings
from central.fleet.views import (STATUSES, AlertLogEntry, AlertView, CommandView, FleetSummary, TerminalDetail,
                                 TerminalView, UsageRow, UsageStats, alert_log_view, alert_view, change_view,
                                 command_view, device_views, effective_status, event_view, loads, metrics_view)
from central.models import KioskMessage, Terminal
from central.services import Services

__all__ = [
    "register_terminal_info", "list_terminals", "terminal_detail", "fleet_summary",
    "command_kinds", "issue_command", "get_command", "list_commands", "expire_commands",
    "list_alerts", "get_alert", "acknowledge_alert", "resolve_alert", "alert_history", "check_silent_terminals",
    "usage_stats", "screenshot_png", "artifact_bytes", "settings_of",
]


def settings_of(svc: Services) -> FleetSettings:
    """The fleet's thresholds and interval for this server."""
    cached = getattr(svc, "_fleet_settings", None)
    if cached is None:
        cached = fleet_settings(svc.settings)
        try:
            object.__setattr__(svc, "_fleet_settings", cached)
        except AttributeError:
            pass
    return cached


# ---- terminals --------------------------------------------------------------------------------------------


def register_terminal_info(svc: Services, terminal_id: str, *, campus: str, floor: str, location: str) -> TerminalView:
    """Say where a provisioned terminal stands (campus, floor, a label a technician can walk to).

    Creates or replaces the terminal's fleet info. NotFound for a terminal that was never provisioned
    (``kiosk-central provision-terminal``): the fleet only knows terminals that can authenticate.
    """
    for name, value, limit in (("campus", campus, 100), ("floor", floor, 40), ("location", location, 200)):
        if not isinstance(value, str) or len(value) > limit:
            raise Invalid(f"{name}: text of at most {limit} characters", code="BAD_TERMINAL_INFO")
    now = svc.now()
    with svc.sessions() as session, session.begin():
        if session.get(Terminal, terminal_id) is None:
            raise NotFound(f"no terminal {terminal_id}", code="UNKNOWN_TERMINAL")
        info = session.get(FleetTerminalInfo, terminal_id)
        if info is None:
            session.add(FleetTerminalInfo(terminal_id=terminal_id, campus=campus.strip(), floor=floor.strip(),
                                          location=location.strip(), updated_at=now))
        else:
            info.campus, info.floor, info.location, info.updated_at = campus.strip(), floor.strip(), \
                location.strip(), now
    return _views(svc, terminal_ids=[terminal_id])[0]


def _open_alert_counts(session: Session, terminal_ids: list[str] | None) -> dict[str, int]:
    query = select(FleetAlert.terminal_id, func.count()).where(FleetAlert.status.in_(AlertStatus.ACTIVE))
    if terminal_ids is not None:
        query = query.where(FleetAlert.terminal_id.in_(terminal_ids))
    return {tid: n for tid, n in session.execute(query.group_by(FleetAlert.terminal_id))}


def _view(terminal: Terminal, info: FleetTerminalInfo | None, row: FleetStatus | None, alerts: int,
          now: datetime, limits: FleetSettings) -> TerminalView:
    devices = loads(row.devices, {}) if row is not None else {}
    return TerminalView(
        terminal_id=terminal.terminal_id, name=terminal.name, campus=info.campus if info else "",
        floor=info.floor if info else "", location=(info.location if info and info.location else terminal.location),
        status=effective_status(row, now, limits.silent_intervals),
        last_beat_at=row.last_beat_at if row else None, paper=row.paper if row else "unknown",
        app_version=row.app_version if row else "", service=row.service if row else "",
        screen=row.screen if row else "", open_alerts=alerts,
        devices={name: str(d.get("status", "")) for name, d in sorted(devices.items())})


def _views(svc: Services, *, terminal_ids: list[str] | None = None, campus: str | None = None,
           floor: str | None = None) -> list[TerminalView]:
    now, limits = svc.now(), settings_of(svc)
    with svc.sessions() as session:
        query = (select(Terminal, FleetTerminalInfo, FleetStatus)
                 .outerjoin(FleetTerminalInfo, FleetTerminalInfo.terminal_id == Terminal.terminal_id)
                 .outerjoin(FleetStatus, FleetStatus.terminal_id == Terminal.terminal_id)
                 .where(Terminal.active.is_(True)).order_by(Terminal.terminal_id))
        if terminal_ids is not None:
            query = query.where(Terminal.terminal_id.in_(terminal_ids))
        if campus is not None:
            query = query.where(FleetTerminalInfo.campus == campus)
        if floor is not None:
            query = query.where(FleetTerminalInfo.floor == floor)
        rows = session.execute(query).all()
        counts = _open_alert_counts(session, terminal_ids)
    return [_view(t, i, s, counts.get(t.terminal_id, 0), now, limits) for t, i, s in rows]


def list_terminals(svc: Services, *, campus: str | None = None, floor: str | None = None,
                   status: str | None = None, text: str | None = None) -> list[TerminalView]:
    """Every active terminal, ordered by id, optionally filtered.

    ``status`` is one of ok | degraded | fault | offline | maintenance (Invalid otherwise); ``text`` matches
    case-insensitively anywhere in id, name, campus, floor or location. A provisioned terminal that never
    sent a beat is listed as offline.
    """
    if status is not None and status not in STATUSES:
        raise Invalid(f"status must be one of {', '.join(STATUSES)}", code="BAD_STATUS")
    views = _views(svc, campus=campus, floor=floor)
    if status is not None:
        views = [v for v in views if v.status == status]
    if text:
        needle = text.casefold()
        views = [v for v in views if any(needle in f.casefold() for f in
                                         (v.terminal_id, v.name, v.campus, v.floor, v.location))]
    return views


def terminal_detail(svc: Services, terminal_id: str, *, events: int = 50, commands: int = 20,
                    timeline: int = 100) -> TerminalDetail:
    """Everything about one terminal: its list line, the last beat's figures, each device's health, the
    device-health timeline, recent events and commands (newest first), active alerts, last screenshot."""
    views = _views(svc, terminal_ids=[terminal_id])
    if not views:
        raise NotFound(f"no terminal {terminal_id}", code="UNKNOWN_TERMINAL")
    with svc.sessions() as session:
        row = session.get(FleetStatus, terminal_id)
        changes = session.scalars(select(FleetDeviceHealth).where(FleetDeviceHealth.terminal_id == terminal_id)
                                  .order_by(FleetDeviceHealth.id.desc()).limit(timeline)).all()
        recent = session.scalars(select(FleetEvent).where(FleetEvent.terminal_id == terminal_id)
                                 .order_by(FleetEvent.id.desc()).limit(events)).all()
        cmds = session.scalars(select(FleetCommand).where(FleetCommand.terminal_id == terminal_id)
                               .order_by(FleetCommand.id.desc()).limit(commands)).all()
        active = session.scalars(select(FleetAlert).where(FleetAlert.terminal_id == terminal_id,
                                                          FleetAlert.status.in_(AlertStatus.ACTIVE))
                                 .order_by(FleetAlert.id.desc())).all()
        shot = session.scalar(select(FleetArtifact.id).where(FleetArtifact.terminal_id == terminal_id,
                                                             FleetArtifact.kind == "screenshot")
                              .order_by(FleetArtifact.id.desc()).limit(1))
        return TerminalDetail(view=views[0], metrics=metrics_view(row), devices=device_views(row),
                              timeline=[change_view(c) for c in changes], events=[event_view(e) for e in recent],
                              commands=[command_view(c) for c in cmds], alerts=[alert_view(a) for a in active],
                              last_screenshot_id=shot)


def fleet_summary(svc: Services) -> FleetSummary:
    """Counts for the console's header and for /metrics: terminals by status, active alerts (by rule),
    commands still open."""
    views = _views(svc)
    by_status = {s: 0 for s in STATUSES}
    for view in views:
        by_status[view.status] += 1
    with svc.sessions() as session:
        by_rule = {rule: n for rule, n in session.execute(
            select(FleetAlert.rule, func.count()).where(FleetAlert.status.in_(AlertStatus.ACTIVE))
            .group_by(FleetAlert.rule))}
        open_commands = session.scalar(select(func.count()).select_from(FleetCommand)
                                       .where(FleetCommand.status.in_(CommandStatus.OPEN))) or 0
    return FleetSummary(terminals=len(views), by_status=by_status, open_alerts=sum(by_rule.values()),
                        open_alerts_by_rule={r: by_rule.get(r, 0) for r in alert_rules.RULES},
                        commands_open=open_commands)


# ---- commands ---------------------------------------------------------------------------------------------


def command_kinds() -> dict[str, str]:
    """Command kind -> what it does (for the console's menu)."""
    return {name: kind.description for name, kind in command_rules.KINDS.items()}


def issue_command(svc: Services, terminal_id: str, kind: str, *, args: Mapping[str, Any] | None = None, actor: str,
                  ttl_seconds: float | None = None) -> CommandView:
    """Queue a command for a terminal; it leaves with the terminal's next heartbeat answer.

    ``kind`` is one of ``command_kinds()``; ``update`` needs ``args={"version": "1.2.3"}``, ``self_test``
    takes an optional ``{"device": "receipt_printer"}``. ``actor`` is the person (audited). The command
    expires ``ttl_seconds`` after issue (default ``FleetSettings.command_ttl_seconds``). Invalid for an unknown
    kind or bad arguments, NotFound for an unknown terminal.
    """
    ttl = settings_of(svc).command_ttl_seconds if ttl_seconds is None else float(ttl_seconds)
    now = svc.now()
    with svc.sessions() as session, session.begin():
        if session.get(Terminal, terminal_id) is None:
            raise NotFound(f"no terminal {terminal_id}", code="UNKNOWN_TERMINAL")
        row = command_rules.issue(session, terminal_id, kind, args, actor=actor, ttl_seconds=ttl, now=now)
        command_id = row.id
    return get_command(svc, command_id)


def get_command(svc: Services, command_id: int) -> CommandView:
    """One command with its audit history (oldest first). A command past its expiry reads as EXPIRED even
    before the monitor has written it so."""
    with svc.sessions() as session:
        row = session.get(FleetCommand, command_id)
        if row is None:
            raise NotFound(f"no command {command_id}", code="UNKNOWN_COMMAND_ID")
        history = list(session.scalars(select(FleetCommandLog).where(FleetCommandLog.command_id == command_id)
                                       .order_by(FleetCommandLog.id)))
        view = command_view(row, history)
    if view.status in CommandStatus.OPEN and view.expires_at <= svc.now():
        expire_commands(svc)
        return get_command(svc, command_id)
    return view


def list_commands(svc: Services, terminal_id: str | None = None, limit: int = 100,
                  status: str | None = None) -> list[CommandView]:
    """Commands, newest first, optionally of one terminal or one status (without their history)."""
    with svc.sessions() as session:
        query = select(FleetCommand).order_by(FleetCommand.id.desc()).limit(max(1, min(limit, 1000)))
        if terminal_id is not None:
            query = query.where(FleetCommand.terminal_id == terminal_id)
        if status is not None:
            query = query.where(FleetCommand.status == status)
        return [command_view(row) for row in session.scalars(query)]


def expire_commands(svc: Services) -> int:
    """Mark every open command past its expiry EXPIRED; returns how many (the monitor calls this)."""
    with svc.sessions() as session, session.begin():
        return command_rules.expire_due(session, svc.now())


# ---- alerts -----------------------------------------------------------------------------------------------


def list_alerts(svc: Services, *, status: str | None = None, terminal_id: str | None = None,
                limit: int = 500) -> list[AlertView]:
    """Alerts, newest first. ``status``: "open" (not yet acknowledged), "acknowledged", "resolved", or
    "active" (open or acknowledged); None for all."""
    if status is not None and status not in ("active", *AlertStatus.ACTIVE, AlertStatus.RESOLVED):
        raise Invalid("status must be open, acknowledged, resolved or active", code="BAD_STATUS")
    with svc.sessions() as session:
        query = select(FleetAlert).order_by(FleetAlert.id.desc()).limit(max(1, min(limit, 5000)))
        if status == "active":
            query = query.where(FleetAlert.status.in_(AlertStatus.ACTIVE))
        elif status is not None:
            query = query.where(FleetAlert.status == status)
        if terminal_id is not None:
            query = query.where(FleetAlert.terminal_id == terminal_id)
        return [alert_view(row) for row in session.scalars(query)]


def get_alert(svc: Services, alert_id: int) -> AlertView:
    with svc.sessions() as session:
        row = session.get(FleetAlert, alert_id)
        if row is None:
            raise NotFound(f"no alert {alert_id}", code="UNKNOWN_ALERT")
        return alert_view(row)


def acknowledge_alert(svc: Services, alert_id: int, actor: str) -> AlertView:
    """Somebody is on it: the alert stays active (counted, listed) until its condition clears. Acknowledging
    again is harmless; a resolved alert stays resolved."""
    if not isinstance(actor, str) or not command_rules.ACTOR.match(actor):
        raise Invalid("who acknowledges must be named", code="BAD_ACTOR")
    now = svc.now()
    with svc.sessions() as session, session.begin():
        row = session.get(FleetAlert, alert_id)
        if row is None:
            raise NotFound(f"no alert {alert_id}", code="UNKNOWN_ALERT")
        if row.status == AlertStatus.OPEN:
            row.status = AlertStatus.ACKNOWLEDGED
            row.acknowledged_at, row.acknowledged_by = now, actor
            alert_rules.history(session, row.id, now, "acknowledged", actor)
        return alert_view(row)


def resolve_alert(svc: Services, alert_id: int, actor: str, note: str = "") -> AlertView:
    """Close an alert by hand (the terminal was retired, the condition was a false alarm). If the condition
    still holds, the rule raises a new alert at the next beat."""
    if not isinstance(actor, str) or not command_rules.ACTOR.match(actor):
        raise Invalid("who resolves must be named", code="BAD_ACTOR")
    now = svc.now()
    with svc.sessions() as session, session.begin():
        row = session.get(FleetAlert, alert_id)
        if row is None:
            raise NotFound(f"no alert {alert_id}", code="UNKNOWN_ALERT")
        if row.status != AlertStatus.RESOLVED:
            row.status, row.resolved_at = AlertStatus.RESOLVED, now
            alert_rules.history(session, row.id, now, "resolved", actor, note)
        return alert_view(row)


def alert_history(svc: Services, alert_id: int) -> list[AlertLogEntry]:
    """What happened to one alert, oldest first: raised, acknowledged (by whom), resolved (by rule or whom)."""
    with svc.sessions() as session:
        if session.get(FleetAlert, alert_id) is None:
            raise NotFound(f"no alert {alert_id}", code="UNKNOWN_ALERT")
        return [alert_log_view(r) for r in session.scalars(
            select(FleetAlertLog).where(FleetAlertLog.alert_id == alert_id).order_by(FleetAlertLog.id))]


def check_silent_terminals(svc: Services) -> tuple[int, int]:
    """Raise a "silent" alert for each terminal quiet for ``silent_intervals`` intervals (the monitor calls
    this); beats resolve it. Returns (raised, already active)."""
    now, limits = svc.now(), settings_of(svc)
    with svc.sessions() as session:
        rows = session.execute(select(FleetStatus.terminal_id, FleetStatus.last_beat_at, FleetStatus.interval_s)
                               .join(Terminal, Terminal.terminal_id == FleetStatus.terminal_id)
                               .where(Terminal.active.is_(True))).all()
        silent = [(tid, interval) for tid, last, interval in rows
                  if now - last > timedelta(seconds=interval * limits.silent_intervals)]
        if not silent:
            return 0, 0
        active = set(session.scalars(select(FleetAlert.terminal_id).where(
            FleetAlert.rule == "silent", FleetAlert.status.in_(AlertStatus.ACTIVE))))
    raised = 0
    todo = [(tid, interval) for tid, interval in silent if tid not in active]
    for start in range(0, len(todo), 200):  # short transactions: beats must not wait behind a big sweep
        with svc.sessions() as session, session.begin():
            for tid, interval in todo[start:start + 200]:
                last = session.scalar(select(FleetStatus.last_beat_at).where(FleetStatus.terminal_id == tid))
                if last is None or now - last <= timedelta(seconds=interval * limits.silent_intervals):
                    continue  # it spoke meanwhile
                raised += alert_rules.reconcile(session, tid, [alert_rules.silent_condition(
                    interval, limits.silent_intervals)], ("silent",), now)[0]
    return raised, len(silent) - len(todo)


# ---- usage ------------------------------------------------------------------------------------------------


#: Workflows the kiosk journals that are not a patient's visit of their own: the survey offered at the end of
#: one is counted with the survey's answers (central/survey.py), not as a second visit.
NOT_VISITS = frozenset({"survey"})


def usage_stats(svc: Services, *, since: datetime, until: datetime, terminal_id: str | None = None) -> UsageStats:
    """Visits per service per hour (hospital time) and per terminal, from the visit events the kiosks'
    offline queues deliver (``kiosk_messages`` of kind ``visit_event``).

    A visit is one visit session of one workflow ("registration" ...); it counts as a payment when it reached
    the ``fulfilling`` state (the money was confirmed) and as a failure when it reached ``failed``. Events are
    placed by when the kiosk recorded them, so a terminal that was offline is counted in the right hour.
    """
    if since.tzinfo is None or until.tzinfo is None:
        raise Invalid("since and until must carry a timezone", code="BAD_RANGE")
    if until <= since:
        raise Invalid("until must be after since", code="BAD_RANGE")
    tz = svc.settings.tz
    visits: dict[tuple[str, str, str], dict[str, Any]] = {}
    with svc.sessions() as session:
        query = select(KioskMessage.terminal_id, KioskMessage.payload, KioskMessage.created_at).where(
            KioskMessage.kind == "visit_event", KioskMessage.created_at >= since, KioskMessage.created_at < until)
        if terminal_id is not None:
            query = query.where(KioskMessage.terminal_id == terminal_id)
        for tid, payload, created_at in session.execute(query):
            event = loads(payload, {})
            if not isinstance(event, dict) or not event.get("session"):
                continue
            service = str(event.get("workflow") or "unknown")
            if service in NOT_VISITS:
                continue
            visit = visits.setdefault((tid, service, str(event["session"])),
                                      {"first": created_at, "paid": False, "failed": False, "left_home": False})
            visit["first"] = min(visit["first"], created_at)
            if event.get("source") == "home" or event.get("dest") not in (None, "home"):
                visit["left_home"] = True
            if event.get("dest") == "fulfilling":
                visit["paid"] = True
            if event.get("dest") == "failed":
                visit["failed"] = True
    cells: dict[tuple[str, str, datetime], list[int]] = defaultdict(lambda: [0, 0, 0])
    per_terminal: dict[str, dict[str, int]] = defaultdict(lambda: {"visits": 0, "payments": 0, "failures": 0})
    for (tid, service, _session), visit in visits.items():
        if not visit["left_home"]:
            continue
        hour = visit["first"].astimezone(tz).replace(minute=0, second=0, microsecond=0)
        cell = cells[(tid, service, hour)]
        cell[0] += 1
        cell[1] += int(visit["paid"])
        cell[2] += int(visit["failed"])
        per_terminal[tid]["visits"] += 1
        per_terminal[tid]["payments"] += int(visit["paid"])
        per_terminal[tid]["failures"] += int(visit["failed"])
    rows = [UsageRow(tid, service, hour, *counts) for (tid, service, hour), counts in sorted(cells.items())]
    return UsageStats(since=since, until=until, rows=rows, visits=sum(r.visits for r in rows),
                      payments=sum(r.payments for r in rows), failures=sum(r.failures for r in rows),
                      by_terminal=dict(per_terminal))


# ---- artifacts ----------------------------------------------------------------------------------------------


def artifact_dir(svc: Services) -> Path:
    return Path(svc.settings.data_dir) / "fleet" / "artifacts"


def artifact_bytes(svc: Services, artifact_id: int) -> tuple[str, str, bytes]:
    """(kind, content type, bytes) of a screenshot or log bundle; NotFound if missing or damaged."""
    with svc.sessions() as session:
        row = session.get(FleetArtifact, artifact_id)
        if row is None:
            raise NotFound(f"no artifact {artifact_id}", code="UNKNOWN_ARTIFACT")
        kind, content_type, rel, sha = row.kind, row.content_type, row.path, row.sha256
    path = Path(svc.settings.data_dir) / rel
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise NotFound(f"artifact {artifact_id} is missing from the data directory", code="ARTIFACT_MISSING") from exc
    if hashlib.sha256(data).hexdigest() != sha:
        raise NotFound(f"artifact {artifact_id} is damaged", code="ARTIFACT_DAMAGED")
    return kind, content_type, data


def screenshot_png(svc: Services, screenshot_id: int) -> bytes:
    """The PNG bytes of a screenshot a terminal uploaded; NotFound if there is none by that id."""
    kind, content_type, data = artifact_bytes(svc, screenshot_id)
    if kind != "screenshot" or content_type != "image/png":
        raise NotFound(f"artifact {screenshot_id} is not a screenshot", code="NOT_A_SCREENSHOT")
    return data

