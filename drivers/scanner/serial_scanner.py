"""A barcode/QR scanner on a serial line (RS-232 or a USB virtual COM port), read with pyserial.

Scanners in "serial" mode send each scan as one line. Terminators differ by model and by the setting a
technician last scanned from the manual, so CR, LF and CR LF are all accepted. Chinese QR payloads arrive
as UTF-8 from modern scanners and as GB18030 from older ones configured for the Chinese code page; UTF-8 is
tried first because it rarely decodes GB18030 bytes by accident, while GB18030 decodes much UTF-8 wrongly.

Self-test: many serial scanners (Honeywell, Newland and their clones) answer a menu query framed as
`SYN M CR` + command + terminator. We send Honeywell's `REVINF.` (revision information) and accept an
answer that echoes `REVINF` and ends in ACK `.`. That is modelled on the Honeywell serial programming
commands; other brands use other commands, and some answer none. So the query is optional (`query=None`
makes `self_test` only check that the port opens and is still there), and a scanner that stays silent is
reported `degraded`, not `fault`: it may scan perfectly well.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

import serial

from drivers.health import Health
from drivers.scanner.base import (
    MAX_SCAN_LENGTH, ScanDecodeError, ScanLine, ScannerDisconnectedError, strip_aim,
)
from drivers.serial_line import PORT_ERRORS, SerialLine

log = logging.getLogger(__name__)


HONEYWELL_REVINF = b"\x16M\rREVINF."
QUERY_ECHO = b"REVINF"
ACK, ENQ, NAK = 0x06, 0x05, 0x15
CR, LF = 0x0D, 0x0A
POLL = 0.05  # the port's own read timeout; read_scan loops on it up to the caller's timeout


def decode_scan(raw: bytes) -> str:
    """UTF-8 first, then GB18030; anything else is a clear ScanDecodeError, never a UnicodeDecodeError."""
    for encoding in ("utf-8", "gb18030"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise ScanDecodeError(f"扫码内容无法识别 / the scan ({len(raw)} bytes) is neither UTF-8 nor GB18030 text; "
                          "check the scanner's code page and baud rate")


class LineSplitter:
    """Cuts a byte stream into lines at CR, LF or CR LF, across reads that split a terminator in two."""

    def __init__(self, max_length: int = MAX_SCAN_LENGTH) -> None:
        self.max_length = max_length
        self._buf = bytearray()
        self._after_cr = False

    def feed(self, data: bytes) -> None:
        self._buf += data

    def take(self) -> bytes | None:
        """The next complete non-empty line, or None when no terminator has arrived yet."""
        while True:
            if self._after_cr and self._buf:
                if self._buf[0] == LF:
                    del self._buf[0]
                self._after_cr = False
            ends = [i for i in (self._buf.find(CR), self._buf.find(LF)) if i >= 0]
            if not ends:
                if len(self._buf) > self.max_length:
                    size = len(self._buf)
                    self._buf.clear()
                    raise ScanDecodeError(f"扫码内容过长 / {size} bytes without a line end; discarded")
                return None
            end = min(ends)
            line = bytes(self._buf[:end])
            self._after_cr = self._buf[end] == CR
            del self._buf[:end + 1]
            if len(line) > self.max_length:
                raise ScanDecodeError(f"扫码内容过长 / a {len(line)}-byte line; discarded")
            if line:
                return line

    def extract(self, start: bytes, ends: tuple[bytes, ...]) -> bytes | None:
        """Remove and return `start ... end` (a query reply) from the buffer, leaving scans around it."""
        i = self._buf.find(start)
        if i < 0:
            return None
        for end in ends:
            j = self._buf.find(end, i + len(start))
            if j >= 0:
                reply = bytes(self._buf[i:j + len(end)])
                del self._buf[i:j + len(end)]
                return reply
        return None

    def clear(self) -> None:
        self._buf.clear()
        self._after_cr = False


class SerialScanner(SerialLine):
    def __init__(self, port: str, baudrate: int = 9600, *, aim_prefix: bool = False,
                 query: bytes | None = None, query_timeout: float = 1.0) -> None:
        self.port = str(port)
        self.baudrate = baudrate
        self.aim_prefix = aim_prefix
        self.query = query
        self.query_timeout = query_timeout
        self._serial: serial.Serial | None = None
        self._lines = LineSplitter()
        self._lock = threading.RLock()

    # --- connection ------------------------------------------------------------------------------------

    def _port_settings(self) -> dict[str, Any]:
        return {"timeout": POLL, "write_timeout": 1.0}

    def _open_error(self, exc: BaseException) -> Exception:
        return ScannerDisconnectedError(f"扫码器无法连接 / cannot open the scanner on {self.port}: {exc}")

    def _after_open(self) -> None:
        self._lines.clear()

    # --- health ----------------------------------------------------------------------------------------

    def health(self) -> Health:
        """Open if needed; a port whose device node vanished (USB adapter unplugged) is disconnected.

        Checking the node costs nothing and catches an unplug while no scan is in flight; a plain RS-232
        port's node never vanishes, for those an unplugged scanner is indistinguishable from an idle one.
        """
        with self._lock:
            if self.is_open and not os.path.exists(self.port):
                self.close()
            try:
                self.open()
                assert self._serial is not None
                self._serial.in_waiting  # an ioctl: fails on a port whose other end is gone
            except ScannerDisconnectedError as exc:
                return Health.fault("disconnected", str(exc))
            except PORT_ERRORS as exc:
                self.close()
                return Health.fault("disconnected", f"扫码器连接中断 / the scanner on {self.port} went away: {exc}")
            return Health.ok()

    def self_test(self) -> Health:
        health = self.health()
        if not health.usable or self.query is None:
            return health
        with self._lock:
            try:
                reply = self._query()
            except ScannerDisconnectedError as exc:
                return Health.fault("disconnected", str(exc))
        if reply is None:
            return Health.degraded("no_self_test_reply",
                                   f"扫码器未应答查询 / the scanner did not answer {self.query!r}; it may still scan")
        if reply[-2] != ACK:
            return Health.degraded("self_test_refused", f"扫码器拒绝查询 / the scanner answered {reply!r}")
        return Health.ok()

    def _query(self) -> bytes | None:
        assert self.query is not None
        self._write(self.query)
        deadline = time.monotonic() + self.query_timeout
        ends = tuple(bytes([status]) + b"." for status in (ACK, ENQ, NAK))
        while True:
            reply = self._lines.extract(QUERY_ECHO, ends)
            if reply is not None:
                return reply
            if time.monotonic() > deadline:
                return None
            self._lines.feed(self._read_some())

    # --- scans -----------------------------------------------------------------------------------------

    def read_scan(self, timeout: float) -> ScanLine | None:
        """The next scan within `timeout` seconds, or None. Partial lines wait in the buffer for next time."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                raw = self._lines.take()
                if raw is not None:
                    text = decode_scan(raw)
                    symbology = None
                    if self.aim_prefix:
                        text, symbology = strip_aim(text)
                    log.debug("scan: %d bytes, symbology %s", len(raw), symbology)
                    return ScanLine(text, symbology)
                if time.monotonic() >= deadline:
                    return None
                self._lines.feed(self._read_some())

    # --- wire ------------------------------------------------------------------------------------------

    def _port(self) -> serial.Serial:
        if self._serial is None:
            raise ScannerDisconnectedError(f"扫码器未打开 / the scanner on {self.port} is not open")
        return self._serial

    def _read_some(self) -> bytes:
        port = self._port()
        try:
            return port.read(max(1, port.in_waiting))
        except PORT_ERRORS as exc:
            self.close()
            raise ScannerDisconnectedError(
                f"扫码器连接中断 / the scanner on {self.port} went away: {exc}") from exc

    def _write(self, data: bytes) -> None:
        port = self._port()
        try:
            port.write(data)
            port.flush()
        except PORT_ERRORS as exc:
            self.close()
            raise ScannerDisconnectedError(
                f"扫码器连接中断 / the scanner on {self.port} went away: {exc}") from exc
