"""The deliverer against the real outbox router (in-process), with a fake clock and injected faults."""
from __future__ import annotations

import random

from offline_queue.delivery import Backoff, Deliverer, Reply
from offline_queue.outbox import Outbox
from tests.offline_queue.server import FakeClock, FaultyTransport, OutboxServerDb


def test_delivers_everything_in_creation_order(outbox: Outbox, deliverer: Deliverer, server: OutboxServerDb) -> None:
    keys = [outbox.put("visit_event" if i % 2 else "device_health", {"n": i}, f"key-{i:07d}") for i in range(6)]
    assert keys == sorted(keys)
    deliverer.run_once()
    assert server.keys() == [f"key-{i:07d}" for i in range(6)]
    assert outbox.depth() == 0
    assert all(m.attempts == 1 and m.delivered_at is not None for m in outbox.messages())


def test_a_duplicate_answer_counts_as_delivered(outbox: Outbox, deliverer: Deliverer, server: OutboxServerDb,
                                                transport: FaultyTransport) -> None:
    outbox.put("visit_event", {"n": 1}, "key-0000001")
    transport.plan = ["lose_answer"]  # the server stores it; the kiosk never hears back
    deliverer.run_once()
    assert outbox.depth() == 1 and server.keys() == ["key-0000001"]
    deliverer.clock.advance(301)  # type: ignore[attr-defined]
    deliverer.run_once()
    assert outbox.depth() == 0
    rows = server.rows()
    assert len(rows) == 1 and rows[0].copies == 2


def test_a_409_that_says_duplicate_counts_as_delivered(outbox: Outbox, deliverer: Deliverer,
                                                       transport: FaultyTransport) -> None:
    outbox.put("visit_event", {}, "key-0000001")
    transport.plan = [Reply(409, {"code": "DUPLICATE"})]
    deliverer.run_once()
    assert outbox.depth() == 0


def test_a_poison_message_is_parked_and_the_rest_continue(outbox: Outbox, deliverer: Deliverer, clock: FakeClock,
                                                          server: OutboxServerDb,
                                                          transport: FaultyTransport) -> None:
    for i in range(3):
        outbox.put("survey_answer", {"n": i}, f"key-{i:07d}")
    transport.answers["key-0000001"] = Reply(400, {"code": "BAD_REQUEST", "message_en": "no such question"})
    deliverer.run_once()
    assert server.keys() == ["key-0000000", "key-0000002"]
    parked = outbox.get("key-0000001")
    assert parked is not None and parked.parked_at is not None and parked.delivered_at is None
    assert parked.last_error == "HTTP 400 BAD_REQUEST: no such question"
    stats = outbox.stats()
    assert (stats.depth, stats.parked) == (1, 1)

    calls = len(transport.calls)
    for _ in range(5):  # parked: never tried again on its own, however long we wait
        clock.advance(3600)
        deliverer.run_once()
    assert len(transport.calls) == calls

    del transport.answers["key-0000001"]  # the server learnt the question; a technician unparks
    assert outbox.unpark() == 1
    deliverer.run_once()
    assert outbox.depth() == 0 and sorted(server.keys()) == ["key-0000000", "key-0000001", "key-0000002"]


def test_a_key_reused_for_another_message_is_parked(outbox: Outbox, deliverer: Deliverer,
                                                    server: OutboxServerDb, transport: FaultyTransport) -> None:
    transport.inner.post({"kind": "visit_event", "payload": {"other": True},
                          "created_at": "2026-01-01T00:00:00+00:00"}, "key-0000001")
    outbox.put("visit_event", {"n": 1}, "key-0000001")
    deliverer.run_once()
    message = outbox.get("key-0000001")
    assert message is not None and message.parked_at is not None
    assert message.last_error is not None and "IDEMPOTENCY_KEY_REUSED" in message.last_error


def test_terminal_and_server_level_refusals_are_retried_not_parked(outbox: Outbox, clock: FakeClock,
                                                                   transport: FaultyTransport,
                                                                   server: OutboxServerDb) -> None:
    outbox.put("visit_event", {}, "key-0000001")
    deliverer = Deliverer(outbox, transport, clock=clock, backoff=Backoff(rng=random.Random(1)))
    transport.plan = [Reply(401, {"code": "UNAUTHORIZED"}), Reply(404, {"code": "NOT_FOUND"}),
                      Reply(429, None, retry_after=120), Reply(503, None), Reply(302, None)]
    for _ in range(5):
        deliverer.run_once()
        message = outbox.get("key-0000001")
        assert message is not None and message.parked_at is None and message.delivered_at is None
        clock.advance(301)
    deliverer.run_once()
    assert outbox.depth() == 0 and server.keys() == ["key-0000001"]
    assert len(transport.calls) == 6


def test_retry_after_is_honoured_within_the_cap(outbox: Outbox, deliverer: Deliverer, clock: FakeClock,
                                                transport: FaultyTransport) -> None:
    outbox.put("visit_event", {}, "key-0000001")
    transport.plan = [Reply(429, None, retry_after=120)]
    deliverer.run_once()
    message = outbox.get("key-0000001")
    assert message is not None and message.next_attempt_at - clock.now >= 120


def test_order_per_kind_holds_while_its_head_waits(outbox: Outbox, deliverer: Deliverer, clock: FakeClock,
                                                   server: OutboxServerDb, transport: FaultyTransport) -> None:
    """A1 gets a 500: A2 and A3 wait behind it; kind B goes on; then A1, A2, A3 arrive in order."""
    for name in ("A1", "B1", "A2", "B2", "A3"):
        outbox.put("visit_event" if name[0] == "A" else "device_health", {"name": name}, f"key-{name}-0000")
    transport.plan = [Reply(500, None)]
    deliverer.run_once()
    assert server.keys() == ["key-B1-0000", "key-B2-0000"]
    for _ in range(3):  # later passes while A1 still waits: A2 must not overtake it
        clock.advance(0.1)
        deliverer.run_once()
    assert server.keys() == ["key-B1-0000", "key-B2-0000"]
    clock.advance(301)
    deliverer.run_once()
    assert server.keys() == ["key-B1-0000", "key-B2-0000", "key-A1-0000", "key-A2-0000", "key-A3-0000"]


def test_no_answer_pauses_everything_one_probe_per_delay(outbox: Outbox, deliverer: Deliverer, clock: FakeClock,
                                                         transport: FaultyTransport) -> None:
    for i, kind in enumerate(["visit_event", "device_health", "print_failed", "survey_answer"]):
        outbox.put(kind, {}, f"key-{i:07d}")
    transport.plan = ["lose_request"] * 100
    for _ in range(20):
        wait = deliverer.run_once()
        assert wait > 0
    assert len(transport.calls) == 1  # the clock did not move: one probe, no hot loop
    delays = []
    for _ in range(12):
        before = len(transport.calls)
        message_before = outbox.messages()[0]
        clock.now = max(message_before.next_attempt_at, clock.now)
        deliverer.run_once()
        assert len(transport.calls) == before + 1
        message = outbox.messages()[0]
        delays.append(message.next_attempt_at - clock.now)
    growing = delays[:8]  # attempts 2..9: each ceiling doubles, so equal jitter can only grow
    assert all(later >= earlier for earlier, later in zip(growing, growing[1:]))
    assert delays[0] <= 2 and all(150 <= d <= 300 for d in delays[8:])  # then capped at 5 min
    assert outbox.stats().depth == 4 and outbox.stats().last_error == "unreachable: ConnectError"


def test_backoff_is_equal_jitter_and_capped() -> None:
    backoff = Backoff(base=1.0, cap=300.0, rng=random.Random(3))
    for attempt in range(1, 40):
        ceiling = min(300.0, 2.0 ** (attempt - 1))
        assert ceiling / 2 <= backoff.delay(attempt) <= ceiling


def test_a_clock_that_jumped_back_does_not_strand_a_message(outbox: Outbox, deliverer: Deliverer,
                                                            clock: FakeClock, transport: FaultyTransport,
                                                            server: OutboxServerDb) -> None:
    outbox.put("visit_event", {}, "key-0000001")
    transport.plan = ["lose_request"]
    deliverer.run_once()
    clock.advance(-86400)  # NTP corrected a clock that was a day fast
    deliverer._paused_until = 0.0  # the in-memory pause is gone after a restart anyway
    deliverer.run_once()
    assert server.keys() == ["key-0000001"] and outbox.depth() == 0


def test_a_transport_bug_neither_loses_the_message_nor_kills_the_pass(outbox: Outbox, clock: FakeClock,
                                                                      server: OutboxServerDb) -> None:
    class Broken:
        def post(self, body: dict, key: str) -> Reply:
            raise RuntimeError("bug")

    outbox.put("visit_event", {}, "key-0000001")
    deliverer = Deliverer(outbox, Broken(), clock=clock)
    deliverer.run_once()
    message = outbox.get("key-0000001")
    assert message is not None and message.attempts == 1 and message.last_error == "transport: RuntimeError"


def test_a_damaged_row_is_parked_not_spun_on(outbox: Outbox, deliverer: Deliverer, server: OutboxServerDb) -> None:
    outbox.put("visit_event", {}, "key-0000001")
    outbox.put("visit_event", {}, "key-0000002")
    with outbox.transaction() as conn:
        conn.execute("UPDATE outbox SET payload = '{not json' WHERE key = 'key-0000001'")
    deliverer.run_once()
    damaged = outbox.get("key-0000001")
    assert damaged is not None and damaged.parked_at is not None
    assert damaged.last_error == "local: stored message unreadable"
    assert server.keys() == ["key-0000002"]
