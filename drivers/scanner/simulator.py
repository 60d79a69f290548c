"""A serial barcode scanner on the device end of a pty pair, for tests and demos without hardware.

`scan(text)` sends what a scanner sends when a code is shown to it; `send_raw` sends any bytes (noise,
another code page); the Honeywell-style `SYN M CR REVINF.` query is answered so `self_test` has something
to talk to. Unplugging is done by closing the `SerialPair`, exactly like pulling a cable.
"""
from __future__ import annotations

import logging
import os
import threading

import serial

from drivers.serial_line import PORT_ERRORS, SerialSimulator

log = logging.getLogger(__name__)

TERMINATORS = {"CR": b"\r", "LF": b"\n", "CRLF": b"\r\n"}
REVINF_REPLY = b"REVINF\r\nProduct Name: Kiosk scanner simulator\r\nFirmware Version: SIM-1.0\r\n\x06."


class ScannerSimulator(SerialSimulator):
    THREAD_NAME = "scanner-simulator"

    def __init__(self, port: str | os.PathLike[str], baudrate: int = 9600, *, terminator: str = "CR",
                 encoding: str = "utf-8", aim: str | None = None, answers_query: bool = True) -> None:
        self.port = str(port)
        self.baudrate = baudrate
        self.terminator = TERMINATORS[terminator]
        self.encoding = encoding
        self.aim = aim  # e.g. "]Q1": prefixed to every scan, as a scanner with AIM IDs enabled does
        self.answers_query = answers_query
        self.received = bytearray()  # what the host sent, for tests
        self._serial: serial.Serial | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- the patient's side ----------------------------------------------------------------------------

    def scan(self, text: str, *, terminator: str | None = None, encoding: str | None = None) -> None:
        payload = ((self.aim or "") + text).encode(encoding or self.encoding)
        self.send_raw(payload + (TERMINATORS[terminator] if terminator else self.terminator))

    def send_raw(self, data: bytes) -> None:
        with self._lock:
            if self._serial is None:
                raise RuntimeError("the simulator is not started")
            self._serial.write(data)
            self._serial.flush()

    # --- the host's side -------------------------------------------------------------------------------

    def _serve(self) -> None:
        port = self._serial
        assert port is not None
        pending = bytearray()
        while not self._stop.is_set():
            try:
                data = port.read(64)
            except (*PORT_ERRORS, TypeError):
                return  # the pty pair went away (cable pulled)
            if not data:
                continue
            self.received += data
            pending += data
            if b"\x16M\rREVINF." in pending:
                pending.clear()
                if self.answers_query:
                    try:
                        self.send_raw(REVINF_REPLY)
                    except PORT_ERRORS:
                        return
            del pending[:-32]
