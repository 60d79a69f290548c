"""A private CUPS server with a real cups-pdf queue, for tests and for `kiosk diag --simulated`.

Why private: a kiosk build machine or CI runner has no systemd and usually no running cupsd, and where one
does run it belongs to someone else. So the testbed runs its own `cupsd -f` with its own ServerRoot, spool,
state (pid file), logs and a domain socket in one temporary directory, and stops it by its own pid. Nothing
of the system CUPS is read or changed, except one file: cups-pdf reads its configuration from a path
compiled into it (/etc/cups), so a private output directory needs an instance file
``/etc/cups/cups-pdf-<instance>.conf`` selected by the device URI ``cups-pdf:/<instance>``. That file is
removed on stop, and stale ones left by a killed testbed are removed on the next start.

Faults cannot be provoked on a PDF writer, so the testbed adds queues on a tiny backend script
(``kioskfault``) that reports printer-state-reasons through ``STATE:`` lines on stderr, the same channel
every real CUPS backend uses for media-empty, jams and open covers. The driver under test therefore sees
reasons arrive the way they do in a hospital, not values written into the scheduler behind its back.
"""
from __future__ import annotations

import glob
import logging
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

DEFAULT_QUEUE = "KioskPDF"
CUPS_PDF_CONFIG_DIR = Path("/etc/cups")  # compiled into Debian's cups-pdf; cannot be redirected
CUPS_PDF_PPD_CANDIDATES = ("/usr/share/ppd/cups-pdf/CUPS-PDF_opt.ppd",
                           "/usr/share/cups/model/CUPS-PDF_opt.ppd")
CUPSD_CANDIDATES = ("/usr/sbin/cupsd", "/usr/local/sbin/cupsd")
SERVERBIN_CANDIDATES = ("/usr/lib/cups", "/usr/libexec/cups", "/usr/local/lib/cups")
DATADIR_CANDIDATES = ("/usr/share/cups", "/usr/local/share/cups")
INSTANCE_PREFIX = "kiosktb"
FAULT_SCHEME = "kioskfault"
FaultAction = Literal["hang", "fail", "ok"]

# The fault backend. Its device URI says what to report and what to do next:
#   kioskfault:/media-empty-error?hang  report the reason, then wait like a printer waiting for paper
#   kioskfault:/none?fail               fail the job (exit 1; with error policy abort-job CUPS aborts it)
#   kioskfault:/media-low-report?ok     report the reason, swallow the document, succeed
# Written in sh so it needs nothing but /bin/sh; installed 0755 so cupsd runs it as the unprivileged user.
FAULT_BACKEND = r"""#!/bin/sh
# kioskfault: CUPS backend that reports printer-state-reasons on demand (kiosk testbed).
if [ $# -eq 0 ]; then
    echo 'direct kioskfault "Kiosk" "Kiosk fault injection"'
    exit 0
fi
spec=${DEVICE_URI#*:/}
reasons=${spec%%\?*}
action=${spec#*\?}
[ "$action" = "$spec" ] && action=ok
if [ -n "$reasons" ] && [ "$reasons" != none ]; then
    for reason in $(echo "$reasons" | tr ',' ' '); do
        echo "STATE: +$reason" >&2
    done
    echo "INFO: kioskfault reporting $reasons" >&2
fi
case "$action" in
    hang)
        trap 'exit 0' TERM INT
        while :; do sleep 1; done
        ;;
    fail)
        echo "ERROR: kioskfault: simulated printer failure" >&2
        exit 1
        ;;
    *)
        if [ $# -ge 6 ]; then cat "$6" >/dev/null; else cat >/dev/null; fi
        exit 0
        ;;
esac
"""


def _die_with_parent() -> None:
    """Runs in the child before exec: ask Linux to SIGTERM cupsd when the process that started it dies."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux or no libc: stop() still ends cupsd on every normal exit


class TestbedError(RuntimeError):
    """The testbed could not be set up; the message names the missing package or the failing step."""


TestbedError.__test__ = False  # type: ignore[attr-defined]


def _first_existing(candidates: tuple[str, ...], what: str, package: str) -> Path:
    for candidate in candidates:
        if Path(candidate).exists():
            return Path(candidate)
    raise TestbedError(f"{what} not found (install the Debian package {package!r}); tried: "
                       f"{', '.join(candidates)}")


def _cups_config(flag: str) -> Path | None:
    """Ask cups-config (libcups2-dev) where this CUPS build keeps things; None when it is not installed."""
    exe = shutil.which("cups-config")
    if not exe:
        return None
    try:
        out = subprocess.run([exe, flag], capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    path = Path(out.strip())
    return path if out.strip() and path.is_dir() else None


class CupsTestbed:
    """One private cupsd with a cups-pdf queue; `start()` returns the queue name, `stop()` undoes it all.

    `server` is the domain socket to hand to `CupsReportPrinter(server=...)` (or `lpstat -h`); `port`
    additionally listens on 127.0.0.1 for tools that only speak TCP.
    """

    __test__ = False  # not a pytest test class despite the name

    def __init__(self, queue: str = DEFAULT_QUEUE, port: int | None = None, start_timeout: float = 20.0,
                 keep_files: bool = False, die_with_parent: bool = True) -> None:
        self.queue = queue
        self.port = port
        self.start_timeout = start_timeout
        self.keep_files = keep_files
        # A killed test run must not leave a cupsd behind. Linux ties this to the *thread* that starts
        # cupsd: a caller that starts the testbed from a short-lived thread passes False.
        self.die_with_parent = die_with_parent
        self.base_dir: Path | None = None
        self.instance = f"{INSTANCE_PREFIX}{os.getpid()}{secrets.token_hex(3)}"
        self._process: subprocess.Popen[bytes] | None = None
        self._pdf_conf: Path | None = None

    # --- paths -------------------------------------------------------------------------------------------

    def _dir(self, name: str) -> Path:
        if self.base_dir is None:
            raise TestbedError("the testbed is not started")
        return self.base_dir / name

    @property
    def server(self) -> str:
        """The private scheduler's domain socket: the value for `CupsReportPrinter(server=...)`."""
        return str(self._dir("cups.sock"))

    @property
    def output_dir(self) -> Path:
        """Where cups-pdf writes each printed job (a private directory, one file per job)."""
        return self._dir("pdf-out")

    @property
    def error_log(self) -> Path:
        return self._dir("log") / "error_log"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # --- life cycle --------------------------------------------------------------------------------------

    def __enter__(self) -> "CupsTestbed":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> str:
        """Start cupsd, wait until it answers, add the cups-pdf queue; returns the queue name."""
        if self.running:
            return self.queue
        if os.geteuid() != 0:
            raise TestbedError("the CUPS testbed must run as root: cupsd runs the cups-pdf backend as root "
                               "and cups-pdf reads its configuration from /etc/cups")
        cupsd = Path(shutil.which("cupsd") or _first_existing(CUPSD_CANDIDATES, "cupsd", "cups"))
        system_bin = _cups_config("--serverbin") or _first_existing(SERVERBIN_CANDIDATES, "CUPS ServerBin",
                                                                   "cups")
        data_dir = _cups_config("--datadir") or _first_existing(DATADIR_CANDIDATES, "CUPS DataDir", "cups")
        if not (system_bin / "backend" / "cups-pdf").exists():
            raise TestbedError(f"the cups-pdf backend is missing from {system_bin / 'backend'} (install the "
                               "Debian package 'printer-driver-cups-pdf')")
        _first_existing(CUPS_PDF_PPD_CANDIDATES, "the cups-pdf PPD", "printer-driver-cups-pdf")
        self._remove_stale_instances()

        self.base_dir = Path(tempfile.mkdtemp(prefix="kiosk-cups-"))
        try:
            self._write_config(system_bin, data_dir)
            self._launch(cupsd)
            self.add_pdf_queue(self.queue)
            log.info("CUPS testbed: cupsd pid %s on %s, queue %s, output %s", self.pid, self.server,
                     self.queue, self.output_dir)
        except BaseException:
            self.stop()
            raise
        return self.queue

    def stop(self) -> None:
        """Stop our cupsd by its own pid and remove everything the testbed created."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            log.info("CUPS testbed: stopping cupsd pid %s", process.pid)
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        if self._pdf_conf is not None:
            self._pdf_conf.unlink(missing_ok=True)
            self._pdf_conf = None
        if self.base_dir is not None and not self.keep_files:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            self.base_dir = None

    def _write_config(self, system_bin: Path, data_dir: Path) -> None:
        base = self._dir("")
        # Filters run as the unprivileged CUPS user and must reach ServerBin through this directory.
        base.chmod(0o755)
        for name in ("etc", "spool", "cache", "state", "log", "bin", "bin/backend", "pdf-out",
                     "pdf-spool"):
            (base / name).mkdir(mode=0o755, exist_ok=True)
        self._link_serverbin(system_bin, base / "bin")

        listen = [f"Listen {self.server}"]
        if self.port:
            listen.append(f"Listen 127.0.0.1:{self.port}")
        (base / "etc" / "cupsd.conf").write_text("\n".join([
            "# private cupsd for the kiosk report printer testbed",
            "LogLevel info",
            "MaxLogSize 0",
            *listen,
            "Browsing No",
            "BrowseLocalProtocols none",
            "DefaultShared No",
            "WebInterface No",
            "DefaultAuthType Basic",
            "PreserveJobHistory Yes",
            "JobRetryInterval 5",
            "<Location />",
            "  Order allow,deny",
            "  Allow all",
            "</Location>",
            "<Policy default>",
            "  JobPrivateAccess all",
            "  JobPrivateValues none",
            "  SubscriptionPrivateAccess all",
            "  SubscriptionPrivateValues none",
            "  <Limit All>",
            "    Order deny,allow",
            "  </Limit>",
            "</Policy>",
            "",
        ]))
        (base / "etc" / "cups-files.conf").write_text("\n".join([
            f"ServerRoot {base / 'etc'}",
            f"RequestRoot {base / 'spool'}",
            f"CacheDir {base / 'cache'}",
            f"StateDir {base / 'state'}",
            # no TempDir: cupsd then uses RequestRoot/tmp and gives it the permissions filters need
            f"ServerBin {base / 'bin'}",
            f"DataDir {data_dir}",
            f"ErrorLog {base / 'log' / 'error_log'}",
            f"AccessLog {base / 'log' / 'access_log'}",
            f"PageLog {base / 'log' / 'page_log'}",
            f"Printcap {base / 'state' / 'printcap'}",
            "SystemGroup root",
            "FileDevice No",
            "",
        ]))
        # cups-pdf instance configuration: private output, spool and log directories.
        self._pdf_conf = CUPS_PDF_CONFIG_DIR / f"cups-pdf-{self.instance}.conf"
        self._pdf_conf.write_text("\n".join([
            "# kiosk CUPS testbed instance; removed when the testbed stops",
            f"Out {self.output_dir}",
            f"AnonDirName {self.output_dir}",
            f"Spool {base / 'pdf-spool'}",
            "Grp root",
            "Label 2",  # file names carry the job id, so a test finds its own job's output
            "TitlePref 0",
            "DecodeHexStrings 1",
            "",
        ]))

    def _link_serverbin(self, system_bin: Path, private_bin: Path) -> None:
        """Mirror the system ServerBin by symlinks, so the private backend directory can add kioskfault."""
        for entry in system_bin.iterdir():
            if entry.name == "backend":
                continue
            (private_bin / entry.name).symlink_to(entry.resolve())
        for backend in (system_bin / "backend").iterdir():
            target = backend.resolve()
            if target.exists():
                (private_bin / "backend" / backend.name).symlink_to(target)
        script = private_bin / "backend" / FAULT_SCHEME
        script.write_text(FAULT_BACKEND)
        script.chmod(0o755)

    def _launch(self, cupsd: Path) -> None:
        etc = self._dir("etc")
        check = subprocess.run([str(cupsd), "-t", "-c", str(etc / "cupsd.conf"), "-s",
                                str(etc / "cups-files.conf")], capture_output=True, text=True, timeout=30)
        if check.returncode != 0:
            raise TestbedError(f"cupsd rejected the testbed configuration: {check.stderr or check.stdout}")
        self._process = subprocess.Popen(
            [str(cupsd), "-f", "-c", str(etc / "cupsd.conf"), "-s", str(etc / "cups-files.conf")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C in the test terminal must not reach cupsd before stop()
            preexec_fn=_die_with_parent if self.die_with_parent else None)
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self._process.poll() is not None:
                raise TestbedError(f"cupsd exited with status {self._process.returncode} during start-up; "
                                   f"its log says: {self._log_tail()}")
            try:
                self.connection().getPrinters()
                return
            except RuntimeError:
                pass
            if time.monotonic() > deadline:
                raise TestbedError(f"cupsd did not answer on {self.server} within {self.start_timeout:.0f} s; "
                                   f"its log says: {self._log_tail()}")
            time.sleep(0.1)

    def _log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.error_log.read_text(errors="replace").splitlines()[-lines:]) or "(empty)"
        except OSError:
            return "(no log)"

    @staticmethod
    def _remove_stale_instances() -> None:
        """Delete cups-pdf instance files whose testbed directory is gone (a testbed that was killed)."""
        for conf in glob.glob(str(CUPS_PDF_CONFIG_DIR / f"cups-pdf-{INSTANCE_PREFIX}*.conf")):
            out = None
            try:
                for line in Path(conf).read_text().splitlines():
                    if line.startswith("Out "):
                        out = line[4:].strip()
            except OSError:
                continue
            if out is None or not Path(out).exists():
                Path(conf).unlink(missing_ok=True)

    # --- queues and faults -------------------------------------------------------------------------------

    def connection(self):  # type: ignore[no-untyped-def]  # cups.Connection; pycups ships no stubs
        import cups  # imported late: `kiosk diag` can report a missing pycups instead of crashing

        return cups.Connection(host=self.server)

    def add_pdf_queue(self, name: str) -> str:
        """The equivalent of `lpadmin -p NAME -E -v cups-pdf:/ -P CUPS-PDF_opt.ppd`, with private output."""
        ppd = _first_existing(CUPS_PDF_PPD_CANDIDATES, "the cups-pdf PPD", "printer-driver-cups-pdf")
        conn = self.connection()
        conn.addPrinter(name, filename=str(ppd), device=f"cups-pdf:/{self.instance}",
                        info="Kiosk testbed PDF printer")
        conn.enablePrinter(name)
        conn.acceptJobs(name)
        return name

    def add_fault_queue(self, name: str, reasons: str | tuple[str, ...] = (), action: FaultAction = "hang"
                        ) -> str:
        """A queue whose backend reports `reasons` (full IPP keywords, e.g. "media-empty-error") per job.

        "hang" leaves the job processing, as a printer out of paper does; "fail" makes the backend fail and
        the queue abort the job (error policy abort-job); "ok" completes the job after reporting.
        """
        if isinstance(reasons, str):
            reasons = (reasons,) if reasons else ()
        uri = f"{FAULT_SCHEME}:/{','.join(reasons) or 'none'}?{action}"
        conn = self.connection()
        conn.addPrinter(name, device=uri, info="Kiosk testbed fault printer")
        conn.setPrinterErrorPolicy(name, "abort-job")
        conn.enablePrinter(name)
        conn.acceptJobs(name)
        return name

    def pause(self, name: str | None = None) -> None:
        """`cupsdisable`: the queue stops (printer-state 5, reason "paused") but still accepts jobs."""
        self.connection().disablePrinter(name or self.queue)

    def resume(self, name: str | None = None) -> None:
        self.connection().enablePrinter(name or self.queue)

    def remove_queue(self, name: str) -> None:
        self.connection().deletePrinter(name)

    def output_for_job(self, job_id: int, timeout: float = 30.0) -> Path:
        """The PDF cups-pdf wrote for a job, once it is complete on disk."""
        deadline = time.monotonic() + timeout
        last_size = -1
        while True:
            found = sorted(self.output_dir.glob(f"job_{job_id}-*.pdf")) + sorted(
                self.output_dir.glob(f"*-job_{job_id}.pdf"))
            if found:
                size = found[0].stat().st_size
                if size > 0 and size == last_size:
                    return found[0]
                last_size = size
            if time.monotonic() > deadline:
                present = ", ".join(p.name for p in self.output_dir.iterdir()) or "nothing"
                raise TestbedError(f"cups-pdf wrote no file for job {job_id} in {self.output_dir} within "
                                   f"{timeout:.0f} s (present: {present}); cupsd log: {self._log_tail()}")
            time.sleep(0.2)
