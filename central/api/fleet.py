"""``/api/v1/fleet``: what a terminal's fleet agent sends, authenticated as that terminal (HTTP Basic with the
credentials of ``provision-terminal``, as the kiosk API).

* ``POST /heartbeat``: the live beat; the answer carries the interval to keep and the commands to run.
* ``POST /queued``: what waited in the agent's offline queue (late beats, events, command outcomes), in the
  offline queue's message shape with an ``Idempotency-Key``; a copy is answered ``200 {"duplicate": true}``.
* ``POST /events``: one-off events (the watchdog restarted the app, a self-test result).
* ``POST /commands/{id}/ack``, ``/result``, ``/artifact``: a command's life cycle on the terminal's side.

The models forbid unknown fields: a heartbeat is the terminal's own state and nothing else, so a field that
might carry patient data is refused (422), not stored. A terminal can only touch its own commands.
"""
from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.routing import Route

from central.api.auth import Svc, Terminal
from central.api.errors import UNAUTHORIZED, ApiError, error_response
from central.fleet import ingest
from central.fleet.batcher import BeatBatcher, Closed, Overloaded, Unauthenticated
from central.fleet.errors import FleetError
from central.fleet.metrics import FleetMetrics
from central.services import Services
from central.terminals import authenticate, cached_verdict, secret_hash

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1/fleet", tags=["fleet"])

NAME = r"^[a-z][a-z0-9_]{0,39}$"
KEY = r"^[A-Za-z0-9_.:-]{8,128}$"
SHORT = 60


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AppState(_Strict):
    version: str = Field(max_length=40)
    running: bool
    uptime_s: float = Field(ge=0)
    screen: str = Field(default="", max_length=SHORT)  # a screen's name ("choosing_slot"), never its content
    service: str = Field(default="", max_length=SHORT)
    payment_in_progress: bool = False
    maintenance: bool = False


class DeviceState(_Strict):
    status: Literal["ok", "degraded", "fault"]
    reason: str = Field(default="", max_length=60)
    detail: str = Field(default="", max_length=200)


class SystemState(_Strict):
    cpu_pct: float | None = Field(default=None, ge=0, le=100)
    mem_pct: float | None = Field(default=None, ge=0, le=100)
    disk_pct: float | None = Field(default=None, ge=0, le=100)
    temp_c: float | None = Field(default=None, ge=-50, le=150)


class QueueState(_Strict):
    depth: int = Field(ge=0)
    parked: int = Field(default=0, ge=0)
    oldest_age_s: float | None = Field(default=None, ge=0)


class Heartbeat(_Strict):
    boot: str = Field(pattern=r"^[A-Za-z0-9_-]{8,64}$")  # one agent run; seq restarts with it
    seq: int = Field(ge=1)
    sent_at: AwareDatetime
    app: AppState
    devices: dict[Annotated[str, Field(pattern=NAME)], DeviceState] | None = Field(default=None, max_length=32)
    system: SystemState | None = None
    rtt_ms: float | None = Field(default=None, ge=0)
    queue: QueueState | None = None
    errors: int = Field(default=0, ge=0)
    facts: dict[Annotated[str, Field(pattern=NAME)], str | int | float | bool | None] | None = \
        Field(default=None, max_length=32)  # heavy, rarely changing: os, hostname, agent version; on change only


class Event(_Strict):
    key: str = Field(pattern=KEY)
    kind: str = Field(pattern=NAME)
    severity: Literal["info", "warning", "error", "critical"] = "info"
    message: str = Field(default="", max_length=500)
    detail: dict[Annotated[str, Field(pattern=NAME)], str | int | float | bool | None] = \
        Field(default_factory=dict, max_length=32)
    at: AwareDatetime


class Events(_Strict):
    events: list[Event] = Field(max_length=500)


class Outcome(_Strict):
    command_id: int = Field(ge=1)
    status: Literal["EXECUTED", "FAILED"]
    result: str = Field(default="", max_length=2000)
    artifact_id: int | None = Field(default=None, ge=1)


class CommandResult(_Strict):
    status: Literal["EXECUTED", "FAILED"]
    result: str = Field(default="", max_length=2000)
    artifact_id: int | None = Field(default=None, ge=1)


class QueuedMessage(BaseModel):
    """The offline queue's delivery body (``offline_queue.delivery``)."""

    kind: Literal["fleet_beat", "fleet_event", "fleet_result"]
    payload: dict[str, Any]
    created_at: AwareDatetime


def _refuse(exc: FleetError, terminal: str, what: str) -> ApiError:
    log.info("fleet %s from %s refused: %s", what, terminal, exc.code)
    return ApiError(exc.status, exc.code, "请求无法处理", exc.message_en)


def _observe(request: Request, via: str, result: ingest.BeatResult) -> None:
    metrics = getattr(request.app.state, "fleet_metrics", None)
    if metrics is not None and not result.duplicate:
        metrics.observe_beat(via, result.lag_s)


#: A beat is a few hundred bytes; anything near this is not a heartbeat.
MAX_BEAT_BYTES = 64 * 1024
_RETRY_SOON = {"Retry-After": "1"}


def _describe(exc: ValidationError) -> str:
    """The first problems, by field, worded like the app's handler for FastAPI's own validation errors."""
    parts = []
    for error in exc.errors()[:3]:
        where = ".".join(str(p) for p in error.get("loc", ()))
        parts.append(f"{where}: {error.get('msg', 'invalid')}" if where else str(error.get("msg", "invalid")))
    return "; ".join(parts) or "invalid request"


def _unauthorized() -> JSONResponse:
    return error_response(UNAUTHORIZED.status, UNAUTHORIZED.code, UNAUTHORIZED.message, UNAUTHORIZED.message_en,
                          headers=UNAUTHORIZED.headers)


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    """(terminal id, secret) from an ``Authorization: Basic`` header, or None for anything else."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    terminal, colon, secret = decoded.partition(":")
    return (terminal, secret) if colon and terminal and secret else None


async def heartbeat(request: Request) -> Response:
    """``POST /heartbeat``, the live beat: the one request every terminal sends every few seconds, so it is a
    plain Starlette endpoint rather than a FastAPI route (no dependency solving, no thread-pool hop).

    The same rules as everywhere else in this API: HTTP Basic as the terminal (checked against the cached hash
    here, or by the writer thread in one query per batch when the cache has no fresh copy), the body validated
    by the ``Heartbeat`` model (unknown fields and wrong types are a 422 that names the field), and the answer
    sent only once the beat is committed (``central.fleet.batcher``)."""
    svc: Services = request.app.state.services
    credentials = _basic_credentials(request.headers.get("authorization"))
    if credentials is None:
        return _unauthorized()
    terminal, secret = credentials
    claim = secret_hash(secret)
    verdict = cached_verdict(svc.sessions, terminal, claim)
    if verdict is False:
        return _unauthorized()
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BEAT_BYTES:
        return error_response(413, "PAYLOAD_TOO_LARGE", "请求过大", f"a heartbeat is at most {MAX_BEAT_BYTES} bytes")
    raw = await request.body()
    try:
        if len(raw) > MAX_BEAT_BYTES:
            return error_response(413, "PAYLOAD_TOO_LARGE", "请求过大",
                                  f"a heartbeat is at most {MAX_BEAT_BYTES} bytes")
        beat = Heartbeat.model_validate_json(raw)
    except ValidationError as exc:
        # Who may not send is told 401 before anyone is told what is wrong with the body, as on other routes.
        if verdict is None and not await run_in_threadpool(authenticate, svc.sessions, terminal, secret):
            return _unauthorized()
        return error_response(422, "BAD_REQUEST", "请求内容有误", f"Bad request: {_describe(exc)}")
    batcher: BeatBatcher = request.app.state.fleet_batcher
    try:
        result = await batcher.record(terminal, beat.model_dump(), queued=False,
                                      claim=None if verdict else claim)
    except Unauthenticated:
        return _unauthorized()
    except (Overloaded, Closed) as exc:
        log.warning("heartbeat from %s turned away: %s", terminal, exc)
        return error_response(503, "BUSY", "服务繁忙，请稍后再试", "Server busy; send the beat again later",
                              headers=_RETRY_SOON)
    _observe(request, "live", result)
    return JSONResponse({"interval_s": result.interval_s, "commands": result.commands,
                         "duplicate": result.duplicate, "server_time": svc.now().isoformat()})


@router.post("/events")
def events(body: Events, svc: Svc, terminal: Terminal) -> dict[str, Any]:
    stored = sum(ingest.record_event(svc, terminal, e.model_dump()) for e in body.events)
    return {"stored": stored, "duplicates": len(body.events) - stored}


@router.post("/queued", status_code=201)
def queued(body: QueuedMessage, request: Request, response: Response, svc: Svc, terminal: Terminal,
           idempotency_key: Annotated[str, Header(alias="Idempotency-Key", pattern=KEY)]) -> dict[str, Any]:
    """A message that waited in the agent's offline queue. Its payload is checked like the live route's body;
    a payload that does not fit is refused with 422 (the agent parks it) rather than stored half."""
    try:
        if body.kind == "fleet_beat":
            beat = Heartbeat.model_validate(body.payload)
            beat_result = _take_queued_beat(request, terminal, beat.model_dump())
            _observe(request, "queued", beat_result)
            created = not beat_result.duplicate
        elif body.kind == "fleet_event":
            created = ingest.record_event(svc, terminal, Event.model_validate(body.payload).model_dump())
        else:
            outcome = Outcome.model_validate(body.payload)
            try:
                ingest.finish_command(svc, terminal, outcome.command_id, outcome.status, outcome.result,
                                      outcome.artifact_id)
                created = True
            except FleetError as exc:
                if exc.status != 409:
                    raise
                # Already decided (expired, or this outcome arrived before): nothing more will change it.
                return {"duplicate": True, "code": exc.code}
    except ValidationError as exc:
        raise ApiError(422, "BAD_REQUEST", "请求内容有误",
                       f"Bad {body.kind} payload: {exc.errors()[0].get('msg', 'invalid')}") from exc
    except FleetError as exc:
        raise _refuse(exc, terminal, body.kind) from exc
    if not created:
        response.status_code = 200
    return {"duplicate": not created}


def _take_queued_beat(request: Request, terminal: str, beat: dict[str, Any]) -> ingest.BeatResult:
    """A late beat goes through the same writer as live ones (a reconnecting fleet sends them in bursts)."""
    batcher: BeatBatcher = request.app.state.fleet_batcher
    try:
        return batcher.submit(terminal, beat, queued=True).result()
    except (Overloaded, Closed) as exc:
        raise ApiError(503, "BUSY", "服务繁忙，请稍后再试", "Server busy; send the beat again later",
                       headers=_RETRY_SOON) from exc


@router.post("/commands/{command_id}/ack")
def ack(command_id: int, svc: Svc, terminal: Terminal) -> dict[str, Any]:
    try:
        return {"id": command_id, "status": ingest.acknowledge_command(svc, terminal, command_id)}
    except FleetError as exc:
        raise _refuse(exc, terminal, "ack") from exc


@router.post("/commands/{command_id}/result")
def result(command_id: int, body: CommandResult, svc: Svc, terminal: Terminal) -> dict[str, Any]:
    try:
        status = ingest.finish_command(svc, terminal, command_id, body.status, body.result, body.artifact_id)
    except FleetError as exc:
        raise _refuse(exc, terminal, "result") from exc
    return {"id": command_id, "status": status}


@router.post("/commands/{command_id}/artifact", status_code=201)
async def artifact(command_id: int, request: Request, svc: Svc, terminal: Terminal,
                   kind: Annotated[Literal["screenshot", "logs"], Query()]) -> dict[str, Any]:
    limit = ingest.settings_of(svc).max_artifact_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "PAYLOAD_TOO_LARGE", "文件过大", f"artifact larger than {limit} bytes")
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > limit:
            raise ApiError(413, "PAYLOAD_TOO_LARGE", "文件过大", f"artifact larger than {limit} bytes")
    try:
        artifact_id = await run_in_threadpool(ingest.store_artifact, svc, terminal, command_id, kind, bytes(data))
    except FleetError as exc:
        raise _refuse(exc, terminal, "artifact") from exc
    return {"id": artifact_id}


def install_fleet(app: FastAPI, svc: Services) -> None:
    """Add the fleet API and ``GET /metrics`` (Prometheus text format) to the server's app.

    The live heartbeat route goes first in the route list: it is matched before the app's other routes are
    tried. The heartbeat writer is stopped (what is queued committed) when the app shuts down, before the
    app's own shutdown closes the database."""
    metrics = FleetMetrics(svc)
    app.state.fleet_metrics = metrics
    batcher = BeatBatcher(svc)
    app.state.fleet_batcher = batcher
    app.router.routes.insert(0, Route(router.prefix + "/heartbeat", heartbeat, methods=["POST"],
                                      name="fleet_heartbeat"))
    app.include_router(router)
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app_: Any) -> AsyncIterator[Any]:
        async with inner(app_) as state:
            try:
                yield state
            finally:
                await run_in_threadpool(batcher.close)

    app.router.lifespan_context = lifespan

    @app.get("/metrics", tags=["ops"], include_in_schema=False)
    def prometheus_metrics() -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)
