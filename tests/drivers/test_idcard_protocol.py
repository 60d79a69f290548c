from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.idcard.idnumber import check_digit
from drivers.idcard.protocol import (
    CMD_FIND_CARD, CMD_READ_BASIC, NATIONS, PREAMBLE, CardDataError, ChecksumError, FrameError, IdCardError,
    IdentityCard, LengthError, NoPreambleError, NoResponseError, Response, TruncatedFrameError,
    decode_basic_info, decode_request, decode_response, encode_basic_info, encode_identity, encode_request,
    encode_response, parse_identity, read_frame,
)
from drivers.idcard.simulator import demo_card


def reader_of(data: bytes, chunk: int = 1 << 30):
    """A read(n) over fixed bytes that returns b"" at the end, like a serial port timing out."""
    pos = 0

    def read(n: int) -> bytes:
        nonlocal pos
        out = data[pos:pos + min(n, chunk)]
        pos += len(out)
        return out
    return read


def test_request_frame_matches_the_documented_bytes() -> None:
    # Find card, as every SAM manual prints it.
    assert encode_request(CMD_FIND_CARD) == bytes.fromhex("AAAAAA9669 0003 2001 22")
    assert decode_request(encode_request(CMD_READ_BASIC, b"\x01\x02")) == (CMD_READ_BASIC, b"\x01\x02")


def test_response_round_trip_through_read_frame() -> None:
    frame = encode_response(0x90, b"hello")
    assert frame[:5] == PREAMBLE and frame[5:7] == (3 + 5 + 1).to_bytes(2, "big")
    assert decode_response(read_frame(reader_of(frame, chunk=3))) == Response(0x90, b"hello")


def test_garbage_before_the_preamble_is_skipped() -> None:
    frame = encode_response(0x9F, b"\x00\x00\x00\x00")
    assert decode_response(read_frame(reader_of(b"\x00\xaa\xaa\x13\x37" + frame))).sw3 == 0x9F


@pytest.mark.parametrize("data, error", [
    (b"", NoResponseError),
    (b"\x01\x02\x03", NoPreambleError),
    (PREAMBLE + b"\x00", TruncatedFrameError),
    (encode_response(0x90, b"abc")[:-2], TruncatedFrameError),
    (PREAMBLE + b"\x00\x02\x00\x00", LengthError),
    (PREAMBLE + b"\xff\xff", LengthError),
])
def test_read_frame_errors(data: bytes, error: type[FrameError]) -> None:
    with pytest.raises(error) as info:
        read_frame(reader_of(data))
    assert str(info.value)


def test_checksum_error_is_reported() -> None:
    frame = bytearray(encode_response(0x90, b"abc"))
    frame[-2] ^= 0xFF
    with pytest.raises(ChecksumError, match="checksum"):
        decode_response(bytes(frame))


def test_failure_status_becomes_an_id_card_error_with_both_languages() -> None:
    with pytest.raises(IdCardError) as info:
        Response(0x41).expect(0x90)
    assert info.value.code == 0x41 and "读证/卡操作失败" in str(info.value) and "reading the card" in str(info.value)
    assert "0x77" in str(IdCardError(0x77))


def test_identity_round_trip_with_chinese_fields_and_long_term_validity() -> None:
    card = demo_card("欧阳娜娜", gender="女", nation="维吾尔", birth=date(1992, 2, 29),
                     address="新疆维吾尔自治区乌鲁木齐市天山区示范街道幸福路一百二十三号院五号楼二单元"[:35],
                     authority="乌鲁木齐市公安局天山区分局")
    text, photo = encode_identity(card)
    assert len(text) == 256 and len(photo) == 1024
    assert parse_identity(text, photo) == card
    assert card.valid_to is None and "长期".encode("utf-16-le") in text
    assert decode_basic_info(encode_basic_info(card)) == card


def test_a_field_too_long_for_the_card_is_refused() -> None:
    with pytest.raises(ValueError, match="address"):
        encode_identity(demo_card("张三", address="很" * 36))


def test_identity_with_an_end_date() -> None:
    card = demo_card("张三", valid_from=date(2016, 5, 1), valid_to=date(2036, 5, 1))
    assert parse_identity(*encode_identity(card)).valid_to == date(2036, 5, 1)


def test_wrong_check_digit_is_card_data_error() -> None:
    card = demo_card("张三")
    bad = card.id_number[:17] + ("0" if card.id_number[17] != "0" else "1")
    text, photo = encode_identity(IdentityCard(**{**card.__dict__, "id_number": bad}))
    with pytest.raises(CardDataError, match="check digit"):
        parse_identity(text, photo)


def test_repr_never_shows_name_or_number() -> None:
    card = demo_card("欧阳娜娜", id_number="11010519491231002X")
    for shown in (repr(card), str(card), f"{card}", repr([card])):
        assert "欧阳娜娜" not in shown and "11010519491231002X" not in shown
        assert "欧**娜" in shown and "110***********002X" in shown


def test_all_56_nations_and_both_genders_round_trip() -> None:
    assert len([c for c in NATIONS if int(c) <= 56]) == 56
    first17 = "36010219800101123"
    for code, nation in NATIONS.items():
        card = demo_card("李四", id_number=first17 + check_digit(first17), nation=nation,
                         gender="女" if int(code) % 2 else "男", birth=date(1980, 1, 1))
        assert parse_identity(*encode_identity(card)) == card


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.integers(min_value=1, max_value=64))
def test_random_bytes_into_read_frame_raise_only_frame_errors(data: bytes, chunk: int) -> None:
    for attempt in (data, PREAMBLE + data):
        try:
            decode_response(read_frame(reader_of(attempt, chunk)))
        except FrameError:
            pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_into_decode_response_raise_only_frame_errors(data: bytes) -> None:
    for attempt in (data, PREAMBLE + data, PREAMBLE + len(data).to_bytes(2, "big") + data):
        try:
            decode_response(attempt).expect(0x90)
        except (FrameError, IdCardError):
            pass


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=256, max_size=256), st.binary(max_size=1024))
def test_random_card_text_raises_only_card_data_errors(text: bytes, photo: bytes) -> None:
    try:
        parse_identity(text, photo)
    except CardDataError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=1400))
def test_random_basic_info_raises_only_card_data_errors(data: bytes) -> None:
    try:
        decode_basic_info(data)
    except CardDataError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_card_text_raises_only_card_data_errors(data: st.DataObject) -> None:
    text = bytearray(encode_identity(demo_card("王五"))[0])
    for _ in range(data.draw(st.integers(1, 6))):
        text[data.draw(st.integers(0, 255))] = data.draw(st.integers(0, 255))
    try:
        parse_identity(bytes(text), b"")
    except CardDataError:
        pass
