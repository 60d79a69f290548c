"""Kiosk credentials: each terminal has an id and a random 32-byte secret, of which only a SHA-256 hash is kept.

A plain hash (not a password hash) is enough because the secret is 256 random bits, not something a person
chose: there is nothing to guess. Re-keying a terminal replaces its secret, which locks out a stolen copy.

Every kiosk request authenticates, so the stored hash of a terminal is kept in memory for ``AUTH_CACHE_SECONDS``
instead of costing a database session per request (a tenth of a kiosk request's server time under a surge).
Re-keying or deactivating through this process takes effect at once; through another process (the
``provision-terminal`` command beside a running server) within those seconds.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
import weakref
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from central.db import utcnow
from central.models import Terminal

TERMINAL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
#: How long a terminal's stored hash is trusted without asking the database again.
AUTH_CACHE_SECONDS = 5.0

# Per database (sessionmaker), terminal id -> (stored hash, monotonic time it was read). Only active terminals
# are cached, so unknown ids sent by anyone cannot grow it.
_auth_cache: weakref.WeakKeyDictionary[sessionmaker[Session], dict[str, tuple[str, float]]] = \
    weakref.WeakKeyDictionary()
_auth_cache_lock = threading.Lock()


def _forget(sessions: sessionmaker[Session], terminal_id: str) -> None:
    with _auth_cache_lock:
        _auth_cache.get(sessions, {}).pop(terminal_id, None)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def provision_terminal(sessions: sessionmaker[Session], terminal_id: str, *, name: str | None = None,
                       location: str | None = None) -> str:
    """Create the terminal, or give an existing one a new secret; returns the secret (shown once)."""
    if not TERMINAL_ID.match(terminal_id):
        raise ValueError("terminal id: letters, digits, '_', '.', '-' (at most 64)")
    secret = secrets.token_urlsafe(32)
    now = utcnow()
    with sessions() as session, session.begin():
        terminal = session.get(Terminal, terminal_id)
        if terminal is None:
            session.add(Terminal(terminal_id=terminal_id, name=name or terminal_id, location=location or "",
                                 secret_sha256=_hash(secret), active=True, created_at=now, keyed_at=now))
        else:
            terminal.secret_sha256 = _hash(secret)
            terminal.keyed_at = now
            terminal.active = True
            if name is not None:
                terminal.name = name
            if location is not None:
                terminal.location = location
    _forget(sessions, terminal_id)
    return secret


def _stored_hash(sessions: sessionmaker[Session], terminal_id: str) -> str | None:
    now = time.monotonic()
    with _auth_cache_lock:
        cached = _auth_cache.get(sessions, {}).get(terminal_id)
    if cached is not None and now - cached[1] < AUTH_CACHE_SECONDS:
        return cached[0]
    with sessions() as session:
        stored = session.scalar(select(Terminal.secret_sha256).where(Terminal.terminal_id == terminal_id,
                                                                     Terminal.active.is_(True)))
    with _auth_cache_lock:
        per_db = _auth_cache.setdefault(sessions, {})
        if stored is None:
            per_db.pop(terminal_id, None)
        else:
            per_db[terminal_id] = (stored, now)
    return stored


def authenticate(sessions: sessionmaker[Session], terminal_id: str, secret: str) -> bool:
    stored = _stored_hash(sessions, terminal_id)
    # Compare even for an unknown terminal so timing does not reveal which ids exist.
    return hmac.compare_digest(stored or "0" * 64, _hash(secret)) and stored is not None


def secret_hash(secret: str) -> str:
    """What ``cached_verdict`` and ``verify_hashes`` compare: the SHA-256 of the secret as stored."""
    return _hash(secret)


def cached_verdict(sessions: sessionmaker[Session], terminal_id: str, hashed_secret: str) -> bool | None:
    """True or False when the terminal's stored hash is in the cache and fresh, None when only the database can
    tell. Never touches the database, so an event-loop handler can call it (the heartbeat route does, and lets
    the fleet's writer thread settle the rest with ``verify_hashes``, one query per batch)."""
    with _auth_cache_lock:
        cached = _auth_cache.get(sessions, {}).get(terminal_id)
    if cached is None or time.monotonic() - cached[1] >= AUTH_CACHE_SECONDS:
        return None
    return hmac.compare_digest(cached[0], hashed_secret)


def verify_hashes(sessions: sessionmaker[Session], session: Session,
                  claims: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    """The claims (terminal id, SHA-256 of the secret it sent) that match an active terminal's stored hash, read
    in one query on ``session`` (the caller's open transaction). The hashes read are cached as ``authenticate``
    caches them, so the same trust window applies."""
    claims = set(claims)
    if not claims:
        return set()
    ids = {terminal_id for terminal_id, _ in claims}
    now = time.monotonic()
    table = Terminal.__table__  # Core, not the ORM: this runs once per batch of heartbeats
    stored = dict(session.execute(select(table.c.terminal_id, table.c.secret_sha256).where(
        table.c.terminal_id.in_(sorted(ids)), table.c.active.is_(True))).all())
    with _auth_cache_lock:
        per_db = _auth_cache.setdefault(sessions, {})
        for terminal_id in ids:
            if terminal_id in stored:
                per_db[terminal_id] = (stored[terminal_id], now)
            else:
                per_db.pop(terminal_id, None)
    return {(terminal_id, hashed) for terminal_id, hashed in claims
            if terminal_id in stored and hmac.compare_digest(stored[terminal_id], hashed)}
