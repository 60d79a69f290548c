"""The kiosk's durable outbox: messages for the central server, kept in the journal's own SQLite file.

Why the same file: a workflow transition and the messages it implies (a visit event, a failed print) must be
committed together or not at all. Writing both in one local transaction means a crash can never leave a
journal entry whose message is lost, nor a message about a transition that never happened. Delivery happens
later, from this table, by ``offline_queue.delivery.Deliverer`` (at least once; the server drops repeats by
idempotency key).

Like the journal, the database runs in WAL mode with ``synchronous=FULL``: once ``enqueue``'s transaction has
committed, the message survives a power cut. Rows hold the payload the caller gave; callers keep personal data
out of it (identifiers only), and this module logs kinds and keys, never payloads.
"""
from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Kept in step with central/api/outbox.py: a message the server would refuse for its shape is refused here, at
# enqueue time, where the caller's bug is visible, rather than parked later on a terminal nobody watches.
KIND = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
KEY = re.compile(r"^[A-Za-z0-9_.:-]{8,128}$")
MAX_PAYLOAD_BYTES = 64 * 1024
BUSY_TIMEOUT_S = 30.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    key TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_error TEXT,
    delivered_at REAL,
    parked_at REAL
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox(kind, id) WHERE delivered_at IS NULL AND parked_at IS NULL;
"""

_COLUMNS = ("id", "kind", "payload", "key", "created_at", "attempts", "next_attempt_at", "last_error",
            "delivered_at", "parked_at")


def new_key(prefix: str = "") -> str:
    """A fresh idempotency key. Make it once, store it with the message, never make it again for a retry."""
    return f"{prefix}{uuid.uuid4().hex}"


def configure(conn: sqlite3.Connection) -> None:
    """The pragmas every connection to the kiosk database needs (same as the journal's, plus a busy timeout so
    the journal writer and the deliverer wait for each other instead of failing)."""
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")


@dataclass(frozen=True)
class Message:
    id: int
    kind: str
    payload: str  # JSON text, exactly as enqueued
    key: str
    created_at: float
    attempts: int
    next_attempt_at: float
    last_error: str | None
    delivered_at: float | None
    parked_at: float | None

    def body(self) -> Any:
        return json.loads(self.payload)


@dataclass(frozen=True)
class Stats:
    """What the fleet agent reports: how much is waiting, how long the oldest has waited, what is stuck."""

    depth: int  # not delivered yet, parked included
    parked: int  # refused by the server; waits for a person
    oldest_age: float | None  # seconds since the oldest undelivered message was created
    last_error: str | None  # of the most recently failed undelivered message


def _dump(kind: str, payload: Any, key: str) -> str:
    if not isinstance(kind, str) or not KIND.match(kind):
        raise ValueError("message kind: lower-case letters, digits and '_', starting with a letter (at most 40)")
    if not isinstance(key, str) or not KEY.match(key):
        raise ValueError("idempotency key: 8 to 128 of letters, digits, '_', '.', ':', '-'")
    text = json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False)
    if len(text.encode("utf-8")) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"message payload larger than {MAX_PAYLOAD_BYTES} bytes")
    return text


class Outbox:
    """The outbox table in the kiosk's SQLite file, and the queries the deliverer and the fleet agent need.

    ``Outbox(path)`` creates the table if needed and keeps one connection of its own (for ``put``, delivery
    bookkeeping and statistics). Workflows that journal a transition write their messages through
    ``enqueue(conn, ...)`` on the journal's connection, inside the journal's transaction.
    """

    def __init__(self, path: Path | str, clock: Callable[[], float] = time.time):
        self.path = str(path)
        if self.path == ":memory:":
            raise ValueError("the outbox must live in a file: it is shared with the journal and must survive restarts")
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.clock = clock
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                                   timeout=BUSY_TIMEOUT_S)
        configure(self._db)
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ---- writing ----------------------------------------------------------------------------------------

    def enqueue(self, conn: sqlite3.Connection, kind: str, payload: Any, idempotency_key: str) -> int:
        """Add a message inside the caller's open transaction on ``conn`` (a connection to this same file).

        Nothing is committed here: the message exists exactly when the caller's transaction commits. A key
        already in the outbox is not added again (a replayed transition after a restart stays one message); the
        id of the existing row is returned. Raises ValueError for a kind, key or payload the server would
        refuse, so the caller can roll back.
        """
        if conn.isolation_level is None and not conn.in_transaction:
            raise ValueError("enqueue needs the caller's open transaction (BEGIN first); use put() otherwise")
        text = _dump(kind, payload, idempotency_key)
        now = self.clock()
        conn.execute("INSERT INTO outbox(kind, payload, key, created_at, attempts, next_attempt_at) "
                     "VALUES (?,?,?,?,0,?) ON CONFLICT(key) DO NOTHING",
                     (kind, text, idempotency_key, now, now))
        row = conn.execute("SELECT id FROM outbox WHERE key = ?", (idempotency_key,)).fetchone()
        return int(row[0])

    def put(self, kind: str, payload: Any, idempotency_key: str | None = None) -> int:
        """Enqueue and commit on the outbox's own connection, for messages not tied to a journal entry
        (device health, a survey answer). Returns the message id."""
        with self.transaction() as conn:
            return self.enqueue(conn, kind, payload, idempotency_key or new_key())

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT`` on the outbox's connection; rolled back if the block raises."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # ---- delivery bookkeeping (used by the deliverer) ------------------------------------------------------

    def next_due(self, now: float, max_delay: float, skip_kinds: frozenset[str] = frozenset()) -> Message | None:
        """The oldest message that may be sent now: the head of its kind (so each kind arrives in creation
        order) whose retry time has come. A retry time further away than ``max_delay`` can only come from a
        clock that jumped back; it counts as due so a message is never stranded by a clock change."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM outbox o "
                "WHERE delivered_at IS NULL AND parked_at IS NULL "
                "AND id = (SELECT MIN(id) FROM outbox p WHERE p.kind = o.kind "
                "          AND p.delivered_at IS NULL AND p.parked_at IS NULL) "
                "AND (next_attempt_at <= ? OR next_attempt_at > ?) ORDER BY id",
                (now, now + max_delay)).fetchall()
        for row in rows:
            if row[1] not in skip_kinds:
                return Message(*row)
        return None

    def next_attempt_in(self, now: float) -> float | None:
        """Seconds until the earliest pending message is due (0 if one is due now); None if nothing is pending."""
        with self._lock:
            row = self._db.execute("SELECT MIN(next_attempt_at) FROM outbox "
                                   "WHERE delivered_at IS NULL AND parked_at IS NULL").fetchone()
        return None if row[0] is None else max(0.0, row[0] - now)

    def mark_delivered(self, message_id: int, now: float) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE outbox SET delivered_at = ?, attempts = attempts + 1, last_error = NULL "
                         "WHERE id = ? AND delivered_at IS NULL", (now, message_id))

    def mark_failed(self, message_id: int, error: str, next_attempt_at: float) -> int:
        """Count a failed attempt and set the retry time; returns the attempt count so far."""
        with self.transaction() as conn:
            conn.execute("UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ? "
                         "WHERE id = ? AND delivered_at IS NULL", (error[:500], next_attempt_at, message_id))
            row = conn.execute("SELECT attempts FROM outbox WHERE id = ?", (message_id,)).fetchone()
        return int(row[0]) if row else 0

    def park(self, message_id: int, reason: str, now: float) -> None:
        """Set a message aside that the server refused for good: kept with the reason, never retried on its own
        (``unpark`` after the cause is fixed), so it neither blocks its kind nor spins the deliverer."""
        with self.transaction() as conn:
            conn.execute("UPDATE outbox SET parked_at = ?, attempts = attempts + 1, last_error = ? "
                         "WHERE id = ? AND delivered_at IS NULL", (now, reason[:500], message_id))

    def unpark(self, message_ids: list[int] | None = None) -> int:
        """Put parked messages (all, or the given ids) back in line, due now. Returns how many."""
        now = self.clock()
        with self.transaction() as conn:
            if message_ids is None:
                cur = conn.execute("UPDATE outbox SET parked_at = NULL, next_attempt_at = ? "
                                   "WHERE parked_at IS NOT NULL AND delivered_at IS NULL", (now,))
            else:
                cur = conn.executemany("UPDATE outbox SET parked_at = NULL, next_attempt_at = ? "
                                       "WHERE id = ? AND parked_at IS NOT NULL AND delivered_at IS NULL",
                                       [(now, i) for i in message_ids])
            return cur.rowcount

    def purge_delivered(self, older_than: float) -> int:
        """Delete messages delivered more than ``older_than`` seconds ago (they are kept a while for support)."""
        with self.transaction() as conn:
            cur = conn.execute("DELETE FROM outbox WHERE delivered_at IS NOT NULL AND delivered_at < ?",
                               (self.clock() - older_than,))
            return cur.rowcount

    # ---- reading ------------------------------------------------------------------------------------------

    def depth(self) -> int:
        """Messages not delivered yet (parked ones included: they are not delivered either)."""
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL").fetchone()[0])

    def oldest_age(self) -> float | None:
        """Seconds the oldest undelivered message has waited; None when everything is delivered."""
        with self._lock:
            row = self._db.execute("SELECT MIN(created_at) FROM outbox WHERE delivered_at IS NULL").fetchone()
        return None if row[0] is None else max(0.0, self.clock() - row[0])

    def stats(self) -> Stats:
        with self._lock:
            depth, parked, oldest = self._db.execute(
                "SELECT COUNT(*), COUNT(parked_at), MIN(created_at) FROM outbox WHERE delivered_at IS NULL"
            ).fetchone()
            last = self._db.execute("SELECT last_error FROM outbox WHERE delivered_at IS NULL "
                                    "AND last_error IS NOT NULL ORDER BY id DESC LIMIT 1").fetchone()
        return Stats(depth=int(depth), parked=int(parked),
                     oldest_age=None if oldest is None else max(0.0, self.clock() - oldest),
                     last_error=last[0] if last else None)

    def messages(self, *, undelivered_only: bool = False) -> list[Message]:
        """Rows in creation order, for diagnostics and tests."""
        sql = f"SELECT {', '.join(_COLUMNS)} FROM outbox"
        if undelivered_only:
            sql += " WHERE delivered_at IS NULL"
        with self._lock:
            return [Message(*row) for row in self._db.execute(sql + " ORDER BY id").fetchall()]

    def get(self, key: str) -> Message | None:
        with self._lock:
            row = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM outbox WHERE key = ?", (key,)).fetchone()
        return Message(*row) if row else None
