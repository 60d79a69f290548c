"""The 2nd-generation resident ID-card reader (SAM) serial protocol, both directions.

The same readers also read the foreigner's permanent residence card and the Hong Kong/Macao/Taiwan
residents' residence permit; all three come back from one read command and are told apart by a character in
the card text, so each has its own class here and all share the small `Card` protocol workflows rely on.

Frames are plain bytes in and out so the same code serves the real driver, the simulator and the fuzz
tests. Everything that can go wrong on the wire is a `FrameError`; everything the SAM reports as a failure
is an `IdCardError`; a card whose content does not make sense is a `CardDataError`. Callers therefore never
see an IndexError or UnicodeDecodeError from a noisy cable.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date
from enum import Enum
from typing import Any, Callable, ClassVar, Protocol, Union, runtime_checkable

from drivers.idcard.idnumber import (
    is_valid, is_valid_foreign_permit_number, is_valid_residence_permit_number, mask_id_number, mask_latin_name,
    mask_name, residence_permit_region,
)

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
    """The frame was fine but the card content is not a plausible card of any type the SAM returns."""

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

# GB/T 2261.1 sex codes. 0 and 9 are rare on cards but legal; they are kept with a label rather than
# refused, because turning a patient away at the kiosk for an unusual sex code helps nobody.
GENDERS = {"0": "未知", "1": "男", "2": "女", "9": "未说明"}
GENDER_CODES = {name: code for code, name in GENDERS.items()}
LONG_TERM = "长期"


class CardType(str, Enum):
    """Which of the three documents lies on the reader; the SAM returns all of them through the same 30 01
    command, and only the character at text byte 248 tells them apart."""

    RESIDENT = "resident"  # 居民身份证
    FOREIGNER_PERMANENT = "foreigner_permanent"  # 外国人永久居留身份证 (2017 version)
    RESIDENCE_PERMIT = "residence_permit"  # 港澳台居民居住证

    @property
    def label(self) -> str:
        return CARD_TYPE_LABELS[self]


CARD_TYPE_LABELS: dict[CardType, str] = {
    CardType.RESIDENT: "居民身份证 / resident ID card",
    CardType.FOREIGNER_PERMANENT: "外国人永久居留身份证 / foreigner's permanent residence card",
    CardType.RESIDENCE_PERMIT: "港澳台居民居住证 / Hong Kong, Macao and Taiwan residents' residence permit",
}

CARD_TYPE_OFFSET = 248  # byte offset of the card-type character in the 256-byte text (UCS-2 char 124)
# Resident cards leave the character blank (older ones as NUL); the other two write a letter there.
CARD_TYPE_CHARS: dict[str, CardType] = {
    " ": CardType.RESIDENT, "\x00": CardType.RESIDENT,
    "I": CardType.FOREIGNER_PERMANENT, "J": CardType.RESIDENCE_PERMIT,
}
CARD_TYPE_CHAR: dict[CardType, str] = {
    CardType.RESIDENT: " ", CardType.FOREIGNER_PERMANENT: "I", CardType.RESIDENCE_PERMIT: "J",
}

# (field, bytes) in card order; each layout is exactly TEXT_LENGTH (tests check the sums and that the
# card-type field of the I and J layouts sits at CARD_TYPE_OFFSET).
TEXT_FIELDS: tuple[tuple[str, int], ...] = (
    ("name", 30), ("gender", 2), ("nation", 4), ("birth", 16), ("address", 70), ("id_number", 36),
    ("authority", 30), ("valid_from", 16), ("valid_to", 16), ("reserved", 36),
)
FOREIGNER_FIELDS: tuple[tuple[str, int], ...] = (
    ("english_name", 120), ("gender", 2), ("permit_number", 30), ("nationality", 6), ("chinese_name", 30),
    ("valid_from", 16), ("valid_to", 16), ("birth", 16), ("card_version", 4), ("authority_code", 8),
    ("card_type", 2), ("reserved", 6),
)
RESIDENCE_PERMIT_FIELDS: tuple[tuple[str, int], ...] = (
    ("name", 30), ("gender", 2), ("reserved1", 4), ("birth", 16), ("address", 70), ("id_number", 36),
    ("authority", 30), ("valid_from", 16), ("valid_to", 16), ("pass_number", 18), ("issue_count", 4),
    ("reserved2", 6), ("card_type", 2), ("reserved3", 6),
)
LAYOUTS: dict[CardType, tuple[tuple[str, int], ...]] = {
    CardType.RESIDENT: TEXT_FIELDS, CardType.FOREIGNER_PERMANENT: FOREIGNER_FIELDS,
    CardType.RESIDENCE_PERMIT: RESIDENCE_PERMIT_FIELDS,
}


def _photo_summary(photo: bytes) -> dict[str, Any]:
    """The photo is encrypted wlt data: its size and digest tell a technician whether it arrived intact."""
    return {"bytes": len(photo), "sha256": hashlib.sha256(photo).hexdigest()}


def _mask_keep(text: str, head: int, tail: int = 0) -> str:
    """Keep `head` leading and `tail` trailing characters; for numbers too short to hide anything that way,
    hide them whole."""
    if len(text) <= head + tail:
        return "*" * len(text)
    return text[:head] + "*" * (len(text) - head - tail) + (text[len(text) - tail:] if tail else "")


def _iso(day: date | None) -> str | None:
    return None if day is None else day.isoformat()


def _birth(day: date, masked: bool) -> str:
    # The masked ID number hides the birth date on purpose; printing it in full beside it would undo that.
    # A bare year is still an ISO 8601 date (reduced precision).
    return f"{day.year:04d}" if masked else day.isoformat()


@runtime_checkable
class Card(Protocol):
    """What every card class offers, so workflows need not care which document the patient brought.

    `name` is for display and for matching in the HIS; `id_number` is the patient's identifier (the resident
    ID number, the permanent residence card number or the residence-permit number)."""

    card_type: ClassVar[CardType]
    photo: bytes

    @property
    def name(self) -> str: ...

    @property
    def id_number(self) -> str: ...

    @property
    def birth(self) -> date: ...

    @property
    def gender(self) -> str: ...

    def to_dict(self, masked: bool = True) -> dict[str, Any]: ...


@dataclass(frozen=True)
class IdentityCard:
    """The 2nd-generation resident ID card (居民身份证)."""

    card_type: ClassVar[CardType] = CardType.RESIDENT

    name: str
    gender: str  # label from GENDERS: '男' | '女' (rarely '未知' | '未说明')
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

    def to_dict(self, masked: bool = True) -> dict[str, Any]:
        """JSON-ready fields for diagnostics; masked unless a technician explicitly asks otherwise."""
        return {
            "card_type": self.card_type.value, "card_type_label": self.card_type.label,
            "name": mask_name(self.name) if masked else self.name,
            "gender": self.gender, "gender_code": GENDER_CODES.get(self.gender), "nation": self.nation,
            "birth": _birth(self.birth, masked),
            "address": _mask_keep(self.address, 6) if masked else self.address,
            "id_number": mask_id_number(self.id_number) if masked else self.id_number,
            "authority": self.authority, "valid_from": _iso(self.valid_from), "valid_to": _iso(self.valid_to),
            "photo": _photo_summary(self.photo),
        }


@dataclass(frozen=True)
class ForeignerPermanentResidenceCard:
    """外国人永久居留身份证, 2017 version (card-type character 'I').

    The English name is always on the card; the Chinese name only when the holder has one, so `name` falls
    back to the English name. `id_number` is the 15-character permit number: that is what the HIS records
    as the patient's document number.
    """

    card_type: ClassVar[CardType] = CardType.FOREIGNER_PERMANENT

    english_name: str
    chinese_name: str  # '' when the holder has none
    gender: str  # label from GENDERS
    permit_number: str  # 3 letters (nationality) + 12 digits
    nationality: str  # ISO 3166-1 alpha-3, e.g. 'USA'
    birth: date
    valid_from: date
    valid_to: date | None  # None: 长期
    card_version: str
    authority_code: str  # the issuing authority as a code, not a name
    photo: bytes

    @property
    def name(self) -> str:
        return self.chinese_name or self.english_name

    @property
    def id_number(self) -> str:
        return self.permit_number

    def __repr__(self) -> str:
        return (f"ForeignerPermanentResidenceCard(english_name={mask_latin_name(self.english_name)!r}, "
                f"chinese_name={mask_name(self.chinese_name)!r}, gender={self.gender!r}, "
                f"nationality={self.nationality!r}, permit_number={mask_id_number(self.permit_number)!r}, "
                f"valid_to={self.valid_to}, photo=<{len(self.photo)} bytes>)")

    __str__ = __repr__

    def to_dict(self, masked: bool = True) -> dict[str, Any]:
        """JSON-ready fields for diagnostics; masked unless a technician explicitly asks otherwise."""
        return {
            "card_type": self.card_type.value, "card_type_label": self.card_type.label,
            "english_name": mask_latin_name(self.english_name) if masked else self.english_name,
            "chinese_name": mask_name(self.chinese_name) if masked else self.chinese_name,
            "gender": self.gender, "gender_code": GENDER_CODES.get(self.gender),
            "permit_number": mask_id_number(self.permit_number) if masked else self.permit_number,
            "nationality": self.nationality, "birth": _birth(self.birth, masked),
            "valid_from": _iso(self.valid_from), "valid_to": _iso(self.valid_to),
            "card_version": self.card_version, "authority_code": self.authority_code,
            "photo": _photo_summary(self.photo),
        }


@dataclass(frozen=True)
class ResidencePermit:
    """港澳台居民居住证 (card-type character 'J'): laid out like the resident card, with the holder's
    home-return permit (HK/Macao) or Taiwan compatriot permit number and the issue count added."""

    card_type: ClassVar[CardType] = CardType.RESIDENCE_PERMIT

    name: str
    gender: str  # label from GENDERS
    birth: date
    address: str
    id_number: str  # 18 characters, 810000 / 820000 / 830000 + GB 11643 check digit
    authority: str
    valid_from: date
    valid_to: date | None  # None: 长期
    pass_number: str  # 港澳居民来往内地通行证 or 台湾居民来往大陆通行证 number
    issue_count: int
    photo: bytes

    @property
    def region(self) -> str:
        """'香港' | '澳门' | '台湾', from the number's prefix."""
        return residence_permit_region(self.id_number) or ""

    def __repr__(self) -> str:
        return (f"ResidencePermit(name={mask_name(self.name)!r}, gender={self.gender!r}, region={self.region!r}, "
                f"id_number={mask_id_number(self.id_number)!r}, pass_number={_mask_keep(self.pass_number, 1, 2)!r}, "
                f"valid_to={self.valid_to}, photo=<{len(self.photo)} bytes>)")

    __str__ = __repr__

    def to_dict(self, masked: bool = True) -> dict[str, Any]:
        """JSON-ready fields for diagnostics; masked unless a technician explicitly asks otherwise."""
        return {
            "card_type": self.card_type.value, "card_type_label": self.card_type.label,
            "name": mask_name(self.name) if masked else self.name,
            "gender": self.gender, "gender_code": GENDER_CODES.get(self.gender), "region": self.region,
            "birth": _birth(self.birth, masked),
            "address": _mask_keep(self.address, 6) if masked else self.address,
            "id_number": mask_id_number(self.id_number) if masked else self.id_number,
            "authority": self.authority, "valid_from": _iso(self.valid_from), "valid_to": _iso(self.valid_to),
            "pass_number": _mask_keep(self.pass_number, 1, 2) if masked else self.pass_number,
            "issue_count": self.issue_count, "photo": _photo_summary(self.photo),
        }


AnyCard = Union[IdentityCard, ForeignerPermanentResidenceCard, ResidencePermit]
CARD_CLASSES: dict[CardType, type] = {
    CardType.RESIDENT: IdentityCard, CardType.FOREIGNER_PERMANENT: ForeignerPermanentResidenceCard,
    CardType.RESIDENCE_PERMIT: ResidencePermit,
}


def _date(text: str, field: str) -> date:
    if len(text) != 8 or not text.isascii() or not text.isdigit():
        raise CardDataError(f"{field} {text!r} is not YYYYMMDD")
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        raise CardDataError(f"{field} {text!r} is not a real date") from None


def _valid_to(text: str) -> date | None:
    return None if text == LONG_TERM else _date(text, "valid-to date")


def _gender(code: str) -> str:
    gender = GENDERS.get(code)
    if gender is None:
        raise CardDataError(f"gender code {code!r} is not one of 0, 1, 2, 9 (GB/T 2261.1)")
    return gender


def _check_length(text: bytes) -> None:
    if len(text) != TEXT_LENGTH:
        raise CardDataError(f"text is {len(text)} bytes, expected {TEXT_LENGTH}")


def card_type_of(text: bytes) -> CardType:
    """The card type the 256-byte text declares at byte 248."""
    _check_length(text)
    try:
        char = text[CARD_TYPE_OFFSET:CARD_TYPE_OFFSET + 2].decode("utf-16-le")
    except UnicodeDecodeError:
        raise CardDataError("the card-type character is not valid UCS-2 text") from None
    card_type = CARD_TYPE_CHARS.get(char)
    if card_type is None:
        raise CardDataError(f"unknown card-type character {char!r} at byte {CARD_TYPE_OFFSET} "
                            f"(known: blank = resident ID card, 'I' = foreigner's permanent residence card, "
                            f"'J' = HK/Macao/Taiwan residence permit)")
    return card_type


def _split(text: bytes, layout: tuple[tuple[str, int], ...]) -> dict[str, str]:
    _check_length(text)
    fields: dict[str, str] = {}
    pos = 0
    for name, size in layout:
        raw = text[pos:pos + size]
        pos += size
        try:
            fields[name] = raw.decode("utf-16-le").rstrip(" \x00")
        except UnicodeDecodeError:
            raise CardDataError(f"{name} is not valid UCS-2 text") from None
    return fields


def _parse_resident(text: bytes, photo: bytes) -> IdentityCard:
    fields = _split(text, TEXT_FIELDS)
    gender = _gender(fields["gender"])
    nation = NATIONS.get(fields["nation"])
    if nation is None:
        raise CardDataError(f"nation code {fields['nation']!r} is unknown")
    id_number = fields["id_number"]
    if not is_valid(id_number):
        raise CardDataError(f"ID number {mask_id_number(id_number)!r} fails its check digit or birth date")
    if not fields["name"]:
        raise CardDataError("name is empty")
    return IdentityCard(
        name=fields["name"], gender=gender, nation=nation, birth=_date(fields["birth"], "birth date"),
        address=fields["address"], id_number=id_number.upper(), authority=fields["authority"],
        valid_from=_date(fields["valid_from"], "valid-from date"), valid_to=_valid_to(fields["valid_to"]),
        photo=bytes(photo),
    )


def _parse_foreigner(text: bytes, photo: bytes) -> ForeignerPermanentResidenceCard:
    fields = _split(text, FOREIGNER_FIELDS)
    if not fields["english_name"]:
        raise CardDataError("English name is empty")
    gender = _gender(fields["gender"])
    permit_number = fields["permit_number"]
    if not is_valid_foreign_permit_number(permit_number):
        raise CardDataError(f"permanent residence card number {mask_id_number(permit_number)!r} is not "
                            f"3 capital letters followed by 12 digits")
    nationality = fields["nationality"]
    if len(nationality) != 3 or not nationality.isascii() or not nationality.isalpha() or not nationality.isupper():
        raise CardDataError(f"nationality {nationality!r} is not a 3-letter ISO 3166 code")
    return ForeignerPermanentResidenceCard(
        english_name=fields["english_name"], chinese_name=fields["chinese_name"], gender=gender,
        permit_number=permit_number, nationality=nationality, birth=_date(fields["birth"], "birth date"),
        valid_from=_date(fields["valid_from"], "valid-from date"), valid_to=_valid_to(fields["valid_to"]),
        card_version=fields["card_version"], authority_code=fields["authority_code"], photo=bytes(photo),
    )


def _parse_residence_permit(text: bytes, photo: bytes) -> ResidencePermit:
    fields = _split(text, RESIDENCE_PERMIT_FIELDS)
    if not fields["name"]:
        raise CardDataError("name is empty")
    gender = _gender(fields["gender"])
    id_number = fields["id_number"]
    if residence_permit_region(id_number) is None:
        raise CardDataError(f"residence-permit number {mask_id_number(id_number)!r} does not start with "
                            f"810000 (Hong Kong), 820000 (Macao) or 830000 (Taiwan)")
    if not is_valid_residence_permit_number(id_number):
        raise CardDataError(f"residence-permit number {mask_id_number(id_number)!r} fails its check digit "
                            f"or birth date")
    pass_number = fields["pass_number"]
    if not pass_number or not pass_number.isascii() or not pass_number.isalnum():
        raise CardDataError(f"pass number {_mask_keep(pass_number, 1, 2)!r} is not letters and digits")
    issue_count = fields["issue_count"]
    if len(issue_count) != 2 or not issue_count.isascii() or not issue_count.isdigit():
        raise CardDataError(f"issue count {issue_count!r} is not two digits")
    return ResidencePermit(
        name=fields["name"], gender=gender, birth=_date(fields["birth"], "birth date"),
        address=fields["address"], id_number=id_number.upper(), authority=fields["authority"],
        valid_from=_date(fields["valid_from"], "valid-from date"), valid_to=_valid_to(fields["valid_to"]),
        pass_number=pass_number, issue_count=int(issue_count), photo=bytes(photo),
    )


_PARSERS: dict[CardType, Callable[[bytes, bytes], AnyCard]] = {
    CardType.RESIDENT: _parse_resident, CardType.FOREIGNER_PERMANENT: _parse_foreigner,
    CardType.RESIDENCE_PERMIT: _parse_residence_permit,
}


def parse_card(text: bytes, photo: bytes) -> AnyCard:
    """Any of the three card types, chosen by the card-type character; CardDataError for anything else."""
    return _PARSERS[card_type_of(text)](text, photo)


def parse_identity(text: bytes, photo: bytes) -> IdentityCard:
    """A resident ID card only: for callers that cannot handle the other documents (use `parse_card`)."""
    card_type = card_type_of(text)
    if card_type is not CardType.RESIDENT:
        raise CardDataError(f"this is a {card_type.label}, not a resident ID card")
    return _parse_resident(text, photo)


def _field(value: str, size: int, name: str) -> bytes:
    raw = value.encode("utf-16-le")
    if len(raw) > size:
        raise ValueError(f"{name} {value!r} does not fit in {size} bytes")
    return raw + " ".encode("utf-16-le") * ((size - len(raw)) // 2)


def _gender_code(gender: str) -> str:
    try:
        return GENDER_CODES[gender]
    except KeyError:
        raise ValueError(f"gender {gender!r} is not one of {', '.join(GENDER_CODES)}") from None


def _yyyymmdd(day: date | None) -> str:
    return LONG_TERM if day is None else f"{day:%Y%m%d}"


def _values(card: AnyCard) -> dict[str, str]:
    if isinstance(card, IdentityCard):
        try:
            nation = NATION_CODES[card.nation]
        except KeyError:
            raise ValueError(f"nation {card.nation!r} is unknown") from None
        return {
            "name": card.name, "gender": _gender_code(card.gender), "nation": nation,
            "birth": f"{card.birth:%Y%m%d}", "address": card.address, "id_number": card.id_number,
            "authority": card.authority, "valid_from": f"{card.valid_from:%Y%m%d}",
            "valid_to": _yyyymmdd(card.valid_to), "reserved": "",
        }
    if isinstance(card, ForeignerPermanentResidenceCard):
        return {
            "english_name": card.english_name, "gender": _gender_code(card.gender),
            "permit_number": card.permit_number, "nationality": card.nationality,
            "chinese_name": card.chinese_name, "valid_from": f"{card.valid_from:%Y%m%d}",
            "valid_to": _yyyymmdd(card.valid_to), "birth": f"{card.birth:%Y%m%d}",
            "card_version": card.card_version, "authority_code": card.authority_code,
            "card_type": CARD_TYPE_CHAR[card.card_type], "reserved": "",
        }
    if isinstance(card, ResidencePermit):
        return {
            "name": card.name, "gender": _gender_code(card.gender), "reserved1": "",
            "birth": f"{card.birth:%Y%m%d}", "address": card.address, "id_number": card.id_number,
            "authority": card.authority, "valid_from": f"{card.valid_from:%Y%m%d}",
            "valid_to": _yyyymmdd(card.valid_to), "pass_number": card.pass_number,
            "issue_count": f"{card.issue_count:02d}", "reserved2": "",
            "card_type": CARD_TYPE_CHAR[card.card_type], "reserved3": "",
        }
    raise TypeError(f"not a card: {type(card).__name__}")


def encode_card(card: AnyCard) -> tuple[bytes, bytes]:
    """The 256-byte text and 1024-byte photo the card would give for `card` (the simulator's side)."""
    values = _values(card)
    text = b"".join(_field(values[name], size, name) for name, size in LAYOUTS[card.card_type])
    photo = card.photo[:PHOTO_LENGTH].ljust(PHOTO_LENGTH, b"\x00")
    return text, photo


encode_identity = encode_card  # the original name; it always meant "whatever card is on the reader"


def encode_basic_info(card: AnyCard) -> bytes:
    """Data of a successful 30 01 answer: text length, photo length, text, photo."""
    text, photo = encode_card(card)
    return len(text).to_bytes(2, "big") + len(photo).to_bytes(2, "big") + text + photo


def decode_basic_info(data: bytes) -> AnyCard:
    """Any of the three card types; callers match on the class (or `card_type`) when they need more than
    the `Card` protocol."""
    if len(data) < 4:
        raise CardDataError(f"basic info is {len(data)} bytes, too short for its length fields")
    text_len = int.from_bytes(data[:2], "big")
    photo_len = int.from_bytes(data[2:4], "big")
    if len(data) != 4 + text_len + photo_len:
        raise CardDataError(f"basic info declares {text_len}+{photo_len} bytes but carries {len(data) - 4}")
    return parse_card(data[4:4 + text_len], data[4 + text_len:])
