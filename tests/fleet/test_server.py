"""The fleet's server half through its HTTP API and service layer, on a real (SQLite) database: heartbeats and
the snapshot, device-health timeline, alert rules and their history, the command life cycle, bad input,
forged terminals, /metrics."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from central.fleet import service
from central.fleet.errors import Invalid, NotFound
from central.fleet.models import FleetBeat, FleetDeviceHealth
from central.services import Services
from tests.central.conftest import Kiosk, provision
from tests.fleet.conftest import BeatMaker, Clock


def beat(client: TestClient, kiosk: Kiosk, body: dict) -> dict:
    resp = client.post("/api/v1/fleet/heartbeat", json=body, auth=kiosk.auth)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_a_terminal_that_beats_is_listed_with_its_state(client: TestClient, svc: Services, kiosk: Kiosk,
                                                        beats: BeatMaker) -> None:
    service.register_terminal_info(svc, kiosk.terminal_id, campus="Main", floor="2F", location="Outpatient hall B")
    assert service.list_terminals(svc)[0].status == "offline"  # provisioned, never heard from
    answer = beat(client, kiosk, beats(app={"screen": "choosing_slot", "service": "registration"}))
    assert answer["interval_s"] == 10.0 and answer["commands"] == []
    [view] = service.list_terminals(svc, campus="Main", floor="2F")
    assert (view.terminal_id, view.status, view.paper, view.app_version, view.service, view.location) == \
        ("KIOSK-037", "ok", "ok", "1.4.2", "registration", "Outpatient hall B")
    assert view.devices == {"id_card": "ok", "receipt_printer": "ok"}
    assert service.list_terminals(svc, text="hall b") == [view]
    assert service.list_terminals(svc, status="fault") == []
    detail = service.terminal_detail(svc, kiosk.terminal_id)
    assert detail.metrics.cpu_pct == 12.5 and detail.metrics.beats == 1
    with pytest.raises(Invalid):
        service.list_terminals(svc, status="sleepy")


def test_device_health_timeline_has_rows_only_on_change(client: TestClient, svc: Services, kiosk: Kiosk,
                                                         beats: BeatMaker, clock: Clock) -> None:
    for devices in ({"receipt_printer": {"status": "ok"}}, {"receipt_printer": {"status": "ok"}}, None,
                    {"receipt_printer": {"status": "degraded", "reason": "paper_low"}},
                    {"receipt_printer": {"status": "degraded", "reason": "paper_low"}},
                    {"receipt_printer": {"status": "ok"}}):
        clock.advance(10)
        beat(client, kiosk, beats(devices=devices))
    with svc.sessions() as session:
        rows = session.scalars(select(FleetDeviceHealth).order_by(FleetDeviceHealth.id)).all()
        assert [(r.status, r.reason) for r in rows] == [("ok", ""), ("degraded", "paper_low"), ("ok", "")]
    timeline = service.terminal_detail(svc, kiosk.terminal_id).timeline
    assert [c.status for c in timeline] == ["ok", "degraded", "ok"]  # newest first


def test_paper_and_device_alerts_are_raised_acknowledged_and_resolved(client: TestClient, svc: Services,
                                                                      kiosk: Kiosk, beats: BeatMaker,
                                                                      clock: Clock) -> None:
    beat(client, kiosk, beats(devices={"receipt_printer": {"status": "degraded", "reason": "paper_low"}}))
    [low] = service.list_alerts(svc, status="active")
    assert (low.rule, low.key, low.severity) == ("paper", "paper_low:receipt_printer", "warning")
    assert (low.message_zh, low.message_en) == ("凭条打印机纸将尽", "Receipt printer: paper low")
    assert service.list_terminals(svc)[0].status == "degraded"
    clock.advance(10)
    beat(client, kiosk, beats(devices={"receipt_printer": {"status": "fault", "reason": "paper_out"},
                                       "id_card": {"status": "fault", "reason": "disconnected"}}))
    active = {a.key: a for a in service.list_alerts(svc, status="active")}
    assert set(active) == {"paper_out:receipt_printer", "device_fault:id_card"}
    assert active["paper_out:receipt_printer"].message_zh == "凭条打印机缺纸"
    fault = active["device_fault:id_card"]
    assert (fault.message_zh, fault.message_en) == ("身份证阅读器故障：未连接",
                                                    "ID-card reader in fault: disconnected")
    view = service.list_terminals(svc)[0]
    assert (view.status, view.paper, view.open_alerts) == ("fault", "out", 2)
    acked = service.acknowledge_alert(svc, active["device_fault:id_card"].id, "it.wang")
    assert acked.status == "acknowledged" and acked.acknowledged_by == "it.wang"
    assert service.fleet_summary(svc).open_alerts == 2  # acknowledged still counts until it is fixed
    clock.advance(10)
    beat(client, kiosk, beats(devices={"receipt_printer": {"status": "ok"}, "id_card": {"status": "ok"}}))
    assert service.list_alerts(svc, status="active") == []
    history = service.alert_history(svc, acked.id)
    assert [(h.action, h.actor) for h in history] == [("raised", "rule:device_fault"),
                                                      ("acknowledged", "it.wang"),
                                                      ("resolved", "rule:device_fault")]
    assert len(service.list_alerts(svc, status="resolved")) == 3
    assert service.list_terminals(svc)[0].status == "ok"


def test_error_spike_backlog_and_a_stopped_app(client: TestClient, svc: Services, kiosk: Kiosk,
                                               beats: BeatMaker) -> None:
    beat(client, kiosk, beats(errors=25, queue={"depth": 500, "oldest_age_s": 40.0},
                              app={"running": False}))
    alerts = {a.rule: a for a in service.list_alerts(svc, status="open")}
    assert sorted(alerts) == ["device_fault", "error_rate", "queue_backlog"]
    assert alerts["device_fault"].message_zh == "自助应用未运行"
    assert alerts["error_rate"].message_zh == "一个心跳周期内出现 25 个错误"
    assert (alerts["queue_backlog"].message_zh, alerts["queue_backlog"].message_en) == (
        "离线队列积压 500 条消息，最早一条已等待 40 秒", "offline queue holds 500 messages, oldest 40 s")
    assert service.list_terminals(svc)[0].status == "fault"


def test_a_silent_terminal_goes_offline_with_an_alert_and_comes_back(client: TestClient, svc: Services,
                                                                      kiosk: Kiosk, beats: BeatMaker,
                                                                      clock: Clock) -> None:
    beat(client, kiosk, beats())
    clock.advance(19)
    assert service.check_silent_terminals(svc) == (0, 0)
    clock.advance(2)  # 21 s: more than two 10-second intervals without a word
    assert service.list_terminals(svc)[0].status == "offline"
    assert service.check_silent_terminals(svc) == (1, 0)
    assert service.check_silent_terminals(svc) == (0, 1)  # one alert, not one per pass
    [silent] = service.list_alerts(svc, status="open")
    assert silent.rule == "silent" and silent.severity == "critical"
    assert (silent.message_zh, silent.message_en) == ("超过 20 秒无心跳（离线）",
                                                      "no heartbeat for more than 20 s")
    beat(client, kiosk, beats())
    assert service.get_alert(svc, silent.id).status == "resolved"
    assert service.list_terminals(svc)[0].status == "ok"


def test_command_life_cycle_executed_with_audit(client: TestClient, svc: Services, kiosk: Kiosk,
                                                beats: BeatMaker, clock: Clock) -> None:
    command = service.issue_command(svc, kiosk.terminal_id, "maintenance_on", actor="it.li")
    assert command.status == "PENDING" and command.issued_by == "it.li"
    answer = beat(client, kiosk, beats())
    assert [c["id"] for c in answer["commands"]] == [command.id]
    assert service.get_command(svc, command.id).status == "SENT"
    clock.advance(1)
    assert beat(client, kiosk, beats())["commands"] == []  # sent once, not in every answer
    ack = client.post(f"/api/v1/fleet/commands/{command.id}/ack", auth=kiosk.auth)
    assert ack.json()["status"] == "ACKED"
    done = client.post(f"/api/v1/fleet/commands/{command.id}/result", auth=kiosk.auth,
                       json={"status": "EXECUTED", "result": "maintenance screen shown"})
    assert done.status_code == 200 and done.json()["status"] == "EXECUTED"
    again = client.post(f"/api/v1/fleet/commands/{command.id}/result", auth=kiosk.auth,
                        json={"status": "EXECUTED", "result": "maintenance screen shown"})
    assert again.status_code == 200  # a retried report is harmless
    other = client.post(f"/api/v1/fleet/commands/{command.id}/result", auth=kiosk.auth,
                        json={"status": "FAILED", "result": "changed my mind"})
    assert other.status_code == 409
    view = service.get_command(svc, command.id)
    assert [(h.status, h.actor) for h in view.history] == [
        ("PENDING", "it.li"), ("SENT", "server"), ("ACKED", "terminal:KIOSK-037"),
        ("EXECUTED", "terminal:KIOSK-037")]
    assert view.finished_at is not None and view.result == "maintenance screen shown"


def test_a_command_nobody_picked_up_expires_and_a_late_result_is_refused(client: TestClient, svc: Services,
                                                                          kiosk: Kiosk, beats: BeatMaker,
                                                                          clock: Clock) -> None:
    command = service.issue_command(svc, kiosk.terminal_id, "reboot", actor="it.li", ttl_seconds=60)
    clock.advance(61)
    assert beat(client, kiosk, beats())["commands"] == []
    assert service.get_command(svc, command.id).status == "EXPIRED"
    late = client.post(f"/api/v1/fleet/commands/{command.id}/ack", auth=kiosk.auth)
    assert late.status_code == 409 and late.json()["code"] == "COMMAND_EXPIRED"
    sent = service.issue_command(svc, kiosk.terminal_id, "restart_app", actor="it.li", ttl_seconds=30)
    beat(client, kiosk, beats())
    clock.advance(31)
    assert service.expire_commands(svc) == 1
    refused = client.post(f"/api/v1/fleet/commands/{sent.id}/result", auth=kiosk.auth,
                          json={"status": "EXECUTED", "result": "done"})
    assert refused.status_code == 409
    assert service.get_command(svc, sent.id).status == "EXPIRED"


def test_commands_are_validated(svc: Services, kiosk: Kiosk) -> None:
    with pytest.raises(Invalid, match="unknown command"):
        service.issue_command(svc, kiosk.terminal_id, "format_disk", actor="it.li")
    with pytest.raises(Invalid, match="version"):
        service.issue_command(svc, kiosk.terminal_id, "update", actor="it.li")
    with pytest.raises(Invalid):
        service.issue_command(svc, kiosk.terminal_id, "update", args={"version": "1.0; rm -rf /"}, actor="it.li")
    with pytest.raises(Invalid):
        service.issue_command(svc, kiosk.terminal_id, "reboot", actor="")
    with pytest.raises(NotFound):
        service.issue_command(svc, "KIOSK-404", "reboot", actor="it.li")
    ok = service.issue_command(svc, kiosk.terminal_id, "update", args={"version": "1.5.0"}, actor="it.li")
    assert ok.args == {"version": "1.5.0"}


def test_bad_input_and_forged_terminals_get_clear_4xx(client: TestClient, svc: Services, kiosk: Kiosk,
                                                      beats: BeatMaker) -> None:
    assert client.post("/api/v1/fleet/heartbeat", json=beats()).status_code == 401
    assert client.post("/api/v1/fleet/heartbeat", json=beats(),
                       auth=(kiosk.terminal_id, "not-the-secret")).status_code == 401
    assert client.post("/api/v1/fleet/heartbeat", json=beats(),
                       auth=("KIOSK-999", kiosk.secret)).status_code == 401
    malformed = client.post("/api/v1/fleet/heartbeat", json={"seq": "x"}, auth=kiosk.auth)
    assert malformed.status_code == 422 and malformed.json()["code"] == "BAD_REQUEST"
    smuggled = beats(app={"patient_name": "张三"})
    refused = client.post("/api/v1/fleet/heartbeat", json=smuggled, auth=kiosk.auth)
    assert refused.status_code == 422 and "patient_name" in refused.json()["message_en"]
    naive = beats(sent_at="2026-12-01T10:00:00")
    assert client.post("/api/v1/fleet/heartbeat", json=naive, auth=kiosk.auth).status_code == 422
    # Another terminal cannot touch this terminal's command.
    other = provision(svc, "KIOSK-038")
    command = service.issue_command(svc, kiosk.terminal_id, "screenshot", actor="it.li")
    forged = client.post(f"/api/v1/fleet/commands/{command.id}/ack", auth=other.auth)
    assert forged.status_code == 404
    bad_outcome = client.post(f"/api/v1/fleet/commands/{command.id}/result", auth=kiosk.auth,
                              json={"status": "PENDING"})
    assert bad_outcome.status_code == 422
    not_png = client.post(f"/api/v1/fleet/commands/{command.id}/artifact?kind=screenshot", auth=kiosk.auth,
                          content=b"GIF89a....")
    assert not_png.status_code == 422 and not_png.json()["code"] == "BAD_ARTIFACT"


def test_queued_beats_are_stored_once_in_order_and_never_overwrite_a_newer_snapshot(
        client: TestClient, svc: Services, kiosk: Kiosk, beats: BeatMaker, clock: Clock) -> None:
    late = []
    for _ in range(3):
        clock.advance(10)
        late.append(beats(app={"screen": f"late-{beats.seq + 1}"}))
    clock.advance(10)
    beat(client, kiosk, beats(app={"screen": "now"}))
    for body in late + late[:1]:  # the first one twice: at-least-once delivery
        resp = client.post("/api/v1/fleet/queued", auth=kiosk.auth,
                           headers={"Idempotency-Key": f"beat-{body['boot']}-{body['seq']}"},
                           json={"kind": "fleet_beat", "payload": body, "created_at": body["sent_at"]})
        assert resp.status_code in (200, 201), resp.text
    assert resp.status_code == 200 and resp.json()["duplicate"] is True
    with svc.sessions() as session:
        rows = session.execute(select(FleetBeat.seq, FleetBeat.queued).order_by(FleetBeat.seq)).all()
    assert rows == [(1, True), (2, True), (3, True), (4, False)]
    assert service.list_terminals(svc)[0].screen == "now"


def test_screenshot_upload_and_read_back(client: TestClient, svc: Services, kiosk: Kiosk) -> None:
    command = service.issue_command(svc, kiosk.terminal_id, "screenshot", actor="it.li")
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    up = client.post(f"/api/v1/fleet/commands/{command.id}/artifact?kind=screenshot", auth=kiosk.auth,
                     content=png)
    assert up.status_code == 201
    artifact_id = up.json()["id"]
    client.post(f"/api/v1/fleet/commands/{command.id}/result", auth=kiosk.auth,
                json={"status": "EXECUTED", "result": "screenshot taken", "artifact_id": artifact_id})
    assert service.screenshot_png(svc, artifact_id) == png
    assert service.terminal_detail(svc, kiosk.terminal_id).last_screenshot_id == artifact_id
    assert service.get_command(svc, command.id).artifact_id == artifact_id
    with pytest.raises(NotFound):
        service.screenshot_png(svc, artifact_id + 100)


def test_events_are_stored_once(client: TestClient, svc: Services, kiosk: Kiosk, clock: Clock) -> None:
    event = {"key": "evt-restart-0001", "kind": "app_restarted", "severity": "warning",
             "message": "watchdog restarted the kiosk app", "detail": {"reason": "heartbeat_lost"},
             "at": clock.now.isoformat()}
    first = client.post("/api/v1/fleet/events", json={"events": [event, event]}, auth=kiosk.auth)
    assert first.json() == {"stored": 1, "duplicates": 1}
    [stored] = service.terminal_detail(svc, kiosk.terminal_id).events
    assert stored.kind == "app_restarted" and stored.detail == {"reason": "heartbeat_lost"}


def test_metrics_report_status_alerts_lag_and_outcomes(client: TestClient, svc: Services, kiosk: Kiosk,
                                                       beats: BeatMaker, clock: Clock) -> None:
    provision(svc, "KIOSK-038")
    beat(client, kiosk, beats(devices={"receipt_printer": {"status": "fault", "reason": "paper_out"}}))
    command = service.issue_command(svc, kiosk.terminal_id, "reboot", actor="it.li", ttl_seconds=5)
    clock.advance(6)
    service.expire_commands(svc)
    text = client.get("/metrics").text
    assert 'kiosk_fleet_terminals{status="fault"} 1.0' in text
    assert 'kiosk_fleet_terminals{status="offline"} 1.0' in text
    assert 'kiosk_fleet_open_alerts{rule="paper"} 1.0' in text
    assert 'kiosk_fleet_command_outcomes_total{outcome="expired"} 1.0' in text
    assert 'kiosk_fleet_heartbeats_total{via="live"} 1.0' in text
    assert "kiosk_fleet_heartbeat_lag_seconds_bucket" in text
    assert service.get_command(svc, command.id).status == "EXPIRED"


def test_terminal_info_needs_a_provisioned_terminal(svc: Services) -> None:
    with pytest.raises(NotFound):
        service.register_terminal_info(svc, "KIOSK-404", campus="Main", floor="1F", location="hall")


def test_usage_stats_count_visits_payments_and_failures_per_hour(svc: Services, kiosk: Kiosk,
                                                                  clock: Clock) -> None:
    from central.api.outbox import store_message
    at = clock.now
    steps = {"v1": ["reading_card", "awaiting_payment", "fulfilling", "done"],
             "v2": ["reading_card", "failed"], "v3": ["reading_card"],
             "s1": ["surveying", "thanks"]}  # the survey after v1: not a visit of its own
    n = 0
    for session_id, dests in steps.items():
        source = "home"
        for dest in dests:
            n += 1
            store_message(svc.sessions, kiosk.terminal_id, f"visit-{session_id}-{n:04d}", "visit_event",
                          {"session": session_id, "workflow": "survey" if session_id == "s1" else "registration",
                           "event": "e", "source": source, "dest": dest}, at + timedelta(minutes=n))
            source = dest
    stats = service.usage_stats(svc, since=at - timedelta(hours=1), until=at + timedelta(hours=1))
    assert (stats.visits, stats.payments, stats.failures) == (3, 1, 1)
    [row] = stats.rows
    assert row.service == "registration" and row.hour.utcoffset() == timedelta(hours=8)
    assert stats.by_terminal == {"KIOSK-037": {"visits": 3, "payments": 1, "failures": 1}}
    with pytest.raises(Invalid):
        service.usage_stats(svc, since=at, until=at)


def test_the_demo_fleet_applies_its_fault_file_when_it_changes(tmp_path: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    from central.fleet.demo import FaultFile
    from fleet_agent.simulated import make_terminals

    sims = make_terminals([("SIM-0001", "a"), ("SIM-0002", "b")])
    by_id = {t.terminal_id: t for t in sims}
    faults = FaultFile(tmp_path / "fleet-faults.txt", by_id)
    assert faults.check() is False  # no file yet
    faults.path.write_text("SIM-0001=paper_out\nSIM-0002=smoke\nSIM-0099=paper_out\n")
    assert faults.check() is True
    assert by_id["SIM-0001"].devices()["receipt_printer"]["reason"] == "paper_out"
    assert by_id["SIM-0002"].faults == set()  # an unknown fault is refused by name, the others applied
    assert "unknown fault 'smoke'" in caplog.text and "no simulated terminal SIM-0099" in caplog.text
    assert faults.check() is False  # unchanged: not applied again
    faults.path.write_text("SIM-0001=clear\n")
    assert faults.check() is True and by_id["SIM-0001"].faults == set()
    faults.path.write_text("no equals sign\n")
    assert faults.check() is False and "ignored" in caplog.text


def test_an_unknown_fault_reason_is_shown_as_it_is(client: TestClient, svc: Services, kiosk: Kiosk,
                                                  beats: BeatMaker) -> None:
    beat(client, kiosk, beats(devices={"fax": {"status": "fault", "reason": "toner_gone"}}))
    [alert] = service.list_alerts(svc, status="open")
    assert (alert.message_zh, alert.message_en) == ("fax故障：toner_gone", "fax in fault: toner_gone")
