"""The patient's phone, for demos and tests: it reads the payment QR off the kiosk's screen, the way a
camera would, rather than taking the code from the program's memory."""
from __future__ import annotations

import cv2
import numpy as np
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QWidget


def qr_on_screen(widget: QWidget) -> str:
    image = widget.grab().toImage().convertToFormat(QImage.Format.Format_Grayscale8)
    w, h, stride = image.width(), image.height(), image.bytesPerLine()
    pixels = np.frombuffer(image.constBits(), dtype=np.uint8, count=stride * h).reshape(h, stride)[:, :w]
    text, _points, _straight = cv2.QRCodeDetectorAruco().detectAndDecode(np.ascontiguousarray(pixels))
    return text or ""
