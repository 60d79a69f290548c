"""bench/kiosk_ui.py runs end to end, tiny, and prints its figures in the agreed shape (behaviour only, never
timing: the figures are the benchmark's to print, not this test's to judge)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NUMBER = r"\d+(?:\.\d+)?"
LAST_LINE = re.compile(rf"cold_start_ms={NUMBER} touch_p99_ms={NUMBER} rss_start_mb={NUMBER} rss_end_mb={NUMBER}")


@pytest.mark.timeout(600)
def test_kiosk_ui_bench_runs_tiny_and_every_visit_completes() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "kiosk_ui.py"), "--visits", "3", "--simulated", "20",
                           "--window-every", "5", "--cold-runs", "1"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert LAST_LINE.fullmatch(lines[-1]), lines[-1]
    # One visit of each service on the real server, through the real window ...
    assert "scripted visits: 3 in" in done.stdout
    assert "registration=1, outpatient_payment=1, queries=1" in done.stdout
    # ... and all 20 simulated ones, 4 of them through the window.
    simulated = re.search(r"simulated visits \(replayed server answers\): (\d+) in .*?, (\d+) through the window "
                          r".*?, (\d+) headless", done.stdout)
    assert simulated, done.stdout
    assert simulated.groups() == ("20", "4", "16")
    assert re.search(r"cold start 1: \d+ ms to the painted home screen", done.stdout)
    # The child's phases and its own RSS (the kiosk alone), and this process's share without the kiosk.
    assert re.search(r"imports:\d+ .*kiosk_built:\d+ .*; rss at the painted home screen \d+ MB", done.stdout)
    assert re.search(r"rss: \d+\.\d MB before the kiosk was built", done.stdout)
