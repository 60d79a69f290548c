"""``POST /api/v1/kiosk/outbox``: where a kiosk's offline queue lands (visit events, failed prints, survey
answers, device health), each message stored exactly once.

Kiosks deliver at least once: after a crash or a lost answer they send the same message again with the same
``Idempotency-Key``. This route keeps the first copy per (terminal, key) and answers a repeat with
``200 {"duplicate": true}`` so the kiosk can mark it delivered; a new message gets ``201``. A key reused for a
*different* message is a kiosk bug and is refused with 422, which the kiosk parks instead of retrying.

The table is ``central.models.KioskMessage`` (migration 0002). Payloads carry identifiers only (the kiosk's
journal rule); they are logged by kind and key.
"""
from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Response
from pydantic import AwareDatetime, BaseModel, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from central.api.auth import Svc, Terminal
from central.api.errors import ApiError
from central.db import utcnow
from central.models import KioskMessage

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1/kiosk", tags=["kiosk"])

# Kept in step with offline_queue/outbox.py, which refuses the same things at enqueue time.
KIND_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"
KEY_PATTERN = r"^[A-Za-z0-9_.:-]{8,128}$"
MAX_PAYLOAD_BYTES = 64 * 1024


class OutboxMessage(BaseModel):
    kind: str = Field(pattern=KIND_PATTERN)
    payload: Any
    created_at: AwareDatetime


class OutboxError(Exception):
    def __init__(self, status: int, code: str, message_en: str):
        super().__init__(code)
        self.status, self.code, self.message_en = status, code, message_en


def canonical(payload: Any) -> str:
    return json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False)


def store_message(sessions: sessionmaker[Session], terminal_id: str, idempotency_key: str, kind: str,
                  payload: Any, created_at: datetime, *, now: datetime | None = None) -> tuple[KioskMessage, bool]:
    """Keep the message unless this terminal already sent this key; returns (row, created).

    Raises OutboxError for a payload that is too large or a key reused for a different message.
    """
    text = canonical(payload)
    if len(text.encode("utf-8")) > MAX_PAYLOAD_BYTES:
        raise OutboxError(413, "PAYLOAD_TOO_LARGE", f"payload larger than {MAX_PAYLOAD_BYTES} bytes")
    for _ in range(2):  # a second pass only after losing an insert race on the unique key
        try:
            with sessions() as session, session.begin():
                row = session.scalar(select(KioskMessage).where(KioskMessage.terminal_id == terminal_id,
                                                                KioskMessage.idempotency_key == idempotency_key))
                if row is not None:
                    if row.kind != kind or row.payload != text:
                        raise OutboxError(422, "IDEMPOTENCY_KEY_REUSED",
                                          "this key was already used for a different message")
                    row.copies += 1
                    return row, False
                row = KioskMessage(terminal_id=terminal_id, idempotency_key=idempotency_key, kind=kind,
                                   payload=text, created_at=created_at, received_at=now or utcnow(), copies=1)
                session.add(row)
                session.flush()
                return row, True
        except IntegrityError:
            continue
    raise OutboxError(503, "BUSY", "could not store the message; try again")


@router.post("/outbox", status_code=201)
def receive(body: OutboxMessage, response: Response, svc: Svc, terminal: Terminal,
            idempotency_key: Annotated[str, Header(alias="Idempotency-Key", pattern=KEY_PATTERN)]
            ) -> dict[str, Any]:
    try:
        row, created = store_message(svc.sessions, terminal, idempotency_key, body.kind, body.payload,
                                     body.created_at, now=svc.now())
    except OutboxError as exc:
        log.warning("outbox %s %s from %s refused: %s", body.kind, idempotency_key, terminal, exc.code)
        raise ApiError(exc.status, exc.code, "消息无法接收", exc.message_en) from exc
    if not created:
        response.status_code = 200
        log.info("outbox %s %s from %s: duplicate", body.kind, idempotency_key, terminal)
    return {"id": row.id, "duplicate": not created}
