"""The reference face platform — NOT BIOMETRIC-GRADE. For demos, development and tests only.

It exists so the platform runs end to end without a hospital's face platform, and so the workflows built on
`FacePlatform` can be tested. It finds the largest face with OpenCV's Haar cascade, shrinks it to a 32×32
grey thumbnail and compares thumbnails by normalised correlation. That tells an image from itself and from a
clearly different picture, and nothing more: it has no liveness check (a printed photo passes), it confuses
similar-looking people, and it has never been measured for false-accept rates. A real deployment configures
the hospital's certified face platform instead.

Every answer says so: `Match.grade` and `Candidate.grade` are ``"reference-not-biometric"``, and creating one
logs a warning. Faces are kept in memory only, so no biometric template of a demo user outlives the process.
"""
from __future__ import annotations

import logging
import threading

import cv2
import numpy as np

from central.face.platform import (Candidate, FaceImage, InvalidImageError, Match, NoFaceError,
                                   NotEnrolledError)

log = logging.getLogger(__name__)

REFERENCE_GRADE = "reference-not-biometric"
THUMBNAIL = 32  # small enough to ignore sensor noise and JPEG artefacts, large enough to see the face layout
THRESHOLD = 0.90  # same drawn/recorded person scores ~0.99, a clearly different face ~0.7 (see tests)
MARGIN = 0.05  # one person's score varies ~0.05 from frame to frame: two candidates closer are a guess
MIN_FACE = 40


class ReferenceFacePlatform:
    """A `FacePlatform` that is NOT biometric-grade: for demos and tests, never for identifying patients."""

    grade = REFERENCE_GRADE
    margin = MARGIN

    def __init__(self, threshold: float = THRESHOLD) -> None:
        self.threshold = threshold
        cascade_path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
        self._cascade = cv2.CascadeClassifier(cascade_path)
        if self._cascade.empty():
            raise OSError(f"cannot load face cascade {cascade_path}")
        self._templates: dict[str, list[np.ndarray]] = {}
        self._lock = threading.Lock()  # guards the templates and the cascade, which is not thread-safe
        log.warning("face platform: using the REFERENCE adapter, which is NOT biometric-grade (no liveness "
                    "check, not measured for false accepts). Use it for demos and tests only; configure the "
                    "hospital's certified face platform for real patients.")

    # --- FacePlatform ----------------------------------------------------------------------------------

    def enrol(self, patient_id: str, image: FaceImage) -> None:
        template = self._template(image)
        with self._lock:
            self._templates.setdefault(patient_id, []).append(template)

    def verify(self, patient_id: str, image: FaceImage) -> Match:
        template = self._template(image)
        with self._lock:
            enrolled = list(self._templates.get(patient_id, ()))
        if not enrolled:
            raise NotEnrolledError(f"patient {patient_id} has no enrolled face")
        score = max(_similarity(template, known) for known in enrolled)
        return Match(score=score, same_person=score >= self.threshold, grade=REFERENCE_GRADE)

    def identify(self, image: FaceImage, limit: int = 5) -> list[Candidate]:
        template = self._template(image)
        with self._lock:
            enrolled = {pid: list(faces) for pid, faces in self._templates.items()}
        scored = [(max(_similarity(template, known) for known in faces), pid) for pid, faces in enrolled.items()]
        accepted = sorted((s for s in scored if s[0] >= self.threshold), reverse=True)[:max(0, limit)]
        return [Candidate(patient_id=pid, score=score, grade=REFERENCE_GRADE) for score, pid in accepted]

    def forget(self, patient_id: str) -> None:
        with self._lock:
            self._templates.pop(patient_id, None)

    # --- the comparison --------------------------------------------------------------------------------

    def _template(self, image: FaceImage) -> np.ndarray:
        grey = _decode_grey(image)
        with self._lock:
            boxes = self._cascade.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5,
                                                   minSize=(MIN_FACE, MIN_FACE))
        if len(boxes) == 0:
            raise NoFaceError("no face found in the image")
        x, y, w, h = (int(v) for v in max(boxes, key=lambda b: int(b[2]) * int(b[3])))
        thumb = cv2.resize(grey[y:y + h, x:x + w], (THUMBNAIL, THUMBNAIL), interpolation=cv2.INTER_AREA)
        vec = thumb.astype(np.float64).ravel()
        vec -= vec.mean()
        norm = float(np.linalg.norm(vec))
        return vec / norm if norm > 0 else vec


def _similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Normalised correlation of two thumbnails, clipped to 0..1 (anti-correlated is simply unlike)."""
    return round(float(np.clip(np.dot(a, b), 0.0, 1.0)), 4)


def _decode_grey(image: FaceImage) -> np.ndarray:
    if isinstance(image, (bytes, bytearray, memoryview)):
        data = np.frombuffer(bytes(image), np.uint8)
        grey = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE) if data.size else None
        if grey is None:
            raise InvalidImageError("the image bytes are not a readable JPEG/PNG")
        return grey
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3) or min(arr.shape[:2]) < MIN_FACE:
        raise InvalidImageError(f"expected an 8-bit BGR or grey image, got {arr.dtype} {arr.shape}")
    if arr.ndim == 2:
        return np.ascontiguousarray(arr)
    if arr.shape[2] == 3:
        return cv2.cvtColor(np.ascontiguousarray(arr), cv2.COLOR_BGR2GRAY)
    if arr.shape[2] == 4:
        return cv2.cvtColor(np.ascontiguousarray(arr), cv2.COLOR_BGRA2GRAY)
    raise InvalidImageError(f"unsupported channel count {arr.shape[2]}")
