"""The SAM frame protocol and the three card types' text layouts, on bytes alone and over a real pty pair."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.idcard.idnumber import check_digit
from drivers.idcard.protocol import (
    CARD_TYPE_OFFSET, CMD_FIND_CARD, CMD_READ_BASIC, FOREIGNER_FIELDS, LAYOUTS, NATIONS, PREAMBLE,
    RESIDENCE_PERMIT_FIELDS, SW3_MESSAGES, TEXT_FIELDS, TEXT_LENGTH, Card, CardDataError, CardType, ChecksumError,
    ForeignerPermanentResidenceCard, FrameError, IdCardError, IdentityCard, LengthError, NoPreambleError,
    NoResponseError, ResidencePermit, Response, TruncatedFrameError, card_type_of, decode_basic_info,
    decode_request, decode_response, encode_basic_info, encode_card, encode_identity, encode_request,
    encode_response, parse_card, parse_identity, read_frame,
)
from drivers.idcard.reader import SerialIdCardReader
from drivers.idcard.simulator import IdCardReaderSimulator, demo_card, demo_foreigner_card, demo_residence_permit


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


# --- the other two card types --------------------------------------------------------------------------

def _all_demo_cards() -> list[Card]:
    return [demo_card("欧阳娜娜", gender="女", nation="回"), demo_foreigner_card(),
            demo_foreigner_card("NGUYEN, THI MAI", "", gender="女", nationality="VNM", valid_to=None),
            demo_residence_permit(), demo_residence_permit("李美玲", region="澳门", gender="女"),
            demo_residence_permit("林志明", region="台湾", valid_to=None, issue_count=12)]


def _text_with(text: bytes, layout: tuple[tuple[str, int], ...], field: str, value: str) -> bytes:
    """`text` with one field overwritten (space-padded), for building malformed cards."""
    pos = 0
    for name, size in layout:
        if name == field:
            raw = value.encode("utf-16-le")
            raw = raw + " ".encode("utf-16-le") * ((size - len(raw)) // 2)
            assert len(raw) == size
            return text[:pos] + raw + text[pos + size:]
        pos += size
    raise KeyError(field)


@pytest.mark.parametrize("card_type", list(CardType))
def test_every_layout_fills_exactly_256_bytes_and_puts_the_type_at_byte_248(card_type: CardType) -> None:
    layout = LAYOUTS[card_type]
    assert sum(size for _, size in layout) == TEXT_LENGTH
    assert all(size % 2 == 0 for _, size in layout)  # UCS-2: a field never splits a character
    if card_type is not CardType.RESIDENT:
        names = [name for name, _ in layout]
        offset = sum(size for _, size in layout[:names.index("card_type")])
        assert offset == CARD_TYPE_OFFSET == 124 * 2


def test_documented_field_sizes() -> None:
    assert dict(FOREIGNER_FIELDS) == {
        "english_name": 120, "gender": 2, "permit_number": 30, "nationality": 6, "chinese_name": 30,
        "valid_from": 16, "valid_to": 16, "birth": 16, "card_version": 4, "authority_code": 8, "card_type": 2,
        "reserved": 6}
    assert [size for _, size in RESIDENCE_PERMIT_FIELDS] == [30, 2, 4, 16, 70, 36, 30, 16, 16, 18, 4, 6, 2, 6]
    assert [size for _, size in TEXT_FIELDS] == [30, 2, 4, 16, 70, 36, 30, 16, 16, 36]


@pytest.mark.parametrize("card", _all_demo_cards(), ids=repr)
def test_every_card_type_round_trips(card: Card) -> None:
    text, photo = encode_card(card)
    assert len(text) == TEXT_LENGTH and len(photo) == 1024
    assert text[CARD_TYPE_OFFSET:CARD_TYPE_OFFSET + 2].decode("utf-16-le") == \
        {CardType.RESIDENT: " ", CardType.FOREIGNER_PERMANENT: "I", CardType.RESIDENCE_PERMIT: "J"}[card.card_type]
    assert card_type_of(text) is card.card_type
    assert parse_card(text, photo) == card
    assert decode_basic_info(encode_basic_info(card)) == card
    assert encode_identity(card) == (text, photo)  # the old name encodes every type too


def test_the_common_protocol_gives_name_number_birth_and_gender_for_every_type() -> None:
    resident, foreigner, foreigner_no_chinese, hk, macao, taiwan = _all_demo_cards()
    for card in (resident, foreigner, hk, macao, taiwan):
        assert isinstance(card, Card)
        assert card.name and card.id_number and isinstance(card.birth, date) and card.gender in ("男", "女")
    assert foreigner.name == "史密斯" and foreigner.id_number == foreigner.permit_number == "USA360180031201"
    assert foreigner_no_chinese.name == "NGUYEN, THI MAI"
    assert (hk.region, macao.region, taiwan.region) == ("香港", "澳门", "台湾")
    assert hk.id_number.startswith("810000") and macao.id_number.startswith("820000")
    assert taiwan.id_number.startswith("830000") and taiwan.issue_count == 12
    assert hk.pass_number.startswith("H") and macao.pass_number.startswith("M") and taiwan.pass_number.isdigit()


def test_callers_can_match_on_the_class() -> None:
    def describe(card: Card) -> str:
        match card:
            case IdentityCard(nation=nation):
                return f"resident {nation}"
            case ForeignerPermanentResidenceCard(nationality=nationality):
                return f"foreigner {nationality}"
            case ResidencePermit():
                return f"permit {card.region}"
        return "?"
    assert [describe(c) for c in _all_demo_cards()] == [
        "resident 回", "foreigner USA", "foreigner VNM", "permit 香港", "permit 澳门", "permit 台湾"]


def test_resident_card_with_a_nul_type_character_is_still_a_resident_card() -> None:
    card = demo_card("张三")
    text, photo = encode_card(card)
    text = text[:CARD_TYPE_OFFSET] + b"\x00\x00" + text[CARD_TYPE_OFFSET + 2:]
    assert parse_card(text, photo) == card == parse_identity(text, photo)


@pytest.mark.parametrize("char", ["Y", "A", "i", "中"])
def test_unknown_card_type_character_is_card_data_error(char: str) -> None:
    text, photo = encode_card(demo_card("张三"))
    text = text[:CARD_TYPE_OFFSET] + char.encode("utf-16-le") + text[CARD_TYPE_OFFSET + 2:]
    with pytest.raises(CardDataError, match="unknown card-type character"):
        parse_card(text, photo)


def test_parse_identity_refuses_the_other_types_clearly() -> None:
    for card in (demo_foreigner_card(), demo_residence_permit()):
        with pytest.raises(CardDataError, match="not a resident ID card"):
            parse_identity(*encode_card(card))


@pytest.mark.parametrize("length", [0, 1, 255, 257, 512])
def test_text_of_the_wrong_length_is_card_data_error(length: int) -> None:
    with pytest.raises(CardDataError, match=f"{length} bytes"):
        parse_card(b"J\x00" * (length // 2) + b"J" * (length % 2), b"")


FOREIGNER_TEXT = encode_card(demo_foreigner_card())[0]
PERMIT_TEXT = encode_card(demo_residence_permit())[0]


@pytest.mark.parametrize("text, layout, field, value, words", [
    (FOREIGNER_TEXT, FOREIGNER_FIELDS, "birth", "1980O312", "birth date"),
    (FOREIGNER_TEXT, FOREIGNER_FIELDS, "valid_from", "20180231", "not a real date"),
    (FOREIGNER_TEXT, FOREIGNER_FIELDS, "valid_to", "２０２８０６０１", "valid-to date"),
    (FOREIGNER_TEXT, FOREIGNER_FIELDS, "permit_number", "US1360180031201", "3 capital letters"),
    (FOREIGNER_TEXT, FOREIGNER_FIELDS, "permit_number", "USA36018003120", "3 capital letters"),
    (FOREIGNER_TEXT, FOREIGNER_FIELDS, "nationality", "U5A", "nationality"),
    (FOREIGNER_TEXT, FOREIGNER_FIELDS, "english_name", "", "English name is empty"),
    (FOREIGNER_TEXT, FOREIGNER_FIELDS, "gender", "3", "gender code"),
    (PERMIT_TEXT, RESIDENCE_PERMIT_FIELDS, "birth", "199007AB", "birth date"),
    (PERMIT_TEXT, RESIDENCE_PERMIT_FIELDS, "valid_from", "2024-1-1", "valid-from date"),
    (PERMIT_TEXT, RESIDENCE_PERMIT_FIELDS, "id_number", "810000199007011232", "check digit"),
    (PERMIT_TEXT, RESIDENCE_PERMIT_FIELDS, "id_number", "360102198506151233", "810000"),
    (PERMIT_TEXT, RESIDENCE_PERMIT_FIELDS, "issue_count", "1", "issue count"),
    (PERMIT_TEXT, RESIDENCE_PERMIT_FIELDS, "issue_count", "x1", "issue count"),
    (PERMIT_TEXT, RESIDENCE_PERMIT_FIELDS, "pass_number", "H-123", "pass number"),
    (PERMIT_TEXT, RESIDENCE_PERMIT_FIELDS, "name", "", "name is empty"),
])
def test_malformed_fields_of_the_new_types_are_card_data_errors(
        text: bytes, layout: tuple[tuple[str, int], ...], field: str, value: str, words: str) -> None:
    with pytest.raises(CardDataError, match=words):
        parse_card(_text_with(text, layout, field, value), b"")


def test_a_valid_resident_number_on_a_residence_permit_is_refused() -> None:
    # A mainland number under card type 'J' means the card text was misread, not a mainland resident.
    card = demo_residence_permit(id_number=demo_card().id_number)
    with pytest.raises(CardDataError, match="810000"):
        parse_card(*encode_card(card))


@pytest.mark.parametrize("code, label", [("0", "未知"), ("9", "未说明"), ("1", "男"), ("2", "女")])
def test_every_gb_t_2261_gender_code_is_kept_with_a_label(code: str, label: str) -> None:
    for card in (demo_card(gender=label), demo_foreigner_card(gender=label), demo_residence_permit(gender=label)):
        text, photo = encode_card(card)
        got = parse_card(text, photo)
        assert got.gender == label and got.to_dict()["gender_code"] == code


def test_reprs_never_show_names_or_numbers() -> None:
    foreigner = demo_foreigner_card("SMITH, JOHN WILLIAM", "史密斯", "USA360180031201")
    permit = demo_residence_permit("陈大文", pass_number="H51239874")
    for shown in (repr(foreigner), str(foreigner), f"{[foreigner]}"):
        for secret in ("SMITH", "JOHN", "史密斯", "USA360180031201"):
            assert secret not in shown
        assert "S****, J*** W******" in shown and "史*斯" in shown and "USA********1201" in shown
    for shown in (repr(permit), str(permit), f"{[permit]}"):
        for secret in ("陈大文", permit.id_number, "H51239874"):
            assert secret not in shown
        assert "陈*文" in shown and "810***********" in shown and "H******74" in shown


@pytest.mark.parametrize("card", _all_demo_cards(), ids=repr)
def test_to_dict_is_json_ready_and_masked_by_default(card: Card) -> None:
    masked, clear = card.to_dict(), card.to_dict(masked=False)
    assert masked == card.to_dict(masked=True)
    for fields in (masked, clear):
        json.dumps(fields, ensure_ascii=False)  # nothing a JSON encoder would choke on
        assert fields["card_type"] == card.card_type.value
        assert fields["photo"] == {"bytes": 1024, "sha256": hashlib.sha256(card.photo).hexdigest()}
        assert fields["valid_from"] == card.valid_from.isoformat()  # type: ignore[attr-defined]
    dumped = json.dumps(masked, ensure_ascii=False)
    assert card.id_number not in dumped and card.birth.isoformat() not in dumped
    assert masked["birth"] == str(card.birth.year) and clear["birth"] == card.birth.isoformat()
    if isinstance(card, ForeignerPermanentResidenceCard):
        assert card.english_name not in dumped
        assert clear["english_name"] == card.english_name and clear["permit_number"] == card.permit_number
    else:
        assert card.name not in dumped and card.address not in dumped
        assert clear["name"] == card.name and clear["id_number"] == card.id_number
        assert clear["address"] == card.address
    if isinstance(card, ResidencePermit):
        assert card.pass_number not in dumped and clear["pass_number"] == card.pass_number


def test_sw3_codes_the_reader_relies_on_all_have_clear_messages() -> None:
    for code, words in [(0x90, "success"), (0x9F, "card found"), (0x80, "no card"), (0x81, "selecting the card"),
                        (0x41, "reading the card failed"), (0x60, "self-test failed")]:
        assert code in SW3_MESSAGES
        message = str(IdCardError(code))
        assert words in message and SW3_MESSAGES[code][0] in message and f"0x{code:02X}" in message


# --- fuzzing the new types -----------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=256, max_size=256), st.sampled_from([" ", "\x00", "I", "J"]), st.binary(max_size=64))
def test_random_text_of_every_card_type_raises_only_card_data_errors(text: bytes, char: str, photo: bytes) -> None:
    text = text[:CARD_TYPE_OFFSET] + char.encode("utf-16-le") + text[CARD_TYPE_OFFSET + 2:]
    for parse in (parse_card, parse_identity):
        try:
            parse(text, photo)
        except CardDataError:
            pass


@settings(max_examples=300, deadline=None)
@given(st.data(), st.sampled_from(_all_demo_cards()))
def test_mutated_text_of_every_card_type_raises_only_card_data_errors(data: st.DataObject, card: Card) -> None:
    text = bytearray(encode_card(card)[0])
    for _ in range(data.draw(st.integers(1, 6))):
        text[data.draw(st.integers(0, 255))] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        text = text[:data.draw(st.integers(0, 300))]  # odd and short lengths too
    try:
        parse_card(bytes(text), b"")
    except CardDataError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.data(), st.sampled_from(_all_demo_cards()))
def test_mutated_basic_info_of_every_card_type_raises_only_card_data_errors(
        data: st.DataObject, card: Card) -> None:
    info = bytearray(encode_basic_info(card))
    for _ in range(data.draw(st.integers(1, 4))):
        info[data.draw(st.integers(0, 4 + 256 - 1))] = data.draw(st.integers(0, 255))
    try:
        decode_basic_info(bytes(info))
    except CardDataError:
        pass


# --- the real driver reads every type from the simulator over a pty pair -------------------------------
from tests.drivers.test_idcard_reader import pair, reader, sim  # noqa: E402,F401  (the reader's fixtures)


@pytest.mark.timeout(60)
def test_every_card_type_reads_back_field_for_field_over_the_serial_line(
        reader: SerialIdCardReader, sim: IdCardReaderSimulator) -> None:
    for card in _all_demo_cards():
        sim.insert(card)
        got = reader.read_card()
        assert type(got) is type(card) and got == card
        assert dataclasses.asdict(got) == dataclasses.asdict(card)  # every field, photo included
        assert got.to_dict(masked=False) == card.to_dict(masked=False)
        sim.remove()
        assert reader.read_card() is None
