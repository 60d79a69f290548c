"""A loopback TCP proxy between the kiosk and the server that the tests can break on command.

`refuse()` is a pulled network cable (every connection dropped, new ones closed at once); `lose_answer_to(b"...")`
lets the next request containing those bytes reach the server but swallows its answer, which is the case
idempotency keys exist for: the server did the work and the kiosk never heard.
"""
from __future__ import annotations

import socket
import threading


class FaultyProxy:
    def __init__(self, upstream_port: int, host: str = "127.0.0.1") -> None:
        self.upstream = (host, upstream_port)
        self.refusing = False
        self._lose_pattern: bytes | None = None
        self.lost_answers = 0
        self._server = socket.create_server((host, 0))
        self.port = self._server.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True, name="proxy").start()

    def refuse(self) -> None:
        self.refusing = True
        self._drop_all()

    def restore(self) -> None:
        self.refusing = False

    def lose_answer_to(self, pattern: bytes) -> None:
        self._lose_pattern = pattern

    def stop(self) -> None:
        self._stopped = True
        self._server.close()
        self._drop_all()

    def _drop_all(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if self.refusing:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._conns += [client, upstream]
            swallow = threading.Event()
            threading.Thread(target=self._pump, args=(client, upstream, None, swallow), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, swallow, None), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, swallow: threading.Event | None,
              arm: threading.Event | None) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if arm is not None and self._lose_pattern and self._lose_pattern in data:
                    self._lose_pattern = None
                    arm.set()  # the request goes through; its answer will not
                if swallow is not None and swallow.is_set():
                    self.lost_answers += 1
                    break  # answer read from the server and thrown away; the kiosk's connection dies
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
