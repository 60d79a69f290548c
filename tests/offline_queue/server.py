"""A small outbox server for the offline-queue tests: the real ``central.api.outbox`` router and its table on
an SQLite file, with real terminal auth, either in-process (TestClient) or on a loopback port (uvicorn in a
thread) that can be stopped and started again on the same port to play an outage."""
from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from central.api import outbox as outbox_api
from central.api.errors import install_error_handlers
from central.models import KioskMessage
from central.db import Base, make_engine, make_sessionmaker, utcnow
from central.models import Terminal
from central.terminals import provision_terminal
from offline_queue.delivery import OUTBOX_PATH, Reply, TransportError

TERMINAL = "KIOSK-001"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class OutboxServerDb:
    """The server's database: terminals and kiosk_messages only."""

    def __init__(self, path: Path):
        self.engine = make_engine(f"sqlite:///{path}")
        Base.metadata.create_all(self.engine, tables=[Terminal.__table__, KioskMessage.__table__])
        self.sessions: sessionmaker[Session] = make_sessionmaker(self.engine)
        self.secret = provision_terminal(self.sessions, TERMINAL)

    @property
    def auth(self) -> tuple[str, str]:
        return (TERMINAL, self.secret)

    def app(self) -> FastAPI:
        app = FastAPI()
        install_error_handlers(app)
        app.include_router(outbox_api.router)
        app.state.services = SimpleNamespace(sessions=self.sessions, now=utcnow)
        return app

    def rows(self) -> list[KioskMessage]:
        with self.sessions() as session:
            return list(session.scalars(select(KioskMessage).order_by(KioskMessage.id)))

    def keys(self) -> list[str]:
        return [row.idempotency_key for row in self.rows()]

    def close(self) -> None:
        self.engine.dispose()


class LiveServer:
    """uvicorn on 127.0.0.1:port in a thread; ``stop`` then ``start`` again is a server outage."""

    def __init__(self, db: OutboxServerDb, port: int | None = None):
        self.db = db
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> LiveServer:
        self._server = uvicorn.Server(uvicorn.Config(self.db.app(), host="127.0.0.1", port=self.port,
                                                     log_level="warning", lifespan="off"))
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("outbox server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=15)
        self._server = self._thread = None


class ClientTransport:
    """The deliverer's transport over an httpx client (a TestClient in-process), for tests."""

    def __init__(self, client: httpx.Client, auth: tuple[str, str]):
        self.client = client
        self.auth = auth

    def post(self, body: dict[str, Any], idempotency_key: str) -> Reply:
        try:
            resp = self.client.post(OUTBOX_PATH, json=body, auth=self.auth,
                                    headers={"Idempotency-Key": idempotency_key})
        except httpx.HTTPError as exc:
            raise TransportError(type(exc).__name__) from exc
        try:
            parsed = resp.json()
        except ValueError:
            parsed = None
        return Reply(resp.status_code, parsed)


class FaultyTransport:
    """Wraps a transport and fails on demand: the request lost on the way (the server never saw it), the answer
    lost on the way back (the server stored it; the kiosk does not know), or a canned answer."""

    def __init__(self, inner: Any):
        self.inner = inner
        self.plan: list[str | Reply] = []  # consumed one per call; "ok", "lose_request", "lose_answer" or a Reply
        self.answers: dict[str, Reply] = {}  # key -> canned answer, every time (a poison message)
        self.calls: list[str] = []  # keys, in the order they were sent

    def post(self, body: dict[str, Any], idempotency_key: str) -> Reply:
        self.calls.append(idempotency_key)
        if idempotency_key in self.answers:
            return self.answers[idempotency_key]
        step = self.plan.pop(0) if self.plan else "ok"
        if isinstance(step, Reply):
            return step
        if step == "lose_request":
            raise TransportError("ConnectError")
        reply = self.inner.post(body, idempotency_key)
        if step == "lose_answer":
            raise TransportError("ReadTimeout")
        return reply


class FakeClock:
    def __init__(self, start: float = 1_800_000_000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
