"""The surge benchmark still runs end to end and finds no double booking (behaviour only, never timing)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAST_LINE = re.compile(r"^clients=20 avg_ms=\d+(\.\d+)? p99_ms=\d+(\.\d+)? max_ms=\d+(\.\d+)? "
                       r"bookings_per_s=\d+(\.\d+)? double_bookings=(\d+) sqlite_commit_ratio=\d+(\.\d+)?$")


@pytest.mark.timeout(600)
def test_surge_with_20_clients_prints_the_summary_line_and_no_double_booking() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "surge_booking.py"), "--clients", "20",
                             "--commit-seconds", "0.5"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    last = result.stdout.strip().splitlines()[-1]
    match = LAST_LINE.match(last)
    assert match, last
    assert match.group(5) == "0", result.stdout
