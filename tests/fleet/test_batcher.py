"""Heartbeats taken in by the batching writer (``central.fleet.batcher``) and the lean heartbeat route: a beat
is answered only once committed, one bad beat costs only itself, beats of one terminal keep their order inside
a batch, copies (live and from the offline queue) are stored once, and the route still refuses what it refused
as a FastAPI route."""
from __future__ import annotations

import base64
import logging
import threading
from concurrent.futures import Future
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, func, select

from central.fleet import service
from central.fleet.batcher import BeatBatcher, Closed, Unauthenticated
from central.fleet.models import AlertStatus, FleetAlert, FleetBeat, FleetStatus
from central.services import Services
from central.terminals import secret_hash
from tests.central.conftest import Kiosk, provision
from tests.fleet.conftest import BeatMaker, Clock

HEARTBEAT = "/api/v1/fleet/heartbeat"


def validated(beat: dict[str, Any]) -> dict[str, Any]:
    """A beat as the route hands it to the writer: the wire model's dump."""
    from central.api.fleet import Heartbeat
    return Heartbeat.model_validate(beat).model_dump()


def stored_seqs(svc: Services, terminal_id: str) -> list[tuple[int, bool]]:
    with svc.sessions() as session:
        return [tuple(r) for r in session.execute(
            select(FleetBeat.seq, FleetBeat.queued).where(FleetBeat.terminal_id == terminal_id)
            .order_by(FleetBeat.seq))]


def status_of(svc: Services, terminal_id: str) -> FleetStatus:
    with svc.sessions() as session:
        row = session.get(FleetStatus, terminal_id)
        assert row is not None
        return row


@pytest.fixture
def paused(svc: Services) -> Any:
    """A writer that has not started: everything submitted before ``start()`` is taken in as one batch."""
    batcher = BeatBatcher(svc, autostart=False)
    yield batcher
    batcher.close()


def test_one_bad_beat_in_a_batch_fails_alone(svc: Services, kiosk: Kiosk, beats: BeatMaker, paused: BeatBatcher,
                                              caplog: pytest.LogCaptureFixture) -> None:
    other = provision(svc, "KIOSK-038")
    first = paused.submit(kiosk.terminal_id, validated(beats()), queued=False)
    broken = validated(beats())
    del broken["app"]["version"]  # something the writer cannot take in, after validation
    bad = paused.submit(kiosk.terminal_id, broken, queued=False)
    third = paused.submit(other.terminal_id, validated(beats()), queued=False)
    with caplog.at_level(logging.WARNING, logger="central.fleet.batcher"):
        paused.start()
        assert first.result(10).duplicate is False and third.result(10).duplicate is False
        with pytest.raises(KeyError):
            bad.result(10)
    assert any("batch of 3 heartbeats failed" in r.getMessage() for r in caplog.records)
    assert stored_seqs(svc, kiosk.terminal_id) == [(1, False)]
    assert stored_seqs(svc, other.terminal_id) == [(3, False)]


def test_acknowledged_beats_are_in_the_database(svc: Services, beats: BeatMaker, clock: Clock) -> None:
    batcher = BeatBatcher(svc)
    kiosks = [provision(svc, f"KIOSK-{n:03d}") for n in range(1, 11)]
    futures: list[tuple[str, int, Future[Any]]] = []
    lock = threading.Lock()

    def agent(kiosk: Kiosk) -> None:
        maker = BeatMaker(clock, f"boot-{kiosk.terminal_id}")
        for _ in range(20):
            beat = maker()
            future = batcher.submit(kiosk.terminal_id, validated(beat), queued=False)
            with lock:
                futures.append((kiosk.terminal_id, beat["seq"], future))

    threads = [threading.Thread(target=agent, args=(k,)) for k in kiosks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    acknowledged = {(tid, seq) for tid, seq, future in futures if future.result(30).duplicate is False}
    batcher.close()
    with svc.sessions() as session:
        stored = {(tid, seq) for tid, seq in session.execute(select(FleetBeat.terminal_id, FleetBeat.seq))}
    assert len(acknowledged) == 200 and acknowledged <= stored
    assert all(status_of(svc, k.terminal_id).beats == 20 for k in kiosks)


def test_no_answer_before_the_commit(client: TestClient, svc: Services, kiosk: Kiosk, beats: BeatMaker) -> None:
    assert client.post(HEARTBEAT, json=beats(), auth=kiosk.auth).status_code == 200

    def refuse_commit(connection: Any) -> None:
        raise RuntimeError("disk full")

    event.listen(svc.engine, "commit", refuse_commit)
    try:
        failed = client.post(HEARTBEAT, json=beats(), auth=kiosk.auth)
    finally:
        event.remove(svc.engine, "commit", refuse_commit)
    assert failed.status_code == 500
    assert stored_seqs(svc, kiosk.terminal_id) == [(1, False)]
    assert client.post(HEARTBEAT, json=beats(), auth=kiosk.auth).status_code == 200
    assert stored_seqs(svc, kiosk.terminal_id) == [(1, False), (3, False)]


def test_beats_of_one_terminal_keep_their_order_in_a_batch(svc: Services, kiosk: Kiosk, beats: BeatMaker,
                                                             clock: Clock, paused: BeatBatcher) -> None:
    sent = []
    for n in range(1, 6):
        clock.advance(10)
        sent.append(beats(app={"screen": f"screen-{n}"}))
    late = sent[1]  # seq 2 again, as the offline queue would deliver it: already there
    newest = [paused.submit(kiosk.terminal_id, validated(b), queued=False) for b in sent]
    copy = paused.submit(kiosk.terminal_id, validated(late), queued=True)
    paused.start()
    assert [f.result(10).duplicate for f in newest] == [False] * 5
    assert copy.result(10).duplicate is True
    status = status_of(svc, kiosk.terminal_id)
    # First beat of this terminal ever and four more, all in one batch: one status row, the newest state.
    assert (status.last_seq, status.beats, status.screen) == (5, 5, "screen-5")
    assert stored_seqs(svc, kiosk.terminal_id) == [(n, False) for n in range(1, 6)]


def test_an_older_beat_later_in_the_batch_does_not_overwrite_a_newer(svc: Services, kiosk: Kiosk,
                                                                       beats: BeatMaker, clock: Clock,
                                                                       paused: BeatBatcher) -> None:
    older = beats(app={"screen": "older"})
    clock.advance(10)
    newer = beats(app={"screen": "newer"})
    first = paused.submit(kiosk.terminal_id, validated(newer), queued=False)
    late = paused.submit(kiosk.terminal_id, validated(older), queued=True)
    paused.start()
    assert first.result(10).duplicate is False and late.result(10).duplicate is False
    assert status_of(svc, kiosk.terminal_id).screen == "newer"
    assert stored_seqs(svc, kiosk.terminal_id) == [(1, True), (2, False)]


def test_copies_from_the_offline_queue_are_stored_once(client: TestClient, svc: Services, kiosk: Kiosk,
                                                       beats: BeatMaker, paused: BeatBatcher) -> None:
    body = beats()
    live = paused.submit(kiosk.terminal_id, validated(body), queued=False)
    queued = [paused.submit(kiosk.terminal_id, validated(body), queued=True) for _ in range(2)]
    paused.start()
    assert live.result(10).duplicate is False
    assert [f.result(10).duplicate for f in queued] == [True, True]
    for _ in range(2):  # and the same through the HTTP route for late messages
        resp = client.post("/api/v1/fleet/queued", auth=kiosk.auth,
                           headers={"Idempotency-Key": f"beat-{body['boot']}-{body['seq']}"},
                           json={"kind": "fleet_beat", "payload": body, "created_at": body["sent_at"]})
        assert resp.status_code == 200 and resp.json() == {"duplicate": True}
    assert stored_seqs(svc, kiosk.terminal_id) == [(1, False)]
    assert status_of(svc, kiosk.terminal_id).beats == 1


def test_the_writer_checks_credentials_it_was_given(svc: Services, kiosk: Kiosk, beats: BeatMaker,
                                                    paused: BeatBatcher) -> None:
    good = paused.submit(kiosk.terminal_id, validated(beats()), queued=False, claim=secret_hash(kiosk.secret))
    forged = paused.submit(kiosk.terminal_id, validated(beats()), queued=False, claim=secret_hash("guess"))
    unknown = paused.submit("KIOSK-999", validated(beats()), queued=False, claim=secret_hash(kiosk.secret))
    paused.start()
    assert good.result(10).duplicate is False
    for future in (forged, unknown):
        with pytest.raises(Unauthenticated):
            future.result(10)
    assert stored_seqs(svc, kiosk.terminal_id) == [(1, False)]


def test_a_closed_writer_commits_what_it_holds_and_refuses_more(svc: Services, kiosk: Kiosk,
                                                                 beats: BeatMaker) -> None:
    batcher = BeatBatcher(svc, autostart=False)
    held = batcher.submit(kiosk.terminal_id, validated(beats()), queued=False)
    batcher.start()
    batcher.close()
    assert held.result(10).duplicate is False
    with pytest.raises(Closed):
        batcher.submit(kiosk.terminal_id, validated(beats()), queued=False)
    assert stored_seqs(svc, kiosk.terminal_id) == [(1, False)]


def test_the_lean_route_refuses_like_the_model(client: TestClient, svc: Services, kiosk: Kiosk,
                                               beats: BeatMaker) -> None:
    wrong_type = client.post(HEARTBEAT, json=beats(seq="seven"), auth=kiosk.auth)
    assert wrong_type.status_code == 422 and wrong_type.json()["code"] == "BAD_REQUEST"
    assert "seq" in wrong_type.json()["message_en"]
    extra = client.post(HEARTBEAT, json={**beats(), "patient_id": "110101199001011234"}, auth=kiosk.auth)
    assert extra.status_code == 422 and "patient_id" in extra.json()["message_en"]
    not_json = client.post(HEARTBEAT, content=b"{not json", auth=kiosk.auth,
                           headers={"Content-Type": "application/json"})
    assert not_json.status_code == 422
    huge = client.post(HEARTBEAT, json={**beats(), "facts": {"blob": "x" * 70_000}}, auth=kiosk.auth)
    assert huge.status_code == 413
    # A bad body from someone who is not a terminal: 401, not a description of the body.
    assert client.post(HEARTBEAT, json={"seq": "x"}, auth=("KIOSK-999", "nope")).status_code == 401
    token = base64.b64encode(b"no-colon-here").decode()
    assert client.post(HEARTBEAT, json=beats(), headers={"Authorization": f"Basic {token}"}).status_code == 401
    assert client.post(HEARTBEAT, json=beats(), headers={"Authorization": "Basic !!!"}).status_code == 401
    assert stored_seqs(svc, kiosk.terminal_id) == []
    ok = client.post(HEARTBEAT, json=beats(), auth=kiosk.auth)
    assert ok.status_code == 200 and ok.json()["interval_s"] == 10.0
    assert stored_seqs(svc, kiosk.terminal_id) == [(6, False)]


def test_alerts_are_raised_and_resolved_through_the_writer(client: TestClient, svc: Services, kiosk: Kiosk,
                                                           beats: BeatMaker) -> None:
    low = beats(devices={"receipt_printer": {"status": "degraded", "reason": "paper_low"}})
    assert client.post(HEARTBEAT, json=low, auth=kiosk.auth).status_code == 200
    assert [a.rule for a in service.list_alerts(svc)] == ["paper"]
    fine = beats(devices={"receipt_printer": {"status": "ok"}})
    assert client.post(HEARTBEAT, json=fine, auth=kiosk.auth).status_code == 200
    with svc.sessions() as session:
        active = session.scalar(select(func.count()).select_from(FleetAlert).where(FleetAlert.status.in_(AlertStatus.ACTIVE)))
    assert active == 0
