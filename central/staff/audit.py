"""The audit log of staff actions (MLPS 2.0 asks who did what and when). Rows are only ever added.

``record`` writes inside the caller's transaction, so an action and its audit row commit together or not at
all; ``audit`` is the same in a transaction of its own, for refusals that change nothing else.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from central.services import Services
from central.staff.models import StaffAudit


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    outcome: str
    detail: str
    ip: str


def record(session: Session, at: datetime, actor: str, action: str, *, target: str = "", outcome: str = "ok",
           detail: str = "", ip: str = "") -> None:
    session.add(StaffAudit(at=at, actor=actor[:64] or "-", action=action[:40], target=target[:120],
                           outcome=outcome[:16], detail=detail[:2000], ip=ip[:64]))


def audit(svc: Services, actor: str, action: str, *, target: str = "", outcome: str = "ok", detail: str = "",
          ip: str = "") -> None:
    with svc.sessions() as session, session.begin():
        record(session, svc.now(), actor, action, target=target, outcome=outcome, detail=detail, ip=ip)


def list_audit(svc: Services, *, limit: int = 200, actor: str | None = None,
               action: str | None = None) -> list[AuditEntry]:
    """Newest first."""
    with svc.sessions() as session:
        query = select(StaffAudit).order_by(StaffAudit.id.desc()).limit(max(1, min(limit, 5000)))
        if actor:
            query = query.where(StaffAudit.actor == actor)
        if action:
            query = query.where(StaffAudit.action == action)
        return [AuditEntry(r.id, r.at, r.actor, r.action, r.target, r.outcome, r.detail, r.ip)
                for r in session.scalars(query)]
