"""A central server on loopback for the demo and the end-to-end tests: the real `kiosk-central` process on
its embedded defaults (SQLite, reference HIS, WeChat Pay sandbox), in a data directory of its own."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from kiosk_app.config import Credentials


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _central(*args: str) -> list[str]:
    return [sys.executable, "-c", "from central.cli import main; main()", *args]


class LocalCentral:
    def __init__(self, data_dir: Path, port: int | None = None, env: dict[str, str] | None = None):
        self.data_dir = Path(data_dir)
        self.env = env or {}  # KIOSK_CENTRAL_* settings, e.g. an external sandbox
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.data_dir / "central.log"

    def start(self, timeout: float = 60.0) -> "LocalCentral":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            _central("serve", "--data-dir", str(self.data_dir), "--host", "127.0.0.1", "--port", str(self.port)),
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"kiosk-central exited with {self.proc.returncode}; see {self.log_path}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"kiosk-central did not answer within {timeout:.0f} s; see {self.log_path}")

    def provision(self, terminal_id: str) -> Credentials:
        out = self.data_dir / f"{terminal_id}.credentials.json"
        subprocess.run(_central("provision-terminal", "--data-dir", str(self.data_dir), "--id", terminal_id,
                                "--out", str(out)), check=True, capture_output=True)
        data = json.loads(out.read_text())
        return Credentials(data["terminal_id"], data["secret"], self.url)

    def pay_as_phone(self, code_url: str) -> dict[str, Any]:
        """Stand in for the patient's phone: the sandbox marks the trade paid and sends its notification."""
        resp = httpx.post(self.url + "/sandbox/wechatpay/simulate/pay", json={"code_url": code_url}, timeout=10)
        resp.raise_for_status()
        return resp.json()

    def kill(self) -> None:
        """The server dies without a chance to finish anything (power cut, OOM killer)."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
