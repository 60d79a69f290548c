"""The agent's HTTP side: the fleet API as the terminal (HTTP Basic with its credentials), and the transport
that hands the offline queue's fleet messages to ``/api/v1/fleet/queued``.

Every failure becomes one of two exceptions: ``Unreachable`` (no trustworthy answer: queue it and try again
later) or ``Refused`` (the server answered no, with its code). The secret never appears in a repr or a log.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from offline_queue.delivery import UrllibTransport

FLEET = "/api/v1/fleet"


@dataclass(frozen=True)
class Credentials:
    terminal_id: str
    secret: str
    server_url: str

    def __repr__(self) -> str:
        return f"Credentials(terminal_id={self.terminal_id!r}, server_url={self.server_url!r})"

    @classmethod
    def load(cls, path: Path | str) -> Credentials:
        """The file ``kiosk-central provision-terminal`` writes (the kiosk app reads the same one)."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(data["terminal_id"], data["secret"], data["server_url"])


class Unreachable(Exception):
    """No answer (refused, reset, timed out) or a 5xx: try again later."""


class Refused(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(f"HTTP {status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


class FleetClient:
    def __init__(self, credentials: Credentials, *, timeout: float = 10.0):
        self.credentials = credentials
        self._http = httpx.Client(base_url=credentials.server_url.rstrip("/") + FLEET,
                                  auth=(credentials.terminal_id, credentials.secret), timeout=timeout)
        self.last_rtt_ms: float | None = None

    def __repr__(self) -> str:
        return f"FleetClient({self.credentials!r})"

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        started = time.monotonic()
        try:
            resp = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise Unreachable(type(exc).__name__) from exc
        self.last_rtt_ms = round((time.monotonic() - started) * 1000, 2)
        if resp.status_code >= 500:
            raise Unreachable(f"HTTP {resp.status_code}")
        try:
            body = resp.json()
        except ValueError:
            body = {}
        if resp.status_code >= 400:
            raise Refused(resp.status_code, str(body.get("code", "")), str(body.get("message_en", "")))
        return body if isinstance(body, dict) else {}

    def heartbeat(self, beat: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", "/heartbeat", json=beat)

    def events(self, events: list[dict[str, Any]]) -> dict[str, Any]:
        return self._call("POST", "/events", json={"events": events})

    def ack(self, command_id: int) -> dict[str, Any]:
        return self._call("POST", f"/commands/{command_id}/ack")

    def result(self, command_id: int, status: str, result: str, artifact_id: int | None = None) -> dict[str, Any]:
        return self._call("POST", f"/commands/{command_id}/result",
                          json={"status": status, "result": result, "artifact_id": artifact_id})

    def upload(self, command_id: int, kind: str, data: bytes) -> int:
        body = self._call("POST", f"/commands/{command_id}/artifact", params={"kind": kind}, content=data,
                          headers={"Content-Type": "application/octet-stream"})
        return int(body["id"])


class QueuedTransport(UrllibTransport):
    """The offline queue's transport, pointed at the fleet's route for late messages."""

    def __init__(self, credentials: Credentials, **options: Any):
        super().__init__(credentials.server_url, credentials.terminal_id, credentials.secret, **options)
        self.url = credentials.server_url.rstrip("/") + FLEET + "/queued"

    def __repr__(self) -> str:
        return f"QueuedTransport({self.url!r})"
