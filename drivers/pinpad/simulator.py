"""An encrypting PIN pad on the device end of a pty pair: the only place a clear PIN ever exists.

It holds the master keys as if injected at manufacturing, decrypts working keys inside, collects the digits
the test "presses", and answers GET_PIN_BLOCK with the format-0 block encrypted under the working key. The
digits never leave it in clear and are never logged. `tampered = True` is the tamper switch: keys erased,
key commands refused. Unplugging is done by closing the `SerialPair`.
"""
from __future__ import annotations

import logging
import os
import threading
import time

import serial

from drivers.pinpad.base import KeyEvent, KeyKind
from drivers.pinpad.crypto import Algorithm, clear_pin_block, decrypt, encrypt, kcv
from drivers.pinpad.protocol import (
    CMD_CANCEL, CMD_GET_PIN_BLOCK, CMD_LOAD_KEY, CMD_START_PIN, CMD_STATUS, ST_BAD_FRAME, ST_BAD_PARAMETER,
    ST_BUSY, ST_KCV_MISMATCH, ST_NO_KEY, ST_NO_PIN, ST_OK, ST_TAMPERED, ST_UNKNOWN_COMMAND, STATE_NORMAL,
    STATE_TAMPERED, FrameError, NoResponseError, decode_start_pin, encode_event, encode_frame, read_frame,
)
from drivers.serial_line import PORT_ERRORS, SerialSimulator

log = logging.getLogger(__name__)

# Test master keys: what the key-injection room would have put into this (simulated) pad.
DEMO_MASTER_KEYS = {
    Algorithm.SM4: bytes.fromhex("1234567890ABCDEFABCDEF0987654321"),
    Algorithm.TDES: bytes.fromhex("0123456789ABCDEFFEDCBA9876543210"),
}


class PinPadSimulator(SerialSimulator):
    THREAD_NAME = "pinpad-simulator"

    def __init__(self, port: str | os.PathLike[str], baudrate: int = 9600,
                 master_keys: dict[Algorithm, bytes] | None = None) -> None:
        self.port = str(port)
        self.baudrate = baudrate
        self.master_keys = dict(master_keys or DEMO_MASTER_KEYS)
        self.tampered = False
        self.commands: list[int] = []  # command codes received, for tests
        self._working: tuple[Algorithm, bytes] | None = None
        self._entry: dict[str, object] | None = None  # pan, min, max, deadline while an entry runs
        self._digits: list[str] = []
        self._pan = ""
        self._entered = False
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._serial: serial.Serial | None = None

    def __repr__(self) -> str:
        return f"PinPadSimulator({self.port!r}, <{len(self._digits)} digits>)"

    # --- the patient's side ----------------------------------------------------------------------------

    @property
    def entering(self) -> bool:
        return self._entry is not None

    def wait_for_entry(self, timeout: float = 3.0) -> bool:
        """For tests: wait until the host has started an entry, so presses are not lost."""
        deadline = time.monotonic() + timeout
        while not self.entering:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def press(self, key: str) -> None:
        """A key press: "0".."9", "clear", "cancel" or "enter". Ignored when no entry runs, as on a real pad."""
        with self._lock:
            if self._entry is None or self.tampered:
                return
            if key.isdigit() and len(key) == 1:
                if len(self._digits) >= int(self._entry["max"]):  # type: ignore[call-overload]
                    return  # a real pad beeps; nothing goes to the host
                self._digits.append(key)
                self._send(encode_event(KeyEvent(KeyKind.DIGIT, len(self._digits))))
            elif key == "clear":
                self._digits.clear()
                self._send(encode_event(KeyEvent(KeyKind.CLEAR, 0)))
            elif key == "cancel":
                self._end_entry()
                self._send(encode_event(KeyEvent(KeyKind.CANCEL, 0)))
            elif key == "enter":
                if len(self._digits) < int(self._entry["min"]):  # type: ignore[call-overload]
                    return  # too short: a real pad beeps and waits
                self._entered = True
                count = len(self._digits)
                self._entry = None
                self._send(encode_event(KeyEvent(KeyKind.ENTER, count)))
            else:
                raise ValueError(f"unknown key {key!r}")

    def type_pin(self, pin: str, enter: bool = True) -> None:
        for digit in pin:
            self.press(digit)
        if enter:
            self.press("enter")

    def send_raw(self, data: bytes) -> None:
        """Put any bytes on the line (noise, a broken frame)."""
        with self._lock:
            self._send(data)

    # --- the host's side -------------------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        if self._serial is None:
            return
        try:
            self._serial.write(data)
            self._serial.flush()
        except PORT_ERRORS:
            pass  # the line is gone; the serve loop notices and ends

    def _end_entry(self) -> None:
        self._entry = None
        self._digits.clear()
        self._entered = False

    def _serve(self) -> None:
        port = self._serial
        assert port is not None
        while not self._stop.is_set():
            self._check_timeout()
            try:
                cmd, data = read_frame(port.read)
            except NoResponseError:
                continue
            except FrameError as exc:
                log.debug("PIN pad simulator: broken request (%s)", type(exc).__name__)
                with self._lock:
                    self._send(encode_frame(0x00, bytes([ST_BAD_FRAME])))
                continue
            except (*PORT_ERRORS, TypeError):
                return  # the pty pair went away (cable pulled)
            with self._lock:
                self.commands.append(cmd)
                self._send(encode_frame(cmd, self._handle(cmd, data)))

    def _check_timeout(self) -> None:
        with self._lock:
            if self._entry is not None and time.monotonic() > float(self._entry["deadline"]):  # type: ignore[arg-type]
                self._end_entry()
                self._send(encode_event(KeyEvent(KeyKind.TIMEOUT, 0)))

    def _handle(self, cmd: int, data: bytes) -> bytes:
        if cmd == CMD_STATUS:
            state = STATE_TAMPERED if self.tampered else STATE_NORMAL
            return bytes([ST_OK, state, self._working[0].code if self._working else 0])
        if self.tampered:
            self._working = None  # a tamper event erases the keys
            self._end_entry()
            return bytes([ST_TAMPERED])
        if cmd == CMD_LOAD_KEY:
            return bytes([self._load_key(data)])
        if cmd == CMD_START_PIN:
            if self._working is None:
                return bytes([ST_NO_KEY])
            if self._entry is not None:
                return bytes([ST_BUSY])
            try:
                pan, min_len, max_len, timeout_s = decode_start_pin(data)
            except (ValueError, UnicodeDecodeError):
                return bytes([ST_BAD_PARAMETER])
            self._end_entry()
            self._entry = {"pan": pan, "min": min_len, "max": max_len,
                           "deadline": time.monotonic() + timeout_s}
            self._pan = pan
            return bytes([ST_OK])
        if cmd == CMD_GET_PIN_BLOCK:
            if self._working is None:
                return bytes([ST_NO_KEY])
            if not self._entered:
                return bytes([ST_NO_PIN])
            alg, key = self._working
            block = encrypt(alg, key, clear_pin_block(alg, "".join(self._digits), self._pan))
            self._end_entry()  # one block per entry; the digits are gone now
            return bytes([ST_OK, alg.code]) + block
        if cmd == CMD_CANCEL:
            self._end_entry()
            return bytes([ST_OK])
        return bytes([ST_UNKNOWN_COMMAND])

    def _load_key(self, data: bytes) -> int:
        if len(data) != 1 + 16 + 4:
            return ST_BAD_PARAMETER
        try:
            alg = Algorithm.from_code(data[0])
        except ValueError:
            return ST_BAD_PARAMETER
        master = self.master_keys.get(alg)
        if master is None:
            return ST_NO_KEY
        key = decrypt(alg, master, data[1:17])
        if kcv(alg, key) != data[17:]:
            return ST_KCV_MISMATCH
        self._working = (alg, key)
        return ST_OK
