"""The demo hospital's face platform: the reference adapter (NOT biometric-grade) with the demo patient enrolled.

Enrolling real patients is the hospital face platform's business: its own consent, capture and storage
procedures decide whose face it holds, and this server only asks it who is in a picture. The demo hospital has
no such platform, so here the demo patient (`central.his.seed.DEMO_PATIENT_ID`) is enrolled with the drawn face
of `drivers.camera.synthetic` in its default style — the face the simulated kiosk camera shows — so that 刷脸
at a simulated kiosk finds the demo patient, and a differently drawn face finds nobody.
"""
from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from central.face.platform import Candidate, FaceImage, Match
from central.face.reference import REFERENCE_GRADE, ReferenceFacePlatform
from central.his.seed import DEMO_PATIENT_ID

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)


def demo_patient_face() -> np.ndarray:
    """The demo patient's face as the simulated camera shows it (`synthetic.face_video`'s default frame)."""
    from drivers.camera import synthetic

    return synthetic.face_frame(style=synthetic.DEFAULT_STYLE)


class DemoFacePlatform:
    """A `FacePlatform`: the reference adapter with the demo patient enrolled, built on first use.

    Building it loads a face detector and enrols a drawn face (a tenth of a second), which most server starts
    and most tests never need; the first 刷脸 pays for it instead. It says at start-up what it is.
    """

    grade = REFERENCE_GRADE

    def __init__(self) -> None:
        self._platform: ReferenceFacePlatform | None = None
        self._lock = threading.Lock()
        log.warning("face platform: the REFERENCE adapter (NOT biometric-grade) answers 刷脸, with the demo "
                    "patient's drawn face enrolled; for demos and tests only")

    def _ready(self) -> ReferenceFacePlatform:
        with self._lock:
            if self._platform is None:
                platform = ReferenceFacePlatform()
                platform.enrol(DEMO_PATIENT_ID, demo_patient_face())
                self._platform = platform
            return self._platform

    @property
    def margin(self) -> float:
        return ReferenceFacePlatform.margin

    def enrol(self, patient_id: str, image: FaceImage) -> None:
        self._ready().enrol(patient_id, image)

    def verify(self, patient_id: str, image: FaceImage) -> Match:
        return self._ready().verify(patient_id, image)

    def identify(self, image: FaceImage, limit: int = 5) -> list[Candidate]:
        return self._ready().identify(image, limit)

    def forget(self, patient_id: str) -> None:
        self._ready().forget(patient_id)
