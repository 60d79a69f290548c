"""The last lines of the kiosk's own log, kept in memory for the diagnostic screen.

A technician at the terminal has no shell; the tail of the log is often the quickest way to see why a
printer keeps dropping off. The log holds no patient data or secrets (drivers and workflows mask before
they log), so showing it on the glass behind the technician's PIN is safe.
"""
from __future__ import annotations

import logging
import threading
from collections import deque


def not_library_chatter(record: logging.LogRecord) -> bool:
    """python-escpos logs every connection at INFO on the root logger; one per slip drowns the story."""
    return not (record.name == "root" and record.levelno < logging.WARNING)


class LogTail(logging.Handler):
    def __init__(self, lines: int = 200, level: int = logging.INFO):
        super().__init__(level)
        self._lines: deque[str] = deque(maxlen=lines)
        self._lock_tail = threading.Lock()
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname).1s %(name)s: %(message)s", "%H:%M:%S"))
        self.addFilter(not_library_chatter)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record).splitlines()[0]  # one row per record; tracebacks stay in the log file
        except Exception:
            self.handleError(record)
            return
        with self._lock_tail:
            self._lines.append(line)

    def tail(self, n: int = 40) -> list[str]:
        with self._lock_tail:
            return list(self._lines)[-n:]
