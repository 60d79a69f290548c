"""Drawn faces for tests, demos and the camera self-check on a bench without a camera.

No real face images ship with the project (they are personal data), yet the detector, the quality checks
and the capture loop all need something face-like to work on. A flat drawing with the light/dark layout a
Haar frontal-face cascade looks for (dark eyes and brows over a lighter cheek band, a nose shadow, a mouth)
is detected reliably at kiosk distances, so tests exercise the real cascade instead of a stub.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np


@dataclass(frozen=True)
class FaceStyle:
    """What makes one drawn person differ from another for the reference matcher."""

    skin: tuple[int, int, int] = (150, 180, 215)  # BGR
    eye_spacing: float = 0.2  # half the distance between the eyes, as a fraction of face width
    eye_height: float = 0.1  # eyes sit this fraction of face height above the centre
    eye_size: float = 0.1
    mouth_width: float = 0.18
    brow_tilt: float = 0.0  # fraction of face width the outer brow end drops by
    glasses: bool = False


DEFAULT_STYLE = FaceStyle()
OTHER_STYLE = FaceStyle(skin=(110, 140, 185), eye_spacing=0.24, eye_height=0.16, eye_size=0.08,
                        mouth_width=0.26, brow_tilt=0.06, glasses=True)


def draw_face(img: np.ndarray, cx: int, cy: int, width: int, style: FaceStyle = DEFAULT_STYLE) -> np.ndarray:
    """Draw one face centred at (cx, cy), `width` pixels wide, onto a BGR image in place."""
    w = int(width)
    h = int(w * 1.3)
    cv2.ellipse(img, (cx, cy), (w // 2, h // 2), 0, 0, 360, style.skin, -1)
    ex = int(w * style.eye_spacing)
    ey = cy - int(h * style.eye_height)
    eye_axes = (max(1, int(w * style.eye_size)), max(1, int(w * style.eye_size / 2)))
    brow_thickness = max(2, w // 30)
    for side in (-1, 1):
        cv2.ellipse(img, (cx + side * ex, ey), eye_axes, 0, 0, 360, (40, 40, 40), -1)
        inner = (cx + side * ex - side * int(w * 0.12), ey - int(w * 0.1))
        outer = (cx + side * ex + side * int(w * 0.12), ey - int(w * 0.1) + int(w * style.brow_tilt))
        cv2.line(img, inner, outer, (30, 30, 50), brow_thickness)
        if style.glasses:
            cv2.circle(img, (cx + side * ex, ey), int(w * 0.13), (20, 20, 20), max(1, w // 60))
    cv2.ellipse(img, (cx, cy + int(h * 0.07)), (max(1, int(w * 0.06)), max(1, int(w * 0.12))), 0, 0, 360,
                (110, 140, 180), -1)
    cv2.ellipse(img, (cx, cy + int(h * 0.25)), (max(1, int(w * style.mouth_width)), max(1, int(w * 0.04))),
                0, 0, 360, (60, 60, 140), -1)
    return img


def face_frame(width: int = 640, height: int = 480, faces: list[tuple[int, int, int]] | None = None,
               style: FaceStyle = DEFAULT_STYLE, background: tuple[int, int, int] = (90, 110, 100),
               noise: float = 6.0, seed: int = 0) -> np.ndarray:
    """A BGR camera-like frame: background, the given faces as (cx, cy, face width), and sensor noise.

    The noise matters: a real sensor never gives flat colour, and the sharpness check measures detail that
    blur removes, so a noiseless drawing would look blurred already.
    """
    img = np.full((height, width, 3), background, np.uint8)
    if faces is None:
        faces = [(width // 2, height // 2, int(width * 0.31))]
    for cx, cy, fw in faces:
        draw_face(img, cx, cy, fw, style)
    if noise > 0:
        rng = np.random.default_rng(seed)
        img = np.clip(img.astype(np.float32) + rng.normal(0.0, noise, img.shape), 0, 255).astype(np.uint8)
    return img


def write_video(path: str | Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    """Write frames to an MJPG .avi so the capture path can be exercised from a file."""
    path = Path(path)
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    if not writer.isOpened():
        raise OSError(f"cannot write video {path}")
    try:
        for frame in frames:
            writer.write(frame)
    finally:
        writer.release()
    return path


def face_video(path: str | Path, count: int = 10, fps: float = 10.0, width: int = 640, height: int = 480,
               faces: list[tuple[int, int, int]] | None = None, style: FaceStyle = DEFAULT_STYLE) -> Path:
    """A short clip of one still patient, each frame with fresh sensor noise, as a camera would give it."""
    frames = [face_frame(width, height, faces=faces, style=style, seed=i) for i in range(count)]
    return write_video(path, frames, fps)


class UnpluggedAfter:
    """Wraps a capture (anything with `cv2.VideoCapture`'s read/isOpened/set/release) and behaves like a
    camera whose cable is pulled after `frames` good frames: every later read fails, as V4L2 reads do.

    With `raises=True` the reads raise `cv2.error` instead, as some vendor backends do when the device goes.
    """

    def __init__(self, capture: Any, frames: int, raises: bool = False) -> None:
        self._capture = capture
        self.remaining = frames
        self.raises = raises
        self.reads_after_unplug = 0

    def isOpened(self) -> bool:
        return bool(self._capture.isOpened())

    def read(self) -> tuple[bool, Any]:
        if self.remaining <= 0:
            self.reads_after_unplug += 1
            if self.raises:
                raise cv2.error("simulated camera unplugged")
            return False, None
        self.remaining -= 1
        return self._capture.read()

    def set(self, prop_id: int, value: float) -> bool:
        return bool(self._capture.set(prop_id, value))

    def release(self) -> None:
        self._capture.release()
