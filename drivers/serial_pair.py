"""A pair of connected pseudo-terminals, so serial drivers meet their simulators over a real tty.

The driver opens `host_end` exactly as it would open a USB-serial adapter; the simulator serves
`device_end`. Closing the pair is how tests pull the cable.
"""
from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from types import TracebackType


class SerialPairError(RuntimeError):
    pass


class SerialPair:
    def __init__(self, directory: str | Path, name: str = "tty", timeout: float = 5.0) -> None:
        self.directory = Path(directory)
        self.host_end = self.directory / f"{name}-host"
        self.device_end = self.directory / f"{name}-device"
        self.log_path = self.directory / f"{name}-socat.log"
        self.timeout = timeout
        self._proc: subprocess.Popen[bytes] | None = None

    def open(self) -> "SerialPair":
        socat = shutil.which("socat")
        if socat is None:
            raise SerialPairError("socat is not installed; serial simulators need it (apt install socat)")
        self.directory.mkdir(parents=True, exist_ok=True)
        for link in (self.host_end, self.device_end):
            link.unlink(missing_ok=True)
        # socat's -d -d notices go to a file: a pipe nobody reads would fill up and stall it.
        with open(self.log_path, "wb") as log:
            self._proc = subprocess.Popen(
                [socat, "-d", "-d", f"pty,raw,echo=0,link={self.host_end}",
                 f"pty,raw,echo=0,link={self.device_end}"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + self.timeout
        while not (self.host_end.exists() and self.device_end.exists()):
            if self._proc.poll() is not None:
                rc, self._proc = self._proc.returncode, None
                raise SerialPairError(f"socat exited with status {rc}: {self._log_tail()}")
            if time.monotonic() > deadline:
                self.close()
                raise SerialPairError(f"socat did not create {self.host_end} and {self.device_end} "
                                      f"within {self.timeout:.1f} s: {self._log_tail()}")
            time.sleep(0.01)
        return self

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace").strip()[-500:] or "no message"
        except OSError:
            return "no log"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for link in (self.host_end, self.device_end):
            link.unlink(missing_ok=True)

    def __enter__(self) -> "SerialPair":
        return self.open()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
