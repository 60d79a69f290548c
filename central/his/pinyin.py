"""Pinyin initials of Chinese names, for finding a doctor by typing letters (李秀英 -> LXY).

pypinyin reads a character as it is read in ordinary words; a few characters are read differently as a
surname (曾 is Zēng as a surname, céng in 曾经), so the first character goes through the surname table first.
"""
from __future__ import annotations

from pypinyin import Style, lazy_pinyin

#: Surnames whose reading differs from the character's common reading: first letter as a surname.
SURNAME_INITIALS = {"曾": "Z", "单": "S", "解": "X", "仇": "Q", "朴": "P", "区": "O", "查": "Z", "盖": "G",
                    "乐": "Y", "尉": "Y", "覃": "Q", "缪": "M", "翟": "Z", "种": "C", "秘": "B", "繁": "P"}


def name_initials(name: str) -> str:
    """Upper-case initials; latin letters and digits are kept as they are, other characters dropped."""
    name = name.strip()
    if not name:
        return ""
    first = SURNAME_INITIALS.get(name[0])
    rest = name[1:] if first else name
    letters = [first or ""] + [syllable[:1] for syllable in lazy_pinyin(rest, style=Style.FIRST_LETTER,
                                                                           errors="ignore")]
    return "".join(letter.upper() for letter in "".join(letters) if letter.isascii() and letter.isalnum())
