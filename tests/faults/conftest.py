"""The rig for the fault-injection tests: a WeChat Pay sandbox process, a kiosk-central process that talks to
it (and can be killed and restarted over the same data), a breakable network between kiosk and server, the
receipt printer, and kiosk processes that can be killed at any point of a visit."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from central.payments.keys import ensure_sandbox_keys
from drivers.receipt.simulator import PrinterListener
from kiosk_app.local_central import LocalCentral, free_port
from tests.faults.kiosk_visit import STALLED
from tests.faults.proxy import FaultyProxy

FINAL = {"FULFILLED", "CLOSED", "REFUNDED"}


@dataclass
class Rig:
    root: Path
    sandbox_url: str
    sandbox: subprocess.Popen[bytes]
    central: LocalCentral
    proxy: FaultyProxy
    printer: PrinterListener
    creds_file: Path
    runs: int = 0
    kiosks: list[subprocess.Popen[str]] = field(default_factory=list)

    # --- the kiosk ----------------------------------------------------------------------------------------

    def kiosk(self, *extra: str, journal: Path) -> subprocess.Popen[str]:
        self.runs += 1
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.faults.kiosk_visit", "--creds", str(self.creds_file), "--journal",
             str(journal), "--printer-port", str(self.printer.port), "--pick", str(self.runs), *extra],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.kiosks.append(proc)
        return proc

    def wait_for_line(self, proc: subprocess.Popen[str], prefix: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        assert proc.stdout is not None
        seen = []
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            if line.startswith(prefix):
                return line
        raise AssertionError(f"the kiosk never printed {prefix!r}; output:\n{''.join(seen[-30:])}")

    def kill_9(self, proc: subprocess.Popen[str]) -> None:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()

    def restart_kiosk_and_recover(self, journal: Path) -> list[str]:
        proc = self.kiosk("--recover-only", journal=journal)
        line = self.wait_for_line(proc, "RECOVERED")
        proc.wait(30)
        return json.loads(line.split(" ", 1)[1])

    # --- the patient's phone ------------------------------------------------------------------------------

    def pay(self, code_url: str) -> None:
        httpx.post(self.sandbox_url + "/simulate/pay", json={"code_url": code_url}, timeout=10).raise_for_status()

    # --- the truth -----------------------------------------------------------------------------------------

    def orders(self) -> list[dict]:
        with sqlite3.connect(self.central.data_dir / "central.db") as db:
            db.row_factory = sqlite3.Row
            return [dict(r) for r in db.execute(
                "SELECT o.order_no, o.status, o.amount_fen, o.visit_code, p.out_trade_no "
                "FROM orders o LEFT JOIN payments p ON p.order_id = o.id")]

    def his_registrations(self) -> list[dict]:
        with sqlite3.connect(self.central.data_dir / "central.db") as db:
            db.row_factory = sqlite3.Row
            return [dict(r) for r in db.execute("SELECT * FROM his_registrations WHERE status != 'CANCELLED'")]

    def trade(self, out_trade_no: str) -> dict | None:
        resp = httpx.get(f"{self.sandbox_url}/simulate/trades/{out_trade_no}", timeout=10)
        return None if resp.status_code == 404 else resp.json()

    def settle(self, timeout: float = 60) -> list[dict]:
        """Wait for the server's sweeper to bring every order to a final state."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            orders = self.orders()
            if all(o["status"] in FINAL for o in orders):
                return orders
            time.sleep(0.5)
        raise AssertionError(f"orders not final after {timeout} s: {[o for o in self.orders() if o['status'] not in FINAL]}")

    def check_money(self) -> None:
        """Every paid order fulfilled exactly once or refunded; none fulfilled twice; channel money = HIS money."""
        orders = self.settle()
        his = self.his_registrations()
        codes = [r["visit_code"] for r in his]
        assert len(codes) == len(set(codes)), "a registration was made twice"
        channel_fen = his_fen = 0
        for order in orders:
            trade = self.trade(order["out_trade_no"]) if order["out_trade_no"] else None
            state = trade["trade_state"] if trade else None
            kept = (trade["amount"]["total"] - (trade.get("refunded") or 0)) if state in ("SUCCESS", "REFUND") else 0
            channel_fen += kept
            if order["status"] == "FULFILLED":
                assert state == "SUCCESS", (order, trade)
                assert codes.count(order["visit_code"]) == 1
                his_fen += order["amount_fen"]
            elif order["status"] == "REFUNDED":
                assert state == "REFUND" and kept == 0, (order, trade)
            else:  # CLOSED: nothing may have been paid, or it must have been given back
                assert kept == 0, (order, trade)
        assert len([o for o in orders if o["status"] == "FULFILLED"]) == len(his)
        assert channel_fen == his_fen, f"channel kept {channel_fen} fen, the HIS registered {his_fen} fen"


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    data = root / "central"
    ensure_sandbox_keys(data / "wechatpay")
    sandbox_port = free_port()
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    sandbox = subprocess.Popen([sys.executable, "-m", "tests.faults.sandbox_process", str(data / "wechatpay"),
                                str(sandbox_port)])
    _wait_http(sandbox_url + "/simulate/trades/none", sandbox)
    central = LocalCentral(data, env={"KIOSK_CENTRAL_SANDBOX": "false", "KIOSK_CENTRAL_WECHAT_URL": sandbox_url,
                                      "KIOSK_CENTRAL_SWEEP_SECONDS": "1",
                                      # one patient walks every visit of the module: the HIS's limits per day
                                      # are not what these tests are about
                                      "KIOSK_CENTRAL_HIS_MAX_PER_DEPARTMENT_PER_DAY": "100",
                                      "KIOSK_CENTRAL_HIS_MAX_PER_DAY": "100"}).start()
    proxy = FaultyProxy(central.port)
    creds = central.provision("KIOSK-FAULT")
    creds_file = root / "creds.json"
    creds_file.write_text(json.dumps({"terminal_id": creds.terminal_id, "secret": creds.secret,
                                      "server_url": proxy.url}))
    printer = PrinterListener()
    printer.start()
    rig = Rig(root, sandbox_url, sandbox, central, proxy, printer, creds_file)
    yield rig
    for proc in rig.kiosks:
        if proc.poll() is None:
            proc.kill()
    printer.stop()
    proxy.stop()
    central.stop()
    sandbox.terminate()
    sandbox.wait(10)


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} process exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")


__all__ = ["Rig", "STALLED", "rig"]
