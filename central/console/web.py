"""The console's web plumbing: cookies, who is asking, CSRF, templates, and how refusals look.

Cookies are HttpOnly, SameSite=Strict, scoped to ``/console`` and Secure whenever the console is reached over
HTTPS (``Settings.console_secure_cookie``). Every state-changing request carries the session's CSRF token
(a form field or the ``X-CSRF-Token`` header); the login form, before any session exists, uses a
double-submit cookie instead. Pages answer with a strict Content-Security-Policy: no inline script at all.
"""
from __future__ import annotations

import secrets
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from central.console import labels
from central.services import Services
from central.staff import login
from central.staff.errors import NotAllowed, SessionExpired, StaffError
from central.staff.login import Identity

PREFIX = "/console"
SESSION_COOKIE = "kc_session"
LOGIN_COOKIE = "kc_login"  # the password was right; the code is still to come
PRELOGIN_COOKIE = "kc_prelogin"  # the login form's double-submit CSRF value
CSRF_HEADER = "x-csrf-token"
MAX_FORM_BYTES = 64 * 1024

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=str(HERE / "templates"))

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def svc_of(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def client_ip(request: Request) -> str:
    return request.client.host if request.client else ""


def secure_cookies(request: Request) -> bool:
    mode = getattr(svc_of(request).settings, "console_secure_cookie", "auto")
    if mode == "always":
        return True
    if mode == "never":
        return False
    public = getattr(svc_of(request).settings, "public_base_url", None) or ""
    return request.url.scheme == "https" or public.startswith("https://")


def set_cookie(request: Request, response: Response, name: str, value: str) -> None:
    response.set_cookie(name, value, path=PREFIX, httponly=True, samesite="strict",
                        secure=secure_cookies(request))


def clear_cookie(request: Request, response: Response, name: str) -> None:
    response.delete_cookie(name, path=PREFIX, httponly=True, samesite="strict", secure=secure_cookies(request))


def harden(response: Response) -> Response:
    for key, value in SECURITY_HEADERS.items():
        response.headers.setdefault(key, value)
    return response


async def identify(request: Request) -> Identity:
    """The logged-in staff member behind this request (SessionExpired if none)."""
    return await run_in_threadpool(login.resolve, svc_of(request), request.cookies.get(SESSION_COOKIE))


async def form_of(request: Request) -> dict[str, str]:
    """An application/x-www-form-urlencoded body, first value of each field (no multipart: none is needed)."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise StaffError("FORM_TOO_LARGE", "提交内容过大", "the form is too large", status=413)
    parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {key: values[0] for key, values in parsed.items()}


def require_csrf(identity: Identity, request: Request, form: dict[str, str] | None = None) -> None:
    presented = request.headers.get(CSRF_HEADER) or (form or {}).get("csrf")
    login.check_csrf(identity, presented)


def require_command_role(identity: Identity) -> None:
    if not identity.can_command:
        raise NotAllowed("READ_ONLY", "只读账户不能执行此操作", "a read-only account cannot do this")


def require_admin(identity: Identity) -> None:
    if not identity.is_admin:
        raise NotAllowed("ADMIN_ONLY", "仅管理员可以执行此操作", "only an admin can do this")


def new_prelogin_token() -> str:
    return secrets.token_urlsafe(24)


def fmt_time(svc: Services, value: datetime | None, pattern: str = "%m-%d %H:%M:%S") -> str:
    if value is None:
        return "—"
    return value.astimezone(svc.settings.tz).strftime(pattern)


def ago(svc: Services, value: datetime | None) -> str:
    if value is None:
        return "从未 never"
    seconds = max(0, int((svc.now() - value).total_seconds()))
    if seconds < 60:
        return f"{seconds} 秒前"
    if seconds < 3600:
        return f"{seconds // 60} 分钟前"
    if seconds < 86400:
        return f"{seconds // 3600} 小时前"
    return f"{seconds // 86400} 天前"


def render(request: Request, template: str, identity: Identity | None, status_code: int = 200,
           **context: Any) -> HTMLResponse:
    svc = svc_of(request)
    base = {"request": request, "me": identity, "labels": labels, "prefix": PREFIX,
            "t": lambda v, p="%m-%d %H:%M:%S": fmt_time(svc, v, p), "ago": lambda v: ago(svc, v),
            "nav": context.pop("nav", "")}
    response = templates.TemplateResponse(request, template, {**base, **context}, status_code=status_code)
    return harden(response)  # type: ignore[return-value]


def login_redirect(request: Request, reason: str | None = None) -> RedirectResponse:
    target = f"{PREFIX}/login"
    if reason:
        target += f"?reason={quote(reason)}"
    response = RedirectResponse(target, status_code=303)
    clear_cookie(request, response, SESSION_COOKIE)
    return response


def api_error(exc: StaffError) -> JSONResponse:
    return harden(JSONResponse({"code": exc.code, "message": exc.message, "message_en": exc.message_en},
                               status_code=exc.status))  # type: ignore[return-value]


def page_error(request: Request, exc: StaffError, identity: Identity | None) -> Response:
    if isinstance(exc, SessionExpired):
        return login_redirect(request, exc.code)
    return render(request, "error.html", identity, status_code=exc.status, error=exc, nav="")

