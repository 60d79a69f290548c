"""A receipt printer on 127.0.0.1 that keeps what it was sent, so tests can read the slip back.

Each TCP connection is one job, as on a raw port-9100 printer. DLE EOT status queries get the answer an
Epson-compatible printer gives, switchable to "paper out".
"""
from __future__ import annotations

import socket
import threading

DLE_EOT = b"\x10\x04"

# DLE EOT n answers (fixed bits 1 and 4 set, as the ESC/POS reference prescribes).
STATUS_OK = {1: 0x16, 2: 0x12, 3: 0x12, 4: 0x12}
STATUS_PAPER_OUT = {1: 0x1E, 2: 0x32, 3: 0x12, 4: 0x72}  # offline, paper-end stop, both roll sensors


class PrinterListener:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._requested_port = port
        self.port = 0
        self.paper_out = False
        self.jobs: list[bytes] = []
        self._handed_out = 0
        self._cond = threading.Condition()
        self._server: socket.socket | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((self.host, self._requested_port))
        server.listen(8)
        server.settimeout(0.1)
        self._server = server
        self.port = server.getsockname()[1]
        self._stop.clear()
        self._spawn(self._accept_loop, "printer-listener")

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()
        if self._server is not None:
            self._server.close()
            self._server = None

    def __enter__(self) -> "PrinterListener":
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def wait_for_job(self, timeout: float) -> bytes:
        """The next job not yet returned by this method, waiting up to `timeout` seconds for it."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.jobs) > self._handed_out, timeout=timeout):
                raise TimeoutError(f"no print job arrived within {timeout} s")
            job = self.jobs[self._handed_out]
            self._handed_out += 1
            return job

    def status_byte(self, n: int) -> int:
        table = STATUS_PAPER_OUT if self.paper_out else STATUS_OK
        return table.get(n, 0x12)

    def _spawn(self, target, name: str, *args: object) -> None:  # type: ignore[no-untyped-def]
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        assert self._server is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self._spawn(self._serve, "printer-job", conn)

    def _serve(self, conn: socket.socket) -> None:
        job = bytearray()
        conn.settimeout(0.1)
        with conn:
            while not self._stop.is_set():
                try:
                    chunk = conn.recv(65536)
                except socket.timeout:
                    continue
                except OSError:
                    break
                if not chunk:
                    break
                job += chunk
                answers = self._status_answers(chunk)
                if answers:
                    try:
                        conn.sendall(answers)
                    except OSError:
                        break
        if job and not only_status_queries(bytes(job)):
            with self._cond:
                self.jobs.append(bytes(job))
                self._cond.notify_all()

    def _status_answers(self, chunk: bytes) -> bytes:
        """Answer the queries at the end of a chunk: a host waiting for a status sends the query last.

        Raster data can contain 10 04 by chance; only a trailing run of queries is taken as real.
        """
        answers = []
        end = len(chunk)
        while end >= 3 and chunk[end - 3:end - 1] == DLE_EOT and 1 <= chunk[end - 1] <= 4:
            answers.append(self.status_byte(chunk[end - 1]))
            end -= 3
        return bytes(reversed(answers))


def only_status_queries(data: bytes) -> bool:
    return len(data) % 3 == 0 and all(data[i:i + 2] == DLE_EOT for i in range(0, len(data), 3))
