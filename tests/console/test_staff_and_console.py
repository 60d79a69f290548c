"""Staff login (password + TOTP), lockout, sessions, roles, CSRF and the audit trail, through the console's
real routes (in-process app, real database, terminals beating through the real fleet API)."""
from __future__ import annotations

import json
import subprocess
import logging
import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from central.fleet import service as fleet
from central.fleet.models import FleetAlert
from central.services import Services
from central.staff import accounts, login, passwords
from central.staff.audit import list_audit
from central.staff.errors import InvalidStaffInput
from central.staff.models import StaffSession, StaffUser
from tests.console.conftest import Clock, add_terminals, beat, form_csrf, log_in, page_csrf


def test_password_and_code_log_in_and_secrets_are_not_stored_in_clear(svc: Services, client: TestClient,
                                                                       clock: Clock, make_staff) -> None:
    alice = make_staff("alice", "it")
    answer = log_in(client, alice, clock)
    assert answer.status_code == 303 and answer.headers["location"] == "/console/"
    cookie = answer.headers["set-cookie"]
    assert "kc_session=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert "Path=/console" in cookie
    assert client.get("/console/").status_code == 200
    with svc.sessions() as session:
        row = session.get(StaffUser, "alice")
        raw = session.execute(text("SELECT totp_secret FROM staff_users WHERE username = 'alice'")).scalar()
        tokens = [s.token_hash for s in session.query(StaffSession)]
    assert row.password_hash.startswith("scrypt$") and alice.password not in row.password_hash
    assert alice.secret.encode() not in bytes(raw)  # encrypted at rest
    token = client.cookies.get("kc_session")
    assert token not in tokens and login.token_hash(token) in tokens  # only the hash is kept


def test_wrong_password_and_wrong_code_are_refused_with_a_clear_message(client: TestClient, clock: Clock,
                                                                          make_staff) -> None:
    alice = make_staff("alice", "it")
    page = client.get("/console/login")
    answer = client.post("/console/login", data={"csrf": form_csrf(page.text), "username": "alice",
                                                 "password": "Wrong-Password-1"})
    assert answer.status_code == 401 and "用户名或密码错误" in answer.text and "wrong username or password" in answer.text
    unknown = client.post("/console/login", data={"csrf": form_csrf(answer.text), "username": "mallory",
                                                  "password": alice.password})
    assert unknown.status_code == 401 and "wrong username or password" in unknown.text  # no hint which was wrong
    good = alice.code(clock.now)
    wrong = "000000" if good != "000000" else "111111"
    answer = log_in(client, alice, clock, code=wrong)
    assert answer.status_code == 401 and "动态验证码错误" in answer.text
    assert client.get("/console/", follow_redirects=False).status_code == 303  # not logged in
    answer = client.post("/console/login/code", data={"csrf": form_csrf(answer.text), "code": good},
                         follow_redirects=False)
    assert answer.status_code == 303  # the next try with the right code works


def test_a_code_is_good_only_once(client: TestClient, clock: Clock, make_staff) -> None:
    alice = make_staff("alice", "it")
    code = alice.code(clock.now)
    assert log_in(client, alice, clock, code=code).status_code == 303
    client.cookies.clear()
    again = log_in(client, alice, clock, code=code)
    assert again.status_code == 401 and "already used" in again.text


def test_repeated_failures_lock_the_account_until_the_lock_runs_out(svc: Services, client: TestClient,
                                                                    clock: Clock, make_staff) -> None:
    alice = make_staff("alice", "it")
    policy = login.policy_of(svc)
    page = client.get("/console/login")
    for _ in range(policy.max_failures):
        page = client.post("/console/login", data={"csrf": form_csrf(page.text), "username": "alice",
                                                   "password": "Wrong-Password-1"})
    assert page.status_code == 423 and "账户已锁定" in page.text
    locked = log_in(client, alice, clock)  # the right password does not help while locked
    assert locked.status_code == 423 and "locked until" in locked.text
    assert [e.outcome for e in list_audit(svc, actor="alice")][:2] == ["denied", "failed"]
    clock.advance(minutes=policy.lock_minutes + 1)
    assert log_in(client, alice, clock).status_code == 303


def test_wrong_codes_count_toward_the_lockout_too(svc: Services, client: TestClient, clock: Clock,
                                                  make_staff) -> None:
    alice = make_staff("alice", "it")
    good = alice.code(clock.now)
    wrong = "000000" if good != "000000" else "111111"
    answer = log_in(client, alice, clock, code=wrong)
    for _ in range(login.policy_of(svc).max_failures - 1):
        answer = client.post("/console/login/code", data={"csrf": form_csrf(answer.text), "code": wrong})
    assert answer.status_code == 423
    assert accounts.get_staff(svc, "alice").locked_until is not None
    accounts.unlock(svc, "alice", actor="admin")
    assert log_in(client, alice, clock).status_code == 303


def test_an_idle_login_expires(svc: Services, client: TestClient, clock: Clock, make_staff) -> None:
    alice = make_staff("alice", "readonly")
    assert log_in(client, alice, clock).status_code == 303
    clock.advance(minutes=login.policy_of(svc).idle_minutes - 1)
    assert client.get("/console/").status_code == 200  # used in time: still in, and the idle clock restarts
    clock.advance(minutes=login.policy_of(svc).idle_minutes + 1)
    page = client.get("/console/", follow_redirects=False)
    assert page.status_code == 303 and "SESSION_EXPIRED" in page.headers["location"]
    api = client.get("/console/api/fleet")
    assert api.status_code == 401 and api.json()["code"] in ("SESSION_EXPIRED", "NOT_LOGGED_IN")


def test_read_only_sees_but_cannot_command_or_acknowledge(svc: Services, client: TestClient, clock: Clock,
                                                          make_staff) -> None:
    terminal = add_terminals(svc, 1)[0]
    beat(client, terminal, clock, paper="out")
    viewer = make_staff("viewer", "readonly")
    assert log_in(client, viewer, clock).status_code == 303
    page = client.get(f"/console/terminals/{terminal.terminal_id}")
    assert page.status_code == 200 and "只读账户可查看但不能发送指令" in page.text and 'data-kind="restart_app"' not in page.text
    csrf = page_csrf(client)
    refused = client.post(f"/console/api/terminals/{terminal.terminal_id}/commands", json={"kind": "restart_app"},
                          headers={"X-CSRF-Token": csrf})
    assert refused.status_code == 403 and refused.json()["code"] == "READ_ONLY"
    assert fleet.list_commands(svc, terminal.terminal_id) == []
    alert = fleet.list_alerts(svc, status="open")[0]
    refused = client.post(f"/console/alerts/{alert.id}/ack", data={"csrf": csrf})
    assert refused.status_code == 403 and fleet.get_alert(svc, alert.id).status == "open"
    denied = [(e.action, e.outcome) for e in list_audit(svc, actor="viewer")]
    assert ("command.issue", "denied") in denied and ("alert.ack", "denied") in denied
    assert client.get("/console/admin").status_code == 403


def test_it_commands_and_acknowledgements_are_audited_with_the_person(svc: Services, client: TestClient,
                                                                      clock: Clock, make_staff) -> None:
    terminal = add_terminals(svc, 1)[0]
    beat(client, terminal, clock, paper="out")
    alice = make_staff("alice", "it")
    assert log_in(client, alice, clock).status_code == 303
    csrf = page_csrf(client)
    sent = client.post(f"/console/api/terminals/{terminal.terminal_id}/commands", json={"kind": "restart_app"},
                       headers={"X-CSRF-Token": csrf})
    assert sent.status_code == 201 and sent.json()["status"] == "PENDING"
    command = fleet.get_command(svc, sent.json()["id"])
    assert command.issued_by == "alice"
    answer = beat(client, terminal, clock, paper="out")  # the command leaves with the next beat
    assert [c["kind"] for c in answer["commands"]] == ["restart_app"]
    assert client.get(f"/console/api/commands/{command.id}").json()["status"] == "SENT"
    bad = client.post(f"/console/api/terminals/{terminal.terminal_id}/commands", json={"kind": "format_disk"},
                      headers={"X-CSRF-Token": csrf})
    assert bad.status_code == 422 and bad.json()["code"] == "UNKNOWN_COMMAND"
    alert = fleet.list_alerts(svc, status="open")[0]
    acked = client.post(f"/console/alerts/{alert.id}/ack", data={"csrf": csrf}, follow_redirects=False)
    assert acked.status_code == 303
    assert fleet.get_alert(svc, alert.id).acknowledged_by == "alice"
    trail = [(e.action, e.outcome, e.target) for e in list_audit(svc, actor="alice")]
    assert ("command.issue", "ok", terminal.terminal_id) in trail
    assert ("command.issue", "failed", terminal.terminal_id) in trail
    assert ("alert.ack", "ok", f"alert:{alert.id}") in trail


def test_posts_without_the_csrf_token_are_refused(svc: Services, client: TestClient, clock: Clock,
                                                  make_staff) -> None:
    terminal = add_terminals(svc, 1)[0]
    beat(client, terminal, clock)
    alice = make_staff("alice", "it")
    assert log_in(client, alice, clock).status_code == 303
    for headers in ({}, {"X-CSRF-Token": "forged"}):
        answer = client.post(f"/console/api/terminals/{terminal.terminal_id}/commands",
                             json={"kind": "restart_app"}, headers=headers)
        assert answer.status_code == 403 and answer.json()["code"] == "BAD_CSRF"
    assert fleet.list_commands(svc, terminal.terminal_id) == []
    page = client.get("/console/login")
    forged = client.post("/console/login", data={"csrf": "forged", "username": "alice", "password": alice.password})
    assert forged.status_code == 403 and page.status_code == 200
    out = client.post("/console/logout", data={"csrf": "forged"})
    assert out.status_code == 403 and client.get("/console/").status_code == 200  # still logged in


def test_logout_ends_the_session(svc: Services, client: TestClient, clock: Clock, make_staff) -> None:
    alice = make_staff("alice", "it")
    assert log_in(client, alice, clock).status_code == 303
    token = client.cookies.get("kc_session")
    out = client.post("/console/logout", data={"csrf": page_csrf(client)}, follow_redirects=False)
    assert out.status_code == 303
    client.cookies.set("kc_session", token, path="/console")  # a copied cookie is worthless afterwards
    assert client.get("/console/", follow_redirects=False).status_code == 303
    assert ("logout", "ok") in [(e.action, e.outcome) for e in list_audit(svc, actor="alice")]


def test_fleet_grid_filters_and_colours(svc: Services, client: TestClient, clock: Clock, make_staff) -> None:
    terminals = add_terminals(svc, 4, floors=("1F", "2F"))
    beat(client, terminals[0], clock, paper="out")
    beat(client, terminals[1], clock, paper="low")
    beat(client, terminals[2], clock, maintenance=True)
    # terminals[3] never beats: offline
    assert log_in(client, make_staff("alice", "readonly"), clock).status_code == 303
    tiles = {t["id"]: t for t in client.get("/console/api/fleet").json()["terminals"]}
    assert {k: v["colour"] for k, v in tiles.items()} == {"KIOSK-001": "red", "KIOSK-002": "amber",
                                                          "KIOSK-003": "grey", "KIOSK-004": "red"}
    red = client.get("/console/api/fleet", params={"status": "red"}).json()
    assert sorted(t["id"] for t in red["terminals"]) == ["KIOSK-001", "KIOSK-004"] and red["total"] == 4
    floor = client.get("/console/api/fleet", params={"floor": "2F"}).json()
    assert sorted(t["id"] for t in floor["terminals"]) == ["KIOSK-001", "KIOSK-003"]
    found = client.get("/console/api/fleet", params={"q": "004"}).json()
    assert [t["id"] for t in found["terminals"]] == ["KIOSK-004"]
    page = client.get("/console/", params={"status": "red"})
    assert page.text.count('class="tile ') == 2 and 'data-colour="red"' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]


def test_reports_are_pdfs_with_the_embedded_cjk_font(svc: Services, client: TestClient, clock: Clock,
                                                     make_staff) -> None:
    terminal = add_terminals(svc, 2)[0]
    beat(client, terminal, clock, paper="out")
    assert log_in(client, make_staff("alice", "readonly"), clock).status_code == 303
    month = svc.today().strftime("%Y-%m")
    for kind in ("inspection", "usage"):
        pdf = client.get(f"/console/reports/{kind}.pdf", params={"month": month})
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
        assert b"FontFile2" in pdf.content  # the TrueType subset is inside, not a font left to the reader
        if kind == "inspection":
            text = subprocess.run(["pdftotext", "-", "-"], input=pdf.content, capture_output=True, check=True).stdout
            assert "月度巡检报告" in text.decode() and terminal.terminal_id in text.decode()
    assert client.get("/console/reports/inspection.pdf", params={"month": "2026-13"}).status_code == 422
    assert ("report.download", "ok") in [(e.action, e.outcome) for e in list_audit(svc, actor="alice")]


def test_weak_passwords_and_bad_names_are_refused(svc: Services) -> None:
    for password in ("short1A!", "alllowercaseletters", "Alice-Password-1", "Password1234"):
        with pytest.raises(InvalidStaffInput) as refused:
            accounts.create_staff(svc, "alice", "it", password=password)
        assert refused.value.code == "WEAK_PASSWORD"
    with pytest.raises(InvalidStaffInput):
        accounts.create_staff(svc, "Alice Smith", "it")
    with pytest.raises(InvalidStaffInput):
        accounts.create_staff(svc, "alice", "root")
    passwords.check_policy(passwords.generate_password())


def test_admin_creates_users_and_sees_the_audit_log(svc: Services, client: TestClient, clock: Clock,
                                                    make_staff) -> None:
    assert log_in(client, make_staff("root", "admin"), clock).status_code == 303
    page = client.post("/console/admin/staff", data={"csrf": page_csrf(client), "username": "bob", "role": "it",
                                                     "display_name": "Bob"})
    assert page.status_code == 200 and "已创建 bob" in page.text
    assert accounts.get_staff(svc, "bob").role == "it"
    assert "staff.create" in page.text and "login" in page.text


def test_no_secret_reaches_the_log(svc: Services, client: TestClient, clock: Clock, make_staff,
                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    alice = make_staff("alice", "it")
    assert log_in(client, alice, clock).status_code == 303
    token = client.cookies.get("kc_session")
    text = caplog.text + json.dumps([e.detail for e in list_audit(svc)])
    for secret in (alice.password, alice.secret, token):
        assert secret not in text
    assert not re.search(r"csrf_token='", repr(login.resolve(svc, token)))


def test_alerts_are_shown_in_the_fleet_layers_chinese_and_english(svc: Services, client: TestClient, clock: Clock,
                                                                   make_staff) -> None:
    terminal = add_terminals(svc, 1)[0]
    beat(client, terminal, clock, paper="out")
    assert log_in(client, make_staff("alice", "it"), clock).status_code == 303
    [alert] = fleet.list_alerts(svc, status="open")
    with svc.sessions.begin() as session:  # the page shows what the fleet layer wrote, not a guess from the key
        session.get(FleetAlert, alert.id).message_zh = "凭条打印机缺纸（测试文字）"
    page = client.get("/console/alerts").text
    assert "凭条打印机缺纸（测试文字）" in page and "Receipt printer: paper out" in page
    detail = client.get(f"/console/terminals/{terminal.terminal_id}").text
    assert "凭条打印机缺纸（测试文字）" in detail
    with svc.sessions.begin() as session:  # an alert from before Chinese texts were stored: its English
        session.get(FleetAlert, alert.id).message_zh = ""
    assert "Receipt printer: paper out" in client.get("/console/alerts").text
