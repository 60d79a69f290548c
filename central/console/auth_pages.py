"""Login (password, then the TOTP code) and logout pages."""
from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from central.console.web import (LOGIN_COOKIE, PREFIX, PRELOGIN_COOKIE, SESSION_COOKIE, clear_cookie, client_ip,
                                 form_of, harden, new_prelogin_token, render, set_cookie, svc_of)
from central.staff import login
from central.staff.errors import SessionExpired, StaffError

router = APIRouter(prefix=PREFIX, include_in_schema=False)

REASONS = {
    "SESSION_EXPIRED": ("登录已过期，请重新登录", "Your login has expired; log in again."),
    "NOT_LOGGED_IN": ("请先登录", "Log in first."),
    "LOGGED_OUT": ("已退出登录", "You have logged out."),
    "LOGIN_EXPIRED": ("登录已超时，请重新输入密码", "The login timed out; enter your password again."),
}


def _login_page(request: Request, *, error: StaffError | None = None, reason: str | None = None,
                username: str = "", status_code: int = 200) -> Response:
    token = new_prelogin_token()
    response = render(request, "login.html", None, status_code=status_code, csrf=token, error=error,
                      notice=REASONS.get(reason or ""), username=username)
    set_cookie(request, response, PRELOGIN_COOKIE, token)
    return response


@router.get("/login")
def login_form(request: Request, reason: str | None = None) -> Response:
    return _login_page(request, reason=reason)


@router.post("/login")
async def login_submit(request: Request) -> Response:
    form = await form_of(request)
    cookie = request.cookies.get(PRELOGIN_COOKIE, "")
    if not cookie or not hmac.compare_digest(cookie.encode(), form.get("csrf", "").encode()):
        error = StaffError("BAD_CSRF", "页面已过期，请重新登录", "the login form is stale; try again", status=403)
        return _login_page(request, error=error, status_code=403)
    username = form.get("username", "")
    try:
        token = await run_in_threadpool(login.begin_login, svc_of(request), username, form.get("password", ""),
                                        ip=client_ip(request))
    except StaffError as exc:
        return _login_page(request, error=exc, username=username.strip()[:64], status_code=exc.status)
    response = RedirectResponse(f"{PREFIX}/login/code", status_code=303)
    set_cookie(request, response, LOGIN_COOKIE, token)
    clear_cookie(request, response, PRELOGIN_COOKIE)
    return harden(response)


def _code_page(request: Request, csrf: str, error: StaffError | None = None, status_code: int = 200) -> Response:
    return render(request, "login_code.html", None, status_code=status_code, csrf=csrf, error=error)


@router.get("/login/code")
def code_form(request: Request) -> Response:
    try:
        pending = login.resolve(svc_of(request), request.cookies.get(LOGIN_COOKIE), stage=login.STAGE_TOTP)
    except SessionExpired:
        return RedirectResponse(f"{PREFIX}/login?reason=LOGIN_EXPIRED", status_code=303)
    return _code_page(request, pending.csrf_token)


@router.post("/login/code")
async def code_submit(request: Request) -> Response:
    svc, form = svc_of(request), await form_of(request)
    token = request.cookies.get(LOGIN_COOKIE)
    try:
        pending = await run_in_threadpool(login.resolve, svc, token, stage=login.STAGE_TOTP)
        login.check_csrf(pending, form.get("csrf"))
        full = await run_in_threadpool(login.complete_login, svc, token or "", form.get("code", ""),
                                       ip=client_ip(request))
    except SessionExpired:
        return RedirectResponse(f"{PREFIX}/login?reason=LOGIN_EXPIRED", status_code=303)
    except StaffError as exc:
        if exc.code == "BAD_TOTP":
            return _code_page(request, pending.csrf_token, exc, status_code=exc.status)
        return _login_page(request, error=exc, status_code=exc.status)  # locked: start again after the lock
    response = RedirectResponse(f"{PREFIX}/", status_code=303)
    clear_cookie(request, response, LOGIN_COOKIE)
    set_cookie(request, response, SESSION_COOKIE, full)
    return harden(response)


@router.post("/logout")
async def logout(request: Request) -> Response:
    svc, form = svc_of(request), await form_of(request)
    token = request.cookies.get(SESSION_COOKIE)
    try:
        me = await run_in_threadpool(login.resolve, svc, token)
        login.check_csrf(me, form.get("csrf"))
    except SessionExpired:
        pass  # already over: just drop the cookie
    except StaffError as exc:  # a forged or stale form does not log anybody out
        return render(request, "error.html", None, status_code=exc.status, error=exc)
    else:
        await run_in_threadpool(login.logout, svc, token, ip=client_ip(request))
    response = RedirectResponse(f"{PREFIX}/login?reason=LOGGED_OUT", status_code=303)
    clear_cookie(request, response, SESSION_COOKIE)
    return harden(response)
