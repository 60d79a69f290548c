"""The hospital face platform as the central server sees it.

Recognising a patient is a biometric decision with legal weight (real-name registration, medical insurance),
so it belongs to the hospital's certified face platform, never to kiosk code. The server talks to it through
this one interface; a hospital plugs its vendor in by writing one adapter. Images cross the boundary as
encoded bytes (JPEG/PNG, what the kiosk uploads) or decoded BGR arrays, and results as plain values, because
the platform is a remote system.

Every result carries the grade of the platform that produced it, so a workflow, an audit log or a reviewer
can tell a certified decision from a demo one without knowing which adapter is configured.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Union, runtime_checkable

import numpy as np

FaceImage = Union[bytes, np.ndarray]  # encoded JPEG/PNG bytes, or a decoded BGR / grey array


class FaceError(Exception):
    """The platform cannot answer for this request; the message can be logged and shown to staff."""


class NoFaceError(FaceError):
    """No face could be found in the image (the kiosk's quality checks should have caught it)."""


class InvalidImageError(FaceError):
    """The bytes are not an image the platform can read."""


class NotEnrolledError(FaceError):
    """The patient has no enrolled face; the workflow should offer enrolment or another way to identify."""


@dataclass(frozen=True)
class Match:
    """The platform's answer to "is this the patient?"."""

    score: float  # 0..1, higher is more alike; only comparable within one platform
    same_person: bool  # the platform's own decision at its own threshold; workflows act on this, not on score
    grade: str  # who decided: a certified platform's name, or `REFERENCE_GRADE`


@dataclass(frozen=True)
class Candidate:
    patient_id: str
    score: float
    grade: str


@runtime_checkable
class FacePlatform(Protocol):
    """What the server needs from a face platform. Implementations must be safe to call from several
    request threads at once.

    An adapter may also set ``margin``: how far apart, on its own score scale, the two best candidates of
    `identify` must be for the first to count as recognised (the server never guesses between two patients).
    """

    grade: str

    def enrol(self, patient_id: str, image: FaceImage) -> None:
        """Add a face for the patient (a patient may have several)."""
        ...

    def verify(self, patient_id: str, image: FaceImage) -> Match:
        """1:1 — is the person in the image this patient? Raises `NotEnrolledError` when unknown."""
        ...

    def identify(self, image: FaceImage, limit: int = 5) -> list[Candidate]:
        """1:N — enrolled patients the image may show, best first, only those the platform accepts."""
        ...

    def forget(self, patient_id: str) -> None:
        """Delete every face of the patient: consent withdrawn or record closed (personal-data law)."""
        ...
