"""The PC/SC card reader as a kiosk device: health, card events and the two card reads.

pyscard's SCardTransmit blocks until the reader driver answers, and with a card that never answers (checked
with vpcd: well over two minutes) it does not return at all. So every call on a card goes through a
`_Session` that owns its own thread: the caller waits a bounded time and gets `CardMuteError`; the stuck
thread is abandoned and cleans up (disconnect, release context) once the card is finally pulled. Nothing
else touches the abandoned PC/SC context, because pcsc-lite serialises calls on one context and a second
call on it would block behind the stuck one.

Card events come from a watcher thread with its own context, polling SCardGetStatusChange. pyscard's
CardMonitor is a process-wide singleton whose threads cannot be stopped, which suits neither the
DeviceWorker's close/open nor tests.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import date
from typing import Any, Callable, Iterator, TypeVar

from smartcard import scard

from drivers.health import Health
from drivers.pcsc import emv, social
from drivers.pcsc.cards import BankCard, SocialSecurityCard
from drivers.pcsc.errors import (
    CardDataError, CardError, CardMuteError, CardRemovedError, NoCardError, PcscUnavailableError,
    ReaderUnavailableError,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
_MASK = 0xFFFFFFFF


def _code(hr: int) -> int:
    return hr & _MASK


SERVICE_DOWN = {_code(c) for c in (scard.SCARD_E_NO_SERVICE, scard.SCARD_E_SERVICE_STOPPED,
                                   scard.SCARD_E_INVALID_HANDLE)}
READER_GONE = {_code(c) for c in (scard.SCARD_E_UNKNOWN_READER, scard.SCARD_E_READER_UNAVAILABLE,
                                  scard.SCARD_E_NO_READERS_AVAILABLE)}
CARD_GONE = {_code(c) for c in (scard.SCARD_W_REMOVED_CARD, scard.SCARD_E_NO_SMARTCARD,
                                scard.SCARD_W_RESET_CARD, scard.SCARD_W_UNPOWERED_CARD)}
TIMEOUT = _code(scard.SCARD_E_TIMEOUT)
CANCELLED = _code(scard.SCARD_E_CANCELLED)
UNRESPONSIVE = _code(scard.SCARD_W_UNRESPONSIVE_CARD)


def _message(hr: int) -> str:
    try:
        return f"{scard.SCardGetErrorMessage(hr)} (0x{_code(hr):08X})"
    except Exception:  # pyscard's message lookup is best effort
        return f"0x{_code(hr):08X}"


def establish_context() -> Any:
    """A fresh PC/SC context, or `PcscUnavailableError` when pcscd is not running."""
    hr, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hr != scard.SCARD_S_SUCCESS:
        raise PcscUnavailableError(f"cannot reach the PC/SC service (pcscd): {_message(hr)}")
    return ctx


def release_context(ctx: Any) -> None:
    try:
        scard.SCardReleaseContext(ctx)
    except Exception:  # releasing a context of a pcscd that died is harmless to skip
        pass


def list_readers(ctx: Any) -> list[str]:
    hr, names = scard.SCardListReaders(ctx, [])
    code = _code(hr)
    if code in SERVICE_DOWN:
        raise PcscUnavailableError(f"the PC/SC service went away: {_message(hr)}")
    if code != scard.SCARD_S_SUCCESS:
        return []  # SCARD_E_NO_READERS_AVAILABLE and friends: no reader is an answer, not an error
    return list(names)


@dataclass(frozen=True)
class CardEvent:
    reader: str
    atr: bytes = b""


class _StuckCounter:
    """How many abandoned sessions still wait for their card to answer or leave (health shows it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def add(self, n: int) -> None:
        with self._lock:
            self.value += n


class _Session:
    """One connection to the card, run on its own thread so that every call can be bounded in time."""

    def __init__(self, reader: str, timeout: float, stuck: _StuckCounter) -> None:
        self.reader = reader
        self.timeout = timeout
        self._stuck = stuck
        self._jobs: queue.Queue[tuple[Callable[[], Any], Future[Any]] | None] = queue.Queue()
        self._ctx: Any = None
        self._card: Any = None
        self._protocol = 0
        self.abandoned = False
        self._thread = threading.Thread(target=self._run, name=f"pcsc-session-{reader}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._jobs.get()
            if item is None:
                break
            job, future = item
            try:
                future.set_result(job())
            except BaseException as exc:  # handed to the waiting caller, if it still waits
                future.set_exception(exc)
        self._cleanup()
        if self.abandoned:
            log.info("PC/SC: the card on %s answered or left; its stuck session is closed", self.reader)
            self._stuck.add(-1)

    def _call(self, job: Callable[[], T], what: str) -> T:
        if self.abandoned:
            raise CardMuteError(f"{what}: an earlier command to this card never returned")
        future: Future[T] = Future()
        self._jobs.put((job, future))
        try:
            return future.result(self.timeout)
        except FutureTimeout:
            self.abandoned = True
            self._stuck.add(1)
            self._jobs.put(None)  # the thread cleans up after the stuck call returns, if it ever does
            raise CardMuteError(f"{what}: no answer from the card on {self.reader} within {self.timeout:.1f} s")

    def _cleanup(self) -> None:
        if self._card is not None:
            try:
                scard.SCardDisconnect(self._card, scard.SCARD_RESET_CARD)
            except Exception:
                pass
            self._card = None
        if self._ctx is not None:
            release_context(self._ctx)
            self._ctx = None

    def connect(self) -> bytes:
        """Connect and return the ATR."""
        def job() -> bytes:
            self._ctx = establish_context()
            hr, card, protocol = scard.SCardConnect(self._ctx, self.reader, scard.SCARD_SHARE_SHARED,
                                                    scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1)
            code = _code(hr)
            if code in CARD_GONE:
                raise NoCardError(f"no card in {self.reader}")
            if code == UNRESPONSIVE:
                raise CardMuteError(f"the card in {self.reader} gives no ATR")
            if code in SERVICE_DOWN:
                raise PcscUnavailableError(f"the PC/SC service went away: {_message(hr)}")
            if code in READER_GONE:
                raise ReaderUnavailableError(f"reader {self.reader} is gone: {_message(hr)}")
            if code != scard.SCARD_S_SUCCESS:
                raise CardError(f"cannot connect to the card in {self.reader}: {_message(hr)}")
            self._card, self._protocol = card, protocol
            hr, _name, _state, _proto, atr = scard.SCardStatus(card)
            return bytes(atr) if hr == scard.SCARD_S_SUCCESS else b""
        return self._call(job, "connect")

    def transmit_raw(self, apdu: bytes) -> tuple[int, bytes]:
        def job() -> tuple[int, bytes]:
            hr, response = scard.SCardTransmit(self._card, self._protocol, list(apdu))
            return _code(hr), bytes(response)
        return self._call(job, f"command {apdu[:4].hex().upper()}")

    def close(self) -> None:
        if not self.abandoned:
            self._jobs.put(None)
            self._thread.join(self.timeout)


class PcscCardReader:
    """A contact-card reader behind pcscd, picked by the start of its name ("" takes the first reader)."""

    def __init__(self, reader_name_prefix: str = "", *,
                 on_inserted: Callable[[CardEvent], None] | None = None,
                 on_removed: Callable[[CardEvent], None] | None = None,
                 apdu_timeout: float = 3.0, poll_interval: float = 0.5, removal_grace: float = 1.5) -> None:
        self.reader_name_prefix = reader_name_prefix
        self.on_inserted = on_inserted
        self.on_removed = on_removed
        self.apdu_timeout = apdu_timeout  # an EMV read command takes well under a second on a real card
        self.poll_interval = poll_interval
        self.removal_grace = removal_grace  # pcscd polls presence every 0.4 s: time to tell "pulled" apart
        self._lock = threading.RLock()  # one read at a time; health may come from another thread
        self._stuck = _StuckCounter()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._watch_ctx: Any = None

    # --- Device contract -------------------------------------------------------------------------------

    def open(self) -> None:
        """Starts the card-event watcher; never fails, as a missing reader or pcscd shows in `health()`."""
        if self._watcher is not None and self._watcher.is_alive():
            return
        self._stop.clear()
        self._watcher = threading.Thread(target=self._watch, name="pcsc-watcher", daemon=True)
        self._watcher.start()

    def close(self) -> None:
        self._stop.set()
        ctx = self._watch_ctx
        if ctx is not None:
            try:
                scard.SCardCancel(ctx)  # wakes the watcher from SCardGetStatusChange at once
            except Exception:
                pass
        if self._watcher is not None:
            self._watcher.join(self.poll_interval + 2.0)
            self._watcher = None

    def __enter__(self) -> "PcscCardReader":
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def health(self) -> Health:
        try:
            ctx = establish_context()
        except PcscUnavailableError as exc:
            return Health.fault("pcscd_unavailable", exc.detail)
        try:
            name = self._match(list_readers(ctx))
        except PcscUnavailableError as exc:
            return Health.fault("pcscd_unavailable", exc.detail)
        finally:
            release_context(ctx)
        if name is None:
            return Health.fault("disconnected", self._no_reader_text())
        if self.stuck_sessions:
            return Health.degraded("card_mute", "a card stopped answering; it must be taken out")
        return Health.ok()

    def self_test(self) -> Health:
        """Health plus the reader's own state: a reader pcscd cannot talk to shows as unavailable."""
        health = self.health()
        if not health.usable:
            return health
        try:
            state, _atr = self._reader_state(self.reader_name())
        except CardError as exc:
            return Health.fault(exc.reason, exc.detail)
        if state & scard.SCARD_STATE_UNAVAILABLE:
            return Health.fault("reader_unavailable", "pcscd cannot talk to the reader")
        if state & scard.SCARD_STATE_MUTE:
            return Health.degraded("card_mute", "the card in the reader gives no ATR")
        return health

    # --- readers and cards -----------------------------------------------------------------------------

    @property
    def stuck_sessions(self) -> int:
        """Commands abandoned after a timeout whose card has not been pulled yet."""
        return self._stuck.value

    def _no_reader_text(self) -> str:
        return f"no PC/SC reader whose name starts with {self.reader_name_prefix!r}"

    def _match(self, names: list[str]) -> str | None:
        return next((n for n in names if n.startswith(self.reader_name_prefix)), None)

    def reader_name(self) -> str:
        ctx = establish_context()
        try:
            name = self._match(list_readers(ctx))
        finally:
            release_context(ctx)
        if name is None:
            raise ReaderUnavailableError(self._no_reader_text())
        return name

    def _reader_state(self, reader: str, wait_for_change_of: int | None = None,
                      timeout: float = 0.0) -> tuple[int, bytes]:
        ctx = establish_context()
        try:
            current = scard.SCARD_STATE_UNAWARE if wait_for_change_of is None else wait_for_change_of
            hr, states = scard.SCardGetStatusChange(ctx, int(timeout * 1000), [(reader, current)])
            code = _code(hr)
            if code == TIMEOUT and wait_for_change_of is not None:
                return wait_for_change_of, b""
            if code in SERVICE_DOWN:
                raise PcscUnavailableError(f"the PC/SC service went away: {_message(hr)}")
            if code != scard.SCARD_S_SUCCESS:
                raise ReaderUnavailableError(f"reader {reader} is gone: {_message(hr)}")
            _name, state, atr = states[0]
            return state & ~scard.SCARD_STATE_CHANGED, bytes(atr)
        finally:
            release_context(ctx)

    def card_present(self) -> bool:
        state, _atr = self._reader_state(self.reader_name())
        return bool(state & scard.SCARD_STATE_PRESENT)

    def wait_for_card(self, timeout: float) -> bool:
        """True as soon as a card is in the reader, False when `timeout` seconds pass without one."""
        return self._wait_presence(True, timeout)

    def wait_for_removal(self, timeout: float) -> bool:
        return self._wait_presence(False, timeout)

    def _wait_presence(self, want: bool, timeout: float) -> bool:
        reader = self.reader_name()
        deadline = time.monotonic() + timeout
        state, _atr = self._reader_state(reader)
        while bool(state & scard.SCARD_STATE_PRESENT) != want:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            state, _atr = self._reader_state(reader, state, min(remaining, 1.0))
        return True

    def read_bank_card(self, today: date | None = None) -> BankCard:
        with self._session() as transmit:
            return emv.read_bank_card(transmit, today)

    def read_social_security_card(self) -> SocialSecurityCard:
        with self._session() as transmit:
            return social.read_social_security_card(transmit)

    # --- sessions --------------------------------------------------------------------------------------

    class _SessionScope:
        def __init__(self, owner: "PcscCardReader") -> None:
            self.owner = owner
            self.session: _Session | None = None

        def __enter__(self) -> Callable[[bytes], bytes]:
            owner = self.owner
            owner._lock.acquire()
            try:
                reader = owner.reader_name()
                self.session = _Session(reader, owner.apdu_timeout, owner._stuck)
                self.session.connect()
            except BaseException:
                self.__exit__(None, None, None)
                raise
            return self.transmit

        def transmit(self, apdu: bytes) -> bytes:
            """Raw answer (data + SW), or the `CardError` that says why there is none."""
            session = self.session
            assert session is not None
            code, raw = session.transmit_raw(apdu)
            if code == scard.SCARD_S_SUCCESS and len(raw) >= 2:
                return raw
            if code in CARD_GONE:
                raise CardRemovedError(f"the card left {session.reader} during a read")
            if code in SERVICE_DOWN:
                raise PcscUnavailableError(f"the PC/SC service went away during a read: {_message(code)}")
            # vpcd answers a pulled card with an empty response or SCARD_E_NOT_TRANSACTED; real readers
            # with SCARD_W_REMOVED_CARD. Only the reader's presence state tells them apart from a bad card.
            if self.owner._card_left(session.reader):
                raise CardRemovedError(f"the card left {session.reader} during a read")
            if code == scard.SCARD_S_SUCCESS:
                raise CardDataError(f"answer of {len(raw)} bytes has no status word")
            raise CardError(f"transmit to {session.reader} failed: {_message(code)}")

        def __exit__(self, *exc_info: object) -> None:
            session, self.session = self.session, None
            try:
                if session is not None:
                    session.close()
            finally:
                self.owner._lock.release()

    def _session(self) -> "PcscCardReader._SessionScope":
        return PcscCardReader._SessionScope(self)

    def _card_left(self, reader: str) -> bool:
        deadline = time.monotonic() + self.removal_grace
        try:
            state, _atr = self._reader_state(reader)
            while state & scard.SCARD_STATE_PRESENT:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                state, _atr = self._reader_state(reader, state, remaining)
        except CardError:
            return True  # the reader itself went away: the card is out of reach all the same
        return True

    # --- card events -----------------------------------------------------------------------------------

    def _emit(self, callback: Callable[[CardEvent], None] | None, event: CardEvent, what: str) -> None:
        log.info("PC/SC: card %s on %s", what, event.reader)
        if callback is None:
            return
        try:
            callback(event)
        except Exception:  # a broken listener must not stop card events for the others
            log.exception("PC/SC: card-%s listener failed", what)

    def _watch(self) -> None:
        ctx: Any = None
        reader: str | None = None
        state = scard.SCARD_STATE_UNAWARE
        present: CardEvent | None = None

        def lost() -> None:
            nonlocal present
            if present is not None:
                self._emit(self.on_removed, present, "removed")
                present = None

        try:
            while not self._stop.is_set():
                if ctx is None:
                    try:
                        ctx = establish_context()
                    except PcscUnavailableError:
                        lost()
                        self._stop.wait(self.poll_interval)
                        continue
                    self._watch_ctx = ctx
                if reader is None:
                    try:
                        reader = self._match(list_readers(ctx))
                    except PcscUnavailableError:
                        reader = None
                    if reader is None:
                        lost()
                        self._stop.wait(self.poll_interval)
                        continue
                    state = scard.SCARD_STATE_UNAWARE
                hr, states = scard.SCardGetStatusChange(ctx, int(self.poll_interval * 1000), [(reader, state)])
                code = _code(hr)
                if code in (TIMEOUT, CANCELLED):
                    continue
                if code != scard.SCARD_S_SUCCESS:
                    lost()
                    reader = None
                    if code in SERVICE_DOWN:
                        self._watch_ctx = None
                        release_context(ctx)
                        ctx = None
                    self._stop.wait(self.poll_interval)
                    continue
                _name, event_state, atr = states[0]
                state = event_state & ~scard.SCARD_STATE_CHANGED
                if event_state & scard.SCARD_STATE_PRESENT:
                    if present is None:
                        present = CardEvent(reader, bytes(atr))
                        self._emit(self.on_inserted, present, "inserted")
                else:
                    lost()
        finally:
            self._watch_ctx = None
            if ctx is not None:
                release_context(ctx)


def iter_readers() -> Iterator[str]:
    """Reader names as pcscd lists them, for diagnostics (`kiosk diag`)."""
    ctx = establish_context()
    try:
        yield from list_readers(ctx)
    finally:
        release_context(ctx)
