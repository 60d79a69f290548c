"""A 2nd-generation ID-card reader on the far end of a serial line, for tests and demos without hardware.

It speaks the SAM frame protocol byte for byte, so the real driver runs unchanged against it; faults can be
injected one response at a time to prove the driver survives a noisy cable.
"""
from __future__ import annotations

import logging
import os
import termios
import threading
from datetime import date

import serial

from drivers.idcard.idnumber import check_digit
from drivers.idcard.protocol import (
    CMD_FIND_CARD, CMD_READ_BASIC, CMD_SAM_STATUS, CMD_SELECT_CARD, MIN_REQUEST_LENGTH, PHOTO_LENGTH,
    SW3_FIND_OK, SW3_NO_CARD, SW3_READ_FAILED, SW3_SAM_FAULT, SW3_SELECT_FAILED, SW3_SUCCESS, ChecksumError,
    FrameError, IdentityCard, NoResponseError, decode_request, encode_basic_info, encode_response, read_frame,
)

log = logging.getLogger(__name__)

FAULTS = frozenset({"bad_checksum", "truncated", "wrong_length", "garbage", "silence"})
SW3_CHECKSUM = 0x10
SW3_LENGTH = 0x11
SW3_UNKNOWN_COMMAND = 0x21


def demo_card(name: str = "张三", id_number: str | None = None, *, gender: str = "男", nation: str = "汉",
              birth: date = date(1985, 6, 15), address: str = "江西省南昌市东湖区示范路1号",
              authority: str = "南昌市公安局东湖分局", valid_from: date = date(2016, 5, 1),
              valid_to: date | None = None) -> IdentityCard:
    """A plausible card: when no number is given one is built from the birth date with a valid check digit."""
    if id_number is None:
        first17 = f"360102{birth:%Y%m%d}{'123' if gender == '男' else '124'}"
        id_number = first17 + check_digit(first17)
    photo = (b"WLT" + bytes(range(256)) * 4)[:PHOTO_LENGTH]  # stand-in for the card's encrypted photo
    return IdentityCard(name=name, gender=gender, nation=nation, birth=birth, address=address,
                        id_number=id_number, authority=authority, valid_from=valid_from, valid_to=valid_to,
                        photo=photo)


class IdCardReaderSimulator:
    def __init__(self, port: str | os.PathLike[str], baudrate: int = 115200) -> None:
        self.port = str(port)
        self.baudrate = baudrate
        self.sam_ok = True
        self.requests: list[bytes] = []  # commands received, for tests that count polls
        self._card: IdentityCard | None = None
        self._found = self._selected = False
        self._faults: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._serial: serial.Serial | None = None

    # --- test controls ---------------------------------------------------------------------------------

    def insert(self, card: IdentityCard) -> None:
        with self._lock:
            self._card = card
            self._found = self._selected = False

    def remove(self) -> None:
        with self._lock:
            self._card = None
            self._found = self._selected = False

    def inject(self, kind: str) -> None:
        """Spoil the next response: bad_checksum, truncated, wrong_length, garbage or silence."""
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; known: {', '.join(sorted(FAULTS))}")
        with self._lock:
            self._faults.append(kind)

    # --- life cycle ------------------------------------------------------------------------------------

    def start(self) -> None:
        self._serial = serial.Serial(self.port, self.baudrate, timeout=0.05)
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name="idcard-simulator", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
            self._thread = None
        if self._serial:
            try:
                self._serial.close()
            except (OSError, serial.SerialException):
                pass
            self._serial = None

    def _serve(self) -> None:
        port = self._serial
        assert port is not None
        while not self._stop.is_set():
            try:
                frame = read_frame(port.read, min_length=MIN_REQUEST_LENGTH)
            except NoResponseError:
                continue
            except FrameError as exc:
                log.debug("simulator ignored a broken request: %s", exc)
                continue
            except (OSError, serial.SerialException, termios.error, TypeError):
                # The pty pair went away (cable pulled); nothing left to serve.
                return
            response = self._answer(frame)
            try:
                port.write(response)
                port.flush()
            except (OSError, serial.SerialException, termios.error):
                return

    def _answer(self, frame: bytes) -> bytes:
        try:
            command, _payload = decode_request(frame)
        except ChecksumError:
            return encode_response(SW3_CHECKSUM)
        except FrameError:
            return encode_response(SW3_LENGTH)
        with self._lock:
            self.requests.append(command)
            response = encode_response(*self._handle(command))
            fault = self._faults.pop(0) if self._faults else None
        return spoil(response, fault)

    def _handle(self, command: bytes) -> tuple[int, bytes]:
        if not self.sam_ok:
            return SW3_SAM_FAULT, b""
        if command == CMD_SAM_STATUS:
            return SW3_SUCCESS, b""
        if command == CMD_FIND_CARD:
            self._found = self._card is not None
            self._selected = False
            return (SW3_FIND_OK, b"\x00\x00\x00\x00") if self._found else (SW3_NO_CARD, b"")
        if command == CMD_SELECT_CARD:
            self._selected = self._found and self._card is not None
            return (SW3_SUCCESS, b"\x00" * 8) if self._selected else (SW3_SELECT_FAILED, b"")
        if command == CMD_READ_BASIC:
            if not self._selected or self._card is None:
                return SW3_READ_FAILED, b""
            return SW3_SUCCESS, encode_basic_info(self._card)
        return SW3_UNKNOWN_COMMAND, b""


def spoil(response: bytes, fault: str | None) -> bytes:
    """`response` as a faulty cable or firmware would deliver it."""
    if fault is None:
        return response
    if fault == "bad_checksum":
        return response[:-1] + bytes([response[-1] ^ 0x5A])
    if fault == "truncated":
        return response[:max(9, len(response) // 2)]
    if fault == "wrong_length":
        return response[:5] + b"\x00\x02" + response[7:]
    if fault == "garbage":
        return bytes((i * 37 + 11) % 0xA0 for i in range(48))  # never contains 0xAA, so no preamble
    if fault == "silence":
        return b""
    raise ValueError(fault)
