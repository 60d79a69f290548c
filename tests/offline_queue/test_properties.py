"""Property: whatever the interleaving of enqueue, delivery, lost requests, lost answers, server errors, poison
messages, clock jumps and restarts, the server ends up with exactly the set of enqueued keys, one copy each,
each kind in creation order; and at no moment is a message marked delivered that the server does not hold."""
from __future__ import annotations

import random
import tempfile
from pathlib import Path

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from offline_queue.delivery import Backoff, Deliverer, Reply
from offline_queue.outbox import Outbox
from tests.offline_queue.server import ClientTransport, FakeClock, FaultyTransport, OutboxServerDb

KINDS = ("visit_event", "print_failed", "survey_answer", "device_health")
FAULTS = ("lose_request", "lose_answer", Reply(500, None), Reply(503, None), Reply(429, None),
          Reply(401, {"code": "UNAUTHORIZED"}))


class OutboxMachine(RuleBasedStateMachine):
    @initialize()
    def setup(self) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        base = Path(self.tmp.name)
        self.server = OutboxServerDb(base / "central.db")
        self.client = TestClient(self.server.app(), raise_server_exceptions=False)
        self.client.__enter__()
        self.transport = FaultyTransport(ClientTransport(self.client, self.server.auth))
        self.clock = FakeClock()
        self.path = base / "journal.db"
        self.made: list[tuple[str, str]] = []  # (kind, key) in creation order
        self.poisoned: set[str] = set()
        self._open()

    def _open(self) -> None:
        self.outbox = Outbox(self.path, clock=self.clock)
        self.deliverer = Deliverer(self.outbox, self.transport, clock=self.clock,
                                   backoff=Backoff(base=1.0, cap=300.0, rng=random.Random(len(self.made))))

    def teardown(self) -> None:
        if hasattr(self, "outbox"):
            self.outbox.close()
            self.client.__exit__(None, None, None)
            self.server.close()
            self.tmp.cleanup()

    @rule(kind=st.sampled_from(KINDS), count=st.integers(1, 4))
    def enqueue(self, kind: str, count: int) -> None:
        for _ in range(count):
            key = f"key-{len(self.made):06d}"
            self.outbox.put(kind, {"n": len(self.made)}, key)
            self.made.append((kind, key))

    @precondition(lambda self: bool(self.made))
    @rule(index=st.integers(0, 10_000))
    def enqueue_again(self, index: int) -> None:
        """A transition replayed after a restart enqueues the same key again: still one message."""
        kind, key = self.made[index % len(self.made)]
        self.outbox.put(kind, {"n": int(key[4:])}, key)

    @rule(faults=st.lists(st.sampled_from(FAULTS), max_size=4))
    def deliver(self, faults: list[object]) -> None:
        self.transport.plan = list(faults)
        self.deliverer.run_once()
        self.transport.plan = []

    @precondition(lambda self: bool(self.made))
    @rule(index=st.integers(0, 10_000))
    def poison(self, index: int) -> None:
        _, key = self.made[index % len(self.made)]
        self.transport.answers[key] = Reply(422, {"code": "BAD_REQUEST", "message_en": "refused"})
        self.poisoned.add(key)

    @rule(seconds=st.sampled_from([0.5, 5.0, 60.0, 301.0, -3600.0]))
    def time_passes(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule()
    def restart(self) -> None:
        """The kiosk process dies between two passes (a death inside a pass is a lost answer plus this)."""
        self.outbox.close()
        self._open()

    @invariant()
    def delivered_means_the_server_has_it(self) -> None:
        if not hasattr(self, "outbox"):
            return
        on_server = set(self.server.keys())
        delivered = {m.key for m in self.outbox.messages() if m.delivered_at is not None}
        assert delivered <= on_server
        assert len(on_server) == len(self.server.rows())

    def teardown_check(self) -> None:
        """Heal everything, drain, and compare."""
        self.transport.answers.clear()
        self.outbox.unpark()
        for _ in range(len(self.made) + 10):
            if self.outbox.depth() == 0:
                break
            self.clock.advance(301)
            self.deliverer.run_once()
        assert self.outbox.depth() == 0
        rows = self.server.rows()
        assert sorted(r.idempotency_key for r in rows) == sorted(key for _, key in self.made)
        for kind in KINDS:  # creation order per kind, leaving out the parked ones that were unparked late
            arrived = [r.idempotency_key for r in rows if r.kind == kind and r.idempotency_key not in self.poisoned]
            assert arrived == [k for kd, k in self.made if kd == kind and k not in self.poisoned]


class CheckedMachine(OutboxMachine):
    def teardown(self) -> None:
        try:
            if hasattr(self, "outbox"):
                self.teardown_check()
        finally:
            super().teardown()


CheckedMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=30, deadline=None,
                                            suppress_health_check=[HealthCheck.too_slow])
TestOutboxInterleavings = CheckedMachine.TestCase
