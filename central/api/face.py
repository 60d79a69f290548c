"""刷脸 (K1): ``POST /api/v1/kiosk/patients/identify-face`` — who is at the kiosk, asked of the face platform.

The kiosk sends one JPEG of the patient's face; the hospital's face platform (`Services.face`, 1:N) says who it
may be, and the answer is the same patient view ``POST /patients/identify`` gives. Recognising a face is the
platform's decision, so this route adds only what a kiosk needs around it: a bounded, well-formed upload, a
refusal to guess between two patients the platform cannot tell apart, and messages for the patient.

The picture is personal data of the most sensitive kind: it is held in memory for the one request, never
stored, never logged; the log says only how the request ended and which grade of platform decided.
"""
from __future__ import annotations

import base64
import binascii
import io
import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from PIL import Image
from pydantic import BaseModel, ValidationError

from central.api.auth import Svc, Terminal
from central.api.errors import ApiError
from central.api.kiosk import _patient_view
from central.face.platform import Candidate, FaceError, FacePlatform, InvalidImageError, NoFaceError
from central.services import Services

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1/kiosk", tags=["kiosk"])

MAX_IMAGE_BYTES = 200 * 1024  # a kiosk's face crop is ~50 kB; anything near this is not what a kiosk sends
MAX_IMAGE_B64 = 4 * ((MAX_IMAGE_BYTES + 2) // 3)
MAX_BODY_BYTES = MAX_IMAGE_B64 + 1024  # the JSON around the base64 text
MAX_IMAGE_SIDE = 4096  # pixels; a small file may still unpack into a huge picture
IMAGE_FORMATS = ["JPEG", "PNG"]
#: How far apart the two best candidates must be when the platform does not say (see `FacePlatform`).
DEFAULT_MARGIN = 0.05


class FaceImageRequest(BaseModel):
    """The patient's face as the kiosk camera took it: a JPEG (or PNG), base64-encoded."""

    image_b64: str

    def __repr__(self) -> str:  # the picture never reaches a log line
        return f"FaceImageRequest({len(self.image_b64)} base64 characters)"


NOT_RECOGNISED = ApiError(404, "FACE_NOT_RECOGNISED", "未能识别您的身份，请使用身份证、医保凭证或就诊码",
                          "We could not recognise you; please use your ID card, insurance e-voucher or visit code")
NOT_AVAILABLE = ApiError(409, "FACE_NOT_AVAILABLE", "本院暂未开通刷脸识别，请使用身份证、医保凭证或就诊码",
                         "Face identification is not available here; please use your ID card, insurance "
                         "e-voucher or visit code")
PLATFORM_DOWN = ApiError(503, "FACE_PLATFORM_UNAVAILABLE", "刷脸系统暂时无响应，请稍候或使用身份证",
                         "The face platform is not answering; please wait or use your ID card")


def _invalid(message: str, message_en: str) -> ApiError:
    return ApiError(422, "FACE_IMAGE_INVALID", message, message_en)


BAD_PICTURE = ("照片无法识别，请正对摄像头重新拍摄", "The picture could not be read; please face the camera and try again")
NO_FACE = ("照片中未检测到人脸，请正对摄像头重新拍摄", "No face was found in the picture; please face the camera and try again")
TOO_LARGE = ("照片过大，请重新拍摄", "The picture is too large; please take it again")
BAD_BODY_EN = 'Bad request: expected {"image_b64": "<base64 JPEG>"}'


@router.post("/patients/identify-face", openapi_extra={"requestBody": {"required": True, "content": {
    "application/json": {"schema": FaceImageRequest.model_json_schema()}}}})
async def identify_face(request: Request, svc: Svc, _terminal: Terminal) -> dict[str, Any]:
    """K1 刷脸: the patient file of the person in the picture, as ``POST /patients/identify`` answers it.

    404 FACE_NOT_RECOGNISED when the platform accepts nobody, or two patients too alike to tell apart;
    422 FACE_IMAGE_INVALID for a body that is not a JPEG/PNG face of at most 200 kB; 409 FACE_NOT_AVAILABLE
    when no face platform is configured; 503 FACE_PLATFORM_UNAVAILABLE when it does not answer.
    """
    platform = svc.face
    if platform is None:
        _outcome("platform_off", None)
        raise NOT_AVAILABLE
    image = _image_bytes(await _read_body(request))
    return await run_in_threadpool(_identify, svc, platform, image)


async def _read_body(request: Request) -> bytes:
    """The request body, refused as soon as it is longer than an image may be: before any of it is decoded,
    and without reading the rest of an oversized upload into memory."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        _outcome("too_large", None)
        raise _invalid(*TOO_LARGE)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            _outcome("too_large", None)
            raise _invalid(*TOO_LARGE)
    return bytes(body)


def _image_bytes(body: bytes) -> bytes:
    """The JPEG/PNG bytes of ``{"image_b64": ...}``, checked for size, format and dimensions from the header
    alone; the pixels are decoded once, by the face platform."""
    try:
        text = FaceImageRequest.model_validate_json(body).image_b64
    except ValidationError:  # not chained: the validation error quotes its input, which is the picture
        raise ApiError(422, "BAD_REQUEST", "请求内容有误", BAD_BODY_EN) from None
    if len(text) > MAX_IMAGE_B64:
        _outcome("too_large", None)
        raise _invalid(*TOO_LARGE)
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        _outcome("invalid_image", None)
        raise _invalid(*BAD_PICTURE) from None
    if len(data) > MAX_IMAGE_BYTES:
        _outcome("too_large", None)
        raise _invalid(*TOO_LARGE)
    try:
        with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as header:  # reads the header only
            kind, (width, height) = header.format, header.size
    except Exception:  # Pillow raises many kinds for bytes that are not an image; all mean the same here
        _outcome("invalid_image", None)
        raise _invalid(*BAD_PICTURE) from None
    if kind not in IMAGE_FORMATS or not (0 < width <= MAX_IMAGE_SIDE and 0 < height <= MAX_IMAGE_SIDE):
        _outcome("invalid_image", None)
        raise _invalid(*BAD_PICTURE)
    return data


def _identify(svc: Services, platform: FacePlatform, image: bytes) -> dict[str, Any]:
    """Ask the platform (a blocking call, hence a worker thread) and turn its candidates into a patient."""
    grade = platform.grade
    try:
        candidates = platform.identify(image, limit=2)
    except NoFaceError:
        _outcome("no_face", grade)
        raise _invalid(*NO_FACE) from None
    except InvalidImageError:
        _outcome("invalid_image", grade)
        raise _invalid(*BAD_PICTURE) from None
    except FaceError as exc:
        log.warning("face identify: the platform did not answer (%s, grade %s)", type(exc).__name__, grade)
        raise PLATFORM_DOWN from None
    best = _best_or_none(candidates, getattr(platform, "margin", DEFAULT_MARGIN))
    if best is None:
        _outcome("ambiguous" if candidates else "no_candidate", grade)
        raise NOT_RECOGNISED
    patient = svc.his.get_patient(best.patient_id)
    if patient is None:  # enrolled on the platform, but the HIS has no such file (closed, merged)
        _outcome("not_in_his", grade)
        raise NOT_RECOGNISED
    _outcome("recognised", best.grade)
    return _patient_view(svc, patient)


def _best_or_none(candidates: list[Candidate], margin: float) -> Candidate | None:
    """The one patient the picture shows, or None: nobody accepted, or the two best so close in score that
    choosing one would be a guess — and a wrong guess opens another patient's file."""
    best: dict[str, Candidate] = {}
    for candidate in candidates:
        if candidate.patient_id not in best or candidate.score > best[candidate.patient_id].score:
            best[candidate.patient_id] = candidate
    ranked = sorted(best.values(), key=lambda c: c.score, reverse=True)
    if not ranked:
        return None
    if len(ranked) > 1 and ranked[0].score - ranked[1].score < margin:
        return None
    return ranked[0]


def _outcome(outcome: str, grade: str | None) -> None:
    log.info("face identify: %s (grade %s)", outcome, grade or "-")
