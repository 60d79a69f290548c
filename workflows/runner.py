"""One thread owns a workflow.

Device callbacks, UI intents and the clock all post here; the thread applies them one at a time, so the
state machine never sees two events at once and a slow server call never blocks the Qt thread.
"""
from __future__ import annotations

import logging
import queue
import threading
from typing import Any, Protocol

log = logging.getLogger(__name__)


class Driven(Protocol):
    def handle(self, intent: str, **kwargs: Any) -> None: ...
    def tick(self) -> None: ...


class WorkflowRunner:
    def __init__(self, workflow: Driven, tick_seconds: float = 0.5):
        self.workflow = workflow
        self.tick_seconds = tick_seconds
        self._events: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="workflow", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def post(self, intent: str, **kwargs: Any) -> None:
        """Thread-safe: called from the Qt thread and from device threads."""
        self._events.put((intent, kwargs))

    def stop(self, timeout: float = 5.0) -> None:
        self._events.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            try:
                item = self._events.get(timeout=self.tick_seconds)
            except queue.Empty:
                item = ("", {})
            if item is None:
                return
            intent, kwargs = item
            try:
                if intent:
                    self.workflow.handle(intent, **kwargs)
                else:
                    self.workflow.tick()
            except Exception:  # one bad event must not take the terminal down with it
                log.exception("workflow failed on %r", intent or "tick")
                try:
                    self.workflow.handle("fail", message="系统繁忙，请稍后再试或到人工窗口办理",
                                         message_en="Something went wrong. Please try again or go to a counter.")
                except Exception:
                    log.exception("workflow could not show the failure")
