"""Real processes, real sockets: the deliverer (urllib) against the outbox router served by uvicorn on
loopback. A server that is down, a kiosk killed with SIGKILL in the middle of delivery, and the promise that
survives both: every message arrives, and the server keeps exactly one copy of each."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from offline_queue.delivery import Backoff, Deliverer, UrllibTransport
from offline_queue.outbox import Outbox
from tests.offline_queue.server import TERMINAL, FakeClock, LiveServer, OutboxServerDb, free_port

ROOT = Path(__file__).resolve().parents[2]
KINDS = ("visit_event", "print_failed", "survey_answer", "device_health")


def wait_until(predicate: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)
    return value


def fill(outbox: Outbox, count: int) -> list[tuple[str, str]]:
    """(kind, key) in creation order."""
    made = []
    for i in range(count):
        kind = KINDS[i % len(KINDS)]
        key = f"key-{i:06d}"
        outbox.put(kind, {"n": i, "session": f"s-{i // 5}"}, key)
        made.append((kind, key))
    return made


def assert_exactly_once_in_order(server: OutboxServerDb, made: list[tuple[str, str]]) -> None:
    rows = server.rows()
    assert sorted(r.idempotency_key for r in rows) == sorted(key for _, key in made)  # all there, one copy each
    for kind in KINDS:  # first arrival per kind follows creation per kind
        assert [r.idempotency_key for r in rows if r.kind == kind] == [k for kd, k in made if kd == kind]


def test_server_down_backoff_grows_then_delivery_resumes(tmp_path: Path, server: OutboxServerDb) -> None:
    port = free_port()  # nothing listens here yet
    clock = FakeClock()
    outbox = Outbox(tmp_path / "journal.db", clock=clock)
    made = fill(outbox, 8)
    deliverer = Deliverer(outbox, UrllibTransport(f"http://127.0.0.1:{port}", TERMINAL, server.secret, timeout=2),
                          clock=clock, backoff=Backoff(base=1.0, cap=300.0, rng=random.Random(5)))
    delays = []
    for _ in range(7):
        deliverer.run_once()
        head = outbox.messages()[0]
        delays.append(head.next_attempt_at - clock.now)
        clock.now = head.next_attempt_at
    assert all(later >= earlier for earlier, later in zip(delays, delays[1:])) and delays[-1] > 16
    stats = outbox.stats()
    assert stats.depth == 8 and stats.oldest_age and stats.oldest_age > 60
    assert stats.last_error is not None and stats.last_error.startswith("unreachable")
    assert [m.attempts for m in outbox.messages()] == [7] + [0] * 7  # one probe at a time, not one per message

    live = LiveServer(server, port).start()
    try:
        deliverer.run_once()
        assert outbox.depth() == 0
        assert_exactly_once_in_order(server, made)
    finally:
        live.stop()
        outbox.close()


def test_the_thread_rides_out_an_outage(tmp_path: Path, server: OutboxServerDb) -> None:
    """Real time and the background thread: deliver, lose the server, queue up, get it back, drain."""
    live = LiveServer(server).start()
    outbox = Outbox(tmp_path / "journal.db")
    deliverer = Deliverer(outbox, UrllibTransport(live.url, TERMINAL, server.secret, timeout=2),
                          backoff=Backoff(base=0.05, cap=0.4), idle_poll=0.05).start()
    try:
        made = fill(outbox, 5)
        deliverer.wake()
        wait_until(lambda: outbox.depth() == 0)
        live.stop()
        for i in range(5, 12):
            kind, key = KINDS[i % len(KINDS)], f"key-{i:06d}"
            outbox.put(kind, {"n": i}, key)
            made.append((kind, key))
        wait_until(lambda: (outbox.messages(undelivered_only=True)[0].attempts >= 3))
        assert outbox.depth() == 7
        live.start()
        wait_until(lambda: outbox.depth() == 0)
        assert_exactly_once_in_order(server, made)
    finally:
        deliverer.stop()
        live.stop()
        outbox.close()


def start_child(kiosk_db: Path, url: str, secret: str, **env: str) -> subprocess.Popen[str]:
    child = subprocess.Popen([sys.executable, "-m", "tests.offline_queue.deliver_child", str(kiosk_db), url],
                             cwd=ROOT, stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "OUTBOX_TERMINAL": TERMINAL, "OUTBOX_SECRET": secret, **env})
    assert child.stdout is not None and child.stdout.readline().strip() == "STARTED"
    return child


def drain(kiosk_db: Path, url: str, secret: str) -> None:
    child = start_child(kiosk_db, url, secret)
    out, _ = child.communicate(timeout=60)
    assert child.returncode == 0 and out.strip().endswith("DRAINED")


def test_sigkill_between_the_servers_answer_and_the_local_record(tmp_path: Path, server: OutboxServerDb) -> None:
    live = LiveServer(server).start()
    kiosk_db = tmp_path / "journal.db"
    outbox = Outbox(kiosk_db)
    made = fill(outbox, 40)
    try:
        child = start_child(kiosk_db, live.url, server.secret, OUTBOX_HOLD_AFTER="17")
        assert child.stdout is not None
        line = child.stdout.readline().split()
        assert line[0] == "ANSWERED"
        held = line[1]
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
        child.stdout.close()

        message = outbox.get(held)
        assert message is not None and message.delivered_at is None  # the kiosk does not know it arrived
        assert held in server.keys()  # but the server has it

        drain(kiosk_db, live.url, server.secret)
        assert outbox.depth() == 0
        assert_exactly_once_in_order(server, made)
        copies = {r.idempotency_key: r.copies for r in server.rows()}
        assert copies[held] == 2 and sum(copies.values()) == len(made) + 1
    finally:
        live.stop()
        outbox.close()


def test_random_sigkills_lose_nothing_and_duplicate_nothing(tmp_path: Path, server: OutboxServerDb) -> None:
    live = LiveServer(server).start()
    kiosk_db = tmp_path / "journal.db"
    outbox = Outbox(kiosk_db)
    made = fill(outbox, 300)
    rng = random.Random(11)
    kills = 0
    try:
        for _ in range(6):
            before = len(server.rows())
            child = start_child(kiosk_db, live.url, server.secret)
            wait_until(lambda: len(server.rows()) > before)  # it is delivering now
            time.sleep(rng.uniform(0.0, 0.03))
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=10)
            assert child.stdout is not None
            child.stdout.close()
            if len(server.rows()) < len(made):
                kills += 1
        assert kills >= 3  # the kills did land in the middle of delivery
        drain(kiosk_db, live.url, server.secret)
        assert outbox.depth() == 0
        assert_exactly_once_in_order(server, made)
    finally:
        live.stop()
        outbox.close()
