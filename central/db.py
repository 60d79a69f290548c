"""Database engine, sessions and the column types every table shares.

SQLite is the embedded default and PostgreSQL the production database; the code is written for both. On SQLite
every transaction that may write starts with ``BEGIN IMMEDIATE``: a transaction that reads and then writes would
otherwise fail with "database is locked" instead of waiting when another writer commits in between, which is
exactly what happens when a payment notification and a kiosk's poll meet on one order. The rule that follows:
never call the HIS or a payment channel while a session's transaction is open.

Two refinements keep a crowd of kiosks fast (see ``bench/surge_booking.py``):

* A session used without ``session.begin()`` (autobegin) only reads in this code base, so it starts with a plain
  deferred ``BEGIN``: in WAL mode readers neither wait for the writer nor hold it up. Such a session must not
  write; a session that writes opens its transaction with ``session.begin()``.
* Writers of one process queue on an in-process lock before ``BEGIN IMMEDIATE`` instead of in SQLite's busy
  handler, which polls with sleeps of up to 100 ms: under contention a waiter slept on while the lock was free,
  which made every write wait hundreds of milliseconds. Other processes (``provision-terminal``) still meet
  the busy timeout, as before.
"""
from __future__ import annotations

import sqlite3
import threading
from contextvars import ContextVar
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Session, SessionTransactionOrigin, sessionmaker
from sqlalchemy.types import TypeDecorator

BUSY_TIMEOUT_MS = 30_000

# Stable constraint names, so migrations can name what they drop on every database.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, stored as naive UTC so SQLite and PostgreSQL agree."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; pass an aware datetime")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=timezone.utc)


#: Set while an autobegun (read-only) session acquires its connection: its BEGIN is then a deferred one.
_READ_ONLY_BEGIN: ContextVar[bool] = ContextVar("sqlite_read_only_begin", default=False)


def make_engine(url: str, **options: Any) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000},
                               **options)
        _configure_sqlite(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, **options)


class _WriterGate:
    """The process's queue for SQLite's one write lock.

    Held from ``BEGIN IMMEDIATE`` until the connection has left its transaction (commit, rollback, or the
    pool's reset when a connection comes back or is thrown away), and only by the connection that took it.
    """

    @staticmethod
    def _raw(connection: Any) -> Any:
        """The driver's connection, whether given it or the pool's proxy around it."""
        return getattr(connection, "dbapi_connection", None) or connection

    def __init__(self, timeout: float):
        self._lock = threading.Lock()
        self._timeout = timeout
        self._holder: int | None = None

    def acquire(self, dbapi_connection: Any) -> None:
        if not self._lock.acquire(timeout=self._timeout):
            # What SQLite itself says after its busy timeout; the caller's error handling already knows it.
            raise sqlite3.OperationalError("database is locked")
        self._holder = id(self._raw(dbapi_connection))

    def release(self, dbapi_connection: Any) -> None:
        if self._holder is not None and self._holder == id(self._raw(dbapi_connection)):
            self._holder = None
            self._lock.release()

    def release_if_done(self, dbapi_connection: Any) -> None:
        """Release once the connection's transaction is really over (a failed COMMIT leaves it open)."""
        raw = self._raw(dbapi_connection)
        if self._holder == id(raw) and not getattr(raw, "in_transaction", False):
            self.release(raw)


def _configure_sqlite(engine: Engine) -> None:
    gate = _WriterGate(BUSY_TIMEOUT_MS / 1000)
    dialect = engine.dialect
    do_commit, do_rollback = dialect.do_commit, dialect.do_rollback

    # The gate is let go after the driver's COMMIT/ROLLBACK, not before: releasing earlier would let the next
    # writer's BEGIN IMMEDIATE meet the still-held SQLite lock and fall back into the busy handler's sleeps.
    def _commit(dbapi_connection: Any) -> None:
        try:
            do_commit(dbapi_connection)
        finally:
            gate.release_if_done(dbapi_connection)

    def _rollback(dbapi_connection: Any) -> None:
        try:
            do_rollback(dbapi_connection)
        finally:
            gate.release_if_done(dbapi_connection)

    dialect.do_commit = _commit  # type: ignore[method-assign]
    dialect.do_rollback = _rollback  # type: ignore[method-assign]

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the driver so the BEGIN below is the only BEGIN.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        if _READ_ONLY_BEGIN.get():
            connection.exec_driver_sql("BEGIN")
            return
        dbapi_connection = connection.connection.dbapi_connection
        gate.acquire(dbapi_connection)
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            gate.release(dbapi_connection)
            raise

    @event.listens_for(engine, "invalidate")
    @event.listens_for(engine, "close")
    def _on_gone(dbapi_connection: Any, *_args: Any) -> None:
        gate.release(dbapi_connection)  # a connection thrown away mid-transaction must not keep the gate


class _Session(Session):
    """A session whose autobegun transaction (no ``session.begin()``) is read-only; see the module docstring."""

    def _connection_for_bind(self, engine: Any, execution_options: Any = None, **kw: Any) -> Any:
        transaction = self.get_transaction()
        read_only = transaction is None or (transaction.origin is SessionTransactionOrigin.AUTOBEGIN
                                            and transaction.parent is None)
        token = _READ_ONLY_BEGIN.set(read_only)
        try:
            return super()._connection_for_bind(engine, execution_options, **kw)
        finally:
            _READ_ONLY_BEGIN.reset(token)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    # Objects stay readable after commit: handlers build their answers after the transaction is closed.
    return sessionmaker(engine, class_=_Session, expire_on_commit=False)
