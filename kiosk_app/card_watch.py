"""The PC/SC card reader's events at the kiosk: a social-security card inserted on the insert-card screen
identifies the patient (K1); on the screens that asked for a card (the bank card's, the bill checkout's) the
visit hears `card_inserted` / `card_removed` and reads the card itself. And the PIN pad's sign-on (签到).

Threads: the driver's watcher thread calls `_inserted` / `_removed`; the card itself is read on the reader's
own worker thread (`DeviceWorker.submit`), never on the watcher's or the Qt thread; the visit hears of it
through the runner's queue. A card that cannot be read on the insert-card screen is said on the glass through
a Qt signal. What was read is a card number for one intent: nothing here logs or keeps it.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

from PySide6.QtCore import QObject, Signal

from drivers.device import DeviceWorker
from drivers.pcsc.errors import CardError
from drivers.pcsc.reader import CardEvent
from workflows.backend import Backend, BackendError, BackendUnavailable
from workflows.card_payment import CARD_SCREENS, NOT_A_SOCIAL_CARD, sign_on_pinpad

log = logging.getLogger(__name__)

#: A card inserted this many seconds before the insert-card screen came up still identifies the patient
#: (inserted while tapping the service); an older one may be the previous patient's, left in the slot.
RECENT_SECONDS = 20.0


class Notices(QObject):
    """Carries a notice (Chinese, English) from the reader's thread to the window on the Qt thread."""

    shown = Signal(str, str)


class CardWatch:
    def __init__(self, worker: DeviceWorker, post: Callable[..., None], screen: Callable[[], str],
                 busy: Callable[[], bool] = lambda: False, clock: Callable[[], float] = time.monotonic) -> None:
        self.worker = worker  # the PC/SC reader's worker: reads run there
        self.post = post  # the workflow runner's queue
        self.screen = screen  # the visit's current screen, as the window last drew it
        self.busy = busy  # diagnostic mode: cards belong to the technician then
        self.clock = clock
        self.notices = Notices()
        self._inserted_at: float | None = None
        self._last_screen = ""

    def attach(self) -> "CardWatch":
        """Listen to the reader's card events (set before its worker opens it)."""
        reader: Any = self.worker.device
        reader.on_inserted = self._inserted
        reader.on_removed = self._removed
        return self

    # ---- on the driver's watcher thread -------------------------------------------------------------

    def _inserted(self, event: CardEvent) -> None:
        self._inserted_at = self.clock()
        if self.busy():
            return
        screen = self.screen()
        if screen == "insert_card":
            self._identify()
        elif screen in CARD_SCREENS:
            self.post("card_inserted")

    def _removed(self, event: CardEvent) -> None:
        self._inserted_at = None
        if not self.busy() and self.screen() in CARD_SCREENS:
            self.post("card_removed")

    # ---- on the Qt thread ---------------------------------------------------------------------------

    def screen_changed(self, screen: str) -> None:
        """The insert-card screen came up: a card inserted just before (while the patient tapped the service)
        counts too; one that has sat in the slot longer is not read, it may be someone else's."""
        came_up = screen == "insert_card" and self._last_screen != "insert_card"
        self._last_screen = screen
        inserted = self._inserted_at
        if came_up and inserted is not None and self.clock() - inserted <= RECENT_SECONDS and not self.busy():
            self._identify()

    # ---- on the reader's worker thread --------------------------------------------------------------

    def _identify(self) -> None:
        self.worker.submit(self._read_social_card)

    def _read_social_card(self, reader: Any) -> None:
        try:
            number = reader.read_social_security_card().card_number
        except CardError as exc:
            log.info("card on the insert-card screen not read: %s", exc.reason)
            if self.screen() == "insert_card":
                self.notices.shown.emit(*NOT_A_SOCIAL_CARD)
            return
        if self.screen() != "insert_card":  # the visit moved on while the card was read
            return
        self.post("social_card_read", card_number=number)


class PinpadSignOn:
    """签到 once the kiosk is up: the PIN pad gets its working key before the first patient needs it; asked
    again every `retry_seconds` until it worked (a visit also signs on by itself when the pad has no key)."""

    def __init__(self, backend: Backend, pinpad: Any, retry_seconds: float = 60.0) -> None:
        self.backend = backend
        self.pinpad = pinpad
        self.retry_seconds = retry_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pinpad-sign-on", daemon=True)

    def start(self) -> "PinpadSignOn":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                sign_on_pinpad(self.backend, self.pinpad)
                return
            except BackendError as exc:
                if exc.code == "CHANNEL_NOT_SUPPORTED":
                    log.info("bank cards are not accepted by this hospital; the PIN pad is not signed on")
                    return
                log.warning("PIN pad sign-on refused: %s", exc.code)
            except (BackendUnavailable, Exception) as exc:  # server away, pad away: try again later
                log.warning("PIN pad sign-on failed: %s", type(exc).__name__)
            self._stop.wait(self.retry_seconds)
