from __future__ import annotations

from typing import Any, Callable

from PySide6.QtWidgets import QVBoxLayout, QWidget

from workflows.view import View

Send = Callable[..., None]  # send(intent, **kwargs)


class Screen(QWidget):
    def __init__(self, send: Send):
        super().__init__()
        self.send = send
        self.body = QVBoxLayout(self)
        self.body.setContentsMargins(60, 24, 60, 12)
        self.body.setSpacing(18)

    def render(self, view: View) -> None:
        """Draw the view. Screens keep no state of their own beyond what is on the glass."""

    def intent(self, name: str, **kwargs: Any) -> Callable[[], None]:
        return lambda: self.send(name, **kwargs)
