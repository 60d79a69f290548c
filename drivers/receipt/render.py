"""Read printed ESC/POS bytes back: text, raster images, QR codes and a picture of the slip.

No ESC/POS renderer exists as a package, so this is a small one covering what receipts use. It lays out
text in the printer's fixed columns (12 dots per half-width column, 24-dot CJK glyphs) so a line that would
wrap or be clipped on paper does so here too. Unknown commands are skipped by their documented lengths;
unknown bytes are ignored, never fatal.
"""
from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

PAPER_DOTS = 576
COLUMN_DOTS = 12
GLYPH_DOTS = 24
LINE_DOTS = 30  # default line spacing
MARGIN = 16  # white paper above the first line and below the cut
CJK_FONTS = (
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
)
ENCODING = "gb18030"

ESC, GS, FS, DLE = 0x1B, 0x1D, 0x1C, 0x10

# Parameter byte counts of fixed-length commands (after the command byte itself).
ESC_FIXED = {
    0x20: 1, 0x21: 1, 0x24: 2, 0x25: 1, 0x2D: 1, 0x32: 0, 0x33: 1, 0x3C: 0, 0x3D: 1, 0x3F: 1, 0x40: 0,
    0x44: 0, 0x45: 1, 0x47: 1, 0x4A: 1, 0x4B: 1, 0x4C: 0, 0x4D: 1, 0x52: 1, 0x53: 0, 0x54: 1, 0x56: 1,
    0x5C: 2, 0x61: 1, 0x63: 2, 0x64: 1, 0x65: 1, 0x69: 0, 0x6D: 0, 0x70: 3, 0x72: 1, 0x74: 1, 0x75: 1,
    0x76: 0, 0x7B: 1,
}
GS_FIXED = {
    0x21: 1, 0x24: 2, 0x2A: 2, 0x2F: 1, 0x3A: 0, 0x42: 1, 0x48: 1, 0x49: 1, 0x4C: 2, 0x50: 2, 0x54: 1,
    0x57: 2, 0x5C: 2, 0x5E: 3, 0x61: 1, 0x62: 1, 0x66: 1, 0x67: 2, 0x68: 1, 0x72: 1, 0x77: 1,
}
FS_FIXED = {0x21: 1, 0x26: 0, 0x2D: 1, 0x2E: 0, 0x43: 1, 0x53: 2, 0x57: 1, 0x70: 2}


@dataclass
class Style:
    bold: bool = False
    width: int = 1  # magnification
    height: int = 1
    align: int = 0  # 0 left, 1 centre, 2 right


@dataclass
class Run:
    text: str
    bold: bool
    width: int
    height: int


@dataclass
class TextLine:
    runs: list[Run]
    align: int

    @property
    def text(self) -> str:
        return "".join(r.text for r in self.runs)


@dataclass
class Raster:
    image: np.ndarray  # bool, True = black dot, in printed dots
    align: int


@dataclass
class FeedDots:
    dots: int


@dataclass
class Cut:
    pass


@dataclass
class _Parser:
    data: bytes
    items: list[object] = field(default_factory=list)
    style: Style = field(default_factory=Style)
    pending: bytearray = field(default_factory=bytearray)
    runs: list[Run] = field(default_factory=list)
    line_align: int | None = None
    line_dots: int = LINE_DOTS

    def flush_run(self) -> None:
        if self.pending:
            text = bytes(self.pending).decode(ENCODING, errors="replace")
            self.runs.append(Run(text, self.style.bold, self.style.width, self.style.height))
            self.pending.clear()

    def end_line(self, empty_feeds: bool = True) -> None:
        self.flush_run()
        if self.runs:
            self.items.append(TextLine(self.runs, self.line_align if self.line_align is not None
                                       else self.style.align))
        elif empty_feeds:
            self.items.append(FeedDots(self.line_dots))
        self.runs = []
        self.line_align = None

    def text_byte(self, b: int) -> None:
        if not self.pending and not self.runs:
            self.line_align = self.style.align
        self.pending.append(b)

    def style_change(self) -> None:
        self.flush_run()

    def parse(self) -> list[object]:
        d, i, n = self.data, 0, len(self.data)
        while i < n:
            b = d[i]
            if b == 0x0A:
                self.end_line()
                i += 1
            elif b in (0x0D, 0x00) or (b < 0x20 and b not in (ESC, GS, FS, DLE, 0x09, 0x0C)):
                i += 1
            elif b == 0x09:
                self.text_byte(0x20)
                i += 1
            elif b == 0x0C:
                self.end_line(empty_feeds=False)
                i += 1
            elif b == ESC:
                i = self.esc(i)
            elif b == GS:
                i = self.gs(i)
            elif b == FS:
                i = self.fs(i)
            elif b == DLE:
                i = self.dle(i)
            else:
                # Text: a GB18030 lead byte takes its trail bytes with it, so 0x1B inside a character
                # cannot occur (trail bytes are >= 0x30).
                self.text_byte(b)
                i += 1
        self.end_line(empty_feeds=False)
        return self.items

    def _arg(self, i: int) -> int:
        return self.data[i] if i < len(self.data) else 0

    def esc(self, i: int) -> int:
        cmd = self._arg(i + 1)
        p = i + 2
        if cmd == 0x40:  # ESC @ initialise
            self.style_change()
            self.style = Style()
            self.line_dots = LINE_DOTS
        elif cmd == 0x21:  # ESC ! print mode
            m = self._arg(p)
            self.style_change()
            self.style.bold = bool(m & 0x08)
            self.style.height = 2 if m & 0x10 else 1
            self.style.width = 2 if m & 0x20 else 1
        elif cmd == 0x45 or cmd == 0x47:  # ESC E / ESC G emphasis
            self.style_change()
            self.style.bold = bool(self._arg(p) & 1)
        elif cmd == 0x61:  # ESC a alignment
            self.style.align = {0: 0, 1: 1, 2: 2, 48: 0, 49: 1, 50: 2}.get(self._arg(p), 0)
            if not self.pending and not self.runs:
                self.line_align = None
        elif cmd == 0x64:  # ESC d print and feed n lines
            self.end_line(empty_feeds=False)
            self.items.append(FeedDots(self.line_dots * self._arg(p)))
        elif cmd == 0x4A:  # ESC J print and feed n dots
            self.end_line(empty_feeds=False)
            self.items.append(FeedDots(self._arg(p)))
        elif cmd == 0x33:
            self.line_dots = max(self._arg(p), GLYPH_DOTS)
        elif cmd == 0x32:
            self.line_dots = LINE_DOTS
        elif cmd == 0x2A:  # ESC * m nL nH column image: skipped, not drawn
            width = self._arg(p + 1) | self._arg(p + 2) << 8
            return p + 3 + width * (3 if self._arg(p) in (32, 33) else 1)
        return p + ESC_FIXED.get(cmd, 0)

    def gs(self, i: int) -> int:
        cmd = self._arg(i + 1)
        p = i + 2
        if cmd == 0x21:  # GS ! character size
            m = self._arg(p)
            self.style_change()
            self.style.width = min((m >> 4) + 1, 8)
            self.style.height = min((m & 0x0F) + 1, 8)
        elif cmd == 0x76 and self._arg(p) == 0x30:  # GS v 0 m xL xH yL yH raster
            m = self._arg(p + 1)
            wb = self._arg(p + 2) | self._arg(p + 3) << 8
            h = self._arg(p + 4) | self._arg(p + 5) << 8
            start = p + 6
            raw = self.data[start:start + wb * h]
            if wb and h and len(raw) == wb * h:
                self.end_line(empty_feeds=False)
                bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8)).reshape(h, wb * 8).astype(bool)
                if m in (1, 49, 3, 51):
                    bits = np.repeat(bits, 2, axis=1)
                if m in (2, 50, 3, 51):
                    bits = np.repeat(bits, 2, axis=0)
                self.items.append(Raster(bits, self.style.align))
            return start + wb * h
        elif cmd == 0x56:  # GS V cut, with a feed argument for the B/C/D forms
            self.end_line(empty_feeds=False)
            self.items.append(Cut())
            m = self._arg(p)
            return p + (2 if m in (65, 66, 97, 98, 103, 104) else 1)
        elif cmd in (0x28, 0x38):  # GS ( x pL pH ... / GS 8 L p1..p4 ...
            if cmd == 0x28:
                length = self._arg(p + 1) | self._arg(p + 2) << 8
                return p + 3 + length
            length = int.from_bytes(bytes(self._arg(p + 1 + k) for k in range(4)), "little")
            return p + 5 + length
        elif cmd == 0x6B:  # GS k barcode: m < 65 NUL-terminated, else with a length byte
            m = self._arg(p)
            if m < 65:
                end = self.data.find(b"\x00", p + 1)
                return len(self.data) if end < 0 else end + 1
            return p + 2 + self._arg(p + 1)
        return p + GS_FIXED.get(cmd, 0)

    def fs(self, i: int) -> int:
        cmd = self._arg(i + 1)
        if cmd == 0x32:  # FS 2 c1 c2 + 72-byte user glyph
            return i + 2 + 74
        if cmd == 0x28:
            length = self._arg(i + 4) | self._arg(i + 5) << 8
            return i + 6 + length
        return i + 2 + FS_FIXED.get(cmd, 0)

    def dle(self, i: int) -> int:
        cmd = self._arg(i + 1)
        if cmd in (0x04, 0x05):  # DLE EOT n / DLE ENQ n
            return i + 3
        if cmd == 0x14:  # DLE DC4 fn a b
            return i + 5
        return i + 1


def parse(data: bytes) -> list[object]:
    """The slip as a sequence of TextLine, Raster, FeedDots and Cut."""
    return _Parser(bytes(data)).parse()


def extract_rasters(data: bytes) -> list[np.ndarray]:
    return [item.image for item in parse(data) if isinstance(item, Raster)]


def printed_text(data: bytes) -> str:
    """Every printed text line, in order; blank lines left out."""
    lines = [item.text.rstrip() for item in parse(data) if isinstance(item, TextLine)]
    return "\n".join(line for line in lines if line.strip())


def decode_qr_codes(data: bytes) -> list[str]:
    """The content of every QR code printed as a raster image (the slip's visit code, typically)."""
    detector = cv2.QRCodeDetectorAruco()
    found: list[str] = []
    for bits in extract_rasters(data):
        if bits.shape[0] < 21 or bits.shape[1] < 21 or not bits.any():
            continue
        gray = np.where(bits, 0, 255).astype(np.uint8)
        gray = cv2.copyMakeBorder(gray, 40, 40, 40, 40, cv2.BORDER_CONSTANT, value=255)
        scale = max(1, 600 // max(gray.shape))
        if scale > 1:
            gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
        ok, texts, _points, _ = detector.detectAndDecodeMulti(gray)
        if ok:
            found.extend(t for t in texts if t)
    return found


def char_columns(ch: str) -> int:
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F", "A") and not ch.isascii() else 1


@lru_cache(maxsize=8)
def _font(px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for path in CJK_FONTS:
        if Path(path).exists():
            return ImageFont.truetype(path, px, index=0)
    return ImageFont.load_default(px)


@dataclass
class _Glyph:
    ch: str
    run: Run
    cols: int  # in base columns, magnification included


def _wrap(line: TextLine) -> list[list[_Glyph]]:
    """Split a line where the printer would: at the right margin, never inside a character."""
    limit = PAPER_DOTS // COLUMN_DOTS
    rows: list[list[_Glyph]] = [[]]
    used = 0
    for run in line.runs:
        for ch in run.text:
            cols = char_columns(ch) * run.width
            if used + cols > limit and rows[-1]:
                rows.append([])
                used = 0
            rows[-1].append(_Glyph(ch, run, cols))
            used += cols
    return [row for row in rows if row]


def _draw_row(img: Image.Image, row: list[_Glyph], align: int, top: int) -> int:
    height = max(GLYPH_DOTS * g.run.height for g in row)
    width = sum(g.cols for g in row) * COLUMN_DOTS
    x = {0: 0, 1: (PAPER_DOTS - width) // 2, 2: PAPER_DOTS - width}.get(align, 0)
    for g in row:
        w = g.cols * COLUMN_DOTS
        h = GLYPH_DOTS * g.run.height
        font = _font(h)
        # Drawn at the height's scale, then stretched or squeezed into the printer's cell (a wide latin
        # glyph such as 'm' must not be cut off at the cell edge).
        cell_w = max(w * g.run.height // g.run.width, math.ceil(font.getlength(g.ch)) + 2, 1)
        cell = Image.new("L", (cell_w, h), 255)
        draw = ImageDraw.Draw(cell)
        draw.text((cell_w / 2, h / 2), g.ch, font=font, fill=0, anchor="mm",
                  stroke_width=max(1, h // 24) if g.run.bold else 0, stroke_fill=0)
        if cell.width != w:
            cell = cell.resize((w, h), Image.Resampling.LANCZOS)
        img.paste(cell, (x, top + height - h))
        x += w
    return height + (LINE_DOTS - GLYPH_DOTS)


def render_receipt(data: bytes) -> Image.Image:
    """A picture of the printed slip: 576 dots wide, white paper, a dashed line where it was cut."""
    items = parse(data)
    # Lay out once to measure, then draw on a canvas of the right height.
    ops: list[tuple[str, object, int]] = []
    y = MARGIN
    for item in items:
        if isinstance(item, TextLine):
            for row in _wrap(item):
                h = max(GLYPH_DOTS * g.run.height for g in row) + (LINE_DOTS - GLYPH_DOTS)
                ops.append(("row", (row, item.align), y))
                y += h
        elif isinstance(item, Raster):
            ops.append(("raster", item, y))
            y += item.image.shape[0]
        elif isinstance(item, FeedDots):
            y += item.dots
        elif isinstance(item, Cut):
            ops.append(("cut", item, y + 8))
            y += 16
    img = Image.new("L", (PAPER_DOTS, y + MARGIN), 255)
    draw = ImageDraw.Draw(img)
    for kind, obj, top in ops:
        if kind == "row":
            row, align = obj  # type: ignore[misc]
            _draw_row(img, row, align, top)
        elif kind == "raster":
            bits = obj.image[:, :PAPER_DOTS]  # type: ignore[union-attr]
            w = bits.shape[1]
            x = {0: 0, 1: (PAPER_DOTS - w) // 2, 2: PAPER_DOTS - w}.get(obj.align, 0)  # type: ignore[union-attr]
            img.paste(Image.fromarray(np.where(bits, 0, 255).astype(np.uint8), "L"), (x, top))
        elif kind == "cut":
            for x in range(0, PAPER_DOTS, 16):
                draw.line([(x, top), (x + 8, top)], fill=0, width=2)
    return img.convert("RGB")
