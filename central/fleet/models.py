"""Fleet tables: where each terminal stands, what its last heartbeat said, how its devices changed, what it
reported, what IT asked it to do, and which alerts were raised about it.

Heartbeats arrive every few seconds from every terminal, so the tables are shaped for that rate:
``fleet_status`` is one row per terminal updated in place (the snapshot the console lists), device health is
written only when a device changes, and ``fleet_beats`` keeps one small row per beat for a bounded time (lag,
ordering and loss can be checked; ``FleetSettings.beat_retention_hours``).
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from central.db import Base, UTCDateTime, utcnow


class FleetTerminalInfo(Base):
    """Where a terminal stands, as IT describes it (campus, floor, a label a technician can walk to)."""

    __tablename__ = "fleet_terminal_info"

    terminal_id: Mapped[str] = mapped_column(ForeignKey("terminals.terminal_id"), primary_key=True)
    campus: Mapped[str] = mapped_column(String(100), default="")
    floor: Mapped[str] = mapped_column(String(40), default="")
    location: Mapped[str] = mapped_column(String(200), default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class FleetStatus(Base):
    """The latest word from a terminal's agent, one row per terminal, overwritten by every beat.

    ``health`` is the terminal's own state as of that beat (ok / degraded / fault / maintenance); "offline" is
    not stored but derived when read, from ``last_beat_at`` and the interval, so a silent terminal turns
    offline without anybody writing anything.
    """

    __tablename__ = "fleet_status"

    terminal_id: Mapped[str] = mapped_column(ForeignKey("terminals.terminal_id"), primary_key=True)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_beat_at: Mapped[datetime] = mapped_column(UTCDateTime())  # server time of the newest beat
    last_sent_at: Mapped[datetime] = mapped_column(UTCDateTime())  # agent time of the newest beat
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    agent_boot: Mapped[str] = mapped_column(String(64), default="")  # changes when the agent restarts
    interval_s: Mapped[float] = mapped_column(Float)  # the interval this terminal was told to keep
    beats: Mapped[int] = mapped_column(Integer, default=0)
    health: Mapped[str] = mapped_column(String(16), default="ok")
    app_version: Mapped[str] = mapped_column(String(40), default="")
    app_running: Mapped[bool] = mapped_column(Boolean, default=True)
    app_uptime_s: Mapped[float] = mapped_column(Float, default=0.0)
    screen: Mapped[str] = mapped_column(String(60), default="")
    service: Mapped[str] = mapped_column(String(60), default="")
    payment_in_progress: Mapped[bool] = mapped_column(Boolean, default=False)
    maintenance: Mapped[bool] = mapped_column(Boolean, default=False)
    paper: Mapped[str] = mapped_column(String(16), default="unknown")  # ok | low | out | unknown
    cpu_pct: Mapped[float | None] = mapped_column(Float)
    mem_pct: Mapped[float | None] = mapped_column(Float)
    disk_pct: Mapped[float | None] = mapped_column(Float)
    temp_c: Mapped[float | None] = mapped_column(Float)
    rtt_ms: Mapped[float | None] = mapped_column(Float)
    queue_depth: Mapped[int] = mapped_column(Integer, default=0)
    queue_parked: Mapped[int] = mapped_column(Integer, default=0)
    queue_oldest_s: Mapped[float | None] = mapped_column(Float)
    errors_last: Mapped[int] = mapped_column(Integer, default=0)  # errors the last beat counted
    devices: Mapped[str] = mapped_column(Text, default="{}")  # JSON {name: {status, reason, detail}}
    facts: Mapped[str] = mapped_column(Text, default="{}")  # JSON: the heavy items sent on change (os, ip ...)


class FleetDeviceHealth(Base):
    """A device's health timeline: one row each time a device's status or reason changes, never per beat."""

    __tablename__ = "fleet_device_health"
    __table_args__ = (Index("ix_fleet_device_health_terminal_id_id", "terminal_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    terminal_id: Mapped[str] = mapped_column(ForeignKey("terminals.terminal_id"))
    device: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(60), default="")
    detail: Mapped[str] = mapped_column(String(200), default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class FleetBeat(Base):
    """One row per heartbeat received, kept for a bounded time: was anything lost, did it come in order, how
    late. ``queued`` marks beats that waited in the terminal's offline queue."""

    __tablename__ = "fleet_beats"
    __table_args__ = (UniqueConstraint("terminal_id", "agent_boot", "seq"),
                      Index("ix_fleet_beats_received_at", "received_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    terminal_id: Mapped[str] = mapped_column(ForeignKey("terminals.terminal_id"))
    agent_boot: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(Integer)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    queued: Mapped[bool] = mapped_column(Boolean, default=False)


class FleetEvent(Base):
    """Something a terminal reported once (the watchdog restarted the app, a device self-test result, an
    error burst), stored once per (terminal, key) because it may arrive twice through the offline queue."""

    __tablename__ = "fleet_events"
    __table_args__ = (UniqueConstraint("terminal_id", "key"),
                      Index("ix_fleet_events_terminal_id_id", "terminal_id", "id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    terminal_id: Mapped[str] = mapped_column(ForeignKey("terminals.terminal_id"))
    key: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(40))
    severity: Mapped[str] = mapped_column(String(16), default="info")
    message: Mapped[str] = mapped_column(String(500), default="")
    detail: Mapped[str] = mapped_column(Text, default="{}")  # JSON, identifiers only
    at: Mapped[datetime] = mapped_column(UTCDateTime())  # on the terminal
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CommandStatus:
    PENDING = "PENDING"  # issued, not yet handed to the agent
    SENT = "SENT"  # in a heartbeat answer
    ACKED = "ACKED"  # the agent has it and is working on it
    EXECUTED = "EXECUTED"
    FAILED = "FAILED"  # includes refusals (reboot during a payment)
    EXPIRED = "EXPIRED"  # not finished before expires_at

    OPEN = (PENDING, SENT, ACKED)
    FINAL = (EXECUTED, FAILED, EXPIRED)


class FleetCommand(Base):
    """A remote command and its whole life: who asked, when, what became of it."""

    __tablename__ = "fleet_commands"
    __table_args__ = (Index("ix_fleet_commands_terminal_id_status", "terminal_id", "status"),
                      Index("ix_fleet_commands_status_expires_at", "status", "expires_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    terminal_id: Mapped[str] = mapped_column(ForeignKey("terminals.terminal_id"))
    kind: Mapped[str] = mapped_column(String(32))
    args: Mapped[str] = mapped_column(Text, default="{}")  # JSON
    status: Mapped[str] = mapped_column(String(16), default=CommandStatus.PENDING)
    issued_by: Mapped[str] = mapped_column(String(64))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    acked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    result: Mapped[str] = mapped_column(Text, default="")  # one sentence, or a refusal's reason
    artifact_id: Mapped[int | None] = mapped_column(Integer)  # screenshot or log bundle it produced


class FleetCommandLog(Base):
    """The audit trail of a command: every change of status, by whom (a person, the agent, the server)."""

    __tablename__ = "fleet_command_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    command_id: Mapped[int] = mapped_column(ForeignKey("fleet_commands.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(Text, default="")


class AlertStatus:
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"  # somebody is on it; still counts as open
    RESOLVED = "resolved"

    ACTIVE = (OPEN, ACKNOWLEDGED)


class FleetAlert(Base):
    """One occurrence of a rule firing for a terminal (and device), from raised to resolved.

    ``key`` names the condition ("silent", "device_fault:receipt_printer"); at most one active alert per
    (terminal, key), and a condition that returns after resolution raises a new alert, so history stays true.
    """

    __tablename__ = "fleet_alerts"
    __table_args__ = (Index("ix_fleet_alerts_terminal_id_status", "terminal_id", "status"),
                      Index("ix_fleet_alerts_status", "status"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    terminal_id: Mapped[str] = mapped_column(ForeignKey("terminals.terminal_id"))
    rule: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(80))
    severity: Mapped[str] = mapped_column(String(16))  # warning | critical
    status: Mapped[str] = mapped_column(String(16), default=AlertStatus.OPEN)
    message: Mapped[str] = mapped_column(String(300))  # English
    message_zh: Mapped[str] = mapped_column(String(300), default="", server_default="")  # migration 0005b
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime())
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    acknowledged_by: Mapped[str | None] = mapped_column(String(64))
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class FleetAlertLog(Base):
    """Alert history: raised, acknowledged, resolved, each with who (or which rule) and when."""

    __tablename__ = "fleet_alert_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("fleet_alerts.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    action: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(String(300), default="")


class FleetArtifact(Base):
    """A screenshot or a log bundle a command brought back. The bytes live in a file under the data
    directory (``fleet/artifacts/``); the row says what it is and checks it (size, SHA-256)."""

    __tablename__ = "fleet_artifacts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    terminal_id: Mapped[str] = mapped_column(ForeignKey("terminals.terminal_id"), index=True)
    command_id: Mapped[int | None] = mapped_column(ForeignKey("fleet_commands.id"))
    kind: Mapped[str] = mapped_column(String(16))  # screenshot | logs
    content_type: Mapped[str] = mapped_column(String(60))
    path: Mapped[str] = mapped_column(String(300))  # relative to the data directory
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
