"""What every serial device shares, on the host's side and on the simulator's side.

The ID-card reader, the scanner, the PIN pad and the serial receipt printer all open one port on demand,
close it quietly when the device went away, and report a failed open in their own words. Their simulators
all serve the device end of a pty pair from one thread. The differences live in the subclasses.
"""
from __future__ import annotations

import termios
import threading
from typing import Any

import serial

# A port whose other end vanished fails in any of these, depending on which call noticed first.
PORT_ERRORS: tuple[type[BaseException], ...] = (serial.SerialException, OSError, termios.error)


class SerialLine:
    """Host end. Subclasses set `port`, `baudrate`, `_serial = None` and `_lock` (an RLock) in __init__."""

    port: str
    baudrate: int
    _serial: serial.Serial | None
    _lock: Any

    @property
    def is_open(self) -> bool:
        return self._serial is not None and self._serial.is_open

    def open(self) -> None:
        with self._lock:
            if self.is_open:
                return
            try:
                self._serial = serial.Serial(self.port, self.baudrate, **self._port_settings())
            except (*PORT_ERRORS, ValueError) as exc:
                self._serial = None
                raise self._open_error(exc) from exc
            self._after_open()

    def close(self) -> None:
        with self._lock:
            port, self._serial = self._serial, None
            if port is not None:
                try:
                    port.close()
                except PORT_ERRORS:
                    pass

    def __enter__(self) -> Any:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _port_settings(self) -> dict[str, Any]:
        """Timeouts for `serial.Serial`; each device waits as long as its protocol needs."""
        return {"timeout": 1.0, "write_timeout": 1.0}

    def _open_error(self, exc: BaseException) -> Exception:
        """The driver's own 'disconnected' error, in words for the technician."""
        raise NotImplementedError

    def _after_open(self) -> None:
        """Forget what was half-received on the old connection."""


class SerialSimulator:
    """Device end, for tests and simulated terminals. Subclasses set `port`, `baudrate`, `_serial = None`,
    `_stop` (an Event) and `_thread = None`, and implement `_serve` (loop until `_stop` is set)."""

    THREAD_NAME = "serial-simulator"
    port: str
    baudrate: int
    _serial: serial.Serial | None
    _stop: threading.Event
    _thread: threading.Thread | None

    def start(self) -> None:
        self._serial = serial.Serial(self.port, self.baudrate, timeout=0.05)
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name=self.THREAD_NAME, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Also the device switched off: it stops answering while the host's port stays open."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
            self._thread = None
        if self._serial:
            try:
                self._serial.close()
            except PORT_ERRORS:
                pass
            self._serial = None

    def _serve(self) -> None:
        raise NotImplementedError
