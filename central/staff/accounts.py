"""Staff accounts: create, list, change role, unlock, reset. Plain functions over ``Services``; the CLI and the
console's admin page both call them, and every change is audited with who made it."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select

from central.services import Services
from central.staff import passwords, totp
from central.staff.audit import record
from central.staff.errors import InvalidStaffInput, StaffError
from central.staff.models import Role, StaffSession, StaffUser

USERNAME = re.compile(r"^[a-z][a-z0-9._-]{1,63}$")
ROLE_NAMES = {Role.ADMIN: "管理员 Admin", Role.IT: "信息科 IT", Role.READONLY: "只读 Read-only"}


@dataclass(frozen=True)
class StaffView:
    username: str
    display_name: str
    role: str
    active: bool
    failed_logins: int
    locked_until: datetime | None
    created_at: datetime
    last_login_at: datetime | None

    @property
    def can_command(self) -> bool:
        return self.role in (Role.ADMIN, Role.IT)

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN


@dataclass(frozen=True)
class NewStaff:
    """What a new account's owner needs once: shown at creation, never stored in clear, never logged."""

    view: StaffView
    password: str
    totp_secret: str
    otpauth_uri: str


def view_of(row: StaffUser) -> StaffView:
    return StaffView(row.username, row.display_name, row.role, row.active, row.failed_logins, row.locked_until,
                     row.created_at, row.last_login_at)


def _check_role(role: str) -> None:
    if role not in Role.ALL:
        raise InvalidStaffInput("BAD_ROLE", "角色无效", f"role must be one of {', '.join(Role.ALL)}")


def create_staff(svc: Services, username: str, role: str, *, password: str | None = None, display_name: str = "",
                 actor: str = "cli", ip: str = "") -> NewStaff:
    """A new account with a fresh TOTP secret. Without ``password`` one is generated. The password must meet
    the policy (``passwords.check_policy``); the username is lower case letters, digits, ``.``, ``_``, ``-``."""
    username = username.strip()
    if not USERNAME.match(username):
        raise InvalidStaffInput("BAD_USERNAME", "用户名无效",
                                "username: 2-64 characters, lower-case letters, digits, '.', '_' or '-', "
                                "starting with a letter")
    _check_role(role)
    if password is None:
        password = passwords.generate_password()
    try:
        passwords.check_policy(password, username)
    except passwords.WeakPassword as exc:
        raise InvalidStaffInput("WEAK_PASSWORD", "密码强度不足", str(exc)) from None
    secret = totp.new_secret()
    now = svc.now()
    with svc.sessions() as session, session.begin():
        if session.get(StaffUser, username) is not None:
            raise StaffError("USER_EXISTS", "用户名已存在", f"user {username} exists already", status=409)
        row = StaffUser(username=username, display_name=display_name.strip()[:100], role=role,
                        password_hash=passwords.hash_password(password), totp_secret=secret, totp_last_step=0,
                        active=True, failed_logins=0, locked_until=None, created_at=now, last_login_at=None)
        session.add(row)
        record(session, now, actor, "staff.create", target=username, detail=f"role={role}", ip=ip)
        view = view_of(row)
    return NewStaff(view, password, secret, totp.provisioning_uri(secret, username))


def list_staff(svc: Services) -> list[StaffView]:
    with svc.sessions() as session:
        return [view_of(r) for r in session.scalars(select(StaffUser).order_by(StaffUser.username))]


def get_staff(svc: Services, username: str) -> StaffView | None:
    with svc.sessions() as session:
        row = session.get(StaffUser, username)
        return view_of(row) if row else None


def unlock(svc: Services, username: str, *, actor: str, ip: str = "") -> StaffView:
    """Clear a lockout and the failure count (after the person proved who they are to the admin)."""
    now = svc.now()
    with svc.sessions() as session, session.begin():
        row = session.get(StaffUser, username)
        if row is None:
            raise StaffError("UNKNOWN_USER", "没有该用户", f"no user {username}", status=404)
        row.failed_logins, row.locked_until = 0, None
        record(session, now, actor, "staff.unlock", target=username, ip=ip)
        return view_of(row)


def set_active(svc: Services, username: str, active: bool, *, actor: str, ip: str = "") -> StaffView:
    """Disable (or re-enable) an account; disabling ends its logins at once."""
    if username == actor and not active:
        raise InvalidStaffInput("SELF_DISABLE", "不能停用自己的账户", "you cannot disable your own account")
    now = svc.now()
    with svc.sessions() as session, session.begin():
        row = session.get(StaffUser, username)
        if row is None:
            raise StaffError("UNKNOWN_USER", "没有该用户", f"no user {username}", status=404)
        row.active = active
        if not active:
            session.execute(delete(StaffSession).where(StaffSession.username == username))
        record(session, now, actor, "staff.enable" if active else "staff.disable", target=username, ip=ip)
        return view_of(row)


def set_role(svc: Services, username: str, role: str, *, actor: str, ip: str = "") -> StaffView:
    _check_role(role)
    now = svc.now()
    with svc.sessions() as session, session.begin():
        row = session.get(StaffUser, username)
        if row is None:
            raise StaffError("UNKNOWN_USER", "没有该用户", f"no user {username}", status=404)
        old, row.role = row.role, role
        record(session, now, actor, "staff.role", target=username, detail=f"{old} -> {role}", ip=ip)
        return view_of(row)
