"""The PIN-pad driver for the project's serial protocol (see `protocol`).

The driver holds no key and sees no digit: it forwards a working key that arrives already encrypted under
the pad's master key (injected at manufacturing, never known to the kiosk), starts an entry, relays key
events (a count) and fetches the encrypted PIN block for the payment platform. Its logs therefore cannot
leak a PIN; they carry counts and status codes only.

Call it from one thread (the device's `DeviceWorker`); a lock still keeps `health()` from interleaving
with a command.
"""
from __future__ import annotations

import logging
import select
import threading
import time
from collections import deque
from typing import Any, Callable

import serial

from drivers.health import Health
from drivers.pinpad.base import (
    KeyEvent, KeyKind, Outcome, PinPadDisconnectedError, PinPadRefusedError, PinPadTamperedError, PinResult,
)
from drivers.pinpad.crypto import KCV_LENGTH, Algorithm
from drivers.pinpad.protocol import (
    CMD_CANCEL, CMD_EVENT, CMD_GET_PIN_BLOCK, CMD_LOAD_KEY, CMD_START_PIN, CMD_STATUS, ST_OK, ST_TAMPERED,
    STATE_TAMPERED, FrameError, NoResponseError, decode_event, encode_frame, encode_start_pin, read_frame,
    status_message,
)
from drivers.serial_line import PORT_ERRORS, SerialLine

log = logging.getLogger(__name__)

EVENT_POLL = 0.1  # how often read_pin wakes to check its own deadline while the patient thinks


class SerialPinPad(SerialLine):
    def __init__(self, port: str, baudrate: int = 9600, *, algorithm: Algorithm | str = Algorithm.SM4,
                 timeout: float = 1.0) -> None:
        self.port = str(port)
        self.baudrate = baudrate
        self.algorithm = Algorithm(algorithm)
        self.timeout = timeout  # for a command's answer; a patient's typing has its own timeout
        self._serial: serial.Serial | None = None
        self._events: deque[KeyEvent] = deque()
        self._lock = threading.RLock()

    # --- connection ------------------------------------------------------------------------------------

    def _port_settings(self) -> dict[str, Any]:
        return {"timeout": self.timeout, "write_timeout": self.timeout}

    def _open_error(self, exc: BaseException) -> Exception:
        return PinPadDisconnectedError(f"密码键盘无法连接 / cannot open the PIN pad on {self.port}: {exc}")

    def _after_open(self) -> None:
        self._events.clear()

    # --- health ----------------------------------------------------------------------------------------

    def self_test(self) -> Health:
        """The STATUS command: a silent pad is disconnected, a tampered one must not take PINs."""
        try:
            data = self._command(CMD_STATUS, check=False)
        except (PinPadDisconnectedError, NoResponseError) as exc:
            return Health.fault("disconnected", str(exc))
        except FrameError as exc:
            return Health.degraded("protocol_error", str(exc))
        if data[0] == ST_TAMPERED or (len(data) > 1 and data[1] == STATE_TAMPERED):
            return Health.fault("tampered", status_message(ST_TAMPERED))
        if data[0] != ST_OK:
            return Health.degraded("pad_status", status_message(data[0]))
        if len(data) > 2 and data[2] == 0:
            return Health.degraded("no_working_key", "密码键盘未装载工作密钥 / no working key loaded yet")
        return Health.ok()

    def health(self) -> Health:
        try:
            self.open()
        except PinPadDisconnectedError as exc:
            return Health.fault("disconnected", str(exc))
        return self.self_test()

    # --- verbs -----------------------------------------------------------------------------------------

    def load_working_key(self, encrypted_key: bytes, check_value: bytes) -> None:
        """Hand the pad a working key from the payment platform, still encrypted under its master key.

        The pad decrypts it inside and refuses it unless its check value matches, so a key garbled in
        transit (or meant for another pad) fails here rather than as a wrong PIN at the bank.
        """
        if len(encrypted_key) != 16 or len(check_value) != KCV_LENGTH:
            raise ValueError(f"the encrypted key is 16 bytes and its check value {KCV_LENGTH}")
        self._command(CMD_LOAD_KEY, bytes([self.algorithm.code]) + encrypted_key + check_value)
        log.info("PIN pad %s: %s working key loaded", self.port, self.algorithm.value)

    def read_pin(self, pan: str, *, min_length: int = 6, max_length: int = 6, timeout: float = 30.0,
                 on_key: Callable[[KeyEvent], None] | None = None) -> PinResult:
        """Run one PIN entry for card `pan`; blocks until the patient confirms, cancels or runs out of time.

        `on_key` gets every event (a count for the screen's ●●●); it runs on this thread.
        """
        if not 4 <= min_length <= max_length <= 12:
            raise ValueError("PIN lengths must satisfy 4 <= min <= max <= 12")
        if not pan.isascii() or not pan.isdigit() or not 12 <= len(pan) <= 19:
            raise ValueError("the PAN is 12-19 digits")
        timeout_s = max(1, min(255, round(timeout)))
        with self._lock:
            self._events.clear()
            self._command(CMD_START_PIN, encode_start_pin(pan, min_length, max_length, timeout_s))
            log.info("PIN pad %s: entry started (%d-%d digits, %d s)", self.port, min_length, max_length,
                     timeout_s)
            # The pad times itself out; our own deadline is a backstop for a pad that went quiet.
            deadline = time.monotonic() + timeout_s + 2 * self.timeout
            while True:
                event = self._next_event(deadline)
                if event is None:
                    self._try_cancel()
                    log.info("PIN pad %s: the pad never reported an end to the entry", self.port)
                    return PinResult(Outcome.TIMED_OUT)
                log.debug("PIN pad %s: key event %s, %d digits", self.port, event.kind.value, event.count)
                self._notify(on_key, event)
                if event.kind is KeyKind.ENTER:
                    return self._fetch_block(event.count)
                if event.kind is KeyKind.CANCEL:
                    return PinResult(Outcome.CANCELLED)
                if event.kind is KeyKind.TIMEOUT:
                    return PinResult(Outcome.TIMED_OUT)

    def cancel(self) -> None:
        """Abort an entry from the kiosk's side (the patient walked away from the screen)."""
        self._command(CMD_CANCEL)

    # --- internals -------------------------------------------------------------------------------------

    def _fetch_block(self, digits: int) -> PinResult:
        data = self._command(CMD_GET_PIN_BLOCK)
        if len(data) < 2:
            raise FrameError("PIN 块应答过短 / the PIN-block answer is too short")
        try:
            alg = Algorithm.from_code(data[1])
        except ValueError as exc:
            raise FrameError(f"PIN 块算法未知 / {exc}") from None
        block = data[2:]
        if len(block) != alg.block_size:
            raise FrameError(f"PIN 块长度错误 / a {alg.value} PIN block is {alg.block_size} bytes, got {len(block)}")
        log.info("PIN pad %s: %d-digit PIN entered, encrypted with %s", self.port, digits, alg.value)
        return PinResult(Outcome.ENTERED, digits, block, alg.value)

    @staticmethod
    def _notify(on_key: Callable[[KeyEvent], None] | None, event: KeyEvent) -> None:
        if on_key is None:
            return
        try:
            on_key(event)
        except Exception:
            log.exception("on_key handler failed")

    def _try_cancel(self) -> None:
        try:
            self._command(CMD_CANCEL)
        except (FrameError, PinPadRefusedError):
            pass

    def _next_event(self, deadline: float) -> KeyEvent | None:
        while not self._events:
            if time.monotonic() > deadline:
                return None
            try:
                cmd, data = self._read(EVENT_POLL)
            except NoResponseError:
                continue
            if cmd == CMD_EVENT:
                self._events.append(decode_event(data))
            else:
                log.debug("PIN pad %s: ignored an unexpected frame 0x%02X during entry", self.port, cmd)
        return self._events.popleft()

    def _command(self, cmd: int, data: bytes = b"", *, check: bool = True) -> bytes:
        """Send a command and return its answer's data (status first); events that arrive meanwhile wait."""
        with self._lock:
            self._write(encode_frame(cmd, data))
            deadline = time.monotonic() + self.timeout
            while True:
                answer_cmd, answer = self._read(max(0.01, deadline - time.monotonic()))
                if answer_cmd == CMD_EVENT:
                    self._events.append(decode_event(answer))
                    continue
                if answer_cmd != cmd:
                    log.debug("PIN pad %s: ignored a stray answer 0x%02X", self.port, answer_cmd)
                    if time.monotonic() > deadline:
                        raise NoResponseError()
                    continue
                if not answer:
                    raise FrameError("应答缺少状态字节 / the answer has no status byte")
                if check and answer[0] == ST_TAMPERED:
                    raise PinPadTamperedError(answer[0], status_message(answer[0]))
                if check and answer[0] != ST_OK:
                    raise PinPadRefusedError(answer[0], status_message(answer[0]))
                return answer

    def _port(self) -> serial.Serial:
        if self._serial is None:
            raise PinPadDisconnectedError(f"密码键盘未打开 / the PIN pad on {self.port} is not open")
        return self._serial

    def _write(self, frame: bytes) -> None:
        port = self._port()
        try:
            port.write(frame)
            port.flush()
        except PORT_ERRORS as exc:
            self.close()
            raise PinPadDisconnectedError(f"密码键盘连接中断 / the PIN pad on {self.port} went away: {exc}") from exc

    def _read(self, wait: float) -> tuple[int, bytes]:
        """The next frame, waiting up to `wait` for it to start; once started it gets the full timeout."""
        port = self._port()
        deadline = time.monotonic() + wait
        try:
            # select, not in_waiting: a hung-up line (cable pulled) shows as readable and the read then fails,
            # whereas its input queue just stays empty.
            while not port.in_waiting:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise NoResponseError()
                if select.select([port.fileno()], [], [], min(remaining, EVENT_POLL))[0]:
                    break
            return read_frame(port.read)
        except NoResponseError:
            raise
        except FrameError:
            self._drain(port)
            raise
        except PORT_ERRORS as exc:
            self.close()
            raise PinPadDisconnectedError(f"密码键盘连接中断 / the PIN pad on {self.port} went away: {exc}") from exc

    @staticmethod
    def _drain(port: serial.Serial) -> None:
        """Discard the rest of a broken frame so the next one starts on a clean line."""
        try:
            saved, port.timeout = port.timeout, 0.05
            try:
                while port.read(4096):
                    pass
            finally:
                port.timeout = saved
        except PORT_ERRORS:
            pass
