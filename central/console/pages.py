"""The console's pages: fleet grid, terminal, alerts, usage, reports, staff and audit (admin)."""
from __future__ import annotations

from datetime import datetime, time, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from central.console import labels, model
from central.console.web import (PREFIX, SESSION_COOKIE, client_ip, form_of, harden, render, require_admin,
                                 require_command_role, require_csrf, svc_of)
from central.fleet import service as fleet
from central.fleet.errors import FleetError
from central.staff import accounts, login
from central.staff.audit import audit, list_audit
from central.staff.errors import StaffError
from central.staff.login import Identity

router = APIRouter(prefix=PREFIX, include_in_schema=False)


def me_of(request: Request) -> Identity:
    return login.resolve(svc_of(request), request.cookies.get(SESSION_COOKIE))


def _fleet_error(request: Request, me: Identity, exc: FleetError) -> Response:
    error = StaffError(exc.code, "请求无法处理", exc.message_en, status=exc.status)
    return render(request, "error.html", me, status_code=exc.status, error=error)


@router.get("")
def root() -> Response:
    return RedirectResponse(f"{PREFIX}/", status_code=307)


@router.get("/")
def fleet_page(request: Request, campus: str = "", floor: str = "", status: str = "", q: str = "") -> Response:
    me, svc = me_of(request), svc_of(request)
    filters = model.Filters(campus[:100], floor[:40], status[:16], q[:100])
    views = model.terminals(svc, filters)
    everything = fleet.list_terminals(svc)
    campuses, floors = model.places(svc)
    return render(request, "fleet.html", me, nav="fleet", filters=filters, groups=model.group(views),
                  shown=len(views), total=len(everything), counts=model.colour_counts(everything),
                  summary=fleet.fleet_summary(svc), campuses=campuses, floors=floors,
                  interval_ms=int(max(1.0, fleet.settings_of(svc).heartbeat_seconds / 2) * 1000))


@router.get("/terminals/{terminal_id}")
def terminal_page(request: Request, terminal_id: str) -> Response:
    me, svc = me_of(request), svc_of(request)
    try:
        detail = fleet.terminal_detail(svc, terminal_id, events=30, commands=15, timeline=60)
    except FleetError as exc:
        return _fleet_error(request, me, exc)
    return render(request, "terminal.html", me, nav="fleet", d=detail, v=detail.view,
                  colour=labels.colour(detail.view.status, detail.view.paper), kinds=fleet.command_kinds(),
                  interval_ms=int(max(1.0, fleet.settings_of(svc).heartbeat_seconds / 4) * 1000))


@router.get("/screenshots/{artifact_id}.png")
def screenshot(request: Request, artifact_id: int) -> Response:
    me, svc = me_of(request), svc_of(request)
    try:
        data = fleet.screenshot_png(svc, artifact_id)
    except FleetError as exc:
        return _fleet_error(request, me, exc)
    return harden(Response(data, media_type="image/png"))


@router.get("/alerts")
def alerts_page(request: Request, status: str = "active") -> Response:
    me, svc = me_of(request), svc_of(request)
    status = status if status in ("active", "open", "acknowledged", "resolved", "all") else "active"
    items = fleet.list_alerts(svc, status=None if status == "all" else status, limit=500)
    names = {v.terminal_id: v for v in fleet.list_terminals(svc)}
    counts = {s: len(fleet.list_alerts(svc, status=s, limit=5000)) for s in ("open", "acknowledged")}
    return render(request, "alerts.html", me, nav="alerts", alerts=items, status=status, terminals=names,
                  counts=counts)


@router.post("/alerts/{alert_id}/ack")
async def acknowledge(request: Request, alert_id: int) -> Response:
    svc, form = svc_of(request), await form_of(request)
    me = await run_in_threadpool(me_of, request)
    require_csrf(me, request, form)
    try:
        require_command_role(me)
    except StaffError:
        await run_in_threadpool(audit, svc, me.username, "alert.ack", target=f"alert:{alert_id}",
                                outcome="denied", detail="read-only role", ip=client_ip(request))
        raise
    try:
        view = await run_in_threadpool(fleet.acknowledge_alert, svc, alert_id, me.username)
    except FleetError as exc:
        return _fleet_error(request, me, exc)
    await run_in_threadpool(audit, svc, me.username, "alert.ack", target=f"alert:{alert_id}",
                            detail=f"{view.terminal_id} {view.key}", ip=client_ip(request))
    back = form.get("back", "")
    return RedirectResponse(back if back.startswith(f"{PREFIX}/") else f"{PREFIX}/alerts", status_code=303)


def _day(text: str, default: datetime) -> datetime:
    try:
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=default.tzinfo)
    except ValueError:
        return default


@router.get("/usage")
def usage_page(request: Request, since: str = "", until: str = "", terminal: str = "") -> Response:
    me, svc = me_of(request), svc_of(request)
    today = datetime.combine(svc.today(), time(0), tzinfo=svc.settings.tz)
    start = _day(since, today - timedelta(days=6))
    end = _day(until, today) + timedelta(days=1)
    if end <= start:
        start, end = end - timedelta(days=1), start + timedelta(days=1)
    from central.console.usage import summarise

    try:
        stats = fleet.usage_stats(svc, since=start, until=end, terminal_id=terminal or None)
    except FleetError as exc:
        return _fleet_error(request, me, exc)
    return render(request, "usage.html", me, nav="usage", u=summarise(stats), since=start.date().isoformat(),
                  until=(end - timedelta(days=1)).date().isoformat(), terminal=terminal,
                  terminals=fleet.list_terminals(svc))


@router.get("/reports")
def reports_page(request: Request) -> Response:
    me, svc = me_of(request), svc_of(request)
    today = svc.today()
    months = []
    year, month = today.year, today.month
    for _ in range(12):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return render(request, "reports.html", me, nav="reports", months=months)


@router.get("/reports/{kind}.pdf")
def report_pdf(request: Request, kind: str, month: str = "") -> Response:
    me, svc = me_of(request), svc_of(request)
    from central.console import reports

    if kind not in ("inspection", "usage"):
        return render(request, "error.html", me, status_code=404,
                      error=StaffError("NOT_FOUND", "没有该报表", "no such report", status=404))
    try:
        first = reports.month_start(month or svc.today().strftime("%Y-%m"), svc.settings.tz)
    except ValueError as exc:
        return render(request, "error.html", me, status_code=422,
                      error=StaffError("BAD_MONTH", "月份格式应为 YYYY-MM", str(exc), status=422))
    build = reports.inspection_report if kind == "inspection" else reports.usage_report
    pdf = build(svc, first, prepared_by=me.label)
    audit(svc, me.username, "report.download", target=f"{kind}:{first:%Y-%m}", ip=client_ip(request))
    name = f"{'inspection' if kind == 'inspection' else 'usage'}-{first:%Y-%m}.pdf"
    response = Response(pdf, media_type="application/pdf",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})
    return harden(response)


@router.get("/admin")
def admin_page(request: Request) -> Response:
    me, svc = me_of(request), svc_of(request)
    require_admin(me)
    return render(request, "admin.html", me, nav="admin", staff=accounts.list_staff(svc),
                  entries=list_audit(svc, limit=200), created=None, now=svc.now())


@router.post("/admin/staff")
async def admin_create(request: Request) -> Response:
    svc, form = svc_of(request), await form_of(request)
    me = await run_in_threadpool(me_of, request)
    require_csrf(me, request, form)
    require_admin(me)
    created, error = None, None
    try:
        created = await run_in_threadpool(lambda: accounts.create_staff(
            svc, form.get("username", ""), form.get("role", ""), password=form.get("password") or None,
            display_name=form.get("display_name", ""), actor=me.username, ip=client_ip(request)))
    except StaffError as exc:
        error = exc
    staff = await run_in_threadpool(accounts.list_staff, svc)
    entries = await run_in_threadpool(lambda: list_audit(svc, limit=200))
    return render(request, "admin.html", me, nav="admin", staff=staff, entries=entries, created=created,
                  error=error, now=svc.now(), status_code=error.status if error else 200)


@router.post("/admin/staff/{username}/{action}")
async def admin_change(request: Request, username: str, action: str) -> Response:
    svc, form = svc_of(request), await form_of(request)
    me = await run_in_threadpool(me_of, request)
    require_csrf(me, request, form)
    require_admin(me)
    ip = client_ip(request)
    if action == "unlock":
        await run_in_threadpool(lambda: accounts.unlock(svc, username, actor=me.username, ip=ip))
    elif action in ("disable", "enable"):
        await run_in_threadpool(lambda: accounts.set_active(svc, username, action == "enable", actor=me.username,
                                                            ip=ip))
    elif action == "role":
        await run_in_threadpool(lambda: accounts.set_role(svc, username, form.get("role", ""), actor=me.username,
                                                          ip=ip))
    else:
        raise StaffError("UNKNOWN_ACTION", "未知操作", f"unknown action {action}", status=404)
    return RedirectResponse(f"{PREFIX}/admin", status_code=303)
