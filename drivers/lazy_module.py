"""A library imported on first use instead of when the driver module that names it is imported.

Why: the kiosk imports every configured driver before it can draw its first screen, and a few of the libraries
behind them are expensive to import — OpenCV (~0.2 s and ~33 MB), python-escpos (its printer database),
reportlab — while the home screen needs none of them. A driver writes ``cv2 = LazyModule("cv2")`` where it
wrote ``import cv2``; the library is imported the first time one of its attributes is looked up, which for a
driver is `open()` on the device's own thread (`drivers.device.DeviceWorker`), not the screen's thread.

Thread-safe without a lock of its own: two threads that look up an attribute at the same time both go through
`importlib.import_module`, which runs a module's code once and makes the other importer wait for it.
"""
from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class LazyModule:
    """Stands in for a module until it is needed; then every attribute comes from the real module."""

    __slots__ = ("_name", "_module")

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def load(self) -> ModuleType:
        """Import the module now (a driver calls this in `open()`, so the first job does not wait for it)."""
        module = self._module
        if module is None:
            module = importlib.import_module(self._name)
            self._module = module
        return module

    @property
    def loaded(self) -> bool:
        return self._module is not None

    def __getattr__(self, attr: str) -> Any:
        if attr in LazyModule.__slots__:  # not set yet (copy/pickle make instances without __init__)
            raise AttributeError(attr)
        return getattr(self.load(), attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}{'' if self._module is None else ' (imported)'}>"
