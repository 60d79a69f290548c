"""Group commit for heartbeats: one writer thread takes in every beat that arrived meanwhile in one transaction.

At 10 000 terminals beating every 10 s the server takes in 1 000 beats a second. One transaction per beat would
pay for a session, ``BEGIN IMMEDIATE``, a commit and a thread-pool hop per beat, all on the one core the Python
interpreter can use; here the HTTP handler puts the validated beat on a queue and awaits its outcome, and the
writer commits whatever is queued (up to ``max_batch`` beats) as soon as the previous batch is committed, so the
batches grow with the load and stay small (low latency) when it is light.

A beat is answered only after the transaction holding it has committed: an acknowledged beat is in the database,
and a crash before the commit loses only beats nobody was told were taken (the agent keeps those in its offline
queue and sends them again; the beat row's key makes the copy a duplicate).

One beat that fails inside a batch (an unexpected error, a constraint another server instance tripped) must
not cost the others their place: the batch is rolled back and its beats are taken in again one transaction
each, so only the failing beat gets the error.

Terminal authentication can be settled here too: a request whose credentials are not in the in-memory cache
(``central.terminals.cached_verdict``) carries the hash of its secret, and the writer checks all such claims of a
batch in one query before writing anything for them.
"""
from __future__ import annotations

import asyncio
import logging
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from central.db import make_sessionmaker
from central.fleet import ingest
from central.fleet.service import settings_of
from central.services import Services
from central.terminals import verify_hashes

log = logging.getLogger(__name__)


class Unauthenticated(Exception):
    """The credentials sent with a beat match no active terminal."""


class Overloaded(Exception):
    """More beats are waiting than the writer should queue; the caller answers 503 and the agent retries."""


class Closed(Exception):
    """The batcher was closed (the server is stopping)."""


@dataclass(slots=True)
class _Item:
    terminal_id: str
    beat: dict[str, Any]
    queued: bool
    claim: str | None  # SHA-256 of the secret sent, still to be checked; None: the caller authenticated it
    loop: asyncio.AbstractEventLoop | None  # set: ``future`` is an asyncio future of that loop
    future: Any  # asyncio.Future[BeatResult] or concurrent.futures.Future[BeatResult]


_STOP = object()


class BeatBatcher:
    """The process's heartbeat writer. Started on first use; ``close`` commits what is queued and stops it."""

    def __init__(self, svc: Services, *, max_batch: int = 500, max_pending: int = 20_000, autostart: bool = True):
        self._svc = svc
        self._autostart = autostart
        self._max_batch = max_batch
        self._max_pending = max_pending
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()  # orders "still open? then queue" against "close, then stop marker"
        self._thread: threading.Thread | None = None
        self._closed = False
        self._connection: Any = None
        self._bound: Any = None
        #: Batches committed and beats in them, for the figures in the log and in tests.
        self.batches = 0
        self.beats = 0

    # ---- callers ------------------------------------------------------------------------------------------

    async def record(self, terminal_id: str, beat: dict[str, Any], *, queued: bool,
                     claim: str | None = None) -> ingest.BeatResult:
        """Take in one beat from an event-loop handler; returns once the beat is committed (or raises)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[ingest.BeatResult] = loop.create_future()
        self._put(_Item(terminal_id, beat, queued, claim, loop, future))
        return await future

    def submit(self, terminal_id: str, beat: dict[str, Any], *, queued: bool,
               claim: str | None = None) -> Future[ingest.BeatResult]:
        """Take in one beat from a worker thread; the future is resolved once the beat is committed."""
        future: Future[ingest.BeatResult] = Future()
        self._put(_Item(terminal_id, beat, queued, claim, None, future))
        return future

    def start(self) -> None:
        """Start the writer now (it starts on the first beat unless made with ``autostart=False``)."""
        with self._lock:
            if self._closed:
                raise Closed("the heartbeat writer is stopped")
            self._start()

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="fleet-beat-writer", daemon=True)
            self._thread.start()

    def close(self, timeout: float = 30.0) -> None:
        """Commit the beats already queued, then stop the writer. Later beats are refused with ``Closed``."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
            self._queue.put(_STOP)
        if thread is not None:
            thread.join(timeout)

    def _put(self, item: _Item) -> None:
        with self._lock:
            if self._closed:
                raise Closed("the heartbeat writer is stopped")
            if self._queue.qsize() >= self._max_pending:
                raise Overloaded(f"{self._max_pending} beats waiting")
            if self._autostart:
                self._start()
            self._queue.put(item)

    # ---- the writer thread --------------------------------------------------------------------------------

    def _sessions(self) -> Any:
        """Sessions on one connection kept for the writer's life. From the pool, each batch would get another
        connection, whose SQLite page cache the previous batch's commit (on another connection) had made stale:
        every batch began by reading the status and index pages again."""
        if self._connection is None or self._connection.invalidated or self._connection.closed:
            self._connection = self._svc.engine.connect()
            self._bound = make_sessionmaker(self._connection)  # type: ignore[arg-type]
        return self._bound

    def _drop_connection(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            except Exception:  # already broken: the pool throws it away
                pass
            self._connection = None

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            self._drop_connection()

    def _loop(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            batch: list[_Item] = []
            if first is _STOP:
                stopping = True
            else:
                batch.append(first)
            # Everything queued meanwhile joins (after the stop marker too: nobody can queue behind it).
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                else:
                    batch.append(item)
            if batch:
                try:
                    self._settle(batch, self._write(batch))
                except BaseException as exc:  # never leave a caller waiting forever
                    log.exception("heartbeat writer failed")
                    self._settle(batch, [exc] * len(batch))
        while True:  # a batch cut at max_batch right before the stop marker left beats behind it
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not _STOP:
                self._settle([item], self._write([item]))

    def _write(self, batch: list[_Item]) -> list[Any]:
        """Each beat's BeatResult or exception, in batch order, all committed (or a beat's own failure)."""
        svc = self._svc
        limits = settings_of(svc)
        try:
            outcomes: list[Any] = [None] * len(batch)
            with self._sessions()() as session, session.begin():
                trusted = verify_hashes(svc.sessions, session, {(i.terminal_id, i.claim) for i in batch
                                                                if i.claim is not None})
                taken: list[int] = []
                for n, item in enumerate(batch):
                    if item.claim is not None and (item.terminal_id, item.claim) not in trusted:
                        outcomes[n] = Unauthenticated(item.terminal_id)
                    else:
                        taken.append(n)
                results = ingest.record_beats(session, svc, [ingest.BeatIn(batch[n].terminal_id, batch[n].beat,
                                                                           batch[n].queued) for n in taken],
                                              limits=limits)
                for n, result in zip(taken, results):
                    outcomes[n] = result
            self.batches += 1
            self.beats += len(batch)
            return outcomes
        except Exception:
            self._drop_connection()  # whatever state it was left in, the fallback starts afresh
            if len(batch) == 1:
                return [self._write_alone(batch[0])]
            log.warning("a batch of %d heartbeats failed; taking them in one by one", len(batch), exc_info=True)
            return [self._write_alone(item) for item in batch]

    def _write_alone(self, item: _Item) -> Any:
        svc = self._svc
        try:
            if item.claim is not None:
                with svc.sessions() as session:
                    if (item.terminal_id, item.claim) not in verify_hashes(svc.sessions, session,
                                                                           {(item.terminal_id, item.claim)}):
                        return Unauthenticated(item.terminal_id)
            result = ingest.record_beat(svc, item.terminal_id, item.beat, queued=item.queued)
            self.batches += 1
            self.beats += 1
            return result
        except Exception as exc:
            log.error("heartbeat from %s not taken in: %s", item.terminal_id, exc, exc_info=True)
            return exc

    @staticmethod
    def _settle(batch: list[_Item], outcomes: list[Any]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Any, Any]]] = {}
        for item, outcome in zip(batch, outcomes):
            if item.loop is None:
                if isinstance(outcome, BaseException):
                    item.future.set_exception(outcome)
                else:
                    item.future.set_result(outcome)
            else:
                by_loop.setdefault(item.loop, []).append((item.future, outcome))
        for loop, settled in by_loop.items():  # one wake-up per loop and batch, not one per beat
            try:
                loop.call_soon_threadsafe(_resolve, settled)
            except RuntimeError:  # that loop is closed: nobody is waiting any more
                pass


def _resolve(settled: list[tuple[asyncio.Future[Any], Any]]) -> None:
    for future, outcome in settled:
        if future.done():  # the request was cancelled (client gone); the beat is stored all the same
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
