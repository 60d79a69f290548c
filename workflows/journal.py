"""The kiosk's local journal: every workflow transition is committed here before its side effects run.

After a crash or power cut the journal tells what the terminal was doing (which order, which payment key)
so the visit can be resumed or compensated. It holds identifiers only, never a patient's name or ID number.
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS journal (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    session TEXT NOT NULL,
    workflow TEXT NOT NULL,
    event TEXT NOT NULL,
    source TEXT NOT NULL,
    dest TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS journal_session ON journal(session, id);
"""


class Journal:
    def __init__(self, path: Path | str):
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # The outbox shares this file and writes in the same transactions; it may hold the lock a moment.
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a transition is durable before its effects start
        self._db.executescript(SCHEMA)
        self._lock = threading.RLock()

    def record(self, session: str, workflow: str, event: str, source: str, dest: str,
               data: dict[str, Any]) -> int:
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO journal(at, session, workflow, event, source, dest, data) VALUES (?,?,?,?,?,?,?)",
                (time.time(), session, workflow, event, source, dest, json.dumps(data, ensure_ascii=False)),
            )
            return int(cur.lastrowid)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One local transaction for a journal entry and what it implies (offline-queue messages): both are
        written, or neither."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def entries(self, session: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT id, at, session, workflow, event, source, dest, data FROM journal"
        args: tuple[Any, ...] = ()
        if session is not None:
            sql += " WHERE session = ?"
            args = (session,)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY id", args).fetchall()
        keys = ("id", "at", "session", "workflow", "event", "source", "dest", "data")
        return [dict(zip(keys, row[:-1] + (json.loads(row[-1]),))) for row in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()
