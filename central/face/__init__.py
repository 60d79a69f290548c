"""Face verification through the hospital's face platform (`FacePlatform`), plus a reference adapter that is
NOT biometric-grade, for demos and tests only."""
from central.face.platform import (Candidate, FaceError, FaceImage, FacePlatform, InvalidImageError, Match,
                                   NoFaceError, NotEnrolledError)
from central.face.reference import REFERENCE_GRADE, ReferenceFacePlatform

__all__ = ["Candidate", "FaceError", "FaceImage", "FacePlatform", "InvalidImageError", "Match", "NoFaceError",
           "NotEnrolledError", "REFERENCE_GRADE", "ReferenceFacePlatform"]
