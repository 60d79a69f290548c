"""What the fleet service layer hands out: plain, frozen dataclasses, never ORM objects, so the console (and
any other caller) can keep them after the session is gone and cannot write through them by accident."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from central.fleet.models import (FleetAlert, FleetAlertLog, FleetCommand, FleetCommandLog, FleetDeviceHealth,
                                  FleetEvent, FleetStatus)

STATUSES = ("ok", "degraded", "fault", "offline", "maintenance")
PAPER_STATES = ("ok", "low", "out", "unknown")


def loads(text: str | None, default: Any) -> Any:
    try:
        return json.loads(text) if text else default
    except ValueError:
        return default


def effective_status(row: FleetStatus | None, now: datetime, silent_intervals: float) -> str:
    """A terminal's status right now: offline when it has been silent for ``silent_intervals`` of its own
    interval (or never beat), otherwise what its last beat said."""
    if row is None:
        return "offline"
    if now - row.last_beat_at > timedelta(seconds=row.interval_s * silent_intervals):
        return "offline"
    return row.health


@dataclass(frozen=True)
class TerminalView:
    """One line of the fleet list."""

    terminal_id: str
    name: str
    campus: str
    floor: str
    location: str
    status: str  # ok | degraded | fault | offline | maintenance
    last_beat_at: datetime | None
    paper: str  # ok | low | out | unknown
    app_version: str
    service: str  # the service on screen ("registration"), "" at home
    screen: str
    open_alerts: int  # open + acknowledged
    devices: dict[str, str]  # device name -> ok | degraded | fault


@dataclass(frozen=True)
class TerminalMetrics:
    """The system figures of the last beat (None where the terminal cannot read them)."""

    cpu_pct: float | None
    mem_pct: float | None
    disk_pct: float | None
    temp_c: float | None
    rtt_ms: float | None
    queue_depth: int
    queue_parked: int
    queue_oldest_s: float | None
    errors_last: int
    app_running: bool
    app_uptime_s: float
    payment_in_progress: bool
    interval_s: float
    beats: int
    first_seen_at: datetime | None
    facts: dict[str, Any]  # the heavy, rarely changing items: os, ip, hostname, agent version ...


@dataclass(frozen=True)
class DeviceHealthView:
    device: str
    status: str
    reason: str
    detail: str


@dataclass(frozen=True)
class DeviceHealthChange:
    """One step of a device's timeline."""

    device: str
    status: str
    reason: str
    detail: str
    at: datetime


@dataclass(frozen=True)
class EventView:
    id: int
    kind: str
    severity: str
    message: str
    detail: dict[str, Any]
    at: datetime
    received_at: datetime


@dataclass(frozen=True)
class CommandLogEntry:
    at: datetime
    status: str
    actor: str
    detail: str


@dataclass(frozen=True)
class CommandView:
    id: int
    terminal_id: str
    kind: str
    args: dict[str, Any]
    status: str  # PENDING | SENT | ACKED | EXECUTED | FAILED | EXPIRED
    issued_by: str
    issued_at: datetime
    expires_at: datetime
    sent_at: datetime | None
    acked_at: datetime | None
    finished_at: datetime | None
    result: str
    artifact_id: int | None  # the screenshot or log bundle, if the command produced one
    history: tuple[CommandLogEntry, ...] = ()


@dataclass(frozen=True)
class AlertLogEntry:
    at: datetime
    action: str  # raised | acknowledged | resolved
    actor: str  # a person, or "rule:<name>"
    detail: str


@dataclass(frozen=True)
class AlertView:
    id: int
    terminal_id: str
    rule: str  # silent | device_fault | paper | error_rate | queue_backlog
    key: str
    severity: str  # warning | critical
    status: str  # open | acknowledged | resolved
    message: str  # English
    raised_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    message_zh: str = ""  # Chinese; alerts raised before migration 0005b have none: their English is shown

    @property
    def message_en(self) -> str:
        return self.message

    @property
    def text_zh(self) -> str:
        """What to show first: the Chinese text, or the English one of an alert that has none."""
        return self.message_zh or self.message


@dataclass(frozen=True)
class TerminalDetail:
    view: TerminalView
    metrics: TerminalMetrics
    devices: list[DeviceHealthView]
    timeline: list[DeviceHealthChange]  # newest first
    events: list[EventView]  # newest first
    commands: list[CommandView]  # newest first
    alerts: list[AlertView]  # active ones, newest first
    last_screenshot_id: int | None


@dataclass(frozen=True)
class FleetSummary:
    terminals: int
    by_status: dict[str, int]  # every status in STATUSES, zero included
    open_alerts: int
    open_alerts_by_rule: dict[str, int]
    commands_open: int


@dataclass(frozen=True)
class UsageRow:
    """Visits of one service in one hour (hospital time) at one terminal."""

    terminal_id: str
    service: str
    hour: datetime  # start of the hour, aware, hospital timezone
    visits: int  # visits that left the home screen
    payments: int  # visits whose payment was confirmed
    failures: int  # visits that ended in the failed state


@dataclass(frozen=True)
class UsageStats:
    since: datetime
    until: datetime
    rows: list[UsageRow]
    visits: int
    payments: int
    failures: int
    by_terminal: dict[str, dict[str, int]] = field(default_factory=dict)  # id -> {visits, payments, failures}


# ---- row -> view -------------------------------------------------------------------------------------------


def metrics_view(row: FleetStatus | None) -> TerminalMetrics:
    if row is None:
        return TerminalMetrics(None, None, None, None, None, 0, 0, None, 0, False, 0.0, False, 0.0, 0, None, {})
    return TerminalMetrics(row.cpu_pct, row.mem_pct, row.disk_pct, row.temp_c, row.rtt_ms, row.queue_depth,
                           row.queue_parked, row.queue_oldest_s, row.errors_last, row.app_running, row.app_uptime_s,
                           row.payment_in_progress, row.interval_s, row.beats, row.first_seen_at,
                           loads(row.facts, {}))


def device_views(row: FleetStatus | None) -> list[DeviceHealthView]:
    devices = loads(row.devices, {}) if row is not None else {}
    return [DeviceHealthView(name, str(d.get("status", "")), str(d.get("reason", "")), str(d.get("detail", "")))
            for name, d in sorted(devices.items())]


def change_view(row: FleetDeviceHealth) -> DeviceHealthChange:
    return DeviceHealthChange(row.device, row.status, row.reason, row.detail, row.at)


def event_view(row: FleetEvent) -> EventView:
    return EventView(row.id, row.kind, row.severity, row.message, loads(row.detail, {}), row.at, row.received_at)


def command_view(row: FleetCommand, history: list[FleetCommandLog] | None = None) -> CommandView:
    return CommandView(row.id, row.terminal_id, row.kind, loads(row.args, {}), row.status, row.issued_by,
                       row.issued_at, row.expires_at, row.sent_at, row.acked_at, row.finished_at, row.result,
                       row.artifact_id,
                       tuple(CommandLogEntry(h.at, h.status, h.actor, h.detail) for h in (history or [])))


def alert_view(row: FleetAlert) -> AlertView:
    return AlertView(row.id, row.terminal_id, row.rule, row.key, row.severity, row.status, row.message,
                     row.raised_at, row.acknowledged_at, row.acknowledged_by, row.resolved_at, row.message_zh or "")


def alert_log_view(row: FleetAlertLog) -> AlertLogEntry:
    return AlertLogEntry(row.at, row.action, row.actor, row.detail)
