"""Staff tables: accounts, login sessions and the audit log.

Nothing secret is stored in a form that works when copied: passwords as scrypt hashes, the TOTP secret
AES-GCM encrypted with the server's field key (``central.crypto``), session tokens as SHA-256 digests (the
browser holds the only copy of the token itself).
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from central.crypto import EncryptedText
from central.db import Base, UTCDateTime


class Role:
    ADMIN = "admin"  # everything, plus staff accounts and the audit log
    IT = "it"  # sees everything, sends commands, acknowledges alerts
    READONLY = "readonly"  # sees everything, changes nothing
    ALL = (ADMIN, IT, READONLY)


class StaffUser(Base):
    __tablename__ = "staff_users"

    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(100), default="")
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(255))
    totp_secret: Mapped[str] = mapped_column(EncryptedText("staff.totp_secret"))
    #: The last TOTP time step accepted: a code is good once, so a code seen over a shoulder cannot be replayed.
    totp_last_step: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class StaffSession(Base):
    """One browser's login. ``stage`` is "totp" after the password and "ok" after the second factor."""

    __tablename__ = "staff_sessions"
    __table_args__ = (Index("ix_staff_sessions_username", "username"),)

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    username: Mapped[str] = mapped_column(ForeignKey("staff_users.username"))
    stage: Mapped[str] = mapped_column(String(8))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ip: Mapped[str] = mapped_column(String(64), default="")


class StaffAudit(Base):
    """Who did what, when, to what: logins, commands, acknowledgements, account changes. Append-only."""

    __tablename__ = "staff_audit"
    __table_args__ = (Index("ix_staff_audit_at", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(64))  # a username, or "-" for an unknown name at login
    action: Mapped[str] = mapped_column(String(40))
    target: Mapped[str] = mapped_column(String(120), default="")
    outcome: Mapped[str] = mapped_column(String(16), default="ok")  # ok | denied | failed
    detail: Mapped[str] = mapped_column(Text, default="")
    ip: Mapped[str] = mapped_column(String(64), default="")
