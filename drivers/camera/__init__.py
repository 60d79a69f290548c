"""The face camera: capture frames, pick one worth sending to the hospital face platform.

The kiosk only detects faces and checks frame quality; deciding who the patient is belongs to the hospital's
certified face platform (see `central.face`).
"""
from drivers.camera.camera import (CameraDisconnectedError, CameraError, Capture, FaceCamera,
                                   FaceNotCapturedError, SourceEndedError)
from drivers.camera.quality import Quality, assess, prompt

__all__ = ["CameraDisconnectedError", "CameraError", "Capture", "FaceCamera", "FaceNotCapturedError", "Quality",
           "SourceEndedError", "assess", "prompt"]
