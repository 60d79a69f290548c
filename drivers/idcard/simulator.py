"""A 2nd-generation ID-card reader on the far end of a serial line, for tests and demos without hardware.

It speaks the SAM frame protocol byte for byte, so the real driver runs unchanged against it; faults can be
injected one response at a time to prove the driver survives a noisy cable.
"""
from __future__ import annotations

import logging
import os
import threading
from datetime import date

import serial

from drivers.idcard.idnumber import RESIDENCE_PERMIT_REGIONS, check_digit
from drivers.idcard.protocol import (
    CMD_FIND_CARD, CMD_READ_BASIC, CMD_SAM_STATUS, CMD_SELECT_CARD, MIN_REQUEST_LENGTH, PHOTO_LENGTH,
    SW3_FIND_OK, SW3_NO_CARD, SW3_READ_FAILED, SW3_SAM_FAULT, SW3_SELECT_FAILED, SW3_SUCCESS, AnyCard,
    ChecksumError, ForeignerPermanentResidenceCard, FrameError, IdentityCard, NoResponseError, ResidencePermit,
    decode_request, encode_basic_info, encode_response, read_frame,
)
from drivers.serial_line import PORT_ERRORS, SerialSimulator

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
    return IdentityCard(name=name, gender=gender, nation=nation, birth=birth, address=address,
                        id_number=id_number, authority=authority, valid_from=valid_from, valid_to=valid_to,
                        photo=DEMO_PHOTO)


DEMO_PHOTO = (b"WLT" + bytes(range(256)) * 4)[:PHOTO_LENGTH]  # stand-in for the card's encrypted photo


def demo_foreigner_card(english_name: str = "SMITH, JOHN WILLIAM", chinese_name: str = "史密斯",
                        permit_number: str | None = None, *, gender: str = "男", nationality: str = "USA",
                        birth: date = date(1980, 3, 12), valid_from: date = date(2018, 6, 1),
                        valid_to: date | None = date(2028, 6, 1), card_version: str = "01",
                        authority_code: str = "3600") -> ForeignerPermanentResidenceCard:
    """A plausible 2017-version permanent residence card. The default number only has the right shape
    (nationality + 12 digits); no check digit is claimed for it."""
    if permit_number is None:
        permit_number = f"{nationality}3601{birth:%y%m%d}{'01' if gender == '男' else '02'}"
    return ForeignerPermanentResidenceCard(
        english_name=english_name, chinese_name=chinese_name, gender=gender, permit_number=permit_number,
        nationality=nationality, birth=birth, valid_from=valid_from, valid_to=valid_to,
        card_version=card_version, authority_code=authority_code, photo=DEMO_PHOTO)


def demo_residence_permit(name: str = "陈大文", id_number: str | None = None, *, region: str = "香港",
                          gender: str = "男", birth: date = date(1990, 7, 1),
                          address: str = "江西省南昌市东湖区示范路2号", authority: str = "南昌市公安局东湖分局",
                          valid_from: date = date(2024, 1, 10), valid_to: date | None = date(2029, 1, 10),
                          pass_number: str | None = None, issue_count: int = 1) -> ResidencePermit:
    """A plausible residence permit for a Hong Kong ('香港'), Macao ('澳门') or Taiwan ('台湾') resident:
    the number gets the region's prefix and a valid check digit, the pass number the region's usual shape
    (H/M + 8 digits for the home-return permit, 8 digits for the Taiwan compatriot permit)."""
    prefixes = {region_name: prefix for prefix, region_name in RESIDENCE_PERMIT_REGIONS.items()}
    if region not in prefixes:
        raise ValueError(f"region must be one of {', '.join(prefixes)}, got {region!r}")
    if id_number is None:
        first17 = f"{prefixes[region]}{birth:%Y%m%d}{'123' if gender == '男' else '124'}"
        id_number = first17 + check_digit(first17)
    if pass_number is None:
        pass_number = {"香港": "H", "澳门": "M", "台湾": ""}[region] + "51239874"
    return ResidencePermit(
        name=name, gender=gender, birth=birth, address=address, id_number=id_number, authority=authority,
        valid_from=valid_from, valid_to=valid_to, pass_number=pass_number, issue_count=issue_count,
        photo=DEMO_PHOTO)


class IdCardReaderSimulator(SerialSimulator):
    THREAD_NAME = "idcard-simulator"

    def __init__(self, port: str | os.PathLike[str], baudrate: int = 115200) -> None:
        self.port = str(port)
        self.baudrate = baudrate
        self.sam_ok = True
        self.requests: list[bytes] = []  # commands received, for tests that count polls
        self._card: AnyCard | None = None
        self._found = self._selected = False
        self._faults: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._serial: serial.Serial | None = None

    # --- test controls ---------------------------------------------------------------------------------

    def insert(self, card: AnyCard) -> None:
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

    # --- the device side ------------------------------------------------------------------------------

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
            except (*PORT_ERRORS, TypeError):
                # The pty pair went away (cable pulled); nothing left to serve.
                return
            response = self._answer(frame)
            try:
                port.write(response)
                port.flush()
            except PORT_ERRORS:
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
