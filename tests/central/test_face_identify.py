"""刷脸 (K1) over real HTTP: the kiosk camera's own JPEG of the drawn demo face against the live server with the
reference face platform (not biometric-grade), and every way the request can fail."""
from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from central.api.face import MAX_IMAGE_BYTES
from central.config import Settings
from central.face import REFERENCE_GRADE, FaceError, FacePlatform
from central.face.configured import face_platform_for
from central.face.demo import demo_patient_face
from central.his.seed import DEMO_PATIENT, DEMO_PATIENT_ID
from drivers.camera import FaceCamera, synthetic
from tests.central.conftest import Kiosk, LiveCentral, free_port, provision

PATH = "/patients/identify-face"


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("faces")


def camera_jpeg(clip: Path) -> bytes:
    """What the kiosk uploads: the real camera driver's pick from a clip, as `capture_face_jpeg` encodes it."""
    with FaceCamera(clip) as camera:
        return camera.capture_face_jpeg(2.0)


@pytest.fixture(scope="module")
def demo_face_jpeg(clips: Path) -> bytes:
    """The face the simulated kiosk camera shows (`kiosk_app.simulated` loops `synthetic.face_video`)."""
    return camera_jpeg(synthetic.face_video(clips / "demo.avi", count=6))


@pytest.fixture(scope="module")
def other_face_jpeg(clips: Path) -> bytes:
    return camera_jpeg(synthetic.face_video(clips / "other.avi", count=6, style=synthetic.OTHER_STYLE))


def jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [int(cv2.IMWRITE_JPEG_QUALITY), quality])
    assert ok
    return data.tobytes()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@pytest.fixture
def kiosk(live: LiveCentral) -> Kiosk:
    return provision(live.svc, "KIOSK-001")


def identify_face(live: LiveCentral, kiosk: Kiosk, image: bytes) -> httpx.Response:
    return live.api(kiosk, "POST", PATH, json={"image_b64": b64(image)})


def assert_error(resp: httpx.Response, status: int, code: str, zh: str) -> None:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["code"] == code and zh in body["message"]
    assert body["message_en"] and body["message_en"].isascii()


# --- recognised / not recognised --------------------------------------------------------------------------

def test_the_demo_patient_is_recognised_from_the_simulated_camera_with_the_same_answer_as_the_id_card(
        live: LiveCentral, kiosk: Kiosk, demo_face_jpeg: bytes, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    assert demo_face_jpeg.startswith(b"\xff\xd8") and len(demo_face_jpeg) < MAX_IMAGE_BYTES
    found = identify_face(live, kiosk, demo_face_jpeg)
    assert found.status_code == 200, found.text
    by_card = live.api(kiosk, "POST", "/patients/identify", json={
        "method": "id_card", "id_number": DEMO_PATIENT["id_number"], "name": DEMO_PATIENT["name"]})
    assert found.json() == by_card.json()
    assert found.json()["patient_id"] == DEMO_PATIENT_ID and found.json()["name_masked"] == "李*英"
    # only the outcome and the platform's grade are logged: never the picture, never who it was
    logged = caplog.text
    assert f"face identify: recognised (grade {REFERENCE_GRADE})" in logged
    assert b64(demo_face_jpeg)[:64] not in logged and DEMO_PATIENT["name"] not in logged
    assert DEMO_PATIENT["id_number"] not in logged and DEMO_PATIENT_ID not in logged


def test_a_differently_drawn_face_is_not_recognised(live: LiveCentral, kiosk: Kiosk,
                                                     other_face_jpeg: bytes) -> None:
    assert_error(identify_face(live, kiosk, other_face_jpeg), 404, "FACE_NOT_RECOGNISED", "未能识别")


def test_two_patients_the_platform_cannot_tell_apart_are_not_guessed_between(
        live: LiveCentral, kiosk: Kiosk, demo_face_jpeg: bytes) -> None:
    assert live.svc.face is not None
    live.svc.face.enrol("P-LOOKALIKE", demo_patient_face())  # the same face on a second patient
    assert_error(identify_face(live, kiosk, demo_face_jpeg), 404, "FACE_NOT_RECOGNISED", "未能识别")
    live.svc.face.forget("P-LOOKALIKE")
    assert identify_face(live, kiosk, demo_face_jpeg).json()["patient_id"] == DEMO_PATIENT_ID


def test_a_face_enrolled_for_a_file_the_his_does_not_have_is_not_recognised(
        live: LiveCentral, kiosk: Kiosk, other_face_jpeg: bytes) -> None:
    assert live.svc.face is not None
    live.svc.face.enrol("P-CLOSED-FILE", synthetic.face_frame(style=synthetic.OTHER_STYLE))
    assert_error(identify_face(live, kiosk, other_face_jpeg), 404, "FACE_NOT_RECOGNISED", "未能识别")


# --- bad pictures -----------------------------------------------------------------------------------------

def test_garbage_is_an_invalid_image(live: LiveCentral, kiosk: Kiosk) -> None:
    assert_error(identify_face(live, kiosk, b"this is not a jpeg at all"), 422, "FACE_IMAGE_INVALID", "照片")
    not_base64 = live.api(kiosk, "POST", PATH, json={"image_b64": "%%% not base64 %%%"})
    assert_error(not_base64, 422, "FACE_IMAGE_INVALID", "照片")
    truncated = jpeg(synthetic.face_frame())[:2000]  # a JPEG header with most of the picture missing
    assert_error(identify_face(live, kiosk, truncated), 422, "FACE_IMAGE_INVALID", "照片")
    gif = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"
    assert_error(identify_face(live, kiosk, gif), 422, "FACE_IMAGE_INVALID", "照片")
    ok, png = cv2.imencode(".png", np.zeros((10, 5000), np.uint8))  # tiny file, too many pixels
    assert_error(identify_face(live, kiosk, png.tobytes()), 422, "FACE_IMAGE_INVALID", "照片")
    wrong_shape = live.api(kiosk, "POST", PATH, json={"image": "x"})
    assert_error(wrong_shape, 422, "BAD_REQUEST", "请求内容有误")


def test_an_oversize_picture_is_refused_before_it_is_decoded(live: LiveCentral, kiosk: Kiosk) -> None:
    noise = np.random.default_rng(1).integers(0, 256, (600, 800, 3), np.uint8)
    big = jpeg(noise, quality=100)
    assert len(big) > MAX_IMAGE_BYTES
    assert_error(identify_face(live, kiosk, big), 422, "FACE_IMAGE_INVALID", "过大")
    # not even valid JSON: only a size check that comes first can answer "too large" here
    unparsed = b'{"image_b64": "' + b"A" * (2 * MAX_IMAGE_BYTES)
    resp = httpx.post(f"{live.url}/api/v1/kiosk{PATH}", content=unparsed, auth=kiosk.auth, timeout=15,
                      headers={"content-type": "application/json"})
    assert_error(resp, 422, "FACE_IMAGE_INVALID", "过大")

    def chunks() -> Iterator[bytes]:  # no Content-Length: the server counts as it reads
        yield b'{"image_b64": "'
        for _ in range(64):
            yield b"A" * 16384

    streamed = httpx.post(f"{live.url}/api/v1/kiosk{PATH}", content=chunks(), auth=kiosk.auth, timeout=15,
                          headers={"content-type": "application/json"})
    assert_error(streamed, 422, "FACE_IMAGE_INVALID", "过大")


def test_a_picture_without_a_face_is_an_invalid_image(live: LiveCentral, kiosk: Kiosk) -> None:
    resp = identify_face(live, kiosk, jpeg(synthetic.face_frame(faces=[])))
    assert_error(resp, 422, "FACE_IMAGE_INVALID", "未检测到人脸")
    assert "face the camera" in resp.json()["message_en"]


# --- the platform off or down, and who may ask ------------------------------------------------------------

def test_without_a_face_platform_it_says_face_is_not_available(data_dir: Path, demo_face_jpeg: bytes) -> None:
    server = LiveCentral(Settings(data_dir=data_dir, port=free_port(), sweep_seconds=0,
                                  face_platform="none")).start()
    try:
        assert server.svc.face is None
        resp = identify_face(server, provision(server.svc, "KIOSK-001"), demo_face_jpeg)
    finally:
        server.stop()
    assert_error(resp, 409, "FACE_NOT_AVAILABLE", "暂未开通刷脸")


def test_a_platform_that_does_not_answer_is_unavailable_not_unknown(live: LiveCentral, kiosk: Kiosk,
                                                                     demo_face_jpeg: bytes) -> None:
    class Down:
        grade = "hospital-platform"

        def identify(self, image: bytes, limit: int = 5) -> list:
            raise FaceError("connection refused")

    live.svc.face = Down()  # type: ignore[assignment]
    assert_error(identify_face(live, kiosk, demo_face_jpeg), 503, "FACE_PLATFORM_UNAVAILABLE", "暂时无响应")


def test_the_terminal_must_authenticate(live: LiveCentral, kiosk: Kiosk, demo_face_jpeg: bytes) -> None:
    url = f"{live.url}/api/v1/kiosk{PATH}"
    body = {"image_b64": b64(demo_face_jpeg)}
    anonymous = httpx.post(url, json=body, timeout=15)
    assert_error(anonymous, 401, "UNAUTHORIZED", "终端未授权")
    wrong = httpx.post(url, json=body, auth=(kiosk.terminal_id, "not-the-secret"), timeout=15)
    assert_error(wrong, 401, "UNAUTHORIZED", "终端未授权")
    assert "patient_id" not in anonymous.text and "patient_id" not in wrong.text


# --- which platform runs ----------------------------------------------------------------------------------

def test_the_reference_platform_runs_only_with_the_sandboxes_unless_named() -> None:
    assert Settings().face_platform_in_use == "reference"  # the embedded defaults: demo and tests
    assert Settings(sandbox_enabled=False).face_platform_in_use == "none"  # production
    assert Settings(sandbox_enabled=False, face_platform="reference").face_platform_in_use == "reference"
    assert Settings(face_platform="none").face_platform_in_use == "none"
    assert Settings.from_env({"KIOSK_CENTRAL_FACE_PLATFORM": "none"}).face_platform_in_use == "none"
    with pytest.raises(ValueError, match="FACE_PLATFORM"):
        Settings.from_env({"KIOSK_CENTRAL_FACE_PLATFORM": "vendor-x"})
    demo = face_platform_for(Settings())
    assert isinstance(demo, FacePlatform) and demo.grade == REFERENCE_GRADE
    assert face_platform_for(Settings(sandbox_enabled=False)) is None
