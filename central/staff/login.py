"""Logging in (password, then the TOTP code), the login session that follows, and logging out.

The browser holds a random token in a cookie; the server keeps only its SHA-256, so the sessions table is no
key to anybody's console. A login is two steps, each its own session stage: the password gives a short-lived
"totp" session that can do nothing but send a code; the right code replaces it with a fresh token ("ok"),
so a token seen before the second factor is worthless after it.

Lockout counts both kinds of miss: ``max_failures`` wrong passwords or wrong codes in a row lock the account
for ``lock_minutes``. The count is reset only by a complete login, so knowing the password does not buy
unlimited guesses at the code. A TOTP code is accepted once (``StaffUser.totp_last_step``).
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from central.services import Services
from central.staff import passwords, totp
from central.staff.accounts import USERNAME
from central.staff.audit import audit, record
from central.staff.errors import AccountLocked, BadCsrf, LoginFailed, SessionExpired
from central.staff.models import StaffSession, StaffUser
from central.staff.policy import StaffPolicy, staff_policy

STAGE_TOTP = "totp"
STAGE_OK = "ok"
LAST_SEEN_RESOLUTION = timedelta(seconds=30)  # write last_seen at most this often: polling must not be writing


@dataclass(frozen=True)
class Identity:
    """Who is behind a request (what the console's handlers get)."""

    username: str
    display_name: str
    role: str
    csrf_token: str = field(repr=False)
    stage: str

    @property
    def can_command(self) -> bool:
        return self.role in ("admin", "it")

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def label(self) -> str:
        return self.display_name or self.username


def policy_of(svc: Services) -> StaffPolicy:
    return staff_policy(svc.settings)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def _locked_error(until: datetime, svc: Services) -> AccountLocked:
    local = until.astimezone(svc.settings.tz).strftime("%H:%M")
    return AccountLocked("ACCOUNT_LOCKED", f"登录失败次数过多，账户已锁定至 {local}，或请管理员解锁",
                         f"too many failed logins: the account is locked until {local} (or ask an admin to unlock it)")


def _miss(svc: Services, session: Session, row: StaffUser, now: datetime, ip: str,
          action: str) -> AccountLocked | None:
    """Count one miss on ``row`` inside the caller's transaction; the lockout it caused, if any."""
    policy = policy_of(svc)
    row.failed_logins += 1
    locked = None
    if row.failed_logins >= policy.max_failures:
        row.locked_until = now + timedelta(minutes=policy.lock_minutes)
        locked = _locked_error(row.locked_until, svc)
    record(session, now, row.username, action, outcome="failed", ip=ip,
           detail=f"failure {row.failed_logins} of {policy.max_failures}" + ("; account locked" if locked else ""))
    return locked


def _safe_name(username: str) -> str:
    """A typed username fit for the audit log: people type passwords into the wrong box."""
    return username if USERNAME.match(username) else "(not a valid username)"


def begin_login(svc: Services, username: str, password: str, *, ip: str = "") -> str:
    """Check the password; the token of a session that may now send its TOTP code. Wrong name and wrong
    password fail alike (LoginFailed); a locked account fails with AccountLocked and its time."""
    username = (username or "").strip().lower()
    now = svc.now()
    with svc.sessions() as session:
        row = session.get(StaffUser, username) if username else None
        stored = row.password_hash if row is not None and row.active else passwords.DUMMY_HASH
        locked_until = row.locked_until if row is not None else None
    wrong = LoginFailed("BAD_CREDENTIALS", "用户名或密码错误", "wrong username or password")
    if locked_until is not None and locked_until > now:
        audit(svc, username, "login.password", outcome="denied", detail="account locked", ip=ip)
        raise _locked_error(locked_until, svc)
    good = passwords.verify_password(password or "", stored)  # always hashed: timing does not tell names apart
    if row is None or not row.active:
        audit(svc, "-", "login.password", target=_safe_name(username), outcome="failed",
              detail="unknown or disabled user", ip=ip)
        raise wrong
    token = secrets.token_urlsafe(32)
    refusal: LoginFailed | AccountLocked | None = None
    with svc.sessions() as session, session.begin():
        user = session.get(StaffUser, username)
        if user is None:  # deleted meanwhile
            raise wrong
        if user.locked_until is not None and user.locked_until <= now:
            user.locked_until, user.failed_logins = None, 0  # the lock ran out: a fresh count
        if not good:
            refusal = _miss(svc, session, user, now, ip, "login.password") or wrong
        else:
            session.add(StaffSession(token_hash=token_hash(token), username=username, stage=STAGE_TOTP,
                                     csrf_token=secrets.token_urlsafe(24), created_at=now, last_seen_at=now,
                                     ip=ip[:64]))
            record(session, now, username, "login.password", detail="password accepted; waiting for the code",
                   ip=ip)
    if refusal is not None:
        raise refusal
    return token


def complete_login(svc: Services, token: str, code: str, *, ip: str = "") -> str:
    """Check the TOTP code of a session at the "totp" stage; the token of the full login that replaces it."""
    now, policy = svc.now(), policy_of(svc)
    new_token = secrets.token_urlsafe(32)
    refusal: Exception | None = None
    with svc.sessions() as session, session.begin():
        pending = session.get(StaffSession, token_hash(token or ""))
        user = session.get(StaffUser, pending.username) if pending is not None else None
        step = None
        if pending is None or pending.stage != STAGE_TOTP or \
                now - pending.created_at > timedelta(minutes=policy.totp_stage_minutes):
            refusal = SessionExpired("LOGIN_EXPIRED", "登录已超时，请重新输入密码",
                                     "the login timed out; enter your password again")
        elif user is None or not user.active:
            refusal = LoginFailed("BAD_CREDENTIALS", "用户名或密码错误", "wrong username or password")
        elif user.locked_until is not None and user.locked_until > now:
            refusal = _locked_error(user.locked_until, svc)
        else:
            step = totp.verify(user.totp_secret, code or "", now, user.totp_last_step)
            if step is None:
                locked = _miss(svc, session, user, now, ip, "login.totp")
                refusal = locked or LoginFailed("BAD_TOTP", "动态验证码错误或已使用，请输入验证器上的新验证码",
                                                "wrong or already used code: enter the current code from your "
                                                "authenticator")
                if locked is None:
                    pending = None  # keep it: the person may try the next code
        if refusal is not None:
            if pending is not None and pending.stage == STAGE_TOTP:
                session.delete(pending)
        else:
            assert pending is not None and user is not None and step is not None
            session.delete(pending)
            session.add(StaffSession(token_hash=token_hash(new_token), username=user.username, stage=STAGE_OK,
                                     csrf_token=secrets.token_urlsafe(24), created_at=now, last_seen_at=now,
                                     ip=ip[:64]))
            user.totp_last_step, user.failed_logins, user.locked_until, user.last_login_at = step, 0, None, now
            record(session, now, user.username, "login", detail="password and code accepted", ip=ip)
    if refusal is not None:
        raise refusal
    return new_token


def resolve(svc: Services, token: str | None, *, stage: str = STAGE_OK) -> Identity:
    """The identity behind a session token at ``stage``; SessionExpired if there is none, it ended, or it sat
    idle too long (an expired one is deleted)."""
    expired = SessionExpired("SESSION_EXPIRED", "登录已过期，请重新登录", "your login has expired; log in again")
    if not token:
        raise SessionExpired("NOT_LOGGED_IN", "请先登录", "log in first")
    now, policy = svc.now(), policy_of(svc)
    key = token_hash(token)
    with svc.sessions() as session:
        found = session.execute(select(StaffSession, StaffUser).join(
            StaffUser, StaffUser.username == StaffSession.username).where(StaffSession.token_hash == key)).first()
    if found is None:
        raise expired
    row, user = found
    limit = timedelta(minutes=policy.totp_stage_minutes) if row.stage == STAGE_TOTP else \
        timedelta(minutes=policy.idle_minutes)
    too_old = now - row.created_at > timedelta(hours=policy.absolute_hours)
    if row.stage != stage or now - row.last_seen_at > limit or too_old or not user.active:
        if row.stage == stage:  # a wrong-stage token is left alone: it may still finish its own step
            with svc.sessions() as session, session.begin():
                session.execute(delete(StaffSession).where(StaffSession.token_hash == key))
        raise expired
    if now - row.last_seen_at > LAST_SEEN_RESOLUTION:
        with svc.sessions() as session, session.begin():
            live = session.get(StaffSession, key)
            if live is not None:
                live.last_seen_at = now
    return Identity(user.username, user.display_name, user.role, row.csrf_token, row.stage)


def check_csrf(identity: Identity, presented: str | None) -> None:
    if not presented or not hmac.compare_digest(presented.encode(), identity.csrf_token.encode()):
        raise BadCsrf("BAD_CSRF", "页面已过期，请刷新后重试", "the form is stale or forged (CSRF check failed); "
                                                         "reload the page and try again")


def logout(svc: Services, token: str | None, *, ip: str = "") -> None:
    if not token:
        return
    with svc.sessions() as session, session.begin():
        row = session.get(StaffSession, token_hash(token))
        if row is not None:
            record(session, svc.now(), row.username, "logout", ip=ip)
            session.delete(row)


def end_expired_sessions(svc: Services) -> int:
    """Delete sessions past their idle or absolute limit; returns how many."""
    now, policy = svc.now(), policy_of(svc)
    with svc.sessions() as session, session.begin():
        result = session.execute(delete(StaffSession).where(
            (StaffSession.last_seen_at < now - timedelta(minutes=max(policy.idle_minutes,
                                                                    policy.totp_stage_minutes)))
            | (StaffSession.created_at < now - timedelta(hours=policy.absolute_hours))))
        return int(getattr(result, "rowcount", 0) or 0)
