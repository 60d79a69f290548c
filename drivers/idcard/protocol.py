"""The 2nd-generation resident ID-card reader (SAM) serial protocol, both directions.

Frames are plain bytes in and out so the same code serves the real driver, the simulator and the fuzz
tests. Everything that can go wrong on the wire is a `FrameError`; everything the SAM reports as a failure
is an `IdCardError`; a card whose content does not make sense is a `CardDataError`. Callers therefore never
see an IndexError or UnicodeDecodeError from a noisy cable.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Callable

from drivers.idcard.idnumber import is_valid, mask_id_number, mask_name

PREAMBLE = b"\xaa\xaa\xaa\x96\x69"

CMD_SAM_STATUS = b"\x11\xff"
CMD_FIND_CARD = b"\x20\x01"
CMD_SELECT_CARD = b"\x20\x02"
CMD_READ_BASIC = b"\x30\x01"

SW3_SUCCESS = 0x90
SW3_FIND_OK = 0x9F
SW3_NO_CARD = 0x80
SW3_SELECT_FAILED = 0x81
SW3_READ_FAILED = 0x41
SW3_SAM_FAULT = 0x60

# (中文, English) for every status the SAM is documented to send back.
SW3_MESSAGES: dict[int, tuple[str, str]] = {
    0x90: ("操作成功", "success"),
    0x9F: ("寻找证/卡成功", "card found"),
    0x91: ("证/卡中此项无内容", "the card holds no data for this item"),
    0x10: ("SAM 收到的数据校验和错误", "the SAM received a frame with a bad checksum"),
    0x11: ("SAM 收到的数据长度错误", "the SAM received a frame with a bad length"),
    0x21: ("SAM 收到的命令错误", "the SAM does not know this command or its parameters"),
    0x23: ("越权操作", "operation not permitted in the SAM's current state"),
    0x24: ("SAM 无法识别的错误", "the SAM reported an unrecognised error"),
    0x31: ("证/卡认证机具失败", "the card failed to authenticate the SAM"),
    0x32: ("机具认证证/卡失败", "the SAM failed to authenticate the card"),
    0x33: ("信息验证错误", "the card information failed verification"),
    0x37: ("指纹信息验证错误", "the fingerprint data failed verification"),
    0x3F: ("信息长度错误", "the card information has a wrong length"),
    0x40: ("无法识别的证/卡类型", "unknown card type"),
    0x41: ("读证/卡操作失败", "reading the card failed (card moved away?)"),
    0x47: ("取随机数失败", "the SAM could not get a random number"),
    0x60: ("SAM 自检失败，不能接收命令", "SAM self-test failed; it accepts no commands"),
    0x66: ("SAM 未经授权，无法使用", "the SAM is not authorised"),
    0x80: ("寻找证/卡失败（无卡）", "no card on the reader"),
    0x81: ("选取证/卡失败", "selecting the card failed"),
}

MAX_GARBAGE = 1024  # bytes skipped while looking for a preamble before giving up
MIN_RESPONSE_LENGTH = 4  # SW1 SW2 SW3 + check
MIN_REQUEST_LENGTH = 3  # command + check
MAX_RESPONSE_LENGTH = 4096  # basic info is 1288; full info with fingerprints stays well below this

TEXT_LENGTH = 256
PHOTO_LENGTH = 1024


class FrameError(Exception):
    """The bytes on the wire are not a well-formed frame."""


class NoResponseError(FrameError):
    def __init__(self) -> None:
        super().__init__("读卡器无应答 / the reader sent nothing before the timeout")


class NoPreambleError(FrameError):
    def __init__(self, skipped: int) -> None:
        super().__init__(f"帧头缺失 / no frame preamble AA AA AA 96 69 found in {skipped} received bytes")
        self.skipped = skipped


class TruncatedFrameError(FrameError):
    def __init__(self, expected: int, got: int) -> None:
        super().__init__(f"帧不完整 / frame truncated: expected {expected} bytes after the preamble, "
                         f"got {got} before the timeout")
        self.expected, self.got = expected, got


class LengthError(FrameError):
    def __init__(self, detail: str) -> None:
        super().__init__(f"帧长度错误 / bad frame length: {detail}")


class ChecksumError(FrameError):
    def __init__(self, expected: int, got: int) -> None:
        super().__init__(f"校验和错误 / checksum mismatch: computed 0x{expected:02X}, frame says 0x{got:02X}")
        self.expected, self.got = expected, got


class CardDataError(FrameError):
    """The frame was fine but the card content is not a plausible ID card."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"证件信息无效 / card data invalid: {detail}")


class IdCardError(Exception):
    """The SAM answered with a failure status."""

    def __init__(self, code: int, message: str | None = None) -> None:
        self.code = code
        self.message = message or sw3_message(code)
        super().__init__(self.message)


def sw3_message(code: int) -> str:
    zh, en = SW3_MESSAGES.get(code, ("未知状态", "unknown status"))
    return f"{zh} / {en} (SW3=0x{code:02X})"


def xor(data: bytes) -> int:
    result = 0
    for b in data:
        result ^= b
    return result


def _frame(body: bytes) -> bytes:
    """Preamble + length + body + XOR over length and body; length counts body and check byte."""
    length = (len(body) + 1).to_bytes(2, "big")
    return PREAMBLE + length + body + bytes([xor(length + body)])


def encode_request(command: bytes, payload: bytes = b"") -> bytes:
    if len(command) != 2:
        raise ValueError("a command is two bytes")
    return _frame(command + payload)


def encode_response(sw3: int, data: bytes = b"") -> bytes:
    return _frame(bytes([0, 0, sw3]) + data)


def read_frame(read: Callable[[int], bytes], min_length: int = MIN_RESPONSE_LENGTH) -> bytes:
    """Read one frame from `read(n)` (which returns up to n bytes, fewer on timeout).

    Bytes before the preamble (line noise, the tail of an earlier broken frame) are skipped, up to a bound
    so a babbling device cannot keep the caller here forever.
    """
    window = b""
    received = 0
    while window != PREAMBLE:
        b = read(1)
        if not b:
            if received == 0:
                raise NoResponseError()
            raise NoPreambleError(received)
        received += 1
        window = (window + b)[-len(PREAMBLE):]
        if received - len(window) > MAX_GARBAGE:
            raise NoPreambleError(received)
    length_bytes = _read_exactly(read, 2, expected_total=2)
    length = int.from_bytes(length_bytes, "big")
    if length < min_length:
        raise LengthError(f"length field {length} is below the minimum {min_length}")
    if length > MAX_RESPONSE_LENGTH:
        raise LengthError(f"length field {length} exceeds the maximum {MAX_RESPONSE_LENGTH}")
    body = _read_exactly(read, length, expected_total=2 + length, already=2)
    return PREAMBLE + length_bytes + body


def _read_exactly(read: Callable[[int], bytes], n: int, expected_total: int, already: int = 0) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = read(n - len(buf))
        if not chunk:
            raise TruncatedFrameError(expected_total, already + len(buf))
        buf += chunk
    return bytes(buf)


@dataclass(frozen=True)
class Response:
    sw3: int
    data: bytes = b""

    @property
    def message(self) -> str:
        return sw3_message(self.sw3)

    def expect(self, *ok: int) -> "Response":
        """Return self when the status is one of `ok`, else raise the SAM's failure as an IdCardError."""
        if self.sw3 not in ok:
            raise IdCardError(self.sw3)
        return self


def decode_response(frame: bytes) -> Response:
    if not frame.startswith(PREAMBLE):
        raise NoPreambleError(len(frame))
    if len(frame) < len(PREAMBLE) + 2:
        raise TruncatedFrameError(2, len(frame) - len(PREAMBLE))
    length = int.from_bytes(frame[5:7], "big")
    actual = len(frame) - 7
    if length < MIN_RESPONSE_LENGTH:
        raise LengthError(f"length field {length} is below the minimum {MIN_RESPONSE_LENGTH}")
    if actual < length:
        raise TruncatedFrameError(2 + length, 2 + actual)
    if actual > length:
        raise LengthError(f"length field says {length} bytes but {actual} follow it")
    computed, given = xor(frame[5:-1]), frame[-1]
    if computed != given:
        raise ChecksumError(computed, given)
    sw1, sw2, sw3 = frame[7], frame[8], frame[9]
    if sw1 != 0 or sw2 != 0:
        raise FrameError(f"状态字异常 / SW1 SW2 should be 00 00, got {sw1:02X} {sw2:02X}")
    return Response(sw3, frame[10:-1])


def decode_request(frame: bytes) -> tuple[bytes, bytes]:
    """(command, payload) of a request frame: the simulator's side of `encode_request`."""
    if not frame.startswith(PREAMBLE):
        raise NoPreambleError(len(frame))
    length = int.from_bytes(frame[5:7], "big")
    if length < MIN_REQUEST_LENGTH or len(frame) - 7 != length:
        raise LengthError(f"length field {length} does not match the {len(frame) - 7} bytes that follow")
    computed, given = xor(frame[5:-1]), frame[-1]
    if computed != given:
        raise ChecksumError(computed, given)
    return frame[7:9], frame[9:-1]


# --- card content --------------------------------------------------------------------------------------

NATIONS: dict[str, str] = {
    "01": "汉", "02": "蒙古", "03": "回", "04": "藏", "05": "维吾尔", "06": "苗", "07": "彝", "08": "壮",
    "09": "布依", "10": "朝鲜", "11": "满", "12": "侗", "13": "瑶", "14": "白", "15": "土家", "16": "哈尼",
    "17": "哈萨克", "18": "傣", "19": "黎", "20": "傈僳", "21": "佤", "22": "畲", "23": "高山", "24": "拉祜",
    "25": "水", "26": "东乡", "27": "纳西", "28": "景颇", "29": "柯尔克孜", "30": "土", "31": "达斡尔",
    "32": "仫佬", "33": "羌", "34": "布朗", "35": "撒拉", "36": "毛南", "37": "仡佬", "38": "锡伯", "39": "阿昌",
    "40": "普米", "41": "塔吉克", "42": "怒", "43": "乌孜别克", "44": "俄罗斯", "45": "鄂温克", "46": "德昂",
    "47": "保安", "48": "裕固", "49": "京", "50": "塔塔尔", "51": "独龙", "52": "鄂伦春", "53": "赫哲",
    "54": "门巴", "55": "珞巴", "56": "基诺", "97": "其他", "98": "外国血统中国籍人士",
}
NATION_CODES = {name: code for code, name in NATIONS.items()}

GENDERS = {"1": "男", "2": "女"}
GENDER_CODES = {name: code for code, name in GENDERS.items()}
LONG_TERM = "长期"

# (field, bytes) in card order; together exactly TEXT_LENGTH.
TEXT_FIELDS: tuple[tuple[str, int], ...] = (
    ("name", 30), ("gender", 2), ("nation", 4), ("birth", 16), ("address", 70), ("id_number", 36),
    ("authority", 30), ("valid_from", 16), ("valid_to", 16), ("reserved", 36),
)


@dataclass(frozen=True)
class IdentityCard:
    name: str
    gender: str  # '男' | '女'
    nation: str  # name, e.g. '汉'
    birth: date
    address: str
    id_number: str
    authority: str
    valid_from: date
    valid_to: date | None  # None: 长期 (no expiry)
    photo: bytes  # as the card stores it (wlt, encrypted); decoding needs the vendor's library

    def __repr__(self) -> str:
        # Logs and tracebacks show this; a patient's name and number never appear there in clear.
        return (f"IdentityCard(name={mask_name(self.name)!r}, gender={self.gender!r}, nation={self.nation!r}, "
                f"id_number={mask_id_number(self.id_number)!r}, valid_to={self.valid_to}, "
                f"photo=<{len(self.photo)} bytes>)")

    __str__ = __repr__


def _date(text: str, field: str) -> date:
    if len(text) != 8 or not text.isascii() or not text.isdigit():
        raise CardDataError(f"{field} {text!r} is not YYYYMMDD")
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        raise CardDataError(f"{field} {text!r} is not a real date") from None


def parse_identity(text: bytes, photo: bytes) -> IdentityCard:
    if len(text) != TEXT_LENGTH:
        raise CardDataError(f"text is {len(text)} bytes, expected {TEXT_LENGTH}")
    fields: dict[str, str] = {}
    pos = 0
    for name, size in TEXT_FIELDS:
        raw = text[pos:pos + size]
        pos += size
        try:
            fields[name] = raw.decode("utf-16-le").rstrip(" \x00")
        except UnicodeDecodeError:
            raise CardDataError(f"{name} is not valid UCS-2 text") from None
    gender = GENDERS.get(fields["gender"])
    if gender is None:
        raise CardDataError(f"gender code {fields['gender']!r} is neither 1 nor 2")
    nation = NATIONS.get(fields["nation"])
    if nation is None:
        raise CardDataError(f"nation code {fields['nation']!r} is unknown")
    id_number = fields["id_number"]
    if not is_valid(id_number):
        raise CardDataError(f"ID number {mask_id_number(id_number)!r} fails its check digit or birth date")
    if not fields["name"]:
        raise CardDataError("name is empty")
    valid_to_text = fields["valid_to"]
    return IdentityCard(
        name=fields["name"], gender=gender, nation=nation, birth=_date(fields["birth"], "birth date"),
        address=fields["address"], id_number=id_number.upper(), authority=fields["authority"],
        valid_from=_date(fields["valid_from"], "valid-from date"),
        valid_to=None if valid_to_text == LONG_TERM else _date(valid_to_text, "valid-to date"),
        photo=bytes(photo),
    )


def _field(value: str, size: int, name: str) -> bytes:
    raw = value.encode("utf-16-le")
    if len(raw) > size:
        raise ValueError(f"{name} {value!r} does not fit in {size} bytes")
    return raw + " ".encode("utf-16-le") * ((size - len(raw)) // 2)


def encode_identity(card: IdentityCard) -> tuple[bytes, bytes]:
    """The 256-byte text and 1024-byte photo the card would give for `card` (the simulator's side)."""
    values = {
        "name": card.name, "gender": GENDER_CODES[card.gender], "nation": NATION_CODES[card.nation],
        "birth": f"{card.birth:%Y%m%d}", "address": card.address, "id_number": card.id_number,
        "authority": card.authority, "valid_from": f"{card.valid_from:%Y%m%d}",
        "valid_to": LONG_TERM if card.valid_to is None else f"{card.valid_to:%Y%m%d}", "reserved": "",
    }
    text = b"".join(_field(values[name], size, name) for name, size in TEXT_FIELDS)
    photo = card.photo[:PHOTO_LENGTH].ljust(PHOTO_LENGTH, b"\x00")
    return text, photo


def encode_basic_info(card: IdentityCard) -> bytes:
    """Data of a successful 30 01 answer: text length, photo length, text, photo."""
    text, photo = encode_identity(card)
    return len(text).to_bytes(2, "big") + len(photo).to_bytes(2, "big") + text + photo


def decode_basic_info(data: bytes) -> IdentityCard:
    if len(data) < 4:
        raise CardDataError(f"basic info is {len(data)} bytes, too short for its length fields")
    text_len = int.from_bytes(data[:2], "big")
    photo_len = int.from_bytes(data[2:4], "big")
    if len(data) != 4 + text_len + photo_len:
        raise CardDataError(f"basic info declares {text_len}+{photo_len} bytes but carries {len(data) - 4}")
    return parse_identity(data[4:4 + text_len], data[4 + text_len:])
