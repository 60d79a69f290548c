"""The face camera against the real Haar cascade and real OpenCV captures of generated clips.

No face images ship with the project or exist on the build machine, so the faces are drawn
(`drivers.camera.synthetic`); every test here checks the real cascade finds them rather than stubbing it.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from drivers.camera import quality as q
from drivers.camera import synthetic
from drivers.camera.camera import (FACE_JPEG_MAX_BYTES, FACE_JPEG_MAX_SIDE, CameraDisconnectedError, CameraError,
                                   FaceCamera, FaceNotCapturedError, NoFramesError, SourceEndedError,
                                   is_file_source)
from drivers.device import Device
from drivers.health import Status


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic.face_video(tmp_path_factory.mktemp("camera") / "patient.avi", count=8)


@pytest.fixture(scope="module")
def base() -> np.ndarray:
    return synthetic.face_frame(seed=1)


def dying_camera(clip: Path, good_frames: int, raises: bool = False) -> tuple[FaceCamera, list]:
    """A camera (index 0, so failures mean unplugged, not end of file) whose cable is pulled after
    `good_frames` frames."""
    made: list[synthetic.UnpluggedAfter] = []

    def factory(_source: int | str) -> synthetic.UnpluggedAfter:
        made.append(synthetic.UnpluggedAfter(cv2.VideoCapture(str(clip)), good_frames, raises=raises))
        return made[-1]

    return FaceCamera(0, capture_factory=factory, retry_delay=0.001, max_failed_reads=3), made


# --- the synthetic route itself ---------------------------------------------------------------------------

def test_drawn_faces_are_found_by_the_real_haar_cascade(base: np.ndarray) -> None:
    boxes = q.default_detector()(cv2.cvtColor(base, cv2.COLOR_BGR2GRAY))
    assert len(boxes) == 1
    x, y, w, h = boxes[0]
    assert x < 320 < x + w and y < 240 < y + h


def test_file_sources_and_camera_sources_are_told_apart() -> None:
    assert is_file_source("clips/patient.avi") and is_file_source("frames/img_%03d.png")
    assert not is_file_source(0) and not is_file_source("/dev/video0") and not is_file_source("rtsp://cam/1")
    assert FaceCamera("1").source == 1


# --- capture from a video file ----------------------------------------------------------------------------

def test_camera_reads_the_clip_and_finds_the_face(clip: Path) -> None:
    with FaceCamera(clip) as camera:
        assert isinstance(camera, Device)
        frames = list(camera.frames())
        assert camera.health().status is Status.FAULT and camera.health().reason == "no_frames"
    assert len(frames) == 8
    assert all(frame.shape == (480, 640, 3) for frame in frames)
    quality = q.assess(frames[0])
    assert quality.face_box is not None and quality.ok


def test_capture_best_returns_a_passing_frame(clip: Path) -> None:
    seen: list[q.Quality] = []
    with FaceCamera(clip) as camera:
        capture = camera.capture_best(5.0, on_frame=lambda _frame, quality: seen.append(quality))
    assert capture.ok and capture.prompt is None
    assert capture.frames_seen == len(seen) == 8  # the file ended before the five seconds did
    assert capture.quality.score == max(quality.score for quality in seen)
    assert capture.quality.face_box is not None


def test_capture_best_stops_early_on_a_good_enough_frame(clip: Path) -> None:
    with FaceCamera(clip) as camera:
        capture = camera.capture_best(5.0, good_enough=0.5)
    assert capture.ok and capture.frames_seen == 1


def test_looping_file_keeps_delivering_for_the_whole_window(clip: Path) -> None:
    with FaceCamera(clip, loop=True) as camera:
        frames = [camera.read_frame() for _ in range(20)]
        capture = camera.capture_best(30.0, max_frames=12)  # more frames than the file holds
        assert camera.health().status is Status.OK
    assert len(frames) == 20 and capture.frames_seen == 12 and capture.ok


def test_non_looping_file_end_is_an_end_not_a_crash(clip: Path) -> None:
    with FaceCamera(clip) as camera:
        for _ in camera.frames():
            pass
        with pytest.raises(SourceEndedError, match="ended"):
            camera.read_frame()
        with pytest.raises(SourceEndedError):
            camera.capture_best(1.0)


def test_capture_best_without_a_passing_frame_returns_the_best_failing_one_with_its_prompt(
        tmp_path: Path) -> None:
    frames = [synthetic.face_frame(seed=1) * 0] + [synthetic.face_frame(faces=[(320, 240, 100)], seed=i)
                                                   for i in range(3)]
    clip = synthetic.write_video(tmp_path / "far.avi", frames)
    with FaceCamera(clip) as camera:
        capture = camera.capture_best(2.0)
    assert not capture.ok
    assert capture.quality.problems == [q.TOO_FAR]  # a face to fix beats an empty frame
    assert capture.prompt == q.prompt(q.TOO_FAR) and "请靠近一些" in capture.prompt


def test_image_sequence_is_a_source_too(tmp_path: Path) -> None:
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"img_{i:03d}.png"), synthetic.face_frame(seed=i))
    with FaceCamera(str(tmp_path / "img_%03d.png")) as camera:
        assert len(list(camera.frames())) == 3


# --- quality: one test per thing the patient can fix ------------------------------------------------------

def adjust(frame: np.ndarray, gain: float, offset: float) -> np.ndarray:
    return cv2.convertScaleAbs(frame, alpha=gain, beta=offset)


PROBLEM_FRAMES = {
    q.NO_FACE: lambda base: synthetic.face_frame(faces=[]),
    q.SEVERAL_FACES: lambda base: synthetic.face_frame(faces=[(170, 240, 180), (470, 240, 180)]),
    q.TOO_FAR: lambda base: synthetic.face_frame(faces=[(320, 240, 100)]),
    q.OFF_CENTRE: lambda base: synthetic.face_frame(faces=[(130, 240, 180)]),
    q.BLURRED: lambda base: cv2.GaussianBlur(base, (0, 0), 4),
    q.TOO_DARK: lambda base: adjust(base, 0.3, 0),
    q.TOO_BRIGHT: lambda base: adjust(base, 1.0, 90),
}
EXPECTED_PROMPT = {
    q.NO_FACE: "请正对摄像头", q.SEVERAL_FACES: "只有您一人", q.TOO_FAR: "请靠近一些", q.OFF_CENTRE: "画面中间",
    q.BLURRED: "请保持不动", q.TOO_DARK: "光线太暗", q.TOO_BRIGHT: "光线太强",
}


@pytest.mark.parametrize("problem", list(PROBLEM_FRAMES))
def test_each_problem_is_found_with_its_prompt(problem: str, base: np.ndarray) -> None:
    quality = q.assess(PROBLEM_FRAMES[problem](base))
    assert not quality.ok
    assert quality.problems == [problem]
    assert EXPECTED_PROMPT[problem] in quality.prompts[0] and " / " in quality.prompts[0]
    assert quality.to_dict()["prompts"] == quality.prompts


def test_good_frame_has_no_problem_and_a_high_score(base: np.ndarray) -> None:
    quality = q.assess(base)
    assert quality.ok and quality.problems == [] and quality.score > 0.8


def test_problems_found_by_the_camera_come_through_capture_best(tmp_path: Path, base: np.ndarray) -> None:
    clip = synthetic.write_video(tmp_path / "dark.avi", [adjust(base, 0.3, 0)] * 3)
    with FaceCamera(clip) as camera:
        capture = camera.capture_best(1.0)
    # JPEG compression of a dark frame also loses detail: blur is listed too, but light is the fix to show
    assert capture.quality.problems[0] == q.TOO_DARK and "光线太暗" in (capture.prompt or "")


def test_health_of_an_opened_file_reads_a_probe_frame(clip: Path) -> None:
    """Documented cost of probing: on a file source, a health check while idle uses up one frame."""
    with FaceCamera(clip) as camera:
        assert camera.health().status is Status.OK
        assert len(list(camera.frames())) == 7


# --- faults -----------------------------------------------------------------------------------------------

def test_unopenable_source_is_a_disconnected_fault(tmp_path: Path) -> None:
    camera = FaceCamera(tmp_path / "missing.avi")
    assert camera.health().reason == "disconnected"  # never opened: the device worker will open it
    with pytest.raises(CameraDisconnectedError, match="cannot open"):
        camera.open()
    health = camera.health()
    assert health.status is Status.FAULT and health.reason == "disconnected"
    assert camera.self_test().reason == "disconnected"
    with pytest.raises(CameraDisconnectedError):
        camera.read_frame()


def test_camera_index_that_does_not_exist_is_a_disconnected_fault() -> None:
    camera = FaceCamera(97)
    assert camera.self_test().reason == "disconnected"


def test_backend_that_raises_on_open_is_a_disconnected_fault() -> None:
    def factory(_source: int | str) -> cv2.VideoCapture:
        raise cv2.error("backend exploded")

    with pytest.raises(CameraDisconnectedError, match="backend exploded"):
        FaceCamera(0, capture_factory=factory).open()


@pytest.mark.parametrize("raises", [False, True], ids=["read-fails", "read-raises"])
def test_camera_unplugged_mid_capture_is_a_clear_error_and_a_fault(clip: Path, raises: bool,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    camera, made = dying_camera(clip, good_frames=3, raises=raises)
    camera.open()
    with caplog.at_level(logging.WARNING), pytest.raises(CameraDisconnectedError) as excinfo:
        camera.capture_best(5.0)
    assert "摄像头已断开" in str(excinfo.value) and "stopped delivering frames" in str(excinfo.value)
    assert made[0].reads_after_unplug == 3  # it retried, then gave up instead of spinning
    health = camera.health()
    assert health.status is Status.FAULT and health.reason == "disconnected"
    assert not camera.is_open
    # plugged back in: what the DeviceWorker does on a "disconnected" fault
    camera.close()
    camera.open()
    assert camera.health().status is Status.OK
    camera.close()


def test_health_probe_notices_an_idle_camera_was_unplugged(clip: Path) -> None:
    camera, _made = dying_camera(clip, good_frames=1)
    camera.open()
    assert camera.health().status is Status.OK  # reads the one good frame
    camera._last_frame_at = time.monotonic() - 60  # idle for a minute
    assert camera.health().reason == "disconnected"


def test_camera_that_opens_but_never_delivers_reports_no_frames(clip: Path) -> None:
    camera, _made = dying_camera(clip, good_frames=0)
    camera.open()
    with pytest.raises(NoFramesError, match="gave no frame"):
        camera.read_frame()
    assert camera.health().reason == "no_frames"


def test_self_test_passes_on_a_face_and_fails_on_a_blank_picture(clip: Path, tmp_path: Path) -> None:
    assert FaceCamera(clip).self_test().status is Status.OK
    black = synthetic.write_video(tmp_path / "black.avi", [np.zeros((480, 640, 3), np.uint8)] * 2)
    health = FaceCamera(black).self_test()
    assert health.status is Status.FAULT and health.reason == "blank_frame"


def test_a_broken_custom_assess_does_not_lose_the_capture(clip: Path) -> None:
    def broken(_frame: np.ndarray) -> q.Quality:
        raise RuntimeError("checker bug")

    with FaceCamera(clip) as camera:
        capture = camera.capture_best(1.0, assess=broken)
    assert capture.quality.problems == [q.INVALID_FRAME]


# --- assess never raises ----------------------------------------------------------------------------------

DTYPES = st.sampled_from([np.uint8, np.int8, np.uint16, np.int32, np.int64, np.float16, np.float32,
                          np.float64, np.bool_, np.complex64])
SHAPES = st.one_of(
    hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=12),
    st.tuples(st.integers(0, 120), st.integers(0, 160)),
    st.tuples(st.integers(0, 120), st.integers(0, 160), st.sampled_from([1, 2, 3, 4, 5])),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), dtype=DTYPES, shape=SHAPES)
def test_assess_never_raises_on_random_arrays(data: st.DataObject, dtype: type, shape: tuple[int, ...]) -> None:
    frame = data.draw(hnp.arrays(dtype, shape, elements=None if dtype is np.bool_ else
                                 hnp.from_dtype(np.dtype(dtype), allow_nan=True, allow_infinity=True)))
    quality = q.assess(frame)
    assert isinstance(quality, q.Quality)
    assert quality.ok or quality.problems
    assert all(problem in q.PROMPTS for problem in quality.problems)


@pytest.mark.parametrize("junk", [None, "frame", b"\x00\x01", [[1, 2], [3]], object(), 3.5])
def test_assess_turns_non_arrays_into_invalid_frames(junk: object) -> None:
    assert q.assess(junk).problems == [q.INVALID_FRAME]


def test_device_worker_opens_the_camera_and_reopens_it_after_an_unplug(clip: Path) -> None:
    from drivers.device import DeviceWorker

    camera, made = dying_camera(clip, good_frames=2)
    reports: list[str] = []
    worker = DeviceWorker("camera", camera, on_health=lambda _name, health: reports.append(health.reason),
                          health_interval=0.05)
    worker.start()
    try:
        assert worker.call(lambda cam: cam.read_frame().shape, timeout=5) == (480, 640, 3)
        with pytest.raises(CameraDisconnectedError):
            worker.call(lambda cam: cam.capture_best(5.0), timeout=5)
        deadline = time.monotonic() + 5
        while len(made) < 2 and time.monotonic() < deadline:  # the worker reopens a "disconnected" device
            time.sleep(0.02)
        assert len(made) >= 2
        assert worker.call(lambda cam: cam.read_frame().shape, timeout=5) == (480, 640, 3)
    finally:
        worker.stop()
    assert not camera.is_open


# --- the upload for 刷脸 ----------------------------------------------------------------------------------

def decode(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def test_capture_face_jpeg_sends_the_face_as_a_small_jpeg_that_still_passes(clip: Path) -> None:
    with FaceCamera(clip) as camera:
        data = camera.capture_face_jpeg()
    assert data.startswith(b"\xff\xd8") and len(data) <= FACE_JPEG_MAX_BYTES < 200 * 1024
    image = decode(data)
    assert max(image.shape[:2]) <= FACE_JPEG_MAX_SIDE
    quality = q.assess(image)  # the platform must find the face again in what it receives
    assert quality.ok, quality.problems


def test_capture_face_jpeg_crops_and_scales_a_full_hd_frame(tmp_path: Path) -> None:
    frame = synthetic.face_frame(1920, 1080, faces=[(900, 560, 600)], seed=3)
    clip = synthetic.write_video(tmp_path / "hd.avi", [frame] * 2)
    with FaceCamera(clip) as camera:
        data = camera.capture_face_jpeg(2.0)
    image = decode(data)
    assert max(image.shape[:2]) == FACE_JPEG_MAX_SIDE and len(data) <= FACE_JPEG_MAX_BYTES
    assert image.shape[1] / image.shape[0] < 1920 / 1080  # cropped to the face, not just shrunk
    assert q.assess(image).ok


@pytest.mark.parametrize("problem", [q.NO_FACE, q.SEVERAL_FACES, q.TOO_FAR, q.TOO_DARK])
def test_capture_face_jpeg_without_a_passing_frame_says_what_to_change(problem: str, base: np.ndarray,
                                                                       tmp_path: Path) -> None:
    clip = synthetic.write_video(tmp_path / f"{problem}.avi", [PROBLEM_FRAMES[problem](base)] * 3)
    with FaceCamera(clip) as camera, pytest.raises(FaceNotCapturedError) as excinfo:
        camera.capture_face_jpeg(2.0)
    error = excinfo.value
    assert isinstance(error, CameraError) and error.problem == problem and error.frames_seen == 3
    assert (error.prompt_zh, error.prompt_en) == q.PROMPTS[problem]
    assert EXPECTED_PROMPT[problem] in error.prompt_zh and error.prompt_en.isascii()


def test_capture_face_jpeg_keeps_device_errors_apart_from_the_patients(clip: Path, tmp_path: Path) -> None:
    camera, _made = dying_camera(clip, good_frames=0)
    camera.open()
    with pytest.raises(NoFramesError) as no_frames:
        camera.capture_face_jpeg(1.0)
    assert not isinstance(no_frames.value, FaceNotCapturedError)
    far = synthetic.write_video(tmp_path / "far.avi", [synthetic.face_frame(faces=[(320, 240, 100)])] * 4)
    camera, _made = dying_camera(far, good_frames=2)  # unplugged while the patient is still too far away
    camera.open()
    with pytest.raises(CameraDisconnectedError) as unplugged:
        camera.capture_face_jpeg(5.0)
    assert not isinstance(unplugged.value, FaceNotCapturedError)
    with FaceCamera(clip) as ended:
        list(ended.frames())
        with pytest.raises(SourceEndedError):
            ended.capture_face_jpeg(1.0)
