"""A minimal PNG writer (standard library only) for the simulated terminals' screens: a real, decodable image
of one colour with a band per device, so the console shows something true to the simulated state."""
from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence

COLOURS = {"ok": (46, 160, 67), "degraded": (230, 160, 0), "fault": (200, 40, 40)}


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png(width: int, height: int, rows: Sequence[bytes]) -> bytes:
    """An 8-bit RGB PNG from ``height`` rows of ``width * 3`` bytes."""
    raw = b"".join(b"\x00" + row for row in rows)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + _chunk(b"IDAT", zlib.compress(raw, 6)) + _chunk(b"IEND", b""))


def status_card(device_statuses: Sequence[str], width: int = 320, height: int = 180) -> bytes:
    """A grey screen with one coloured band per device (green ok, amber degraded, red fault)."""
    bands = max(1, len(device_statuses))
    rows = []
    for y in range(height):
        band = min(bands - 1, y * bands // height)
        colour = COLOURS.get(device_statuses[band], (120, 120, 120)) if device_statuses else (120, 120, 120)
        edge = y % (height // bands or 1) < 4
        rows.append(bytes((200, 200, 200) if edge else colour) * width)
    return png(width, height, rows)
