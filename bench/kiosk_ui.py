"""Kiosk UI benchmark: cold start to the home screen, touch-to-next-screen latency, memory over many visits.

    python bench/kiosk_ui.py --visits 200 --simulated 10000

Starts the real ``kiosk-central`` on loopback in a fresh data directory and the simulated devices
(``kiosk_app.simulated``), then measures three things a patient or the hospital's IT notices:

* **cold start**: a fresh interpreter (a child process of this one) builds the real ``Kiosk`` on the simulated
  devices against the running server and shows its window offscreen; the child reports the time from its own
  process start (the kernel's start time, read from /proc: see ``process_started``) to the first paint of the
  home screen with the services' tiles on it. Run ``--cold-runs`` times; median and every run.
* **touch latency**: in this process, ``--visits`` scripted visits through the services (same-day registration
  up to the payment QR and Cancel, outpatient payment up to the payment QR and Cancel, queries through the four
  tabs), clicking the real tiles and buttons of the real window. A touch is timed from just before the simulated
  click to the moment the window's ``render`` of the next screen has returned (the workflow runs on its own
  thread, so the next screen arrives through the ``ViewBridge`` signal; this process waits in a Qt event loop,
  not by polling, so the figure has no sleep granularity in it).
* **memory**: RSS at the home screen after the scripted visits (the warm-up), then after ``--simulated`` more
  visits, and the growth. This process holds the simulated devices and the bench as well as the kiosk (their
  share is printed); the cold starts print the kiosk's own RSS at its first home screen. The server's answers
  for those visits are replayed from what it answered during the scripted visits (a real server takes ~150 ms
  per visit for the payment sandbox alone) and the ID card is handed over the way the reader thread does (the
  reader polls every 0.5 s). One in ``--window-every`` goes through the real window as above; the others are
  headless (``HeadlessVisits``): the same intents into the kiosk's own runner, hub, workflows, journal and
  outbox, with only the drawing skipped.

``touch_p99_ms`` is the p99, over all touches of the scripted visits, of the time to the first screen other
than the one tapped (usually the busy screen when the step calls the server); the time to the screen the step
leads to is printed beside it per step kind.

The last line is machine-readable and stable:
``cold_start_ms=… touch_p99_ms=… rss_start_mb=… rss_end_mb=…``
"""
from __future__ import annotations

import argparse
import copy
import gc
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a plain script from anywhere
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

COLD_MARKER = "home_painted_ms="
PHASES_MARKER = "phases_ms: "


# --- cold start (the child) ---------------------------------------------------------------------------------

def process_started() -> float:
    """This process's start as a ``time.time()`` value, to ~10 ms.

    From /proc: the start in clock ticks since boot (``/proc/self/stat``) against the time since boot now
    (``/proc/uptime``), both on the kernel's boot clock. Not ``psutil.Process().create_time()``: it adds the
    start to the boot time, which Linux gives in whole seconds (``btime``), so it is early by the boot time's
    fraction of a second, up to 1 s, the same for every process until the next boot (``create_time_bias``)."""
    try:
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        now = time.time()
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        return now - (uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):  # not Linux
        import psutil

        return psutil.Process().create_time()


def create_time_bias() -> float:
    """Seconds by which psutil's process start time is early on this machine (see `process_started`); the
    cold-start figures of this benchmark before it measured from /proc carry it."""
    import psutil

    return process_started() - psutil.Process().create_time()


def cold_child(config_path: Path) -> int:
    """Build and show the real kiosk, print the time since this process started when the home screen with its
    tiles is first painted, then stop. Everything the kiosk imports is imported here, after process start, so
    import time is part of the figure (as it is when the terminal boots)."""
    from PySide6.QtCore import QEvent, QObject, QTimer
    from PySide6.QtWidgets import QApplication

    qt_imported = time.time()
    from kiosk_app.app import Kiosk
    from kiosk_app.config import Credentials, KioskConfig

    started = process_started()
    phases = {"qt_imported": (qt_imported - started) * 1000, "imports": (time.time() - started) * 1000}
    raw = json.loads(config_path.read_text())
    config = KioskConfig(credentials=Credentials(**raw["credentials"]), data_dir=Path(raw["data_dir"]),
                         devices=raw["devices"], fullscreen=False)
    app = QApplication.instance() or QApplication([])
    result: dict[str, float] = {}
    phases["qapplication"] = (time.time() - started) * 1000
    kiosk = Kiosk(config, app)
    phases["kiosk_built"] = (time.time() - started) * 1000
    kiosk.window.resize(1920, 1080)
    home = kiosk.window.screens["home"]

    class FirstPaint(QObject):
        """The first paint of the home screen after the hub's home view (with the tiles) was rendered."""

        armed = False

        def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802
            if self.armed and event.type() == QEvent.Type.Paint and "ms" not in result:
                result["ms"] = (time.time() - started) * 1000
                QTimer.singleShot(0, app.quit)
            return False

    painter = FirstPaint()
    home.installEventFilter(painter)

    def on_view(view: Any) -> None:  # connected after the kiosk's own slot, so the window has rendered it
        if view.screen == "home" and view.data.get("services") and not painter.armed:
            painter.armed = True
            home.update()
        if view.screen == "home" and home_view_ready(view) and "tiles_available" not in phases:
            # Not the figure (that is the first paint), but when a patient can actually start: every service
            # whose devices report in is available, e.g. the receipt printer's driver has loaded.
            phases["tiles_available"] = (time.time() - started) * 1000

    kiosk.bridge.changed.connect(on_view)
    QTimer.singleShot(60_000, app.quit)
    kiosk.start(show=True)
    phases["started_shown"] = (time.time() - started) * 1000
    app.exec()
    rss_at_paint = rss_mb()
    wait_for_tiles = time.monotonic() + 15
    while "tiles_available" not in phases and time.monotonic() < wait_for_tiles:
        app.processEvents()
        time.sleep(0.01)
    kiosk.stop()
    if "ms" not in result:
        print("cold start: the home screen was never painted", file=sys.stderr)
        return 1
    print(PHASES_MARKER + " ".join(f"{k}:{v:.0f}" for k, v in phases.items())
          + f"; rss at the painted home screen {rss_at_paint:.0f} MB", flush=True)
    print(f"{COLD_MARKER}{result['ms']:.1f}", flush=True)
    return 0


def cold_starts(runs: int, credentials: Any, devices: dict[str, Any], work: Path) -> list[float]:
    """Each run in a fresh interpreter with a fresh kiosk data directory (empty journal), one after another so
    only one process holds the simulated serial ports."""
    figures = []
    for i in range(runs):
        config = work / f"cold-{i}.json"
        config.write_text(json.dumps({
            "credentials": {"terminal_id": credentials.terminal_id, "secret": credentials.secret,
                            "server_url": credentials.server_url},
            "data_dir": str(work / f"cold-kiosk-{i}"), "devices": devices}))
        done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--cold-child", str(config)],
                              capture_output=True, text=True, timeout=180, cwd=ROOT)
        line = next((ln for ln in done.stdout.splitlines() if ln.startswith(COLD_MARKER)), None)
        if done.returncode != 0 or line is None:
            raise RuntimeError(f"cold start {i} failed ({done.returncode}): {done.stderr[-2000:]}")
        figures.append(float(line[len(COLD_MARKER):]))
        phases = next((ln for ln in done.stdout.splitlines() if ln.startswith(PHASES_MARKER)), "")
        print(f"  cold start {i + 1}: {figures[-1]:.0f} ms to the painted home screen; since process start at "
              f"the end of each phase, ms: {phases[len(PHASES_MARKER):]}", flush=True)
    return figures


# --- the server's answers, recorded and replayed --------------------------------------------------------------

class RecordReplay:
    """Wraps the kiosk's real ``HttpBackend``: records every answer while ``replay`` is off, answers from the
    recording once it is on (a deep copy, so the workflows cannot change the recording). An exact call is
    replayed when it was seen (an order polled by its number), otherwise the last answer of that method (a new
    idempotency key). Methods never recorded still go to the server."""

    def __init__(self, real: Any):
        self._real = real
        self.replay = False
        self._exact: dict[tuple[str, str], Any] = {}
        self._last: dict[str, Any] = {}
        self.replayed = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._real, name)
        if not callable(attr) or name.startswith("_") or name == "close":
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            key = (name, repr((args, sorted(kwargs.items()))))
            if self.replay:
                if key in self._exact:
                    self.replayed += 1
                    return copy.deepcopy(self._exact[key])
                if name in self._last:
                    self.replayed += 1
                    return copy.deepcopy(self._last[name])
            answer = attr(*args, **kwargs)
            if not self.replay:
                self._exact[key] = copy.deepcopy(answer)
                self._last[name] = copy.deepcopy(answer)
            return answer

        return call


# --- driving the window ---------------------------------------------------------------------------------------

class ScreenWaiter:
    """Times from a tap to the render of the next screen. Connected to the bridge after the kiosk's own slot,
    so when it runs, ``KioskWindow.render`` of that view has returned."""

    def __init__(self, app: Any, kiosk: Any):
        from PySide6.QtCore import QEventLoop, QTimer

        self.app = app
        self.kiosk = kiosk
        self.loop = QEventLoop()
        self.timer = QTimer()
        self.timer.setSingleShot(True)
        self.timer.timeout.connect(self.loop.quit)
        self.want: Callable[[Any], bool] | None = None
        self.hit_at: float | None = None
        kiosk.bridge.changed.connect(self._on_view)

    def _on_view(self, view: Any) -> None:
        if self.want is not None and self.hit_at is None and self.want(view):
            self.hit_at = time.perf_counter()
            self.loop.quit()

    def act(self, action: Callable[[], None], want: Callable[[Any], bool], what: str,
            timeout: float = 30.0) -> float:
        """Run ``action`` (a click), wait for a rendered view ``want`` accepts; seconds from just before the
        click to the render."""
        self.want, self.hit_at = want, None
        started = time.perf_counter()
        action()
        if self.hit_at is None:
            self.timer.start(int(timeout * 1000))
            self.loop.exec()
            self.timer.stop()
        self.want = None
        if self.hit_at is None:
            view = self.kiosk.window.view
            raise RuntimeError(f"timed out waiting for {what} (showing {view.screen!r}: {view.message})")
        return self.hit_at - started


@dataclass
class Touches:
    """Latencies in seconds per step kind: ``first`` to the first different screen, ``target`` to the screen
    the step leads to (the same unless a busy screen came between)."""

    first: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    target: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    card: list[float] = field(default_factory=list)  # card laid on the reader .. next screen (not a touch)
    visits: dict[str, int] = field(default_factory=lambda: defaultdict(int))


class Driver:
    """Scripted visits on the real widgets. With ``replayed`` on (the memory phase) the same visits hand the card
    over directly, since the server's answers are replayed too; touches are timed in both phases."""

    def __init__(self, app: Any, kiosk: Any, sims: Any, card: Any):
        self.app, self.kiosk, self.sims, self.card = app, kiosk, sims, card
        self.waiter = ScreenWaiter(app, kiosk)
        self.touches = Touches()
        # What the widgets sent, step by step: the script a headless visit replays (HeadlessVisits).
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.steps: list[Step] = []
        self.scripts: dict[str, list[Step]] = {}
        window_send = kiosk.window.send

        def send(intent: str, **kwargs: Any) -> None:
            self.sent.append((intent, kwargs))
            window_send(intent, **kwargs)

        kiosk.window.send = send  # KioskWindow._send looks it up on every tap
        self.replayed = False
        self.record = True  # off: timings are not kept (so their lists do not count as growth)

    # one touch: timed to the first other screen, and to the screen it leads to
    def tap(self, kind: str, click: Callable[[], None], target: Callable[[Any], bool], what: str) -> None:
        window = self.kiosk.window
        before = window.view
        seen: dict[str, float] = {}

        def want(view: Any) -> bool:
            if "first" not in seen and (view.screen != before.screen or target(view)):
                seen["first"] = time.perf_counter()
            return target(view)

        self.sent = []
        total = self.waiter.act(click, want, what)
        self._step(self.sent)
        if not self.record:
            return
        started = self.waiter.hit_at - total
        self.touches.first[kind].append(seen.get("first", self.waiter.hit_at) - started)
        self.touches.target[kind].append(total)

    def lay_card(self, target: Callable[[Any], bool], what: str) -> None:
        if self.replayed:  # what the reader thread does with a card it read (Kiosk._on_card)
            took = self.waiter.act(lambda: self.kiosk._on_card(self.card), target, what)
        else:
            took = self.waiter.act(lambda: self.sims.id_card.insert(self.card), target, what)
            self.sims.id_card.remove()  # the patient takes the card back, or the reader keeps reading it
        self._step([("card_read", {"card": self.card})])
        if self.record:
            self.touches.card.append(took)

    def _step(self, intents: list[tuple[str, dict[str, Any]]]) -> None:
        view = self.kiosk.window.view
        self.steps.append(Step(list(intents), view.screen, view.data.get("tab") if view.screen == "records" else None))

    def visit(self, flow: str) -> None:
        """One visit of ``flow`` on the real window; its steps become that flow's headless script."""
        self.steps = []
        getattr(self, flow)()
        self.scripts[flow] = self.steps
        self.home()

    def home(self) -> None:
        """Back at the home screen with the tiles drawn (the hub's home view, not the window's blank first)."""
        from kiosk_app.scripted import wait_until

        wait_until(self.app, lambda: self.kiosk.window.view.screen == "home"
                   and bool(self.kiosk.window.view.data.get("services")), 30, "the home screen")

    # the visits
    def registration(self) -> None:
        from kiosk_app.scripted import click_button, click_tile, visible_tiles

        w = self.kiosk.window
        self.tap("home>registration", lambda: click_tile(w, "当日挂号"), screen("insert_card"), "the card prompt")
        self.lay_card(screen("departments"), "the departments")
        names = [text for _tile, text in visible_tiles(w)]
        dept = next((t.split()[0] for t in names if "急诊" not in t), "")
        self.tap("department", lambda: click_tile(w, dept), screen("doctors"), "the doctors")
        self.tap("doctor", lambda: click_tile(w), screen("slots"), "the slots")
        self.tap("slot", lambda: click_tile(w), screen("confirm"), "the confirmation")
        self.tap("confirm>payment_qr", lambda: click_button(w, "确认挂号并支付"), screen("payment", "error"),
                 "the payment QR")
        if w.view.screen == "error":
            raise RuntimeError(f"registration failed: {w.view.message}")
        self.tap("cancel_payment", lambda: click_button(w, "取消支付"), home_view, "home after cancelling")
        self.touches.visits["registration"] += 1

    def outpatient_payment(self) -> None:
        from kiosk_app.scripted import click_button, click_tile

        w = self.kiosk.window
        self.tap("home>outpatient_payment", lambda: click_tile(w, "门诊缴费"), screen("insert_card"),
                 "the card prompt")
        self.lay_card(screen("bills", "bill_detail", "error"), "the bills")
        if w.view.screen == "bills":
            if not w.view.data.get("bills"):
                raise RuntimeError(f"the patient has no bill to pay: {w.view.message}")
            self.tap("bill", lambda: click_tile(w), screen("bill_detail"), "the bill's items")
        if w.view.screen != "bill_detail":
            raise RuntimeError(f"outpatient payment failed: {w.view.message}")
        self.tap("bill>checkout", lambda: click_button(w, "去缴费"), screen("bill_checkout"), "the checkout")
        self.tap("checkout>payment_qr", lambda: click_button(w, "自费支付"), screen("bill_payment", "error"),
                 "the payment QR")
        if w.view.screen == "error":
            raise RuntimeError(f"bill payment failed: {w.view.message}")
        self.tap("cancel_payment", lambda: click_button(w, "取消支付"), home_view, "home after cancelling")
        self.touches.visits["outpatient_payment"] += 1

    def queries(self) -> None:
        from kiosk_app.scripted import click_button, click_tile

        w = self.kiosk.window
        self.tap("home>queries", lambda: click_tile(w, "信息查询"), screen("insert_card"), "the card prompt")
        self.lay_card(screen("records", "error"), "the records")
        if w.view.screen != "records":
            raise RuntimeError(f"queries failed: {w.view.message}")
        for tab_id, label_zh in (("payments", "缴费记录"), ("bills", "费用明细"), ("queue", "排队进度"),
                                 ("registrations", "挂号记录")):
            self.tap("tab", lambda: click_button(w, label_zh),
                     lambda v, t=tab_id: v.screen == "records" and v.data.get("tab") == t, f"the {tab_id} tab")
        self.tap("cancel", lambda: click_button(w, "取消"), home_view, "home after cancelling")
        self.touches.visits["queries"] += 1


@dataclass
class Step:
    """One step of a recorded visit: the intents a tap (or the card reader) sent, and the screen it led to."""

    intents: list[tuple[str, dict[str, Any]]]
    screen: str
    tab: str | None = None

    def reached(self, view: Any) -> bool:
        if self.screen == "home":
            return home_view(view)
        return view.screen == self.screen and (self.tab is None or view.data.get("tab") == self.tab)


class HeadlessVisits:
    """Visits without the window: the recorded intents go to the kiosk's own runner, as the widgets and the card
    reader post them, and the hub's views are caught before the bridge (``ServiceHub.publish`` is looked up on
    every publish). Everything behind the window runs: runner thread, hub, workflows, journal, outbox and its
    delivery to the server, device threads; only the drawing is skipped, which the window visits between them
    cover."""

    def __init__(self, kiosk: Any, scripts: dict[str, list[Step]]):
        import threading

        self.kiosk = kiosk
        self.scripts = scripts
        self.changed = threading.Condition()
        self.view: Any = None
        self.step: Step | None = None  # the step waited for; None once a published view reached it
        self.bridge_publish = kiosk.hub.publish
        self.visits = 0

    def _capture(self, view: Any) -> None:  # on the workflow thread
        with self.changed:
            self.view = view
            if self.step is not None and self.step.reached(view):
                self.step = None  # reached: a view published right after it cannot hide it
            self.changed.notify_all()

    def __enter__(self) -> "HeadlessVisits":
        self.kiosk.hub.publish = self._capture
        return self

    def __exit__(self, *exc: Any) -> None:
        self.kiosk.hub.publish = self.bridge_publish
        self.bridge_publish(self.kiosk.hub.home_view())  # the window shows the home screen as it is now

    def visit(self, flow: str) -> None:
        for step in self.scripts[flow]:
            with self.changed:
                self.step = step
                for intent, kwargs in step.intents:
                    self.kiosk.runner.post(intent, **kwargs)
                if not self.changed.wait_for(lambda: self.step is None, 30):
                    shown = self.view.screen if self.view is not None else None
                    raise RuntimeError(f"headless {flow}: no {step.screen!r} screen (last view {shown!r})")
        self.visits += 1


def screen(*names: str) -> Callable[[Any], bool]:
    return lambda view: view.screen in names


def home_view(view: Any) -> bool:
    return view.screen == "home" and bool(view.data.get("services"))


def home_view_ready(view: Any) -> bool:
    """The home screen with every service of the benchmark's visits available (their devices reported in)."""
    return home_view(view) and all(t["available"] for t in view.data["services"] if t["id"] in FLOWS)


FLOWS = ("registration", "outpatient_payment", "queries")
#: Simulated visits whose touches are timed: enough for percentiles, few enough that the timings' own lists
#: add nothing measurable to the memory figure.
TIMED_SIMULATED = 600
#: Extra references pinned on None/True/False (see pin_singletons): far more than 10 000 visits lose.
PINNED_REFERENCES = 2_000_000


# --- figures ----------------------------------------------------------------------------------------------------

def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (as in the other benchmarks)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def settle(app: Any, seconds: float = 0.5) -> None:
    """Collect garbage and let queued events run, so an RSS figure is not a moment inside a visit."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.01)
    gc.collect()


def report(touches: Touches, title: str) -> float:
    """Print p50/p99/max per step kind; returns p99 over all touches (to the first other screen), in ms."""
    def row(name: str, values: list[float]) -> str:
        return f"n={len(values):<5} {figures(values)}"

    def figures(values: list[float]) -> str:
        return (f"p50={percentile(values, .5) * 1000:7.1f} p99={percentile(values, .99) * 1000:7.1f}"
                f" max={max(values) * 1000:7.1f}")

    print(f"touch .. next screen rendered, {title} (first other screen | the screen the step leads to), ms:")
    for kind in touches.first:
        print(f"  {kind:<26} {row(kind, touches.first[kind])}  |  {figures(touches.target[kind])}")
    if touches.card:
        print(f"  {'card read (not a touch)':<26} {row('card', touches.card)}")
    all_first = [x for v in touches.first.values() for x in v]
    all_target = [x for v in touches.target.values() for x in v]
    print(f"  {'all touches':<26} {row('all', all_first)}  |  {figures(all_target)}", flush=True)
    return percentile(all_first, .99) * 1000


def demo_patient() -> dict[str, Any]:
    """The seeded demo patient, read in a separate interpreter: ``central.his.seed`` imports the server's
    modules (SQLAlchemy and the rest, ~100 MB of RSS), which would otherwise count as the kiosk's memory."""
    done = subprocess.run([sys.executable, "-c", "import json; from central.his.seed import DEMO_PATIENT; "
                           "print(json.dumps(DEMO_PATIENT))"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"cannot read the demo patient: {done.stderr[-2000:]}")
    return json.loads(done.stdout)


def pin_singletons(references: int = PINNED_REFERENCES) -> None:
    """Give None, True and False ``references`` extra references that are never released.

    Why: with PySide6 6.12 on Python 3.11, every ``Signal.emit()`` from Python loses a reference to the bool it
    returns, and a window visit loses some hundred references to None; after a few hundred visits through the
    window the interpreter aborts (``Fatal Python error: none_dealloc`` / ``bool_dealloc``). Python 3.12 makes
    these objects immortal, which is what this imitates, so the benchmark can measure what it is for; the lost
    references are still counted and printed (``refcount drift``), since the kiosk itself has no such crutch."""
    import ctypes

    incref = ctypes.pythonapi.Py_IncRef
    incref.argtypes = [ctypes.py_object]
    for obj in (None, True, False):
        for _ in range(references):
            incref(obj)


def singleton_refs() -> tuple[int, int]:
    return sys.getrefcount(None), sys.getrefcount(True)


# --- the run ------------------------------------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--visits", type=int, default=200, help="scripted, timed visits on the real server (default 200)")
    p.add_argument("--simulated", type=int, default=10_000,
                   help="visits with replayed server answers for the memory figure (default 10000)")
    p.add_argument("--window-every", type=int, default=10,
                   help="of the simulated visits, one in this many goes through the window (default 10)")
    p.add_argument("--cold-runs", type=int, default=5, help="cold starts, each a fresh process (default 5)")
    p.add_argument("--keep", action="store_true", help="keep the work directory (server log and database)")
    p.add_argument("--cold-child", type=Path, help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.cold_child:
        return cold_child(args.cold_child)
    if args.visits < len(FLOWS) or args.simulated < 0 or args.cold_runs < 1 or args.window_every < 1:
        raise SystemExit(f"--visits must be at least {len(FLOWS)} (one of each flow, whose steps the simulated "
                         "visits replay), --cold-runs and --window-every at least 1, --simulated at least 0")

    from PySide6.QtCore import qInstallMessageHandler
    from PySide6.QtWidgets import QApplication

    import kiosk_app.app as kiosk_app_module
    from kiosk_app.config import KioskConfig
    from kiosk_app.local_central import LocalCentral
    from kiosk_app.simulated import SimulatedDevices, card_for

    qInstallMessageHandler(lambda _kind, _context, message: None if "propagateSizeHints" in message
                           else print(f"qt: {message}", file=sys.stderr))
    work = Path(tempfile.mkdtemp(prefix="kiosk-ui-bench-"))
    central = sims = kiosk = None
    try:
        t0 = time.perf_counter()
        central = LocalCentral(work / "central").start(timeout=120)
        credentials = central.provision("KIOSK-BENCH")
        sims = SimulatedDevices(work / "devices")
        devices = sims.start()
        print(f"setup: server and simulated devices up in {time.perf_counter() - t0:.1f} s", flush=True)

        cold = cold_starts(args.cold_runs, credentials, devices, work)
        print(f"cold start (process start .. home screen painted), {len(cold)} runs: "
              + ", ".join(f"{ms:.0f}" for ms in cold) + f" ms; median {statistics.median(cold):.0f} ms "
              f"(process start from /proc; psutil's create_time would add {create_time_bias() * 1000:.0f} ms "
              "on this machine)", flush=True)

        if sys.version_info < (3, 12):
            pin_singletons()
        app = QApplication.instance() or QApplication([])
        card = card_for(demo_patient())
        rss_before_kiosk = rss_mb()
        real_backend = kiosk_app_module.HttpBackend
        recorder: list[RecordReplay] = []

        def recording_backend(creds: Any) -> RecordReplay:
            recorder.append(RecordReplay(real_backend(creds)))
            return recorder[0]

        kiosk_app_module.HttpBackend = recording_backend  # type: ignore[assignment]  (this process only)
        try:
            config = KioskConfig(credentials=credentials, data_dir=work / "kiosk", devices=devices,
                                 fullscreen=False)
            kiosk = kiosk_app_module.Kiosk(config, app)
        finally:
            kiosk_app_module.HttpBackend = real_backend  # type: ignore[assignment]
        kiosk.window.resize(1920, 1080)
        kiosk.start(show=True)
        driver = Driver(app, kiosk, sims, card)
        driver.home()
        from kiosk_app.scripted import wait_until
        wait_until(app, lambda: home_view_ready(kiosk.window.view), 30, "the services to be available")
        settle(app)
        rss_boot = rss_mb()

        t1 = time.perf_counter()
        refs0 = singleton_refs()
        for i in range(args.visits):
            driver.visit(FLOWS[i % len(FLOWS)])
        scripted_s = time.perf_counter() - t1
        settle(app)
        lost = [(before - after) / args.visits for before, after in zip(refs0, singleton_refs())]
        touches = driver.touches
        print(f"scripted visits: {sum(touches.visits.values())} in {scripted_s:.1f} s ("
              + ", ".join(f"{k}={v}" for k, v in touches.visits.items()) + ")", flush=True)
        touch_p99 = report(touches, "real server")
        print(f"refcount drift over the scripted visits: None {lost[0]:+.0f}, True {lost[1]:+.0f} references lost "
              f"per visit{' (pinned, see pin_singletons)' if sys.version_info < (3, 12) else ''}", flush=True)

        settle(app)
        rss_start = rss_mb()
        backend = recorder[0]
        backend.replay = True
        driver.replayed = True
        driver.touches = Touches()
        t2 = time.perf_counter()
        headless = HeadlessVisits(kiosk, driver.scripts)
        checkpoints = {args.simulated * k // 4 for k in (1, 2, 3)}
        window_visits = 0
        i = 0
        while i < args.simulated:
            # One visit in every --window-every through the window (timed, the first TIMED_SIMULATED of them),
            # the rest headless: the same intents into the same runner, the drawing skipped.
            driver.record = window_visits < TIMED_SIMULATED
            driver.visit(FLOWS[i % len(FLOWS)])
            window_visits += 1
            i += 1
            with headless:
                while i < args.simulated and i % args.window_every:
                    headless.visit(FLOWS[i % len(FLOWS)])
                    i += 1
                    if i in checkpoints:
                        print(f"  simulated {i}: rss {rss_mb():.1f} MB, {time.perf_counter() - t2:.0f} s",
                              flush=True)
            driver.home()
        simulated_s = time.perf_counter() - t2
        settle(app)
        rss_end = rss_mb()
        print(f"simulated visits (replayed server answers): {window_visits + headless.visits} in {simulated_s:.1f} s, "
              f"{window_visits} through the window (" + ", ".join(f"{k}={v}" for k, v in driver.touches.visits.items())
              + f"), {headless.visits} headless; {backend.replayed} answers replayed", flush=True)
        if driver.touches.first:
            report(driver.touches, f"replayed server answers, the first {min(window_visits, TIMED_SIMULATED)} "
                                   "window visits among the simulated ones")
        growth = (rss_end - rss_start) / rss_start * 100 if rss_start else float("nan")
        print(f"rss: {rss_before_kiosk:.1f} MB before the kiosk was built (its imports and Qt, the bench, "
              f"the simulated devices), {rss_boot:.1f} MB at the first home screen, "
              f"{rss_start:.1f} MB after the scripted visits, "
              f"{rss_end:.1f} MB after the simulated ones ({growth:+.1f} %); journal "
              f"{(work / 'kiosk' / 'journal.db').stat().st_size / 2**20:.1f} MB on disk, outbox depth "
              f"{kiosk.outbox.depth()}", flush=True)
    finally:
        if kiosk:
            kiosk.stop()
        if sims:
            sims.stop()
        if central:
            central.stop()
        if args.keep:
            print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    print(f"cold_start_ms={statistics.median(cold):.0f} touch_p99_ms={touch_p99:.1f} rss_start_mb={rss_start:.1f} "
          f"rss_end_mb={rss_end:.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
