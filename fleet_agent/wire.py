"""A small HTTP/1.1 client over a fixed set of keep-alive connections, for simulating thousands of terminals
from one process. httpx's pool spends time proportional to the number of waiting requests on every release,
which made the load generator, not the server, the bottleneck at a few thousand simulated terminals. Here a
fixed number of worker tasks each own one connection and take requests from one queue.

Only what the simulation needs: JSON POST with Basic auth, Content-Length bodies, no redirects or chunking.
"""
from __future__ import annotations

import asyncio
import base64
import json
from typing import Any
from urllib.parse import urlsplit


class WireError(Exception):
    pass


class JsonPool:
    def __init__(self, base_url: str, connections: int = 64, timeout: float = 30.0):
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.prefix = parts.path.rstrip("/")
        self.connections = connections
        self.timeout = timeout
        self._queue: asyncio.Queue[tuple[str, bytes, str, asyncio.Future[tuple[int, Any]]] | None] = \
            asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> JsonPool:
        self._workers = [asyncio.create_task(self._worker()) for _ in range(self.connections)]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for _ in self._workers:
            self._queue.put_nowait(None)
        await asyncio.gather(*self._workers, return_exceptions=True)

    async def post(self, path: str, body: Any, auth: tuple[str, str]) -> tuple[int, Any]:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        future: asyncio.Future[tuple[int, Any]] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((self.prefix + path, json.dumps(body).encode(), token, future))
        return await future

    async def _worker(self) -> None:
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        while True:
            item = await self._queue.get()
            if item is None:
                break
            path, data, token, future = item
            for attempt in range(2):  # a keep-alive connection the server closed meanwhile: reconnect once
                try:
                    if writer is None:
                        reader, writer = await asyncio.open_connection(self.host, self.port)
                    assert reader is not None
                    writer.write(f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nAuthorization: Basic {token}\r\n"
                                 f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
                                 .encode() + data)
                    result = await asyncio.wait_for(self._read(reader), self.timeout)
                    if not future.done():
                        future.set_result(result)
                    break
                except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, WireError) as exc:
                    if writer is not None:
                        writer.close()
                    reader = writer = None
                    if attempt == 1 and not future.done():
                        future.set_exception(WireError(type(exc).__name__))
        if writer is not None:
            writer.close()

    @staticmethod
    async def _read(reader: asyncio.StreamReader) -> tuple[int, Any]:
        status_line = await reader.readline()
        if not status_line:
            raise WireError("connection closed")
        status = int(status_line.split()[1])
        length = 0
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        raw = await reader.readexactly(length) if length else b""
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, None
