"""Whether a name typed in Latin letters at the kiosk is the name on a patient file (K1, passport / permit).

The kiosk's keyboard has letters only, and patients type their names as their document spells them: in
capitals or not, with or without the comma, hyphen or space the document prints, surname first or last. A
file may hold the Latin name itself (a foreign patient) or the Chinese name (a Chinese citizen's passport
prints it in Hanyu Pinyin, ü as YU since the 2012 rule and as U or V before). The document number has
already found the file; the name is the check that the person typing holds that document, so it must not
be so loose that any name passes: every letter has to be accounted for, in the file's order.
"""
from __future__ import annotations

import re
import unicodedata

from pypinyin import Style, pinyin

_WORD = re.compile(r"[A-Z]+")


def _latin_words(text: str) -> list[str]:
    """Upper-case letter runs, accents dropped (JOSÉ → JOSE); commas, hyphens, apostrophes and '<' split."""
    plain = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return _WORD.findall(plain.upper())


def _is_han(ch: str) -> bool:
    return "\u3400" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff"


def _spellings(ch: str) -> set[str]:
    """Every reading of a character as a passport may spell it (all readings: 曾 is ZENG as a surname)."""
    out: set[str] = set()
    for reading in pinyin(ch, style=Style.NORMAL, heteronym=True)[0]:
        reading = reading.upper()
        out.add(reading)
        if "V" in reading:  # ü: LYU on current passports, LU or LV on older ones
            out.update({reading.replace("V", "YU"), reading.replace("V", "U")})
    return out


def _spelt_by(letters: str, chars: list[str]) -> bool:
    """Whether `letters` is one spelling of each character in turn, with nothing left over."""
    if not chars:
        return not letters
    return any(letters.startswith(s) and _spelt_by(letters[len(s):], chars[1:]) for s in _spellings(chars[0]))


def latin_name_matches(on_file: str, typed: str) -> bool:
    """True when `typed` (Latin letters, any case and spacing) is the name on file, or its Pinyin."""
    typed_words = _latin_words(typed)
    if not typed_words:
        return False
    han = [c for c in on_file if _is_han(c)]
    if not han:
        file_words = _latin_words(on_file)
        # SMITH JOHN = SMITH, JOHN = smithjohn = JOHN SMITH; SMITH JANE is someone else.
        return "".join(file_words) == "".join(typed_words) or sorted(file_words) == sorted(typed_words)
    letters = "".join(typed_words)
    # Surname first (ZHANG SAN), or given names first (SAN ZHANG); a compound surname (欧阳) moves whole.
    orders = [han] + [han[n:] + han[:n] for n in (1, 2) if len(han) > n]
    return any(_spelt_by(letters, order) for order in orders)
