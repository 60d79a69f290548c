"""pcscd with the vpcd virtual readers, for tests and for `kiosk diag --simulated`.

Machines without systemd have no socket-activated pcscd, so this starts `pcscd --foreground` itself, but
only when no pcscd answers already (a second one would fight the first over its socket). The process it
started is returned, so it is stopped by its own pid and a pcscd somebody else runs is never touched.

pcscd and the vpcd ports are one per machine, so two test runs at once (two developers' sessions, a test
run beside `kiosk diag --simulated`) would pull each other's cards. `PcscTestbed` therefore holds an
exclusive lock file for as long as it runs; a second one waits its turn.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from drivers.pcsc.errors import PcscUnavailableError
from drivers.pcsc.reader import establish_context, list_readers, release_context

VPCD_READER_PREFIX = "Virtual PCD"
VPCD_PORTS = (35963, 35964)  # vpcd's default two slots: "Virtual PCD 00 00" and "Virtual PCD 00 01"
_SBIN = os.pathsep.join(("/usr/local/sbin", "/usr/sbin", "/sbin"))  # pcscd is a daemon; PATH may lack sbin


class PcscTestbedError(RuntimeError):
    pass


def virtual_reader(slot: int) -> str:
    return f"{VPCD_READER_PREFIX} 00 {slot:02d}"


def pcscd_running() -> bool:
    try:
        release_context(establish_context())
    except PcscUnavailableError:
        return False
    return True


def find_pcscd() -> str:
    path = shutil.which("pcscd") or shutil.which("pcscd", path=_SBIN)
    if path is None:
        raise PcscTestbedError("pcscd is not installed (apt install pcscd vsmartcard-vpcd)")
    return path


def _tail(log_path: Path) -> str:
    try:
        return log_path.read_text(errors="replace").strip()[-800:] or "no output"
    except OSError:
        return "no log"


def start_pcscd(log_path: str | Path | None = None, timeout: float = 10.0) -> subprocess.Popen[bytes] | None:
    """Start pcscd in the foreground unless one already answers; None means "it was already running"."""
    if pcscd_running():
        return None
    binary = find_pcscd()
    log = Path(log_path) if log_path is not None else Path(tempfile.gettempdir()) / f"pcscd-{os.getpid()}.log"
    with open(log, "wb") as out:  # a file, not a pipe: nobody reads a pipe and a full one stalls pcscd
        proc = subprocess.Popen([binary, "--foreground"], stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                start_new_session=True)
    deadline = time.monotonic() + timeout
    while not pcscd_running():
        if proc.poll() is not None:
            raise PcscTestbedError(f"pcscd exited with status {proc.returncode}: {_tail(log)}")
        if time.monotonic() > deadline:
            stop_pcscd(proc)
            raise PcscTestbedError(f"pcscd did not answer within {timeout:.0f} s: {_tail(log)}")
        time.sleep(0.05)
    return proc


def stop_pcscd(proc: subprocess.Popen[bytes] | None, timeout: float = 5.0) -> None:
    """Stop a pcscd that `start_pcscd` started; None (somebody else's pcscd) is left alone."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_for_readers(prefix: str = VPCD_READER_PREFIX, count: int = 1, timeout: float = 30.0) -> list[str]:
    """The reader names starting with `prefix`, once at least `count` of them are listed."""
    deadline = time.monotonic() + timeout
    found: list[str] = []
    while True:
        try:
            ctx = establish_context()
            try:
                found = [n for n in list_readers(ctx) if n.startswith(prefix)]
            finally:
                release_context(ctx)
        except PcscUnavailableError:
            found = []
        if len(found) >= count:
            return found
        if time.monotonic() > deadline:
            raise PcscTestbedError(f"pcscd lists {found or 'no readers'}; expected {count} starting with "
                                   f"{prefix!r} (is vsmartcard-vpcd installed?)")
        time.sleep(0.1)


LOCK_NAME = "hospital-kiosk-pcsc-testbed.lock"


class PcscTestbed:
    """pcscd (started if needed) with the vpcd readers listed; stops only what it started."""

    def __init__(self, timeout: float = 10.0, log_path: str | Path | None = None,
                 lock_timeout: float = 600.0) -> None:
        self.timeout = timeout
        self.log_path = log_path
        self.lock_timeout = lock_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.readers: list[str] = []
        self._lock_file: int | None = None

    def _acquire(self) -> None:
        if self._lock_file is not None:
            return
        fd = os.open(Path(tempfile.gettempdir()) / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666)
        deadline = time.monotonic() + self.lock_timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise PcscTestbedError(f"another PC/SC testbed on this machine kept the vpcd readers for "
                                           f"{self.lock_timeout:.0f} s") from None
                time.sleep(0.2)
        self._lock_file = fd

    def _release(self) -> None:
        fd, self._lock_file = self._lock_file, None
        if fd is not None:
            os.close(fd)  # closing drops the flock

    @property
    def started_pcscd(self) -> bool:
        return self.process is not None

    def start(self) -> "PcscTestbed":
        self._acquire()
        try:
            self.process = start_pcscd(self.log_path, self.timeout)
            self.readers = wait_for_readers(VPCD_READER_PREFIX, len(VPCD_PORTS), self.timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def restart_pcscd(self) -> None:
        """Start pcscd again after `stop_pcscd_only` (tests of the pcscd-down fault), keeping the lock."""
        self.process = start_pcscd(self.log_path, self.timeout)
        self.readers = wait_for_readers(VPCD_READER_PREFIX, len(VPCD_PORTS), self.timeout)

    def stop_pcscd_only(self) -> None:
        proc, self.process = self.process, None
        stop_pcscd(proc)

    def stop(self) -> None:
        try:
            self.stop_pcscd_only()
        finally:
            self._release()

    def __enter__(self) -> "PcscTestbed":
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
