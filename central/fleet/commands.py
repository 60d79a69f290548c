"""Remote commands and their life cycle: PENDING → SENT → ACKED → EXECUTED / FAILED, or EXPIRED.

A command is PENDING when IT issues it, SENT when it rides in a heartbeat answer, ACKED when the agent says it
has it, and EXECUTED or FAILED when the agent reports the outcome (a refusal, such as a reboot during a
payment, is FAILED with the reason). Any command still open at ``expires_at`` becomes EXPIRED, and a late
result for it is refused: a reboot that nobody is waiting for any more must not happen an hour later.

Every change writes a row to ``fleet_command_log`` with who made it (the person, the agent as
``terminal:<id>``, or ``server``), so the audit trail answers who, when and with what result.
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from central.fleet.errors import Conflict, Invalid, NotFound
from central.fleet.models import CommandStatus, FleetCommand, FleetCommandLog

VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,39}$")
DEVICE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
ACTOR = re.compile(r"^\S.{0,63}$")


@dataclass(frozen=True)
class CommandKind:
    name: str
    description: str
    args: Mapping[str, re.Pattern[str]]  # allowed arguments and their shape
    required: tuple[str, ...] = ()


KINDS: dict[str, CommandKind] = {k.name: k for k in (
    CommandKind("restart_app", "restart the kiosk application", {}),
    CommandKind("reboot", "reboot the terminal (refused while a payment is in progress)", {}),
    CommandKind("maintenance_on", "show the maintenance screen and take no patients", {}),
    CommandKind("maintenance_off", "leave maintenance and serve patients again", {}),
    CommandKind("reload_config", "reload the terminal's configuration", {}),
    CommandKind("screenshot", "take a screenshot of the kiosk screen", {}),
    CommandKind("collect_logs", "bundle the recent logs and upload them", {}),
    CommandKind("self_test", "run a device's self-test (all devices without 'device')", {"device": DEVICE}),
    CommandKind("update", "update the kiosk software to a given version", {"version": VERSION}, ("version",)),
)}


def validate(kind: str, args: Mapping[str, Any] | None) -> dict[str, str]:
    """The command's arguments, checked; Invalid names what is wrong."""
    spec = KINDS.get(kind)
    if spec is None:
        raise Invalid(f"unknown command {kind!r}; known: {', '.join(sorted(KINDS))}", code="UNKNOWN_COMMAND")
    args = dict(args or {})
    unknown = sorted(set(args) - set(spec.args))
    if unknown:
        raise Invalid(f"{kind} takes no argument {', '.join(unknown)}", code="BAD_COMMAND_ARGS")
    for name in spec.required:
        if name not in args:
            raise Invalid(f"{kind} needs the argument {name!r}", code="BAD_COMMAND_ARGS")
    for name, value in args.items():
        if not isinstance(value, str) or not spec.args[name].match(value):
            raise Invalid(f"{kind}: argument {name!r} is not valid", code="BAD_COMMAND_ARGS")
    return args


def log(session: Session, command_id: int, status: str, actor: str, at: datetime, detail: str = "") -> None:
    session.add(FleetCommandLog(command_id=command_id, at=at, status=status, actor=actor, detail=detail[:1000]))


def issue(session: Session, terminal_id: str, kind: str, args: Mapping[str, Any] | None, *, actor: str,
          ttl_seconds: float, now: datetime) -> FleetCommand:
    """A new PENDING command (inside the caller's write transaction)."""
    checked = validate(kind, args)
    if not isinstance(actor, str) or not ACTOR.match(actor):
        raise Invalid("who issues a command must be named", code="BAD_ACTOR")
    if not 1 <= ttl_seconds <= 7 * 24 * 3600:
        raise Invalid("ttl_seconds must be between 1 second and 7 days", code="BAD_TTL")
    row = FleetCommand(terminal_id=terminal_id, kind=kind, args=json.dumps(checked, sort_keys=True),
                       status=CommandStatus.PENDING, issued_by=actor, issued_at=now,
                       expires_at=now + timedelta(seconds=ttl_seconds), result="")
    session.add(row)
    session.flush()
    log(session, row.id, CommandStatus.PENDING, actor, now, f"issued {kind} {row.args}")
    return row


def take_for_delivery(session: Session, terminal_id: str, now: datetime, resend_after: float) -> list[FleetCommand]:
    """The commands to put in this heartbeat's answer: PENDING ones (now SENT), and SENT ones whose answer may
    have been lost (sent more than ``resend_after`` seconds ago and never acknowledged). The agent recognises
    a command it already has by its id."""
    rows = list(session.scalars(select(FleetCommand).where(
        FleetCommand.terminal_id == terminal_id,
        FleetCommand.status.in_((CommandStatus.PENDING, CommandStatus.SENT))).order_by(FleetCommand.id)))
    out = []
    for row in rows:
        if row.expires_at <= now:
            _expire(session, row, now)
            continue
        if row.status == CommandStatus.SENT and row.sent_at is not None \
                and now - row.sent_at < timedelta(seconds=resend_after):
            continue
        if row.status == CommandStatus.PENDING:
            row.status = CommandStatus.SENT
            log(session, row.id, CommandStatus.SENT, "server", now)
        row.sent_at = now
        out.append(row)
    return out


def _get(session: Session, terminal_id: str, command_id: int) -> FleetCommand:
    row = session.get(FleetCommand, command_id)
    if row is None or row.terminal_id != terminal_id:  # another terminal's command is as good as none
        raise NotFound(f"no command {command_id} for this terminal", code="UNKNOWN_COMMAND_ID")
    return row


def _expire(session: Session, row: FleetCommand, now: datetime) -> None:
    row.status = CommandStatus.EXPIRED
    row.finished_at = now
    row.result = row.result or "expired before the terminal finished it"
    log(session, row.id, CommandStatus.EXPIRED, "server", now, "expired")


def acknowledge(session: Session, terminal_id: str, command_id: int, now: datetime) -> FleetCommand:
    """The agent has the command and starts on it. Repeating the ack is harmless; acking an expired or
    finished command is a Conflict that tells the agent to drop it."""
    row = _get(session, terminal_id, command_id)
    if row.status in CommandStatus.OPEN and row.expires_at <= now:
        _expire(session, row, now)
    if row.status == CommandStatus.ACKED:
        return row
    if row.status not in (CommandStatus.PENDING, CommandStatus.SENT):
        raise Conflict(f"command {command_id} is {row.status}", code=f"COMMAND_{row.status}")
    row.status = CommandStatus.ACKED
    row.acked_at = now
    row.sent_at = row.sent_at or now
    log(session, row.id, CommandStatus.ACKED, f"terminal:{terminal_id}", now)
    return row


def finish(session: Session, terminal_id: str, command_id: int, status: str, result: str, now: datetime,
           artifact_id: int | None = None) -> FleetCommand:
    """The agent's outcome. The same outcome twice (a retried report) is accepted once; a different one, or
    any outcome for an expired command, is a Conflict."""
    if status not in (CommandStatus.EXECUTED, CommandStatus.FAILED):
        raise Invalid("a command's outcome is EXECUTED or FAILED", code="BAD_OUTCOME")
    row = _get(session, terminal_id, command_id)
    if row.status in CommandStatus.OPEN and row.expires_at <= now:
        _expire(session, row, now)
    if row.status in CommandStatus.FINAL:
        if row.status == status and row.result == result[:2000]:
            return row
        raise Conflict(f"command {command_id} is already {row.status}", code=f"COMMAND_{row.status}")
    row.status = status
    row.finished_at = now
    row.acked_at = row.acked_at or now
    row.result = result[:2000]
    if artifact_id is not None:
        row.artifact_id = artifact_id
    log(session, row.id, status, f"terminal:{terminal_id}", now, result)
    return row


def expire_due(session: Session, now: datetime) -> int:
    """Expire every open command past its time; returns how many."""
    ids = list(session.scalars(select(FleetCommand.id).where(FleetCommand.status.in_(CommandStatus.OPEN),
                                                             FleetCommand.expires_at <= now)))
    if not ids:
        return 0
    session.execute(update(FleetCommand).where(FleetCommand.id.in_(ids),
                                               FleetCommand.status.in_(CommandStatus.OPEN))
                    .values(status=CommandStatus.EXPIRED, finished_at=now,
                            result="expired before the terminal finished it"))
    for command_id in ids:
        log(session, command_id, CommandStatus.EXPIRED, "server", now, "expired")
    return len(ids)


def wire(row: FleetCommand) -> dict[str, Any]:
    """A command as the agent receives it."""
    return {"id": row.id, "kind": row.kind, "args": json.loads(row.args or "{}"),
            "expires_at": row.expires_at.isoformat()}
