"""Surge benchmark: N kiosks and phones book and pay for the same popular doctors' slots at 8 a.m.

    python bench/surge_booking.py --clients 2000

Starts the real ``kiosk-central`` on loopback in a fresh data directory (SQLite, reference HIS, WeChat Pay
sandbox), provisions about one terminal per 20 clients, then lets every client at once: identify a patient, list
a popular doctor's free slots, create a registration order (racing the others for the earliest slots; a
SLOT_TAKEN refusal means trying another slot from the fresh list, or giving up), start the WeChat payment, pay it
through the sandbox's phone simulator and poll the order until FULFILLED.

Why these figures: the booking request is the one a crowd fights over, so its latency (avg/p99/max over every
attempt) is what a patient at the kiosk feels; ``double_bookings`` is read from the server's own database after
the run, because a benchmark that counts only HTTP answers cannot see an overbooked slot; and
``sqlite_commit_ratio`` relates the booking rate to what this disk can commit at all, which tells whether the
database or the Python around it is the ceiling.

The last line is machine-readable and stable:
``clients=N avg_ms=… p99_ms=… max_ms=… bookings_per_s=… double_bookings=… sqlite_commit_ratio=…``
"""
from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a plain script from anywhere
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from kiosk_app.local_central import LocalCentral  # noqa: E402

#: The emergency department is open round the clock, so its doctors have bookable slots at any hour the
#: benchmark runs; its few doctors are "the popular doctors" every client races for.
POPULAR_DEPT = "JZNK"
KIOSK = "/api/v1/kiosk"


@dataclass
class Target:
    """A popular doctor on one day: what a client lists slots for and books from."""

    day: date
    doctor: str
    places: int


@dataclass
class Stats:
    """Everything the clients measured; latencies in seconds."""

    booking: list[float] = field(default_factory=list)  # every create-order attempt
    flow: list[float] = field(default_factory=list)  # create order .. FULFILLED seen, per fulfilled client
    steps: dict[str, list[float]] = field(default_factory=dict)
    outcomes: Counter[str] = field(default_factory=Counter)
    booking_codes: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    slot_taken: int = 0
    polls: int = 0

    def step(self, name: str, seconds: float) -> None:
        self.steps.setdefault(name, []).append(seconds)


@dataclass
class Client:
    index: int
    auth: tuple[str, str]
    patient: tuple[str, str]  # id number, name
    target: Target


class Failed(Exception):
    """A client stopped on an answer it could not continue from; the code is what gets counted."""

    def __init__(self, code: str):
        super().__init__(code)
        self.code = code


# --- set-up -----------------------------------------------------------------------------------------------------

def provision_terminals(data_dir: Path, count: int, base_url: str) -> list[tuple[str, str]]:
    """Provision in this process with the project's own function: one ``kiosk-central provision-terminal``
    process per terminal would take a second each, which is set-up time, not what is measured."""
    from central.config import Settings
    from central.db import make_engine, make_sessionmaker
    from central.terminals import provision_terminal

    engine = make_engine(Settings(data_dir=data_dir).db_url)
    try:
        sessions = make_sessionmaker(engine)
        return [(tid, provision_terminal(sessions, tid, name=f"surge kiosk {i}", location="bench"))
                for i in range(count) for tid in [f"SURGE-{i:04d}"]]
    finally:
        engine.dispose()


def load_patients(data_dir: Path) -> list[tuple[str, str]]:
    """ID numbers and names of the seeded patients, as their ID cards would give them (decrypted here because
    the seed stores them encrypted, like production does)."""
    from sqlalchemy import select

    from central.config import Settings
    from central.crypto import FieldCipher, attach_cipher
    from central.db import make_engine, make_sessionmaker
    from central.his.tables import HisPatient

    engine = make_engine(Settings(data_dir=data_dir).db_url)
    try:
        attach_cipher(engine, FieldCipher.load_or_create(data_dir))
        with make_sessionmaker(engine)() as session:
            return [(p.id_number, p.name) for p in session.scalars(select(HisPatient).order_by(HisPatient.patient_id))]
    finally:
        engine.dispose()


def choose_targets(db_path: Path, clients: int, supply: float) -> list[Target]:
    """The popular doctors' days, earliest first, until their free places cover ``supply`` × clients: enough
    places that throughput measures the server, few enough slots (10 places each) that clients collide."""
    now = datetime.now(timezone.utc).replace(tzinfo=None).isoformat(sep=" ")
    with sqlite3.connect(db_path) as db:
        rows = db.execute(
            "SELECT day, doctor_code, SUM(capacity - booked) FROM his_slots WHERE dept_code = ? AND ends_at > ? "
            "GROUP BY day, doctor_code HAVING SUM(capacity - booked) > 0 ORDER BY day, doctor_code",
            (POPULAR_DEPT, now)).fetchall()
    targets: list[Target] = []
    wanted = math.ceil(clients * supply)
    for day, doctor, places in rows:
        targets.append(Target(date.fromisoformat(day), doctor, int(places)))
        if sum(t.places for t in targets) >= wanted:
            break
    return targets


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, from /proc (Linux); NaN elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


# --- one client ----------------------------------------------------------------------------------------------

async def _call(http: httpx.AsyncClient, stats: Stats, step: str, method: str, url: str,
                **kwargs: Any) -> httpx.Response:
    started = time.perf_counter()
    try:
        response = await http.request(method, url, **kwargs)
    except httpx.HTTPError as exc:
        stats.errors[f"{step}:{type(exc).__name__}"] += 1
        raise Failed(f"{step}:{type(exc).__name__}") from None
    stats.step(step, time.perf_counter() - started)
    return response


def _code(response: httpx.Response) -> str:
    try:
        return str(response.json().get("code") or response.status_code)
    except ValueError:
        return str(response.status_code)


async def run_client(http: httpx.AsyncClient, client: Client, stats: Stats, *, start_at: float,
                     poll_interval: float, max_attempts: int, rng: random.Random) -> None:
    await asyncio.sleep(max(0.0, start_at - time.perf_counter()))
    auth = client.auth
    try:
        id_number, name = client.patient
        r = await _call(http, stats, "identify", "POST", f"{KIOSK}/patients/identify", auth=auth,
                        json={"method": "id_card", "id_number": id_number, "name": name})
        if r.status_code != 200:
            raise Failed(f"identify:{_code(r)}")
        patient_id = r.json()["patient_id"]

        target = client.target
        r = await _call(http, stats, "slots", "GET",
                        f"{KIOSK}/departments/{POPULAR_DEPT}/doctors/{target.doctor}/slots",
                        params={"date": target.day.isoformat()}, auth=auth)
        if r.status_code != 200:
            raise Failed(f"slots:{_code(r)}")
        slots = r.json()["slots"]

        order: dict[str, Any] | None = None
        flow_started = time.perf_counter()
        key = f"surge-{client.index}-{uuid.uuid4().hex[:12]}"
        for attempt in range(max_attempts):
            if not slots:
                break
            # Everyone wants the earliest places: pick among the first few, which is where the races happen.
            slot = rng.choice(slots[:3])
            started = time.perf_counter()
            r = await _call(http, stats, "create_order", "POST", f"{KIOSK}/registrations", auth=auth,
                            json={"patient_id": patient_id, "slot_id": slot["slot_id"],
                                  "idempotency_key": f"{key}-{attempt}"})
            stats.booking.append(time.perf_counter() - started)
            code = "CREATED" if r.status_code == 201 else _code(r)
            stats.booking_codes[code] += 1
            if r.status_code == 201:
                order = r.json()
                break
            if code == "SLOT_TAKEN":
                stats.slot_taken += 1
                slots = r.json().get("slots") or []
                continue
            raise Failed(f"create_order:{code}")
        if order is None:
            stats.outcomes["gave_up_no_slot"] += 1
            return

        order_no = order["order_no"]
        r = await _call(http, stats, "pay", "POST", f"{KIOSK}/orders/{order_no}/pay", auth=auth,
                        json={"channel": "wechat_native", "idempotency_key": f"{key}-pay"})
        if r.status_code != 200 or not (r.json().get("payment") or {}).get("code_url"):
            raise Failed(f"pay:{_code(r)}")
        code_url = r.json()["payment"]["code_url"]

        r = await _call(http, stats, "phone_pays", "POST", "/sandbox/wechatpay/simulate/pay",
                        json={"code_url": code_url})
        if r.status_code != 200:
            raise Failed(f"phone_pays:{_code(r)}")

        deadline = time.perf_counter() + 120
        while True:
            r = await _call(http, stats, "poll", "GET", f"{KIOSK}/orders/{order_no}", auth=auth)
            stats.polls += 1
            status = r.json().get("status") if r.status_code == 200 else f"poll:{_code(r)}"
            if status == "FULFILLED":
                break
            if status not in ("AWAITING_PAYMENT", "PAID") or time.perf_counter() > deadline:
                raise Failed(f"order:{status}")
            await asyncio.sleep(poll_interval)
        stats.flow.append(time.perf_counter() - flow_started)
        stats.outcomes["fulfilled"] += 1
    except Failed as exc:
        stats.outcomes[f"failed:{exc.code}"] += 1


# --- after the run ------------------------------------------------------------------------------------------

DOUBLE_BOOKING_CHECKS = {
    # Orders that hold or used a place (not closed, not refunded) beyond the slot's capacity.
    "orders_over_capacity": """
        SELECT COALESCE(SUM(n - capacity), 0) FROM (
          SELECT s.id, s.capacity, COUNT(*) AS n FROM orders o JOIN his_slots s ON s.id = o.slot_id
          WHERE o.status NOT IN ('CLOSED', 'REFUNDED') GROUP BY s.id, s.capacity) WHERE n > capacity""",
    # The HIS's confirmed registrations beyond capacity: the patients who would meet in one doctor's room.
    "registrations_over_capacity": """
        SELECT COALESCE(SUM(n - capacity), 0) FROM (
          SELECT s.id, s.capacity, COUNT(*) AS n FROM his_registrations r JOIN his_slots s ON s.id = r.slot_id
          GROUP BY s.id, s.capacity) WHERE n > capacity""",
    # Held or confirmed locks beyond capacity, and a counter that overran it.
    "locks_over_capacity": """
        SELECT COALESCE(SUM(n - capacity), 0) FROM (
          SELECT s.id, s.capacity, COUNT(*) AS n FROM his_slot_locks l JOIN his_slots s ON s.id = l.slot_id
          WHERE l.status IN ('HELD', 'CONFIRMED') GROUP BY s.id, s.capacity) WHERE n > capacity""",
    "booked_counter_over_capacity": "SELECT COALESCE(SUM(booked - capacity), 0) FROM his_slots WHERE booked > capacity",
    # Two orders on one HIS lock would be two patients on one place.
    "orders_sharing_a_lock": """
        SELECT COALESCE(SUM(n - 1), 0) FROM (SELECT COUNT(*) AS n FROM orders GROUP BY his_lock_id) WHERE n > 1""",
}


def count_double_bookings(db_path: Path) -> dict[str, int]:
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
        return {name: int(db.execute(sql).fetchone()[0]) for name, sql in DOUBLE_BOOKING_CHECKS.items()}


def order_status_counts(db_path: Path) -> dict[str, int]:
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
        return dict(db.execute("SELECT status, COUNT(*) FROM orders GROUP BY status ORDER BY status").fetchall())


def bare_commit_rate(directory: Path, seconds: float) -> float:
    """Commits per second of one-row transactions on this disk, configured as ``central.db`` configures the
    server's connections (WAL, synchronous=NORMAL, BEGIN IMMEDIATE): the most the database could ever do."""
    from central.db import BUSY_TIMEOUT_MS

    path = directory / "bare_commits.db"
    db = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
        commits = 0
        started = time.perf_counter()
        deadline = started + seconds
        while time.perf_counter() < deadline:
            for _ in range(100):
                db.execute("BEGIN IMMEDIATE")
                db.execute("INSERT INTO t (v) VALUES (?)", ("surge",))
                db.execute("COMMIT")
            commits += 100
        return commits / (time.perf_counter() - started)
    finally:
        db.close()


def _ms(values: list[float]) -> tuple[float, float, float]:
    """(avg, p99, max) in milliseconds; p99 by nearest rank."""
    if not values:
        return (float("nan"),) * 3
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]
    return statistics.fmean(ordered) * 1000, p99 * 1000, ordered[-1] * 1000


# --- the run ------------------------------------------------------------------------------------------------

async def surge(base_url: str, clients: list[Client], args: argparse.Namespace, stats: Stats) -> float:
    """Run every client at once; returns the wall time from the first start to the last finish."""
    # Idle connections are dropped before uvicorn's 5 s keep-alive timeout would close them under a request.
    limits = httpx.Limits(max_connections=len(clients) + 10, max_keepalive_connections=len(clients) + 10,
                          keepalive_expiry=3.0)
    timeout = httpx.Timeout(args.timeout, pool=args.timeout)
    rng = random.Random(args.seed)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=timeout) as http:
        started = time.perf_counter() + 0.05
        spacing = args.ramp / len(clients) if args.ramp > 0 else 0.0
        await asyncio.gather(*(run_client(http, c, stats, start_at=started + i * spacing,
                                          poll_interval=args.poll_interval, max_attempts=args.max_attempts,
                                          rng=random.Random(rng.random()))
                               for i, c in enumerate(clients)))
        return time.perf_counter() - started


def _profile_server(out: Path) -> None:
    """Make LocalCentral start the server under the sampling profiler (bench-only; the product is untouched)."""
    import kiosk_app.local_central as local_central

    profiler = str(Path(__file__).resolve().parent / "sampling_profiler.py")
    local_central._central = lambda *args: [sys.executable, profiler, str(out), *args]  # type: ignore[assignment]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=200, help="concurrent clients (default 200)")
    p.add_argument("--terminals", type=int, help="terminals to provision (default clients/20, at least 1)")
    p.add_argument("--supply", type=float, default=1.2,
                   help="free places of the popular doctors' days to offer, as a multiple of clients (default 1.2)")
    p.add_argument("--ramp", type=float, default=0.0,
                   help="seconds over which clients start (default 0: all at the same moment)")
    p.add_argument("--poll-interval", type=float, default=0.5, help="seconds between a kiosk's order polls")
    p.add_argument("--max-attempts", type=int, default=5, help="create-order attempts before a client gives up")
    p.add_argument("--commit-seconds", type=float, default=3.0, help="length of the bare SQLite commit loop")
    p.add_argument("--timeout", type=float, default=120.0, help="per-request timeout, seconds")
    p.add_argument("--seed", type=int, default=8, help="random seed of the clients' choices")
    p.add_argument("--data-dir", type=Path, help="server data directory (default a fresh temporary one)")
    p.add_argument("--keep", action="store_true", help="keep the temporary data directory (log, database)")
    p.add_argument("--profile", type=Path, help="run the server under bench/sampling_profiler.py and write its "
                                                "report here (slows the server down a little)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    n = args.clients
    if n < 1:
        raise SystemExit("--clients must be at least 1")
    tmp = None if args.data_dir or args.keep else tempfile.TemporaryDirectory(prefix="surge-",
                                                                             ignore_cleanup_errors=True)
    data_dir = args.data_dir or (Path(tmp.name) if tmp else Path(tempfile.mkdtemp(prefix="surge-")))
    if args.profile:
        _profile_server(args.profile.resolve())
    central = LocalCentral(data_dir)
    try:
        t0 = time.perf_counter()
        central.start(timeout=120)
        t_started = time.perf_counter()
        terminals = provision_terminals(data_dir, args.terminals or max(1, n // 20), central.url)
        patients = load_patients(data_dir)
        db_path = data_dir / "central.db"
        targets = choose_targets(db_path, n, args.supply)
        places = sum(t.places for t in targets)
        print(f"setup: server up in {t_started - t0:.1f} s; {len(terminals)} terminals, {len(patients)} patients, "
              f"{len(targets)} popular doctor-days with {places} free places "
              f"({', '.join(f'{t.doctor}@{t.day:%m-%d}:{t.places}' for t in targets[:6])}"
              f"{', …' if len(targets) > 6 else ''})", flush=True)
        if not targets:
            raise SystemExit("no free places in the popular department; is the schedule generated?")

        rng = random.Random(args.seed)
        order = rng.sample(range(len(patients)), len(patients))
        weights = [t.places for t in targets]
        clients = [Client(i, terminals[i % len(terminals)], patients[order[i % len(patients)]],
                          rng.choices(targets, weights)[0]) for i in range(n)]

        stats = Stats()
        server_pid = central.proc.pid if central.proc else os.getpid()
        cpu_server0, cpu_self0 = cpu_seconds(server_pid), resource.getrusage(resource.RUSAGE_SELF)
        wall = asyncio.run(surge(central.url, clients, args, stats))
        cpu_server = cpu_seconds(server_pid) - cpu_server0
        self_usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu_clients = (self_usage.ru_utime - cpu_self0.ru_utime) + (self_usage.ru_stime - cpu_self0.ru_stime)

        doubles = count_double_bookings(db_path)
        statuses = order_status_counts(db_path)
        commits_per_s = bare_commit_rate(data_dir, args.commit_seconds)
    finally:
        central.stop()
        if tmp is not None:
            tmp.cleanup()
        elif args.keep:
            print(f"data directory kept: {data_dir}")

    fulfilled = stats.outcomes["fulfilled"]
    bookings_per_s = fulfilled / wall if wall > 0 else 0.0
    requests = sum(len(v) for v in stats.steps.values())
    print(f"surge: {n} clients in {wall:.2f} s; {requests} requests ({requests / wall:.0f}/s); "
          f"{fulfilled} fulfilled ({bookings_per_s:.1f}/s)")
    print("outcomes: " + ", ".join(f"{k}={v}" for k, v in sorted(stats.outcomes.items())))
    print("create_order answers: " + ", ".join(f"{k}={v}" for k, v in sorted(stats.booking_codes.items()))
          + f"; SLOT_TAKEN retries {stats.slot_taken}")
    if stats.errors:
        print("transport errors: " + ", ".join(f"{k}={v}" for k, v in sorted(stats.errors.items())))
    for name in ("identify", "slots", "create_order", "pay", "phone_pays", "poll"):
        if name in stats.steps:
            avg, p99, mx = _ms(stats.steps[name])
            print(f"  {name:<13} n={len(stats.steps[name]):<6} avg={avg:8.1f} ms  p99={p99:8.1f} ms  max={mx:8.1f} ms")
    avg, p99, mx = _ms(stats.flow)
    print(f"  booking+payment (create order .. FULFILLED seen, {stats.polls} polls) n={len(stats.flow)} "
          f"avg={avg:.1f} ms p99={p99:.1f} ms max={mx:.1f} ms")
    print(f"cpu: server {cpu_server:.1f} s ({cpu_server / wall * 100:.0f}% of one core), clients {cpu_clients:.1f} s "
          f"({cpu_clients / wall * 100:.0f}%) on {os.cpu_count()} cores")
    print("orders by status: " + ", ".join(f"{k}={v}" for k, v in statuses.items()))
    print("double-booking checks: " + ", ".join(f"{k}={v}" for k, v in doubles.items()))
    print(f"bare SQLite WAL commits: {commits_per_s:.0f}/s")
    avg, p99, mx = _ms(stats.booking)
    ratio = bookings_per_s / commits_per_s if commits_per_s else float("nan")
    print(f"clients={n} avg_ms={avg:.1f} p99_ms={p99:.1f} max_ms={mx:.1f} bookings_per_s={bookings_per_s:.1f} "
          f"double_bookings={sum(doubles.values())} sqlite_commit_ratio={ratio:.5f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
