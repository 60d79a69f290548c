"""Is this frame good enough to send to the hospital face platform?

The face platform decides who the patient is; the kiosk's job is to send it one frame worth deciding on,
and to tell the patient in plain words what to change when the frame is not (come closer, move to the
centre, hold still). A bad frame sent upstream costs a round trip and usually a false "no match", which a
patient reads as "the machine does not know me". So every check here maps to one thing the patient can fix,
and `assess` never raises: a broken frame is just a frame with a problem.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from drivers.lazy_module import LazyModule

cv2 = LazyModule("cv2")  # OpenCV (~0.2 s, ~33 MB): imported on first use, not with the kiosk's drivers

Box = tuple[int, int, int, int]  # x, y, width, height in frame pixels
Detector = Callable[[np.ndarray], Sequence[Sequence[int]]]  # grey uint8 frame -> face boxes

MIN_FACE_WIDTH_RATIO = 0.25  # a smaller face has too few pixels for the platform to match on
CENTRE_BAND = 0.40  # the face centre must lie in the middle 40% of the frame, both ways
MIN_SHARPNESS = 50.0  # variance of the Laplacian over the face; motion and focus blur fall far below
MIN_BRIGHTNESS = 60.0
MAX_BRIGHTNESS = 200.0

NO_FACE = "no_face"
SEVERAL_FACES = "several_faces"
TOO_FAR = "too_far"
OFF_CENTRE = "off_centre"
BLURRED = "blurred"
TOO_DARK = "too_dark"
TOO_BRIGHT = "too_bright"
INVALID_FRAME = "invalid_frame"

PROMPTS: dict[str, tuple[str, str]] = {
    NO_FACE: ("请正对摄像头", "Please face the camera"),
    SEVERAL_FACES: ("请确保画面中只有您一人", "Please make sure only you are in view"),
    TOO_FAR: ("请靠近一些", "Please come closer"),
    OFF_CENTRE: ("请移到画面中间", "Please move to the centre"),
    BLURRED: ("请保持不动", "Please hold still"),
    TOO_DARK: ("光线太暗，请靠近屏幕", "It is too dark, please move closer to the screen"),
    TOO_BRIGHT: ("光线太强，请避开强光", "It is too bright, please move out of direct light"),
    INVALID_FRAME: ("摄像头画面异常，请联系工作人员", "Camera image problem, please ask staff for help"),
}


def prompt(problem: str) -> str:
    """The bilingual line the screen shows for one problem code."""
    zh, en = PROMPTS.get(problem, PROMPTS[INVALID_FRAME])
    return f"{zh} / {en}"


@dataclass(frozen=True)
class Quality:
    ok: bool
    problems: list[str] = field(default_factory=list)
    face_box: Box | None = None
    score: float = 0.0  # 0..1, only meaningful for ranking frames of the same session
    sharpness: float = 0.0
    brightness: float = 0.0

    @property
    def prompts(self) -> list[str]:
        return [prompt(p) for p in self.problems]

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "problems": list(self.problems), "prompts": self.prompts,
                "face_box": list(self.face_box) if self.face_box else None, "score": self.score,
                "sharpness": self.sharpness, "brightness": self.brightness}


class HaarDetector:
    """The frontal-face Haar cascade shipped with OpenCV.

    Chosen because it ships inside the opencv wheel: kiosks install offline and nothing may be fetched at
    run time. It only finds faces; recognising them is the face platform's job. One cascade object is not
    safe to share between threads, so calls are serialised.
    """

    def __init__(self, cascade: str = "haarcascade_frontalface_default.xml", min_size: int = 40):
        path = cv2.data.haarcascades + cascade
        self._cascade = cv2.CascadeClassifier(path)
        if self._cascade.empty():
            raise OSError(f"cannot load face cascade {path}")
        self._min_size = min_size
        self._lock = threading.Lock()

    def __call__(self, grey: np.ndarray) -> list[Box]:
        if grey.shape[0] < self._min_size or grey.shape[1] < self._min_size:
            return []
        with self._lock:
            found = self._cascade.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5,
                                                   minSize=(self._min_size, self._min_size))
        return [tuple(int(v) for v in box) for box in found]  # type: ignore[misc]


_default_detector: HaarDetector | None = None
_default_lock = threading.Lock()


def default_detector() -> HaarDetector:
    global _default_detector
    with _default_lock:
        if _default_detector is None:
            _default_detector = HaarDetector()
        return _default_detector


def to_grey(frame: Any) -> np.ndarray | None:
    """Bring whatever a capture backend hands over to grey uint8, or None when it is not an image.

    Backends and tests hand over float frames, 16-bit frames, BGRA and single-channel frames; all are
    accepted, anything else is an invalid frame rather than an exception in the capture loop.
    """
    try:
        arr = np.asarray(frame)
    except Exception:
        return None
    if arr.size == 0 or arr.ndim not in (2, 3):
        return None
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    elif np.issubdtype(arr.dtype, np.floating):
        arr = np.nan_to_num(arr.astype(np.float64), nan=0.0, posinf=255.0, neginf=0.0)
        if arr.max(initial=0.0) <= 1.0:
            arr = arr * 255.0
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    elif arr.dtype == np.uint16:
        arr = (arr >> 8).astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.integer):
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    elif arr.dtype != np.uint8:
        return None
    if arr.ndim == 3:
        channels = arr.shape[2]
        if channels == 1:
            arr = arr[:, :, 0]
        elif channels == 3:
            arr = cv2.cvtColor(np.ascontiguousarray(arr), cv2.COLOR_BGR2GRAY)
        elif channels == 4:
            arr = cv2.cvtColor(np.ascontiguousarray(arr), cv2.COLOR_BGRA2GRAY)
        else:
            return None
    return np.ascontiguousarray(arr)


def _invalid() -> Quality:
    return Quality(ok=False, problems=[INVALID_FRAME])


def assess(frame: Any, detector: Detector | None = None) -> Quality:
    """Check one frame; every problem found is listed, the one to fix first leading, so the screen can show
    the most useful prompt."""
    try:
        return _assess(frame, detector)
    except Exception:  # a capture loop must keep running whatever a backend or detector hands back
        return _invalid()


def _assess(frame: Any, detector: Detector | None) -> Quality:
    grey = to_grey(frame)
    if grey is None:
        return _invalid()
    boxes = list((detector or default_detector())(grey))
    if not boxes:
        return Quality(ok=False, problems=[NO_FACE])
    if len(boxes) > 1:
        return Quality(ok=False, problems=[SEVERAL_FACES])
    frame_h, frame_w = grey.shape
    x, y, w, h = (int(v) for v in boxes[0][:4])
    x, y = max(0, x), max(0, y)
    w, h = max(0, min(w, frame_w - x)), max(0, min(h, frame_h - y))
    if w == 0 or h == 0:
        return Quality(ok=False, problems=[NO_FACE])
    box: Box = (x, y, w, h)
    face = grey[y:y + h, x:x + w]
    problems: list[str] = []

    size_ratio = w / frame_w
    if size_ratio < MIN_FACE_WIDTH_RATIO:
        problems.append(TOO_FAR)

    # offsets of the face centre from the frame centre, as a fraction of the frame (0 = centred, 0.5 = edge)
    dx = abs((x + w / 2) / frame_w - 0.5)
    dy = abs((y + h / 2) / frame_h - 0.5)
    if dx > CENTRE_BAND / 2 or dy > CENTRE_BAND / 2:
        problems.append(OFF_CENTRE)

    # light before blur: a dark or washed-out face has little contrast, so it also measures as blurred, and
    # "hold still" would send the patient after the wrong fix; the screen shows the first problem
    brightness = float(face.mean())
    if brightness < MIN_BRIGHTNESS:
        problems.append(TOO_DARK)
    elif brightness > MAX_BRIGHTNESS:
        problems.append(TOO_BRIGHT)

    sharpness = float(cv2.Laplacian(face, cv2.CV_64F).var())
    if not np.isfinite(sharpness) or sharpness < MIN_SHARPNESS:
        problems.append(BLURRED)

    score = _score(size_ratio, max(dx, dy), sharpness, brightness)
    return Quality(ok=not problems, problems=problems, face_box=box, score=score,
                   sharpness=round(sharpness, 1) if np.isfinite(sharpness) else 0.0,
                   brightness=round(brightness, 1))


def _score(size_ratio: float, offset: float, sharpness: float, brightness: float) -> float:
    """One number to pick the best of several passing frames: bigger, more centred, sharper, evenly lit.

    Each part saturates at 1 once it is comfortably good, so a very sharp frame cannot make up for a face
    at the edge of the picture.
    """
    size = min(1.0, size_ratio / (2 * MIN_FACE_WIDTH_RATIO))
    centre = max(0.0, 1.0 - offset / 0.5)
    sharp = min(1.0, sharpness / (4 * MIN_SHARPNESS)) if np.isfinite(sharpness) else 0.0
    mid = (MIN_BRIGHTNESS + MAX_BRIGHTNESS) / 2
    light = max(0.0, 1.0 - abs(brightness - mid) / (mid))
    return round((size + centre + sharp + light) / 4, 4)
