"""The outbox table: written in the journal's transaction (both or neither, even across a SIGKILL), durable,
idempotent per key, and measurable by the fleet agent."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from offline_queue.outbox import Outbox, configure, new_key
from tests.offline_queue.server import FakeClock
from workflows.journal import Journal

ROOT = Path(__file__).resolve().parents[2]


def journal_and_enqueue(conn: sqlite3.Connection, outbox: Outbox, key: str) -> None:
    """What a journaled transition does: the journal row and its message in one transaction."""
    conn.execute("INSERT INTO journal(at, session, workflow, event, source, dest, data) VALUES (?,?,?,?,?,?,?)",
                 (1.0, "s-1", "registration", "paid", "awaiting_payment", "fulfilling", "{}"))
    outbox.enqueue(conn, "visit_event", {"session": "s-1", "event": "paid"}, key)


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    configure(conn)
    return conn


def test_rollback_drops_both_and_commit_keeps_both(db_path: Path, outbox: Outbox) -> None:
    journal = Journal(db_path)
    conn = connect(db_path)
    conn.execute("BEGIN IMMEDIATE")
    journal_and_enqueue(conn, outbox, "key-rolled-back")
    conn.execute("ROLLBACK")
    assert journal.entries() == [] and outbox.depth() == 0 and outbox.get("key-rolled-back") is None

    conn.execute("BEGIN IMMEDIATE")
    journal_and_enqueue(conn, outbox, "key-committed")
    assert outbox.depth() == 0  # not visible to other connections before the commit
    conn.execute("COMMIT")
    assert [e["event"] for e in journal.entries()] == ["paid"]
    assert outbox.depth() == 1 and outbox.get("key-committed") is not None
    conn.close()
    journal.close()


def test_an_exception_in_the_transaction_leaves_nothing(db_path: Path, outbox: Outbox) -> None:
    Journal(db_path).close()
    conn = connect(db_path)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO journal(at, session, workflow, event, source, dest, data) VALUES (1,'s','w','e','a','b','{}')")
    with pytest.raises(ValueError):
        outbox.enqueue(conn, "visit_event", {"x": float("nan")}, "key-0000001")  # not JSON: the caller rolls back
    conn.execute("ROLLBACK")
    assert conn.execute("SELECT COUNT(*) FROM journal").fetchone()[0] == 0 and outbox.depth() == 0


CHILD = """
import os, signal, sqlite3, sys
from offline_queue.outbox import Outbox, configure
from workflows.journal import Journal
path, commit = sys.argv[1], sys.argv[2] == "commit"
Journal(path).close()
outbox = Outbox(path)
conn = sqlite3.connect(path, isolation_level=None)
configure(conn)
conn.execute("BEGIN IMMEDIATE")
conn.execute("INSERT INTO journal(at, session, workflow, event, source, dest, data) VALUES (1,'s','w','e','a','b','{}')")
outbox.enqueue(conn, "visit_event", {"session": "s"}, "key-from-child")
if commit:
    conn.execute("COMMIT")
print("ready", flush=True)
signal.pause()
"""


@pytest.mark.parametrize("commit", [False, True])
def test_sigkill_keeps_both_or_neither(tmp_path: Path, commit: bool) -> None:
    path = tmp_path / "journal.db"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path), "commit" if commit else "open"],
                             cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=10)
    outbox = Outbox(path)
    journal = Journal(path)
    assert (outbox.depth(), len(journal.entries())) == ((1, 1) if commit else (0, 0))
    outbox.close()
    journal.close()


def test_enqueue_needs_an_open_transaction(db_path: Path, outbox: Outbox) -> None:
    conn = connect(db_path)
    with pytest.raises(ValueError, match="transaction"):
        outbox.enqueue(conn, "visit_event", {}, "key-0000001")
    assert outbox.depth() == 0


@pytest.mark.parametrize("kind, key, payload", [
    ("Visit Event", "key-0000001", {}),
    ("visit_event", "short", {}),
    ("visit_event", "key with space", {}),
    ("visit_event", "key-0000001", {"blob": "x" * 70_000}),
    ("visit_event", "key-0000001", {"when": object()}),
])
def test_refuses_what_the_server_would_refuse(outbox: Outbox, kind: str, key: str, payload: object) -> None:
    with pytest.raises((ValueError, TypeError)):
        outbox.put(kind, payload, key)
    assert outbox.depth() == 0


def test_same_key_twice_is_one_message(outbox: Outbox) -> None:
    first = outbox.put("visit_event", {"n": 1}, "key-0000001")
    again = outbox.put("visit_event", {"n": 1}, "key-0000001")
    assert first == again and outbox.depth() == 1


def test_survives_a_restart_with_every_column(db_path: Path, clock: FakeClock) -> None:
    outbox = Outbox(db_path, clock=clock)
    key = new_key("t-")
    outbox.put("print_failed", {"order_no": "R1", "reason": "paper_out"}, key)
    outbox.close()
    again = Outbox(db_path, clock=clock)
    message = again.get(key)
    assert message is not None
    assert (message.kind, message.body(), message.attempts, message.delivered_at, message.parked_at) == \
        ("print_failed", {"order_no": "R1", "reason": "paper_out"}, 0, None, None)
    assert message.created_at == message.next_attempt_at == clock.now
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    again.close()


def test_depth_and_oldest_age(outbox: Outbox, clock: FakeClock) -> None:
    assert outbox.depth() == 0 and outbox.oldest_age() is None
    first = outbox.put("device_health", {"printer": "ok"})
    clock.advance(30)
    outbox.put("device_health", {"printer": "paper_low"})
    clock.advance(15)
    assert outbox.depth() == 2 and outbox.oldest_age() == 45
    outbox.mark_delivered(first, clock())
    assert outbox.depth() == 1 and outbox.oldest_age() == 15
    stats = outbox.stats()
    assert (stats.depth, stats.parked, stats.oldest_age) == (1, 0, 15)


def test_purge_keeps_recent_and_undelivered(outbox: Outbox, clock: FakeClock) -> None:
    old = outbox.put("device_health", {})
    outbox.put("device_health", {})
    outbox.mark_delivered(old, clock())
    clock.advance(8 * 86400)
    assert outbox.purge_delivered(older_than=7 * 86400) == 1
    assert len(outbox.messages()) == 1 and outbox.depth() == 1


class TransactionalJournal(Journal):
    """The change proposed for workflows/journal.py (re-entrant lock + ``transaction()``), tried out here so
    the wiring in the report is known to work before it is pasted in."""

    def __init__(self, path: Path | str):
        super().__init__(path)
        self._lock = threading.RLock()  # record() inside transaction() re-enters

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")


def test_the_proposed_journal_wiring(db_path: Path, outbox: Outbox) -> None:
    journal = TransactionalJournal(db_path)
    data = {"patient_id": "P0001", "order_no": "R1", "order_status": "PAID"}

    def transition(event: str, fail: bool = False) -> None:
        with journal.transaction() as conn:
            entry = journal.record("0123abcd" * 4, "registration", event, "awaiting_payment", "fulfilling", data)
            outbox.enqueue(conn, "visit_event", {"session": "0123abcd" * 4, "event": event, **data},
                           f"visit-{'0123abcd' * 4}-{entry}")
            if fail:
                raise RuntimeError("the process dies before the commit")

    with pytest.raises(RuntimeError):
        transition("paid", fail=True)
    assert journal.entries() == [] and outbox.depth() == 0
    transition("paid")
    assert len(journal.entries()) == 1 and outbox.depth() == 1
    message = outbox.messages()[0]
    assert message.key == f"visit-{'0123abcd' * 4}-{journal.entries()[0]['id']}"
    journal.close()
