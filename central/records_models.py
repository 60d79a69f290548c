"""Platform tables of the records services: which print jobs kiosks reported as completed.

A kiosk reports a finished print with an idempotency key; the row keyed by (terminal, key) is what makes a
retried report count once, whatever the HIS behind the adapter does with repeated calls.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from central.db import Base, UTCDateTime, utcnow


class PrintRecord(Base):
    __tablename__ = "print_records"
    __table_args__ = (UniqueConstraint("terminal_id", "idempotency_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    terminal_id: Mapped[str] = mapped_column(ForeignKey("terminals.terminal_id"))
    idempotency_key: Mapped[str] = mapped_column(String(128))
    patient_id: Mapped[str] = mapped_column(String(32), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # lab | imaging | record | invoice
    doc_no: Mapped[str] = mapped_column(String(32))
    # PENDING (the HIS not told yet) → RECORDED (counted) | REFUSED (over the limit: not counted)
    status: Mapped[str] = mapped_column(String(16), default="PENDING")
    count_after: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
