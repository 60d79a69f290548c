"""A virtual contact card for vpcd, so tests run the real pcscd and the real driver against known cards.

vpcd (from vsmartcard) is a PC/SC reader driver that listens on TCP; a card "inserts" itself by connecting.
Frames in both directions are a 2-byte big-endian length and a payload. A 1-byte payload is a control code
(power off, power on, reset, get ATR); anything longer is a command APDU answered with data + SW1 SW2.
Closing the socket is pulling the card out. Debian's own `vicc` emulator does not work, hence this one.

Profiles imitate what the kiosk meets in the field, including the misbehaving cards:
  bank             PPSE + one UnionPay-like application with PDOL, a 2-record AFL, 61xx and 6Cxx answers
  social_security  the social-security application as laid out in drivers.pcsc.cards
  mute             answers the ATR but never an APDU (a card that hangs)
  pulled           answers the first `pulled_after` APDUs, then disconnects (pulled out mid-read)
  malformed_tlv    answers SELECT PPSE with TLV whose lengths run past the end
"""
from __future__ import annotations

import logging
import socket
import struct
import threading
import time
from dataclasses import dataclass
from typing import Callable

from drivers.pcsc.cards import PPSE_NAME, SOCIAL_SECURITY_AID, SSC_SFI_CARD, SSC_SFI_HOLDER
from drivers.pcsc.tlv import encode

log = logging.getLogger(__name__)

DEFAULT_PORT = 35963
CTRL_OFF, CTRL_ON, CTRL_RESET, CTRL_ATR = 0, 1, 2, 4

# A well-formed ATR with a valid check byte; pcscd needs no more to power the card and pick a protocol.
ATR = bytes.fromhex("3B8F8001804F0CA000000306030001000000006A")

SW_OK = b"\x90\x00"
SW_NOT_FOUND = b"\x6a\x82"
SW_RECORD_NOT_FOUND = b"\x6a\x83"
SW_WRONG_LENGTH = b"\x67\x00"
SW_INS_NOT_SUPPORTED = b"\x6d\x00"
SW_CONDITIONS = b"\x69\x85"


@dataclass(frozen=True)
class BankProfile:
    pan: str = "6222021234567890128"  # Luhn-valid, UnionPay-like BIN
    expiry: str = "301231"  # YYMMDD as in tag 5F24
    aid: bytes = bytes.fromhex("A000000333010101")
    label: str = "UnionPay Debit"
    holder: str = "ZHANG/SAN"


@dataclass(frozen=True)
class SocialSecurityProfile:
    card_number: str = "A12345678"
    name: str = "张三"
    id_number: str = "11010519491231002X"
    issued_region: str = "440300"


BANK = BankProfile()
SOCIAL_SECURITY = SocialSecurityProfile()
PDOL = bytes.fromhex("9F6604" "9F0206" "5F2A02" "9A03")  # 4 + 6 + 2 + 3 = 15 bytes expected in GPO
PDOL_DATA_LENGTH = 15


def _bcd(digits: str) -> bytes:
    if len(digits) % 2:
        digits += "F"
    return bytes.fromhex(digits)


class _Applet:
    """The card's APDU logic: one instance per insertion, so each insertion starts unselected."""

    def __init__(self, profile: str, bank: BankProfile, social: SocialSecurityProfile) -> None:
        self.profile = profile
        self.bank = bank
        self.social = social
        self.selected: bytes | None = None
        self.pending: bytes = b""  # data waiting for GET RESPONSE

    # -- helpers ------------------------------------------------------------------------------------------
    def _via_get_response(self, data: bytes) -> bytes:
        """Answer as a T=0 card would: 61xx, then the data on GET RESPONSE."""
        self.pending = data
        return bytes([0x61, len(data) & 0xFF])

    @staticmethod
    def _with_le(apdu: bytes, data: bytes) -> bytes:
        """Insist on the exact Le, as some cards do (6Cxx tells the reader what to resend)."""
        le = apdu[4] if len(apdu) == 5 else None
        if le is None or (le or 256) != len(data):
            return bytes([0x6C, len(data) & 0xFF])
        return data + SW_OK

    # -- dispatch -------------------------------------------------------------------------------------------
    def answer(self, apdu: bytes) -> bytes:
        if len(apdu) < 4:
            return SW_WRONG_LENGTH
        cla, ins, p1, p2 = apdu[:4]
        if ins == 0xC0:  # GET RESPONSE
            data, self.pending = self.pending, b""
            return data + SW_OK if data else SW_CONDITIONS
        self.pending = b""
        if ins == 0xA4 and p1 == 0x04:
            lc = apdu[4] if len(apdu) > 4 else 0
            return self._select(apdu[5:5 + lc])
        if self.profile in ("bank", "pulled"):
            return self._bank(apdu, cla, ins, p1, p2)
        if self.profile == "social_security":
            return self._social(apdu, ins, p1, p2)
        return SW_INS_NOT_SUPPORTED

    def _select(self, name: bytes) -> bytes:
        b = self.bank
        if self.profile in ("bank", "pulled", "malformed_tlv") and name == PPSE_NAME:
            if self.profile == "malformed_tlv":
                # FCI claims 0x40 bytes; the directory entry inside claims 0x7F; neither is there.
                self.selected = name
                return bytes.fromhex("6F40840E") + PPSE_NAME + bytes.fromhex("A57FBF0C7F61") + SW_OK
            entry = encode(0x61, encode(0x4F, b.aid) + encode(0x50, b.label.encode()) + encode(0x87, b"\x01"))
            fci = encode(0x6F, encode(0x84, name) + encode(0xA5, encode(0xBF0C, entry)))
            self.selected = name
            return fci + SW_OK
        if self.profile in ("bank", "pulled") and name == b.aid:
            prop = encode(0x50, b.label.encode()) + encode(0x87, b"\x01") + encode(0x9F38, PDOL)
            self.selected = name
            return self._via_get_response(encode(0x6F, encode(0x84, name) + encode(0xA5, prop)))
        if self.profile == "social_security" and name == SOCIAL_SECURITY_AID:
            self.selected = name
            return encode(0x6F, encode(0x84, name)) + SW_OK
        return SW_NOT_FOUND

    def _bank(self, apdu: bytes, cla: int, ins: int, p1: int, p2: int) -> bytes:
        b = self.bank
        if self.selected != b.aid:
            return SW_CONDITIONS
        if cla == 0x80 and ins == 0xA8:  # GET PROCESSING OPTIONS
            lc = apdu[4] if len(apdu) > 4 else 0
            body = apdu[5:5 + lc]
            if len(body) != lc or body[:1] != b"\x83" or len(body) < 2 or body[1] != PDOL_DATA_LENGTH:
                return SW_WRONG_LENGTH
            afl = bytes([1 << 3, 1, 2, 0])  # SFI 1, records 1..2, none for offline authentication
            return encode(0x77, encode(0x82, b"\x19\x80") + encode(0x94, afl)) + SW_OK
        if ins == 0xB2:  # READ RECORD
            if p2 != (1 << 3) | 4:
                return SW_RECORD_NOT_FOUND
            if p1 == 1:
                track2 = _bcd(b.pan + "D" + b.expiry[:4] + "2201000000000")
                return encode(0x70, encode(0x57, track2) + encode(0x5F20, b.holder.encode())) + SW_OK
            if p1 == 2:
                rec = encode(0x70, encode(0x5A, _bcd(b.pan)) + encode(0x5F24, bytes.fromhex(b.expiry))
                             + encode(0x5F25, bytes.fromhex("200101")))
                return self._with_le(apdu, rec)
            return SW_RECORD_NOT_FOUND
        return SW_INS_NOT_SUPPORTED

    def _social(self, apdu: bytes, ins: int, p1: int, p2: int) -> bytes:
        s = self.social
        if self.selected != SOCIAL_SECURITY_AID:
            return SW_CONDITIONS
        if ins == 0xB0 and p1 == 0x80 | SSC_SFI_CARD:  # READ BINARY by SFI
            data = encode(0x01, s.issued_region.encode()) + encode(0x07, s.card_number.encode())
            return data + SW_OK
        if ins == 0xB2 and p2 == (SSC_SFI_HOLDER << 3) | 4:
            if p1 == 1:
                return encode(0x08, s.id_number.encode()) + SW_OK
            if p1 == 2:
                return encode(0x09, s.name.encode("gb18030").ljust(30, b"\x00")) + SW_OK
            return SW_RECORD_NOT_FOUND
        return SW_INS_NOT_SUPPORTED


class VirtualCard:
    """One card in the vpcd reader on `port` for as long as it is started."""

    PROFILES = ("bank", "social_security", "mute", "pulled", "malformed_tlv")

    def __init__(self, profile: str, port: int = DEFAULT_PORT, *, host: str = "127.0.0.1",
                 bank: BankProfile = BANK, social: SocialSecurityProfile = SOCIAL_SECURITY,
                 pulled_after: int = 2, on_apdu: Callable[[bytes], None] | None = None,
                 answer_hook: Callable[[bytes, bytes], bytes] | None = None) -> None:
        """`answer_hook(apdu, answer)` may replace any answer, so tests can feed the driver garbage."""
        if profile not in self.PROFILES:
            raise ValueError(f"unknown card profile {profile!r}; one of {', '.join(self.PROFILES)}")
        self.profile = profile
        self.host = host
        self.port = port
        self.bank = bank
        self.social = social
        self.pulled_after = pulled_after
        self.on_apdu = on_apdu
        self.answer_hook = answer_hook
        self.apdus: list[bytes] = []
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self, timeout: float = 5.0) -> None:
        """Insert the card: connect to vpcd (retrying while pcscd loads the driver)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                sock = socket.create_connection((self.host, self.port), timeout=1.0)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        sock.settimeout(0.2)
        self._sock = sock
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(sock, _Applet(self.profile, self.bank,
                                                                              self.social)),
                                        name=f"vcard-{self.profile}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Remove the card."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
            self._thread = None
        self._close()

    @property
    def inserted(self) -> bool:
        return self._sock is not None

    def __enter__(self) -> "VirtualCard":
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _recv_exact(self, sock: socket.socket, n: int) -> bytes | None:
        buf = b""
        while len(buf) < n:
            if self._stop.is_set():
                return None
            try:
                chunk = sock.recv(n - len(buf))
            except socket.timeout:
                continue
            except OSError:
                return None
            if not chunk:
                return None
            buf += chunk
        return buf

    def _send(self, sock: socket.socket, payload: bytes) -> None:
        sock.sendall(struct.pack(">H", len(payload)) + payload)

    def _run(self, sock: socket.socket, applet: _Applet) -> None:
        answered = 0
        try:
            while not self._stop.is_set():
                header = self._recv_exact(sock, 2)
                if header is None:
                    return
                (length,) = struct.unpack(">H", header)
                payload = self._recv_exact(sock, length) if length else b""
                if payload is None:
                    return
                if len(payload) == 1:
                    if payload[0] == CTRL_ATR:
                        self._send(sock, ATR)
                    continue
                self.apdus.append(payload)
                if self.on_apdu is not None:
                    self.on_apdu(payload)
                if self.profile == "mute":
                    continue
                if self.profile == "pulled" and answered >= self.pulled_after:
                    log.debug("virtual card pulled after %d APDUs", answered)
                    self._close()
                    return
                answer = applet.answer(payload)
                if self.answer_hook is not None:
                    answer = self.answer_hook(payload, answer)
                self._send(sock, answer)
                answered += 1
        except OSError:
            return
