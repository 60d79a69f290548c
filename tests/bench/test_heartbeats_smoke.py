"""bench/heartbeats.py runs end to end on a tiny fleet and prints its figures in the agreed shape."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_heartbeat_bench_runs_tiny() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "heartbeats.py"), "--terminals", "5",
                           "--interval", "1", "--duration", "3"], capture_output=True, text=True, timeout=240,
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    last = done.stdout.strip().splitlines()[-1]
    match = re.fullmatch(r"terminals=5 beats_per_s=([0-9.]+) p99_ms=([0-9.]+) lost=(\d+)", last)
    assert match, last
    assert float(match.group(1)) > 0 and match.group(3) == "0"
    stored = re.search(r"answered=(\d+) stored=(\d+)", done.stdout)
    assert stored and stored.group(1) == stored.group(2) and int(stored.group(1)) >= 5
