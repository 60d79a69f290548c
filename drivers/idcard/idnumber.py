"""Resident ID numbers (GB 11643-1999): check them before trusting a card, mask them before showing or logging.

A misread card or a corrupted frame can still yield 18 digits; the check digit and the birth date catch most
of those before a wrong patient is looked up in the HIS.
"""
from __future__ import annotations

from datetime import date

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK_CHARS = "10X98765432"

# First two digits: province-level region. 71 (Taiwan), 81/82 (Hong Kong, Macao residence permits) and
# 83 (Taiwan residence permits) appear on cards read by mainland readers too.
PROVINCE_CODES = frozenset({
    "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37",
    "41", "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65",
    "71", "81", "82", "83",
})


def check_digit(first17: str) -> str:
    """The 18th character for the given first 17 digits."""
    if len(first17) != 17 or not first17.isascii() or not first17.isdigit():
        raise ValueError("the check digit needs exactly 17 ASCII digits")
    total = sum(int(ch) * w for ch, w in zip(first17, WEIGHTS))
    return CHECK_CHARS[total % 11]


def birth_date(id_number: str) -> date | None:
    """The birth date encoded in positions 7-14, or None when it is not a real date."""
    try:
        return date(int(id_number[6:10]), int(id_number[10:12]), int(id_number[12:14]))
    except ValueError:
        return None


def is_valid(id_number: str, today: date | None = None) -> bool:
    """Structure, region, birth date and check digit all agree (a lowercase 'x' is accepted)."""
    if not isinstance(id_number, str) or len(id_number) != 18 or not id_number.isascii():
        return False
    body, last = id_number[:17], id_number[17].upper()
    if not body.isdigit() or body[:2] not in PROVINCE_CODES:
        return False
    born = birth_date(id_number)
    if born is None or born.year < 1900 or born > (today or date.today()):
        return False
    return check_digit(body) == last


def mask_id_number(id_number: str) -> str:
    """Keep the first 3 and last 4 characters: enough for a patient to recognise their own number."""
    if len(id_number) <= 7:
        return "*" * len(id_number)
    return id_number[:3] + "*" * (len(id_number) - 7) + id_number[-4:]


def mask_name(name: str) -> str:
    """张三 -> 张*, 张三丰 -> 张*丰, 欧阳娜娜 -> 欧**娜; latin names keep only their first letter."""
    name = name.strip()
    if not name:
        return ""
    if name.isascii():
        return name[0] + "***"
    if len(name) == 1:
        return "*"
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


# --- the other two cards a SAM reader returns ----------------------------------------------------------

# A Hong Kong, Macao or Taiwan resident's residence-permit number is a GB 11643 number whose first six
# digits name the home region instead of a mainland county; anything else under card type 'J' is a misread.
RESIDENCE_PERMIT_REGIONS: dict[str, str] = {"810000": "香港", "820000": "澳门", "830000": "台湾"}


def residence_permit_region(id_number: str) -> str | None:
    """'香港' / '澳门' / '台湾' for a residence-permit number's prefix, None for any other number."""
    return RESIDENCE_PERMIT_REGIONS.get(id_number[:6]) if isinstance(id_number, str) else None


def is_valid_residence_permit_number(id_number: str, today: date | None = None) -> bool:
    """A valid GB 11643 number (check digit, birth date) that also carries a 810000/820000/830000 prefix."""
    return residence_permit_region(id_number) is not None and is_valid(id_number, today)


def is_valid_foreign_permit_number(number: str) -> bool:
    """Shape of a 2017-version foreigner's permanent residence card number: 3 letters then 12 digits.

    Only the shape is checked. The letters are the holder's ISO 3166 alpha-3 nationality at issue; public
    descriptions of how the 12 digits split (region, birth date, sequence, check character) disagree and
    the ministry has not published a check-digit algorithm we could verify, so rejecting a real card on a
    guessed rule would be worse than missing a corrupted digit (the SAM already authenticated the card).
    """
    return (isinstance(number, str) and len(number) == 15 and number.isascii()
            and number[:3].isalpha() and number[:3].isupper() and number[3:].isdigit())


def mask_latin_name(name: str) -> str:
    """SMITH, JOHN -> S****, J***: every word keeps its first letter, so staff can still tell two patients
    apart at a glance while a log or screenshot does not give the name away."""
    out: list[str] = []
    at_word_start = True
    for ch in name.strip():
        if ch.isalnum():
            out.append(ch if at_word_start else "*")
            at_word_start = False
        else:
            out.append(ch)
            at_word_start = True
    return "".join(out)
