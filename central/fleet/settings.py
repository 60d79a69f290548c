"""The fleet's tunables: how often terminals beat and when a rule fires.

The heartbeat interval comes from the server's settings (``Settings.fleet_heartbeat_seconds``, env
``KIOSK_CENTRAL_FLEET_HEARTBEAT_SECONDS``) because the server tells every agent how often to beat; the rule
thresholds can be overridden through ``Settings.extra["fleet"]`` (a mapping of the field names below).
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any


@dataclass(frozen=True)
class FleetSettings:
    heartbeat_seconds: float = 10.0
    #: A terminal is offline (and its "silent" alert fires) after this many intervals without a beat.
    silent_intervals: float = 2.0
    #: Errors counted in one beat at or above which the error-rate alert fires.
    error_spike: int = 20
    #: Offline-queue depth, or age of its oldest message in seconds, at which the backlog alert fires.
    queue_backlog_depth: int = 200
    queue_backlog_age_s: float = 900.0
    #: How long a command may wait for its result unless the issuer says otherwise.
    command_ttl_seconds: float = 900.0
    #: How often the monitor looks for silent terminals and expired commands.
    monitor_seconds: float = 5.0
    #: Beat rows are kept this long (lag and loss checks); the snapshot is kept for ever.
    beat_retention_hours: float = 48.0
    #: Largest screenshot or log bundle accepted from an agent.
    max_artifact_bytes: int = 20 * 1024 * 1024


def fleet_settings(settings: Any) -> FleetSettings:
    """The fleet's settings from the server's ``Settings`` (or defaults for anything without them)."""
    base = FleetSettings(heartbeat_seconds=float(getattr(settings, "fleet_heartbeat_seconds", 10.0)))
    extra = (getattr(settings, "extra", None) or {}).get("fleet") or {}
    known = {f.name for f in fields(FleetSettings)}
    return replace(base, **{k: v for k, v in dict(extra).items() if k in known})
