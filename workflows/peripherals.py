"""The terminal's devices a service may use during a visit, besides the receipt printer.

Each is whatever the kiosk hands in: in the kiosk a `drivers.device.DeviceProxy`, which runs every call on
the device's own thread, in tests the driver itself or a fake. A terminal without a device has None there,
and a service that needs it says so on the home screen instead of failing half-way through a visit.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Peripherals:
    face_camera: Any | None = None  # drivers.camera.FaceCamera: 刷脸 identification (K1)
    card_reader: Any | None = None  # drivers.pcsc.PcscCardReader: social-security and bank cards (K1, K6)
    pinpad: Any | None = None  # drivers.pinpad.SerialPinPad: the bank card's PIN (K6)
