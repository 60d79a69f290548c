"""Run ``kiosk-central`` under a small sampling profiler that sees every thread.

    python bench/sampling_profiler.py OUT.txt serve --data-dir DIR --port P

Why not cProfile: the server answers sync routes on a thread pool and the sandbox on the event loop thread, and
cProfile only sees the thread that enabled it; py-spy needs ptrace rights a container rarely has. Sampling
``sys._current_frames()`` every few milliseconds is crude but shows where the time of all threads goes. Each
sample is weighted by the CPU time its thread used since the previous sample (Linux ``/proc/self/task``), so a
thread blocked in a socket read or in SQLite's busy handler counts for nothing in the CPU profile; a second,
unweighted "wall" profile shows where threads wait. The report is written at exit.
"""
from __future__ import annotations

import atexit
import collections
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

#: Frames at the top of a stack that mean "this thread is waiting for work, not working".
IDLE = {("threading.py", "wait"), ("queue.py", "get"), ("selectors.py", "select"), ("thread.py", "_worker"),
        ("threading.py", "_wait_for_tstate_lock")}


class Sampler:
    def __init__(self, interval: float = 0.01):
        self.interval = interval
        self.inclusive: collections.Counter[str] = collections.Counter()
        self.self_time: collections.Counter[str] = collections.Counter()
        self.stacks: collections.Counter[str] = collections.Counter()
        self.wall_inclusive: collections.Counter[str] = collections.Counter()
        self.samples = 0
        self.cpu_ticks = 0
        self._last_cpu: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        me = threading.get_ident()
        while not self._stop.wait(self.interval):
            native = {t.ident: t.native_id for t in threading.enumerate()}
            for ident, frame in sys._current_frames().items():
                if ident != me:
                    self._record(frame, self._cpu_delta(native.get(ident)))

    def _cpu_delta(self, native_id: int | None) -> int:
        """Clock ticks the thread used since the last sample."""
        if native_id is None:
            return 0
        try:
            fields = Path(f"/proc/self/task/{native_id}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0
        ticks = int(fields[11]) + int(fields[12])
        delta = ticks - self._last_cpu.get(native_id, ticks)
        self._last_cpu[native_id] = ticks
        return delta

    def _record(self, frame: FrameType, ticks: int) -> None:
        names: list[str] = []
        f: FrameType | None = frame
        while f is not None:
            code = f.f_code
            names.append(f"{Path(code.co_filename).name}:{code.co_firstlineno}:{code.co_name}")
            f = f.f_back
        top = frame.f_code
        if (Path(top.co_filename).name, top.co_name) in IDLE:
            return
        self.samples += 1
        for name in set(names):
            self.wall_inclusive[name] += 1
        if ticks <= 0:
            return
        self.cpu_ticks += ticks
        self.self_time[names[0]] += ticks
        for name in set(names):
            self.inclusive[name] += ticks
        self.stacks[" <- ".join(names[:10])] += ticks

    def report(self, out: Path) -> None:
        self._stop.set()
        total = max(self.cpu_ticks, 1)
        lines = [f"{self.samples} non-idle thread samples every {self.interval * 1000:.0f} ms; "
                 f"{self.cpu_ticks / os.sysconf('SC_CLK_TCK'):.1f} CPU-s attributed", "", "CPU inclusive:"]
        lines += [f"{n / total * 100:6.1f}%  {name}" for name, n in self.inclusive.most_common(70)]
        wall = max(self.samples, 1)
        lines += ["", "wall inclusive (where non-idle threads are, running or blocked):"]
        lines += [f"{n / wall * 100:6.1f}%  {name}" for name, n in self.wall_inclusive.most_common(50)]
        lines += ["", "CPU self:"]
        lines += [f"{n / total * 100:6.1f}%  {name}" for name, n in self.self_time.most_common(50)]
        lines += ["", "CPU top stacks:"]
        lines += [f"{n / total * 100:6.1f}%  {stack}" for stack, n in self.stacks.most_common(40)]
        out.write_text("\n".join(lines) + "\n")


def main() -> None:
    out = Path(sys.argv[1])
    sampler = Sampler()
    sampler.start()
    atexit.register(sampler.report, out)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # run atexit on the terminate LocalCentral sends
    from central.cli import main as central_main

    central_main(sys.argv[2:])


if __name__ == "__main__":
    root = str(Path(__file__).resolve().parent.parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    main()
