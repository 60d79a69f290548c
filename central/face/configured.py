"""Which face platform the server asks, from the settings (`Settings.face_platform`).

A hospital's certified platform gets its adapter and its name here; until then the choice is between no face
platform (刷脸 answers FACE_NOT_AVAILABLE) and the demo one, which is not biometric-grade.
"""
from __future__ import annotations

from central.config import Settings
from central.face.platform import FacePlatform


def face_platform_for(settings: Settings) -> FacePlatform | None:
    """The configured platform, or None when 刷脸 is off."""
    kind = settings.face_platform_in_use
    if kind == "none":
        return None
    if kind == "reference":
        from central.face.demo import DemoFacePlatform

        return DemoFacePlatform()
    raise ValueError(f"unknown face platform {kind!r}")
