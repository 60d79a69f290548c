"""The JSON the console's pages poll and post to. Same login cookie as the pages; every POST carries the
session's CSRF token in ``X-CSRF-Token``; refusals are ``{code, message, message_en}`` with an HTTP status."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from central.console import labels, model
from central.console.pages import me_of
from central.console.web import PREFIX, client_ip, harden, require_command_role, require_csrf, svc_of
from central.fleet import service as fleet
from central.fleet.errors import FleetError
from central.staff.audit import audit
from central.staff.errors import InvalidStaffInput, StaffError

router = APIRouter(prefix=f"{PREFIX}/api", include_in_schema=False)


def _json(body: Any, status_code: int = 200) -> Response:
    return harden(JSONResponse(body, status_code=status_code))


def _fleet_error(exc: FleetError) -> Response:
    return _json({"code": exc.code, "message": "请求无法处理", "message_en": exc.message_en}, exc.status)


@router.get("/fleet")
def fleet_tiles(request: Request, campus: str = "", floor: str = "", status: str = "", q: str = "") -> Response:
    me_of(request)
    svc = svc_of(request)
    views = model.terminals(svc, model.Filters(campus[:100], floor[:40], status[:16], q[:100]))
    everything = fleet.list_terminals(svc)
    summary = fleet.fleet_summary(svc)
    return _json({"at": svc.now().isoformat(), "terminals": [model.tile_json(svc, v) for v in views],
                  "counts": model.colour_counts(everything), "total": len(everything), "shown": len(views),
                  "open_alerts": summary.open_alerts, "commands_open": summary.commands_open})


@router.get("/terminals/{terminal_id}")
def terminal(request: Request, terminal_id: str) -> Response:
    me_of(request)
    svc = svc_of(request)
    try:
        detail = fleet.terminal_detail(svc, terminal_id, events=0, commands=15, timeline=0)
    except FleetError as exc:
        return _fleet_error(exc)
    return _json({"terminal": model.tile_json(svc, detail.view),
                  "devices": [{"device": d.device, "name_zh": labels.zh(labels.DEVICES, d.device),
                               "status": d.status, "status_zh": labels.zh(labels.STATUS, d.status),
                               "reason": d.reason, "detail": d.detail} for d in detail.devices],
                  "commands": [model.command_json(svc, c) for c in detail.commands],
                  "last_screenshot_id": detail.last_screenshot_id, "alerts": len(detail.alerts)})


@router.get("/commands/{command_id}")
def command(request: Request, command_id: int) -> Response:
    me_of(request)
    svc = svc_of(request)
    try:
        return _json(model.command_json(svc, fleet.get_command(svc, command_id)))
    except FleetError as exc:
        return _fleet_error(exc)


@router.post("/terminals/{terminal_id}/commands")
async def send_command(request: Request, terminal_id: str) -> Response:
    svc = svc_of(request)
    me = await run_in_threadpool(me_of, request)
    require_csrf(me, request)
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("kind"), str):
        raise InvalidStaffInput("BAD_REQUEST", "请求内容有误", 'send {"kind": ..., "args": {...}}')
    kind, args = body["kind"], body.get("args") or {}
    ip = client_ip(request)
    try:
        require_command_role(me)
    except StaffError:
        await run_in_threadpool(lambda: audit(svc, me.username, "command.issue", target=terminal_id,
                                              outcome="denied", detail=f"{kind}: read-only role", ip=ip))
        raise
    try:
        view = await run_in_threadpool(lambda: fleet.issue_command(svc, terminal_id, kind, args=args,
                                                                   actor=me.username))
    except FleetError as exc:
        why = f"{kind}: {exc.message_en}"
        await run_in_threadpool(lambda: audit(svc, me.username, "command.issue", target=terminal_id,
                                              outcome="failed", detail=why, ip=ip))
        return _fleet_error(exc)
    await run_in_threadpool(lambda: audit(svc, me.username, "command.issue", target=terminal_id,
                                          detail=f"{kind} #{view.id} {view.args or ''}".strip(), ip=ip))
    return _json(model.command_json(svc, view), 201)


@router.post("/alerts/{alert_id}/ack")
async def acknowledge(request: Request, alert_id: int) -> Response:
    svc = svc_of(request)
    me = await run_in_threadpool(me_of, request)
    require_csrf(me, request)
    ip = client_ip(request)
    try:
        require_command_role(me)
    except StaffError:
        await run_in_threadpool(lambda: audit(svc, me.username, "alert.ack", target=f"alert:{alert_id}",
                                              outcome="denied", detail="read-only role", ip=ip))
        raise
    try:
        view = await run_in_threadpool(fleet.acknowledge_alert, svc, alert_id, me.username)
    except FleetError as exc:
        return _fleet_error(exc)
    await run_in_threadpool(lambda: audit(svc, me.username, "alert.ack", target=f"alert:{alert_id}",
                                          detail=f"{view.terminal_id} {view.key}", ip=ip))
    return _json({"id": view.id, "status": view.status, "acknowledged_by": view.acknowledged_by})
