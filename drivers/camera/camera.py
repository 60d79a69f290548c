"""The face camera driver: an OpenCV capture from a camera index or a video / image-sequence file.

A file source is a first-class source, not a test hack: benches and demo kiosks have no camera, and a recorded
clip replays the same patient every time. How a file that runs out behaves is chosen per camera:

* ``loop=False`` (default): the end of the file is the end of the source. `read_frame` raises
  `SourceEndedError`, `frames()` simply stops, `capture_best` returns the best frame seen so far, and health
  reports ``no_frames`` (not ``disconnected``, so the `DeviceWorker` does not "reconnect" by replaying it).
* ``loop=True``: the file is rewound and replays forever, like a camera that never stops.

A camera (index, ``/dev/video*``, ``rtsp://...``) that stops delivering frames has been unplugged or has
crashed: after `max_failed_reads` failed reads in a row the capture is released, the call raises
`CameraDisconnectedError` with a sentence staff can read, and health turns to fault ``disconnected`` so the
device worker reopens it when it comes back. A camera that opens but has never delivered a frame (another
program holds it, a dead sensor) reports ``no_frames``. Nothing in the capture loop crashes on a bad frame:
`quality.assess` turns it into a problem.

All capture I/O for one camera is expected to run on its `DeviceWorker` thread; a lock still keeps a health
probe from another thread (fleet agent) from interleaving with a read.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

import numpy as np

from drivers.camera import quality as q
from drivers.health import Health
from drivers.lazy_module import LazyModule

cv2 = LazyModule("cv2")  # OpenCV (~0.2 s, ~33 MB): imported when the camera opens, on the camera's own thread

log = logging.getLogger(__name__)

Assess = Callable[[np.ndarray], q.Quality]
FrameCallback = Callable[[np.ndarray, q.Quality], None]

BLANK_STD = 4.0  # grey standard deviation below which a frame is a covered lens or a dead sensor
HEALTH_PROBE_AFTER = 1.0  # seconds without a frame before `health()` reads one itself

# What `capture_face_jpeg` uploads: the face with room around it (the platform finds the face again itself),
# no larger than a face platform needs, and small enough to cross a busy hospital network quickly.
FACE_GOOD_ENOUGH = 0.9  # a passing frame this good ends the watch: a patient should not stand still for nothing
FACE_CROP_MARGIN = 0.6  # context kept on every side of the face box, in face-box widths / heights
FACE_JPEG_MAX_SIDE = 640  # pixels on the longer side: a VGA camera's crop is sent as it is, a full-HD one scaled
FACE_JPEG_QUALITIES = (90, 80, 70, 60)  # tried in turn until the JPEG fits FACE_JPEG_MAX_BYTES
FACE_JPEG_MAX_BYTES = 100_000  # the server refuses more than 200 kB; a 640 px face crop is ~40-55 kB


class CameraError(Exception):
    """The camera cannot deliver a frame; the message is one sentence for staff, Chinese / English."""


class CameraDisconnectedError(CameraError):
    """The camera cannot be opened or stopped delivering frames (cable pulled, driver crash)."""


class NoFramesError(CameraError):
    """The source is open but gives no frames."""


class SourceEndedError(NoFramesError):
    """A file source reached its end and the camera does not loop it."""


class FaceNotCapturedError(CameraError):
    """The camera works, but no frame of the watch was good enough to send to the face platform.

    Not a device fault: the patient can fix it. `prompt_zh` / `prompt_en` say what to change (come closer,
    face the camera, only one person in view, more light ...), from the best failing frame's first problem,
    so the screen can ask again instead of sending a frame that would only come back "not recognised".
    """

    def __init__(self, problem: str, frames_seen: int = 0) -> None:
        zh, en = q.PROMPTS.get(problem, q.PROMPTS[q.INVALID_FRAME])
        super().__init__(f"{zh} / {en}")
        self.problem = problem
        self.prompt_zh = zh
        self.prompt_en = en
        self.frames_seen = frames_seen


class VideoSource(Protocol):
    """The part of `cv2.VideoCapture` the driver uses, so a test or a vendor SDK can stand in for it."""

    def isOpened(self) -> bool: ...
    def read(self) -> tuple[bool, Any]: ...
    def set(self, prop_id: int, value: float) -> bool: ...
    def release(self) -> None: ...


CaptureFactory = Callable[[int | str], VideoSource]


def _opencv_capture(source: int | str) -> VideoSource:
    return cv2.VideoCapture(source)


def is_file_source(source: int | str | Path) -> bool:
    """Files end; cameras and streams get unplugged. The two need different answers when reads fail."""
    if isinstance(source, int):
        return False
    text = str(source)
    return not (text.isdigit() or text.startswith("/dev/") or "://" in text)


@dataclass(frozen=True)
class Capture:
    """The frame `capture_best` chose and why: a passing frame to send upstream, or the best failing one
    together with what the patient should change."""

    frame: np.ndarray
    quality: q.Quality
    frames_seen: int
    seconds: float

    @property
    def ok(self) -> bool:
        return self.quality.ok

    @property
    def prompt(self) -> str | None:
        """The one line to show the patient when the frame is not good enough; None when it is."""
        return None if self.quality.ok else (self.quality.prompts or [q.prompt(q.INVALID_FRAME)])[0]


def _failing_rank(quality: q.Quality) -> tuple[bool, int, float]:
    """A failing frame with a face and one thing to fix beats one with no face: its prompt is more useful."""
    return quality.face_box is not None, -len(quality.problems), quality.score


class FaceCamera:
    """One face camera as a `Device`, plus `read_frame`, `frames` and `capture_best`."""

    def __init__(self, source: int | str | Path, *, loop: bool = False, width: int | None = None,
                 height: int | None = None, max_failed_reads: int = 5, retry_delay: float = 0.05,
                 blank_std: float = BLANK_STD, capture_factory: CaptureFactory | None = None) -> None:
        if isinstance(source, str) and source.strip().isdigit():
            source = int(source)  # settings files give "0"; OpenCV would take it for a file name
        self.source: int | str = source if isinstance(source, int) else str(source)
        self.is_file = is_file_source(self.source)
        self.loop = loop
        self.width = width
        self.height = height
        self.max_failed_reads = max(1, max_failed_reads)
        self.retry_delay = retry_delay
        self.blank_std = blank_std
        self._factory = capture_factory or _opencv_capture
        self._cap: VideoSource | None = None
        self._lock = threading.RLock()
        self._frames_since_open = 0
        self._last_frame_at: float | None = None
        self._health = Health.fault("disconnected", f"{self.name} has not been opened")

    @property
    def name(self) -> str:
        return f"camera {self.source}" if not self.is_file else f"camera file {Path(self.source).name}"

    # --- connection ------------------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._cap is not None

    def open(self) -> None:
        with self._lock:
            if self._cap is not None:
                return
            cap: VideoSource | None = None
            try:
                cap = self._factory(self.source)
                opened = bool(cap.isOpened())
            except Exception as exc:  # OpenCV and vendor backends raise all sorts; all mean "cannot open"
                opened, reason = False, str(exc)
            else:
                reason = "the capture backend refused the source"
            if not opened:
                self._release(cap)
                self._health = Health.fault("disconnected", f"cannot open {self.name}: {reason}")
                raise CameraDisconnectedError(f"摄像头无法打开 / cannot open {self.name}: {reason}")
            if not self.is_file:
                if self.width:
                    cap.set(cv2.CAP_PROP_FRAME_WIDTH, float(self.width))
                if self.height:
                    cap.set(cv2.CAP_PROP_FRAME_HEIGHT, float(self.height))
            self._cap = cap
            self._frames_since_open = 0
            self._last_frame_at = None
            self._health = Health.ok()

    def close(self) -> None:
        with self._lock:
            cap, self._cap = self._cap, None
            self._release(cap)
            if not (self._health.reason in ("disconnected", "no_frames")):
                self._health = Health.fault("disconnected", f"{self.name} is closed")

    @staticmethod
    def _release(cap: VideoSource | None) -> None:
        if cap is None:
            return
        try:
            cap.release()
        except Exception:
            pass

    def __enter__(self) -> "FaceCamera":
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- health ----------------------------------------------------------------------------------------

    def health(self) -> Health:
        """The last thing the camera showed us; reads one frame itself when nothing was read for a while, so
        an idle kiosk notices an unplugged camera before a patient does."""
        with self._lock:
            stale = self._last_frame_at is None or time.monotonic() - self._last_frame_at > HEALTH_PROBE_AFTER
            if self._cap is not None and stale:
                try:
                    self._read()
                except CameraError:
                    pass  # `_read` recorded what went wrong
            return self._health

    def self_test(self) -> Health:
        """Grab one frame and check it shows something: a black or flat frame means a covered lens or a dead
        sensor, which health alone (frames do arrive) cannot see."""
        try:
            self.open()
            frame = self.read_frame()
        except CameraError:
            return self._health
        grey = q.to_grey(frame)
        if grey is None:
            return Health.fault("invalid_frame", f"{self.name} delivers frames that are not images")
        spread = float(grey.std())
        if spread < self.blank_std:
            return Health.fault("blank_frame", f"{self.name} shows a blank picture (grey spread {spread:.1f}):"
                                               " lens covered or sensor dead")
        return Health.ok()

    # --- frames ----------------------------------------------------------------------------------------

    def read_frame(self) -> np.ndarray:
        """One BGR frame. Raises `CameraDisconnectedError`, `NoFramesError` or `SourceEndedError`."""
        with self._lock:
            return self._read()

    def frames(self) -> Iterator[np.ndarray]:
        """Frames until a file source ends; a camera that goes away raises `CameraDisconnectedError`."""
        while True:
            try:
                frame = self.read_frame()
            except SourceEndedError:
                return
            yield frame

    def _read(self) -> np.ndarray:
        if self._cap is None:
            if self._health.reason == "no_frames":
                raise NoFramesError(f"摄像头没有画面 / {self.name}: {self._health.detail}")
            raise CameraDisconnectedError(f"摄像头未连接 / {self.name} is not open")
        failures = 0
        rewound = False
        while True:
            try:
                ok, frame = self._cap.read()
            except Exception as exc:  # a backend that raises mid-stream has lost its device
                log.warning("%s: read raised %s", self.name, exc)
                ok, frame = False, None
            if ok and isinstance(frame, np.ndarray) and frame.size:
                self._frames_since_open += 1
                self._last_frame_at = time.monotonic()
                self._health = Health.ok()
                return frame
            if self.is_file:
                if self.loop and not rewound and self._frames_since_open:
                    rewound = True
                    self._rewind()
                    continue
                detail = "the video file ended" if self._frames_since_open else "the file holds no readable frames"
                self._health = Health.fault("no_frames", f"{self.name}: {detail}")
                raise SourceEndedError(f"视频源已结束 / {self.name}: {detail}")
            failures += 1
            if failures < self.max_failed_reads:
                time.sleep(self.retry_delay)
                continue
            if not self._frames_since_open:
                detail = f"opened but gave no frame in {failures} reads (in use elsewhere or sensor dead)"
                self._health = Health.fault("no_frames", f"{self.name} {detail}")
                raise NoFramesError(f"摄像头没有画面 / {self.name} {detail}")
            detail = f"stopped delivering frames ({failures} failed reads in a row)"
            cap, self._cap = self._cap, None
            self._release(cap)
            self._health = Health.fault("disconnected", f"{self.name} {detail}")
            log.warning("%s %s", self.name, detail)
            raise CameraDisconnectedError(f"摄像头已断开 / {self.name} {detail}")

    def _rewind(self) -> None:
        assert self._cap is not None
        try:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0.0)
        except Exception:
            pass

    # --- choosing a frame ------------------------------------------------------------------------------

    def capture_best(self, seconds: float, assess: Assess = q.assess, *, good_enough: float | None = None,
                     on_frame: FrameCallback | None = None, max_frames: int | None = None) -> Capture:
        """Watch the patient for up to `seconds` and keep the best frame.

        A passing frame (one face, close, centred, sharp, well lit) with the highest score wins; without one,
        the failing frame with the most useful prompt comes back so the screen can say what to change.
        `good_enough` stops early on a passing frame that scores at least that much (patients should not
        stand still longer than needed); `on_frame` lets the screen show live prompts without the driver
        knowing about the screen. A file source that ends stops the watch early. Raises
        `CameraDisconnectedError` when the camera goes away mid-capture, and `NoFramesError` when not a single
        frame arrived.
        """
        started = time.monotonic()
        deadline = started + max(0.0, seconds)
        best_pass: tuple[np.ndarray, q.Quality] | None = None
        best_fail: tuple[np.ndarray, q.Quality] | None = None
        seen = 0
        while True:
            try:
                frame = self.read_frame()
            except SourceEndedError:
                if seen == 0:
                    raise
                break
            seen += 1
            quality = self._assess(assess, frame)
            if on_frame is not None:
                try:
                    on_frame(frame, quality)
                except Exception:  # a screen callback must not lose the patient's capture
                    log.exception("%s: frame callback failed", self.name)
            if quality.ok:
                if best_pass is None or quality.score > best_pass[1].score:
                    best_pass = (frame, quality)
                if good_enough is not None and quality.score >= good_enough:
                    break
            elif best_fail is None or _failing_rank(quality) > _failing_rank(best_fail[1]):
                best_fail = (frame, quality)
            if time.monotonic() >= deadline or (max_frames is not None and seen >= max_frames):
                break
        chosen = best_pass or best_fail
        assert chosen is not None  # at least one frame was read and assessed
        return Capture(frame=chosen[0], quality=chosen[1], frames_seen=seen,
                       seconds=round(time.monotonic() - started, 3))

    def capture_face_jpeg(self, seconds: float = 4.0) -> bytes:
        """刷脸 (K1): watch the patient for up to `seconds` and return the frame to send to the face platform,
        as a JPEG of the face with room around it (see `encode_face_jpeg`).

        The best passing frame wins; one scoring `FACE_GOOD_ENOUGH` ends the watch early. When no frame passes
        the quality checks, raises `FaceNotCapturedError` with what the patient should change, because a bad
        frame sent upstream only comes back as "not recognised". Device problems raise as in `capture_best`:
        `CameraDisconnectedError`, `NoFramesError`, `SourceEndedError`.
        """
        capture = self.capture_best(seconds, good_enough=FACE_GOOD_ENOUGH)
        if not capture.ok:
            problem = capture.quality.problems[0] if capture.quality.problems else q.INVALID_FRAME
            raise FaceNotCapturedError(problem, capture.frames_seen)
        return encode_face_jpeg(capture.frame, capture.quality.face_box)

    def _assess(self, assess: Assess, frame: np.ndarray) -> q.Quality:
        try:
            result = assess(frame)
        except Exception:  # `quality.assess` never raises; a caller's own checker might
            log.exception("%s: frame assessment failed", self.name)
            return q.Quality(ok=False, problems=[q.INVALID_FRAME])
        return result


def encode_face_jpeg(frame: np.ndarray, face_box: q.Box | None) -> bytes:
    """The upload for the face platform: the face and `FACE_CROP_MARGIN` around it, scaled down to at most
    `FACE_JPEG_MAX_SIDE`, as a JPEG of at most `FACE_JPEG_MAX_BYTES`.

    Cropping drops the background (other people in the queue are nobody's business upstream) and keeps the
    upload small; the margin stays because the platform detects the face again on what it receives.
    """
    image = np.ascontiguousarray(frame)
    if face_box is not None:
        height, width = image.shape[:2]
        x, y, w, h = face_box
        mx, my = int(w * FACE_CROP_MARGIN), int(h * FACE_CROP_MARGIN)
        image = image[max(0, y - my):min(height, y + h + my), max(0, x - mx):min(width, x + w + mx)]
    side = FACE_JPEG_MAX_SIDE
    while True:
        height, width = image.shape[:2]
        scale = min(1.0, side / max(height, width))
        scaled = image if scale >= 1.0 else cv2.resize(
            image, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA)
        for quality in FACE_JPEG_QUALITIES:
            ok, data = cv2.imencode(".jpg", scaled, [int(cv2.IMWRITE_JPEG_QUALITY), quality])
            if not ok:
                raise CameraError("摄像头画面无法编码 / the camera frame could not be encoded as JPEG")
            if data.size <= FACE_JPEG_MAX_BYTES:
                return data.tobytes()
        side //= 2  # a noisy sensor at the lowest quality still too large: fewer pixels, never a bigger upload
