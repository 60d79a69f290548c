"""The ID-card reader driver (2nd-generation SAM over a serial line) and the poller that watches it.

One thread owns the serial port at a time: the poller's. `health()` may be called from elsewhere (fleet
agent, diagnostics); a lock keeps its command from interleaving with a poll.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

import serial

from drivers.device import Reporting
from drivers.health import Health
from drivers.idcard.protocol import (
    CMD_FIND_CARD, CMD_READ_BASIC, CMD_SAM_STATUS, CMD_SELECT_CARD, SW3_FIND_OK, SW3_NO_CARD, SW3_SAM_FAULT,
    SW3_SELECT_FAILED, SW3_SUCCESS, AnyCard, FrameError, IdCardError, NoResponseError, Response,
    decode_basic_info, decode_response, encode_request, read_frame,
)
from drivers.serial_line import PORT_ERRORS, SerialLine

log = logging.getLogger(__name__)



class ReaderDisconnectedError(Exception):
    """The serial port cannot be opened or vanished (cable pulled, USB adapter reset)."""


class SerialIdCardReader(SerialLine):
    def __init__(self, port: str, baudrate: int = 115200, timeout: float = 1.0) -> None:
        self.port = str(port)
        self.baudrate = baudrate
        self.timeout = timeout
        self._serial: serial.Serial | None = None
        self._lock = threading.RLock()

    # --- connection ------------------------------------------------------------------------------------

    def _port_settings(self) -> dict[str, Any]:
        return {"timeout": self.timeout, "write_timeout": self.timeout}

    def _open_error(self, exc: BaseException) -> Exception:
        return ReaderDisconnectedError(f"身份证阅读器无法连接 / cannot open the ID-card reader on {self.port}: {exc}")

    # --- health ----------------------------------------------------------------------------------------

    def self_test(self) -> Health:
        """Ask the SAM for its status; a reader whose SAM failed its self-test cannot read any card."""
        try:
            response = self._transact(CMD_SAM_STATUS)
        except ReaderDisconnectedError as exc:
            return Health.fault("disconnected", str(exc))
        except NoResponseError as exc:  # the port is there but nothing answers: power, or a hung reader
            return Health.fault("no_answer", str(exc))
        except FrameError as exc:
            return Health.degraded("protocol_error", str(exc))
        if response.sw3 == SW3_SAM_FAULT:
            return Health.fault("sam_fault", response.message)
        if response.sw3 != SW3_SUCCESS:
            return Health.degraded("sam_status", response.message)
        return Health.ok()

    def health(self) -> Health:
        """Opens the port if needed, so a reader that came back after an outage reports ok again."""
        try:
            self.open()
        except ReaderDisconnectedError as exc:
            return Health.fault("disconnected", str(exc))
        return self.self_test()

    # --- card verbs ------------------------------------------------------------------------------------

    def find_card(self) -> bool:
        response = self._transact(CMD_FIND_CARD)
        if response.sw3 == SW3_NO_CARD:
            return False
        response.expect(SW3_FIND_OK)
        return True

    def select_card(self) -> bool:
        response = self._transact(CMD_SELECT_CARD)
        if response.sw3 == SW3_SELECT_FAILED:
            return False
        response.expect(SW3_SUCCESS)
        return True

    def read_identity(self) -> AnyCard:
        response = self._transact(CMD_READ_BASIC).expect(SW3_SUCCESS)
        return decode_basic_info(response.data)

    def read_card(self) -> AnyCard | None:
        """Find, select and read; None when no card is on the reader (or it left before it was selected)."""
        with self._lock:
            if not self.find_card() or not self.select_card():
                return None
            return self.read_identity()

    # --- wire ------------------------------------------------------------------------------------------

    def _transact(self, command: bytes, payload: bytes = b"") -> Response:
        with self._lock:
            port = self._serial
            if port is None:
                raise ReaderDisconnectedError(f"身份证阅读器未打开 / the ID-card reader on {self.port} is not open")
            try:
                port.reset_input_buffer()
                port.write(encode_request(command, payload))
                frame = read_frame(port.read)
            except FrameError:
                self._drain(port)
                raise
            except PORT_ERRORS as exc:
                self.close()
                raise ReaderDisconnectedError(
                    f"身份证阅读器连接中断 / the ID-card reader on {self.port} went away: {exc}") from exc
            try:
                return decode_response(frame)
            except FrameError:
                self._drain(port)
                raise

    @staticmethod
    def _drain(port: serial.Serial) -> None:
        """Discard the rest of a broken frame so the next command starts on a clean line."""
        try:
            port.reset_input_buffer()
            saved, port.timeout = port.timeout, 0.05
            try:
                while port.read(4096):
                    pass
            finally:
                port.timeout = saved
        except PORT_ERRORS:
            pass  # the next command reports the broken port


class IdCardPoller(Reporting):
    """Polls the reader on its own daemon thread and reports each card presentation once.

    A card is reported again only after the reader stopped finding it (taken away), so a patient who leaves
    the card on the reader does not start a second visit. A continuing outage is reported once, not every
    poll; the port is reopened on each poll until it comes back.
    """

    MIN_INTERVAL = 0.3  # the SAM needs this much between find-card commands

    def __init__(self, reader: SerialIdCardReader, on_card: Callable[[AnyCard], None],
                 on_error: Callable[[Exception], None] | None = None, interval: float = 0.5,
                 on_health: Callable[[Health], None] | None = None) -> None:
        if interval < self.MIN_INTERVAL:
            raise ValueError(f"interval must be at least {self.MIN_INTERVAL} s, got {interval}")
        self.reader = reader
        self.on_card = on_card
        self.on_error = on_error or (lambda exc: log.warning("ID-card reader: %s", exc))
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._card_present = False
        self._last_error: str | None = None
        self.on_health = on_health or (lambda health: None)
        self._health = Health.fault("not_started", "the reader has not been polled yet")
        self._silent_polls = 0

    def start(self) -> None:
        if self._thread and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="idcard-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=self.interval + 3 * self.reader.timeout + 1)
            self._thread = None
        self.reader.close()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def rearm(self) -> None:
        """Forget the card already reported, so one still lying on the reader is read on the next poll.

        Called when a screen starts asking for a card: a patient who laid the card down before touching the
        service should not have to lift it and lay it down again."""
        self._card_present = False

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self.poll_once()
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def health(self) -> Health:
        """The outcome of the last poll: the poller owns the port, so nobody else may talk to the reader."""
        return self._health

    def poll_once(self) -> None:
        try:
            self.reader.open()
            if not self.reader.find_card():
                self._card_present = False
            elif not self._card_present and self.reader.select_card():
                card = self.reader.read_identity()
                self._card_present = True
                self._last_error = None
                self._set_health(Health.ok())
                self._deliver(card)
                return
            self._last_error = None
            self._set_health(Health.ok())
        except ReaderDisconnectedError as exc:
            self.reader.close()
            self._set_health(Health.fault("disconnected", str(exc)))
            self._report(exc, dedupe=True)
        except IdCardError as exc:
            if exc.code == SW3_SAM_FAULT:
                self._set_health(Health.fault("sam_fault", str(exc)))
            self._report(exc, dedupe=False)
        except NoResponseError as exc:  # once is noise; twice running is a reader that is off or hung
            self._silent_polls += 1
            if self._silent_polls >= 2:
                self._set_health(Health.fault("no_answer", str(exc)))
            self._report(exc, dedupe=True)
        except FrameError as exc:  # one bad frame is noise on the line, not a broken reader
            self._report(exc, dedupe=False)
        except Exception as exc:  # a poller that dies silently leaves the kiosk deaf; keep going
            log.exception("unexpected error while polling the ID-card reader")
            self._report(exc, dedupe=False)

    def _set_health(self, health: Health) -> None:
        if health.usable:
            self._silent_polls = 0
        if health != self._health:
            self._health = health
            self._call(self.on_health, health, "on_health")

    def _deliver(self, card: AnyCard) -> None:
        self._call(self.on_card, card, "on_card")
