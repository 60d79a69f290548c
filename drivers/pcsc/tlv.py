"""BER-TLV as used by EMV and ISO 7816-4 cards.

Card answers are untrusted input: a worn contact, a counterfeit card or a buggy applet can send lengths that
run past the end of the buffer. Every such case becomes a `TlvError` so callers handle one exception type
and never see an IndexError from half a record.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

MAX_DEPTH = 16  # real EMV templates nest three or four deep; deeper is garbage or an attack


class TlvError(ValueError):
    """The bytes are not well-formed BER-TLV."""


@dataclass(frozen=True)
class Tlv:
    tag: int
    value: bytes
    children: tuple["Tlv", ...] = field(default=())

    @property
    def constructed(self) -> bool:
        return is_constructed(self.tag)

    def find(self, tag: int) -> "Tlv | None":
        """Depth-first search, so a caller need not know in which template a card put a tag."""
        return find(self.children, tag)


def is_constructed(tag: int) -> bool:
    first = tag
    while first > 0xFF:
        first >>= 8
    return bool(first & 0x20)


def _read_tag(data: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(data):
        raise TlvError(f"tag expected at offset {pos}, data ends")
    first = data[pos]
    tag = first
    pos += 1
    if first & 0x1F == 0x1F:
        for count in range(1, 4):
            if pos >= len(data):
                raise TlvError("multi-byte tag runs past the end of the data")
            b = data[pos]
            tag = (tag << 8) | b
            pos += 1
            if not b & 0x80:
                break
            if count == 3:
                raise TlvError("tag longer than 4 bytes")
    return tag, pos


def _read_length(data: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(data):
        raise TlvError(f"length expected at offset {pos}, data ends")
    first = data[pos]
    pos += 1
    if first < 0x80:
        return first, pos
    count = first & 0x7F
    if count == 0:
        raise TlvError("indefinite length is not allowed in card data")
    if count > 4:
        raise TlvError(f"length field of {count} bytes is not plausible")
    if pos + count > len(data):
        raise TlvError("long-form length runs past the end of the data")
    return int.from_bytes(data[pos:pos + count], "big"), pos + count


def parse(data: bytes, *, _depth: int = 0) -> list[Tlv]:
    """Parse a sequence of TLV objects, descending into constructed ones.

    Padding bytes 00 and FF between objects are skipped, as EMV allows.
    """
    if _depth > MAX_DEPTH:
        raise TlvError("TLV nested too deeply")
    data = bytes(data)
    out: list[Tlv] = []
    pos = 0
    while pos < len(data):
        if data[pos] in (0x00, 0xFF):
            pos += 1
            continue
        start = pos
        tag, pos = _read_tag(data, pos)
        length, pos = _read_length(data, pos)
        end = pos + length
        if end > len(data):
            raise TlvError(f"tag {tag:X} at offset {start} claims {length} bytes, only {len(data) - pos} left")
        value = data[pos:end]
        children = tuple(parse(value, _depth=_depth + 1)) if is_constructed(tag) else ()
        out.append(Tlv(tag, value, children))
        pos = end
    return out


def walk(items: list[Tlv] | tuple[Tlv, ...]) -> Iterator[Tlv]:
    for item in items:
        yield item
        yield from walk(item.children)


def find(items: list[Tlv] | tuple[Tlv, ...], tag: int) -> Tlv | None:
    for item in walk(items):
        if item.tag == tag:
            return item
    return None


def find_all(items: list[Tlv] | tuple[Tlv, ...], tag: int) -> list[Tlv]:
    return [item for item in walk(items) if item.tag == tag]


def parse_dol(data: bytes) -> list[tuple[int, int]]:
    """A data object list (PDOL, CDOL): tags and lengths without values."""
    out: list[tuple[int, int]] = []
    pos = 0
    data = bytes(data)
    while pos < len(data):
        tag, pos = _read_tag(data, pos)
        length, pos = _read_length(data, pos)
        out.append((tag, length))
    return out


def encode(tag: int, value: bytes) -> bytes:
    """The inverse of parse for one object; used by the virtual card and by tests."""
    tag_bytes = tag.to_bytes((tag.bit_length() + 7) // 8 or 1, "big")
    n = len(value)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return tag_bytes + length + bytes(value)
