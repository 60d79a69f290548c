"""The reference face platform: it must work well enough for demos and tests, and never hide that it is not
biometric-grade."""
from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest

from central.face import (REFERENCE_GRADE, FacePlatform, InvalidImageError, NoFaceError, NotEnrolledError,
                          ReferenceFacePlatform)
from drivers.camera import synthetic


@pytest.fixture(scope="module")
def platform() -> ReferenceFacePlatform:
    return ReferenceFacePlatform()


@pytest.fixture(scope="module")
def alice() -> np.ndarray:
    return synthetic.face_frame(seed=1)


@pytest.fixture(scope="module")
def bob() -> np.ndarray:
    return synthetic.face_frame(style=synthetic.OTHER_STYLE, seed=1)


def jpeg(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", image)
    assert ok
    return data.tobytes()


def test_it_is_a_face_platform(platform: ReferenceFacePlatform) -> None:
    assert isinstance(platform, FacePlatform)


def test_it_warns_at_start_up_that_it_is_not_biometric(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="central.face.reference"):
        ReferenceFacePlatform()
    assert any("NOT biometric-grade" in record.getMessage() and record.levelno == logging.WARNING
               for record in caplog.records)
    assert "NOT BIOMETRIC-GRADE" in (ReferenceFacePlatform.__doc__ or "").upper()


def test_same_image_verifies_and_says_it_is_not_biometric(platform: ReferenceFacePlatform,
                                                          alice: np.ndarray) -> None:
    platform.enrol("P-alice", alice)
    match = platform.verify("P-alice", alice)
    assert match.same_person and match.score == pytest.approx(1.0)
    assert match.grade == REFERENCE_GRADE == "reference-not-biometric"


def test_same_person_in_a_new_frame_verifies_from_jpeg_bytes(platform: ReferenceFacePlatform,
                                                              alice: np.ndarray) -> None:
    platform.enrol("P-alice2", jpeg(alice))
    match = platform.verify("P-alice2", jpeg(synthetic.face_frame(seed=42)))  # fresh sensor noise
    assert match.same_person and match.score > 0.95


def test_different_person_does_not_verify(platform: ReferenceFacePlatform, alice: np.ndarray,
                                          bob: np.ndarray) -> None:
    platform.enrol("P-alice3", alice)
    match = platform.verify("P-alice3", bob)
    assert not match.same_person and match.score < platform.threshold
    assert match.grade == REFERENCE_GRADE


def test_identify_lists_only_accepted_candidates_best_first(alice: np.ndarray, bob: np.ndarray) -> None:
    platform = ReferenceFacePlatform()
    platform.enrol("P-alice", alice)
    platform.enrol("P-bob", bob)
    candidates = platform.identify(synthetic.face_frame(seed=5))
    assert [c.patient_id for c in candidates] == ["P-alice"]
    assert candidates[0].grade == REFERENCE_GRADE
    assert [c.patient_id for c in platform.identify(bob)] == ["P-bob"]
    platform.forget("P-bob")
    assert platform.identify(bob) == []


def test_unknown_patient_no_face_and_junk_are_clear_errors(platform: ReferenceFacePlatform,
                                                            alice: np.ndarray) -> None:
    with pytest.raises(NotEnrolledError):
        platform.verify("P-nobody", alice)
    with pytest.raises(NoFaceError):
        platform.enrol("P-x", synthetic.face_frame(faces=[]))
    with pytest.raises(InvalidImageError):
        platform.verify("P-alice", b"not a jpeg")
    with pytest.raises(InvalidImageError):
        platform.enrol("P-x", np.zeros((10, 10), np.float32))
