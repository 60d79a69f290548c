from datetime import date

import pytest

from drivers.idcard.idnumber import (
    check_digit, is_valid, is_valid_foreign_permit_number, is_valid_residence_permit_number, mask_id_number,
    mask_latin_name, mask_name, residence_permit_region,
)

# Published examples: the first is the standard's own; the others come from public test data.
KNOWN_VALID = ["11010519491231002X", "110101199003074477", "110101199003074258"]


@pytest.mark.parametrize("number", KNOWN_VALID)
def test_known_numbers_are_valid(number: str) -> None:
    assert check_digit(number[:17]) == number[17]
    assert is_valid(number)


def test_lowercase_x_is_accepted() -> None:
    assert is_valid("11010519491231002x")


@pytest.mark.parametrize("number", KNOWN_VALID)
def test_every_wrong_check_digit_is_rejected(number: str) -> None:
    for wrong in "0123456789X":
        if wrong != number[17]:
            assert not is_valid(number[:17] + wrong)


def test_every_single_mistyped_digit_is_caught() -> None:
    number = "110101199003074477"
    for pos in range(17):
        for digit in "0123456789":
            if digit != number[pos]:
                typo = number[:pos] + digit + number[pos + 1:]
                assert not is_valid(typo), typo


@pytest.mark.parametrize("number", [
    "",
    "11010519491231002",  # 17 characters
    "11010519491231002XX",
    "1101051949123100AX",
    "110105194913310025",  # month 13
    "990105194912310021",  # no province 99
    "１１０１０５１９４９１２３１００２X",  # full-width digits
])
def test_malformed_numbers_are_rejected(number: str) -> None:
    assert not is_valid(number)


def test_check_digit_right_but_birth_date_implausible() -> None:
    old = "440524188001010014"  # correct check digit, born 1880
    assert check_digit(old[:17]) == "4"
    assert not is_valid(old)
    future = "110101" + "20991231" + "123"
    assert not is_valid(future + check_digit(future), today=date(2026, 1, 1))


def test_check_digit_needs_17_digits() -> None:
    with pytest.raises(ValueError):
        check_digit("1234")


def test_mask_id_number() -> None:
    assert mask_id_number("360702195603140287") == "360***********0287"
    assert mask_id_number("11010519491231002X") == "110***********002X"
    assert mask_id_number("1234") == "****"


@pytest.mark.parametrize("name, masked", [
    ("张三", "张*"), ("张三丰", "张*丰"), ("欧阳娜娜", "欧**娜"), ("李", "*"),
    ("买买提·艾力", "买****力"), ("John Smith", "J***"), ("", ""),
])
def test_mask_name(name: str, masked: str) -> None:
    assert mask_name(name) == masked


@pytest.mark.parametrize("name, masked", [
    ("SMITH, JOHN", "S****, J***"), ("NGUYEN THI MAI", "N***** T** M**"), ("O'BRIEN, MARY-ANN", "O'B****, M***-A**"),
    ("  LEE  ", "L**"), ("", ""),
])
def test_mask_latin_name_keeps_the_first_letter_of_each_word(name: str, masked: str) -> None:
    assert mask_latin_name(name) == masked


def test_residence_permit_numbers_need_a_hk_macao_taiwan_prefix_and_a_valid_check_digit() -> None:
    for prefix, region in [("810000", "香港"), ("820000", "澳门"), ("830000", "台湾")]:
        first17 = prefix + "19900701123"
        number = first17 + check_digit(first17)
        assert residence_permit_region(number) == region
        assert is_valid_residence_permit_number(number)
        assert not is_valid_residence_permit_number(first17 + ("0" if number[17] != "0" else "1"))
    mainland = "110101199003074477"
    assert is_valid(mainland) and residence_permit_region(mainland) is None
    assert not is_valid_residence_permit_number(mainland)
    first17 = "81010019900701123"  # 81 but not 810000: a mainland-style county code is not a permit
    assert not is_valid_residence_permit_number(first17 + check_digit(first17))


@pytest.mark.parametrize("number, ok", [
    ("USA360180031201", True), ("CHN110199001011", True), ("usa360180031201", False),
    ("US3360180031201", False), ("USA36018003120", False), ("USA3601800312011", False),
    ("USA36018003120X", False), ("ＵＳＡ360180031201", False), ("", False),
])
def test_foreign_permit_number_shape(number: str, ok: bool) -> None:
    assert is_valid_foreign_permit_number(number) is ok
