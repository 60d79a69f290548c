"""Command APDUs and the status-word dance around them (ISO 7816-4).

A `Transmit` sends one command APDU and returns the raw answer, data followed by SW1 SW2. `exchange` hides
the two ways a card asks to be asked again: 61xx (more data waiting, fetch it with GET RESPONSE) and 6Cxx
(wrong Le, resend with Le = xx). Both loops are bounded: a broken card that answers 61xx forever must end
in a `CardDataError`, not in a kiosk that spins.

Logging shows command headers, status words and lengths only, never answer data: answers hold PANs.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

from drivers.pcsc.errors import CardDataError, CardRefusedError

log = logging.getLogger(__name__)

Transmit = Callable[[bytes], bytes]

SW_OK = 0x9000
SW_FILE_NOT_FOUND = 0x6A82
SW_RECORD_NOT_FOUND = 0x6A83
MAX_GET_RESPONSE = 16  # 16 x 256 bytes is far more than any record or FCI the kiosk reads
MAX_RESPONSE_BYTES = 4096


@dataclass(frozen=True)
class Response:
    data: bytes
    sw: int

    @property
    def ok(self) -> bool:
        return self.sw == SW_OK or self.sw >> 8 in (0x62, 0x63)  # warnings still carry data

    def expect_ok(self, what: str) -> bytes:
        if not self.ok:
            raise CardRefusedError(f"{what}: card answered SW {self.sw:04X}", sw=self.sw)
        return self.data


def command(cla: int, ins: int, p1: int, p2: int, data: bytes = b"", le: int | None = 0) -> bytes:
    """A short APDU (case 1-4); `le=0` asks for up to 256 bytes, `le=None` sends no Le."""
    if len(data) > 255:
        raise ValueError("short APDUs carry at most 255 data bytes")
    apdu = bytes([cla, ins, p1, p2])
    if data:
        apdu += bytes([len(data)]) + data
    if le is not None:
        apdu += bytes([le & 0xFF])
    return apdu


def select_by_name(name: bytes) -> bytes:
    return command(0x00, 0xA4, 0x04, 0x00, name)


def read_record(sfi: int, record: int) -> bytes:
    return command(0x00, 0xB2, record, (sfi << 3) | 4)


def read_binary_sfi(sfi: int, offset: int = 0) -> bytes:
    return command(0x00, 0xB0, 0x80 | sfi, offset)


def split(raw: bytes) -> Response:
    if len(raw) < 2:
        raise CardDataError(f"answer of {len(raw)} bytes has no status word")
    return Response(bytes(raw[:-2]), (raw[-2] << 8) | raw[-1])


def _with_le(apdu: bytes, le: int) -> bytes:
    """The same command with its Le replaced (or added), for a 6Cxx resend."""
    header, rest = apdu[:4], apdu[4:]
    if len(rest) == 1:  # case 2: the only byte is Le
        body = b""
    elif rest:
        lc = rest[0]
        body = rest[:1 + lc]
    else:
        body = b""
    return header + body + bytes([le])


def exchange(transmit: Transmit, apdu: bytes) -> Response:
    """Send `apdu` and collect the whole answer, following 61xx and 6Cxx."""
    resp = split(transmit(apdu))
    log.debug("APDU %s -> SW %04X, %d bytes", apdu[:4].hex().upper(), resp.sw, len(resp.data))
    if resp.sw >> 8 == 0x6C:
        resp = split(transmit(_with_le(apdu, resp.sw & 0xFF)))
        log.debug("APDU %s (Le resent) -> SW %04X, %d bytes", apdu[:4].hex().upper(), resp.sw, len(resp.data))
        if resp.sw >> 8 == 0x6C:
            raise CardDataError(f"card asked twice for a different Le on {apdu[:4].hex().upper()}")
    data = resp.data
    rounds = 0
    while resp.sw >> 8 == 0x61:
        rounds += 1
        if rounds > MAX_GET_RESPONSE or len(data) > MAX_RESPONSE_BYTES:
            raise CardDataError(f"card kept answering 61xx to {apdu[:4].hex().upper()}")
        resp = split(transmit(command(0x00, 0xC0, 0x00, 0x00, le=resp.sw & 0xFF)))
        log.debug("GET RESPONSE -> SW %04X, %d bytes", resp.sw, len(resp.data))
        data += resp.data
    return Response(data, resp.sw)
