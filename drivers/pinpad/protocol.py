"""The project's PIN-pad serial protocol: `STX | LEN(2, big-endian) | CMD | DATA | ETX | LRC`.

LEN counts CMD and DATA; LRC is the XOR of every byte from LEN through ETX. Real pads (国密 keyboards from
each vendor) each speak their own protocol; this one is ours, small and documented so the simulator, the
driver and the fuzz tests share one definition. A vendor's protocol goes in a module of its own that
implements `base.PinPadDriver`.

Host -> pad commands, each answered by a frame with the same CMD whose first data byte is a status:
  0x01 STATUS          -> status, state (0 normal, 1 tampered), key algorithm code (0 none)
  0x02 LOAD_KEY        alg(1) | working key encrypted under the master key (16) | KCV(4)
  0x03 START_PIN       min(1) | max(1) | timeout seconds(1) | PAN length(1) | PAN (ASCII digits)
  0x04 GET_PIN_BLOCK   -> status, alg(1), encrypted block (16 for SM4, 8 for 3DES)
  0x05 CANCEL          (host aborts an entry)
Pad -> host, unsolicited during entry:
  0xE0 EVENT           kind(1: digit, 2: clear, 3: cancel, 4: enter, 5: timeout) | count(1)
An event carries how many digits are in the entry, never which.
"""
from __future__ import annotations

from typing import Callable

from drivers.pinpad.base import KeyEvent, KeyKind, PinPadError

STX, ETX = 0x02, 0x03

CMD_STATUS = 0x01
CMD_LOAD_KEY = 0x02
CMD_START_PIN = 0x03
CMD_GET_PIN_BLOCK = 0x04
CMD_CANCEL = 0x05
CMD_EVENT = 0xE0

ST_OK = 0x00
ST_BAD_FRAME = 0x10
ST_UNKNOWN_COMMAND = 0x11
ST_BAD_PARAMETER = 0x12
ST_NO_KEY = 0x20
ST_KCV_MISMATCH = 0x21
ST_NO_PIN = 0x30
ST_BUSY = 0x31
ST_TAMPERED = 0x40

STATE_NORMAL, STATE_TAMPERED = 0x00, 0x01

STATUS_MESSAGES: dict[int, tuple[str, str]] = {
    ST_OK: ("成功", "success"),
    ST_BAD_FRAME: ("密码键盘收到的数据帧错误", "the pad received a broken frame"),
    ST_UNKNOWN_COMMAND: ("密码键盘不支持此命令", "the pad does not know this command"),
    ST_BAD_PARAMETER: ("命令参数错误", "bad command parameters"),
    ST_NO_KEY: ("未装载工作密钥", "no working key is loaded"),
    ST_KCV_MISMATCH: ("工作密钥校验值不符", "the working key's check value does not match"),
    ST_NO_PIN: ("尚未输入密码", "no PIN has been entered"),
    ST_BUSY: ("密码键盘正在输入中", "a PIN entry is already in progress"),
    ST_TAMPERED: ("密码键盘已被拆动，密钥已销毁", "the pad was tampered with and erased its keys"),
}

EVENT_KINDS: dict[int, KeyKind] = {1: KeyKind.DIGIT, 2: KeyKind.CLEAR, 3: KeyKind.CANCEL, 4: KeyKind.ENTER,
                                   5: KeyKind.TIMEOUT}
EVENT_CODES = {kind: code for code, kind in EVENT_KINDS.items()}

MAX_LENGTH = 256  # CMD + DATA; the longest real frame is a START_PIN with a 19-digit PAN
MAX_GARBAGE = 1024


class FrameError(PinPadError):
    """The bytes on the wire are not a well-formed frame."""


class NoResponseError(FrameError):
    def __init__(self) -> None:
        super().__init__("密码键盘无应答 / the PIN pad sent nothing before the timeout")


class NoStartError(FrameError):
    def __init__(self, skipped: int) -> None:
        super().__init__(f"帧头缺失 / no STX in {skipped} received bytes")


class LengthError(FrameError):
    def __init__(self, length: int) -> None:
        super().__init__(f"帧长度错误 / frame length {length} is outside 1..{MAX_LENGTH}")


class TruncatedFrameError(FrameError):
    def __init__(self, expected: int, got: int) -> None:
        super().__init__(f"帧不完整 / frame truncated: expected {expected} bytes after STX, got {got}")


class MissingEtxError(FrameError):
    def __init__(self, got: int) -> None:
        super().__init__(f"帧尾错误 / expected ETX 03, got {got:02X}")


class ChecksumError(FrameError):
    def __init__(self, expected: int, got: int) -> None:
        super().__init__(f"校验错误 / LRC mismatch: computed {expected:02X}, frame says {got:02X}")


def lrc(data: bytes) -> int:
    result = 0
    for b in data:
        result ^= b
    return result


def encode_frame(cmd: int, data: bytes = b"") -> bytes:
    if not 0 <= cmd <= 0xFF:
        raise ValueError("a command is one byte")
    if len(data) + 1 > MAX_LENGTH:
        raise ValueError(f"frame data is {len(data)} bytes; at most {MAX_LENGTH - 1}")
    body = (len(data) + 1).to_bytes(2, "big") + bytes([cmd]) + data + bytes([ETX])
    return bytes([STX]) + body + bytes([lrc(body)])


def read_frame(read: Callable[[int], bytes]) -> tuple[int, bytes]:
    """(cmd, data) of the next frame from `read(n)`, which returns up to n bytes and fewer on timeout.

    Bytes before STX are skipped up to a bound, so a babbling line cannot keep the caller here forever.
    """
    skipped = 0
    while True:
        b = read(1)
        if not b:
            if skipped == 0:
                raise NoResponseError()
            raise NoStartError(skipped)
        if b[0] == STX:
            break
        skipped += 1
        if skipped > MAX_GARBAGE:
            raise NoStartError(skipped)
    length_bytes = _read_exactly(read, 2, 0)
    length = int.from_bytes(length_bytes, "big")
    if not 1 <= length <= MAX_LENGTH:
        raise LengthError(length)
    rest = _read_exactly(read, length + 2, 2)
    body, etx, check = length_bytes + rest[:length], rest[length], rest[length + 1]
    if etx != ETX:
        raise MissingEtxError(etx)
    computed = lrc(body + bytes([ETX]))
    if computed != check:
        raise ChecksumError(computed, check)
    return body[2], bytes(body[3:])


def decode_frame(frame: bytes) -> tuple[int, bytes]:
    """`read_frame` over a complete byte string; trailing bytes are a LengthError."""
    pos = 0

    def read(n: int) -> bytes:
        nonlocal pos
        chunk = frame[pos:pos + n]
        pos += len(chunk)
        return chunk

    result = read_frame(read)
    if pos != len(frame):
        raise LengthError(len(frame) - 3)
    return result


def _read_exactly(read: Callable[[int], bytes], n: int, already: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = read(n - len(buf))
        if not chunk:
            raise TruncatedFrameError(already + n, already + len(buf))
        buf += chunk
    return bytes(buf)


def status_message(code: int) -> str:
    zh, en = STATUS_MESSAGES.get(code, ("未知状态", "unknown status"))
    return f"{zh} / {en} (status 0x{code:02X})"


def encode_event(event: KeyEvent) -> bytes:
    return encode_frame(CMD_EVENT, bytes([EVENT_CODES[event.kind], event.count]))


def decode_event(data: bytes) -> KeyEvent:
    if len(data) != 2 or data[0] not in EVENT_KINDS:
        raise FrameError(f"按键事件格式错误 / malformed key event {data.hex()}")
    return KeyEvent(EVENT_KINDS[data[0]], data[1])


def encode_start_pin(pan: str, min_length: int, max_length: int, timeout_s: int) -> bytes:
    raw = pan.encode("ascii")
    return bytes([min_length, max_length, timeout_s, len(raw)]) + raw


def decode_start_pin(data: bytes) -> tuple[str, int, int, int]:
    """(pan, min, max, timeout) or ValueError; the simulator's side."""
    if len(data) < 4 or len(data) != 4 + data[3]:
        raise ValueError("bad START_PIN length")
    pan = data[4:].decode("ascii")
    if not pan.isdigit() or not 4 <= data[0] <= data[1] <= 12 or data[2] == 0:
        raise ValueError("bad START_PIN parameters")
    return pan, data[0], data[1], data[2]
