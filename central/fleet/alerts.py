"""Alert rules and the alert life cycle: raised → (acknowledged) → resolved, with history.

The rules look at a terminal's latest beat (``conditions``) or at the clock (``silent``):

| rule | fires when | severity |
|---|---|---|
| ``silent`` | no beat for ``silent_intervals`` × the terminal's interval | critical |
| ``device_fault`` | a device (or the kiosk app itself) reports fault, other than paper out | critical |
| ``paper`` | a printer reports paper low (warning) or paper out (critical) | warning / critical |
| ``error_rate`` | one beat counts at least ``error_spike`` errors | warning |
| ``queue_backlog`` | the offline queue holds ``queue_backlog_depth`` messages, or its oldest is older than ``queue_backlog_age_s`` | warning |

A condition that holds raises one alert per (terminal, key) and keeps it; when the condition is gone the
rule resolves it (an acknowledged alert too). A condition that comes back later is a new alert.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from central.fleet.models import AlertStatus, FleetAlert, FleetAlertLog
from central.fleet.settings import FleetSettings

BEAT_RULES = ("device_fault", "paper", "error_rate", "queue_backlog")
RULES = ("silent", *BEAT_RULES)


@dataclass(frozen=True)
class Condition:
    rule: str
    key: str
    severity: str
    message: str


def conditions(*, devices: dict[str, dict[str, str]], app_running: bool, errors: int, queue_depth: int,
               queue_oldest_s: float | None, limits: FleetSettings) -> list[Condition]:
    """What is wrong with a terminal according to one beat."""
    found: list[Condition] = []
    if not app_running:
        found.append(Condition("device_fault", "device_fault:app", "critical", "kiosk application is not running"))
    for name, health in sorted(devices.items()):
        status, reason = health.get("status", ""), health.get("reason", "")
        if reason == "paper_out":
            found.append(Condition("paper", f"paper_out:{name}", "critical", f"{name}: paper out"))
        elif reason == "paper_low":
            found.append(Condition("paper", f"paper_low:{name}", "warning", f"{name}: paper low"))
        elif status == "fault":
            found.append(Condition("device_fault", f"device_fault:{name}", "critical",
                                   f"{name} in fault: {reason or 'no reason given'}"))
    if errors >= limits.error_spike:
        found.append(Condition("error_rate", "error_rate", "warning", f"{errors} errors in one heartbeat interval"))
    if queue_depth >= limits.queue_backlog_depth or (queue_oldest_s or 0) >= limits.queue_backlog_age_s:
        age = f", oldest {queue_oldest_s:.0f} s" if queue_oldest_s else ""
        found.append(Condition("queue_backlog", "queue_backlog", "warning",
                               f"offline queue holds {queue_depth} messages{age}"))
    return found


def history(session: Session, alert_id: int, at: datetime, action: str, actor: str, detail: str = "") -> None:
    session.add(FleetAlertLog(alert_id=alert_id, at=at, action=action, actor=actor, detail=detail[:300]))


def reconcile(session: Session, terminal_id: str, found: list[Condition], rules: tuple[str, ...],
              now: datetime) -> tuple[int, int]:
    """Make the terminal's active alerts of ``rules`` match ``found``: raise the new, resolve the gone.
    Returns (raised, resolved)."""
    active = {a.key: a for a in session.scalars(select(FleetAlert).where(
        FleetAlert.terminal_id == terminal_id, FleetAlert.status.in_(AlertStatus.ACTIVE),
        FleetAlert.rule.in_(rules)))}
    wanted = {c.key: c for c in found if c.rule in rules}
    raised = resolved = 0
    for key, condition in wanted.items():
        if key in active:
            continue
        alert = FleetAlert(terminal_id=terminal_id, rule=condition.rule, key=key, severity=condition.severity,
                           status=AlertStatus.OPEN, message=condition.message[:300], raised_at=now)
        session.add(alert)
        session.flush()
        history(session, alert.id, now, "raised", f"rule:{condition.rule}", condition.message)
        raised += 1
    for key, alert in active.items():
        if key in wanted:
            continue
        alert.status = AlertStatus.RESOLVED
        alert.resolved_at = now
        history(session, alert.id, now, "resolved", f"rule:{alert.rule}", "condition cleared")
        resolved += 1
    return raised, resolved


def silent_condition(interval_s: float, silent_intervals: float) -> Condition:
    return Condition("silent", "silent", "critical",
                     f"no heartbeat for more than {interval_s * silent_intervals:.0f} s")
