"""Heartbeats from N simulated terminals against the real server.

    .venv/bin/python bench/heartbeats.py --terminals 10000 [--interval 10] [--duration 40] [--clients 1]

Starts a real ``kiosk-central`` process on a fresh data directory (SQLite, access log off), provisions N
terminals, and runs N simulated fleet agents (``fleet_agent.simulated``) spread over ``--clients`` client
processes, each beating every ``--interval`` seconds for ``--duration`` seconds. A beat is lost when it got no
200 answer, or when the server answered but the beat is not in its ``fleet_beats`` table afterwards.

The last line is exactly ``terminals=N beats_per_s=… p99_ms=… lost=…``; the lines before it give the rest
(p50, p90, max, beats per client process). The client processes share the machine with the server, so on a
small machine the figures include the load generator's own cost.
"""
from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psutil  # noqa: E402

from central.bootstrap import initialize  # noqa: E402
from central.config import Settings  # noqa: E402
from central.db import make_engine, make_sessionmaker  # noqa: E402
from central.terminals import provision_terminal  # noqa: E402
from fleet_agent.simulated import SimulatedFleet, make_terminals, percentile  # noqa: E402


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _client(url: str, credentials: list[tuple[str, str]], interval: float, duration: float, seed: int,
            connections: int, out: mp.Queue) -> None:  # type: ignore[type-arg]
    """One load-generator process: its agents' beats, and the CPU it spent sending them (it shares the cores
    with the server, so a busy client inflates the latencies it measures)."""
    try:
        import uvloop
        uvloop.install()  # the client's own loop costs less CPU, leaving more of the machine to the server
    except ImportError:
        pass
    fleet = SimulatedFleet(url, make_terminals(credentials, seed), interval=interval, timeout=30.0,
                           beat_connections=connections)
    cpu = _cpu_s()
    stats = asyncio.run(fleet.run(duration))
    out.put((stats.sent, stats.ok, stats.lost, stats.latencies_ms, _cpu_s() - cpu))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--terminals", type=int, required=True)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--duration", type=float, default=40.0)
    parser.add_argument("--clients", type=int, default=1, help="client processes the terminals are spread over")
    parser.add_argument("--connections", type=int, default=500,
                        help="keep-alive connections per client process (a real fleet has one per terminal; with "
                             "few, a beat waits for a free connection, and the client measures that wait)")
    parser.add_argument("--threads", type=int, default=8, help="server threads for sync routes")
    parser.add_argument("--profile", type=Path, help="run the server under bench/sampling_profiler.py and write "
                                                      "its CPU profile to this file")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-heartbeats-") as tmp:
        data = Path(tmp) / "central"
        settings = Settings(data_dir=data, sweep_seconds=0)
        initialize(settings)
        engine = make_engine(settings.db_url)
        sessions = make_sessionmaker(engine)
        started = time.monotonic()
        credentials = [(f"SIM-{i:05d}", provision_terminal(sessions, f"SIM-{i:05d}"))
                       for i in range(1, args.terminals + 1)]
        engine.dispose()
        print(f"provisioned {args.terminals} terminals in {time.monotonic() - started:.1f} s", flush=True)

        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "KIOSK_CENTRAL_FLEET_HEARTBEAT_SECONDS": str(args.interval),
               "KIOSK_CENTRAL_ACCESS_LOG": "0", "PYTHONUNBUFFERED": "1"}
        log = open(Path(tmp) / "central.log", "wb")
        serve = ["serve", "--data-dir", str(data), "--port", str(port), "--threads", str(args.threads)]
        launcher = [str(ROOT / "bench" / "sampling_profiler.py"), str(args.profile.resolve())] if args.profile \
            else ["-c", "from central.cli import main; main()"]
        server = subprocess.Popen([sys.executable, *launcher, *serve], stdout=log, stderr=subprocess.STDOUT,
                                  env=env, cwd=ROOT)
        server_ps = psutil.Process(server.pid)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit(f"server did not start; see {Path(tmp) / 'central.log'}")
                time.sleep(0.2)

            ctx = mp.get_context("spawn")
            out: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
            shares = [credentials[i::args.clients] for i in range(args.clients)]
            procs = [ctx.Process(target=_client, args=(url, share, args.interval, args.duration, i,
                                                    max(1, min(args.connections, len(share))), out))
                     for i, share in enumerate(shares)]
            began = time.monotonic()
            server_cpu = sum(server_ps.cpu_times()[:2])
            for proc in procs:
                proc.start()
            results = [out.get() for _ in procs]
            for proc in procs:
                proc.join()
            elapsed = time.monotonic() - began
            server_cpu = sum(server_ps.cpu_times()[:2]) - server_cpu
        finally:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
            log.close()

        engine = make_engine(settings.db_url)
        with engine.connect() as connection:
            stored = connection.exec_driver_sql("SELECT COUNT(*) FROM fleet_beats").scalar() or 0
        engine.dispose()

    ok = sum(r[1] for r in results)
    lost = sum(r[2] for r in results) + max(0, ok - stored)
    latencies = [x for r in results for x in r[3]]
    for i, r in enumerate(results):
        print(f"client {i}: sent={r[0]} ok={r[1]} lost={r[2]} cpu_s={r[4]:.1f}")
    client_cpu = sum(r[4] for r in results)
    print(f"cpu: server={server_cpu:.1f}s ({100 * server_cpu / elapsed:.0f}% of a core, "
          f"{1000 * server_cpu / max(ok, 1):.2f} ms/beat) clients={client_cpu:.1f}s "
          f"({100 * client_cpu / elapsed:.0f}% of a core, {1000 * client_cpu / max(ok, 1):.2f} ms/beat)")
    print(f"answered={ok} stored={stored} elapsed_s={elapsed:.1f} p50_ms={percentile(latencies, 50):.1f} "
          f"p90_ms={percentile(latencies, 90):.1f} max_ms={max(latencies, default=0):.1f}")
    print(f"terminals={args.terminals} beats_per_s={ok / max(elapsed, args.duration):.1f} p99_ms={percentile(latencies, 99):.1f} "
          f"lost={lost}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
