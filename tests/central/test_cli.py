"""``kiosk-central`` as an operator runs it: init, provision a terminal, serve as a real process."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

from central.his.seed import DEMO_PATIENT
from tests.central.conftest import free_port

CLI = [sys.executable, "-c", "import sys; from central.cli import main; sys.exit(main())"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120, check=True)


def test_init_then_provision_writes_a_private_credentials_file(tmp_path: Path) -> None:
    data = tmp_path / "central"
    first = run("init", "--data-dir", str(data))
    assert first.stdout.strip().count("\n") == 0 and "seeded the demo hospital" in first.stdout
    assert "hospital already present" in run("init", "--data-dir", str(data)).stdout
    out = tmp_path / "creds" / "KIOSK-001.json"
    provisioned = run("provision-terminal", "--data-dir", str(data), "--id", "KIOSK-001", "--name", "大厅1号机",
                      "--location", "门诊楼1层大厅", "--out", str(out))
    document = json.loads(out.read_text())
    assert set(document) == {"terminal_id", "secret", "server_url"} and document["terminal_id"] == "KIOSK-001"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert document["secret"] not in provisioned.stdout + provisioned.stderr
    assert document["server_url"] == "http://127.0.0.1:8000"


def test_serve_as_a_real_process(tmp_path: Path) -> None:
    data, port = tmp_path / "central", free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(tmp_path / "serve.log", "w")
    server = subprocess.Popen([*CLI, "serve", "--data-dir", str(data), "--host", "127.0.0.1", "--port", str(port)],
                              stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if httpx.get(url + "/healthz", timeout=1).json() == {"status": "ok"}:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "server did not come up"
            time.sleep(0.2)
        out = tmp_path / "kiosk.json"
        run("provision-terminal", "--data-dir", str(data), "--id", "KIOSK-009", "--out", str(out))
        creds = json.loads(out.read_text())
        with httpx.Client(base_url=url + "/api/v1/kiosk", auth=(creds["terminal_id"], creds["secret"]),
                          timeout=15) as kiosk:
            assert kiosk.get("/hospital").json()["name"] == "示范市人民医院"
            who = kiosk.post("/patients/identify", json={"method": "id_card", "id_number": DEMO_PATIENT["id_number"],
                                                         "name": DEMO_PATIENT["name"]}).json()
            doctor = next(d for d in kiosk.get("/departments/JZNK/doctors").json()["doctors"] if d["remaining"])
            slot = kiosk.get(f"/departments/JZNK/doctors/{doctor['code']}/slots").json()["slots"][0]
            order = kiosk.post("/registrations", json={"patient_id": who["patient_id"], "slot_id": slot["slot_id"],
                                                       "idempotency_key": uuid.uuid4().hex}).json()
            order = kiosk.post(f"/orders/{order['order_no']}/pay",
                               json={"channel": "wechat_native", "idempotency_key": uuid.uuid4().hex}).json()
            paid = httpx.post(url + "/sandbox/wechatpay/simulate/pay",
                              json={"code_url": order["payment"]["code_url"]}, timeout=15)
            assert paid.status_code == 200
            deadline = time.monotonic() + 20
            while (status := kiosk.get(f"/orders/{order['order_no']}").json())["status"] != "FULFILLED":
                assert time.monotonic() < deadline, status
                time.sleep(0.3)
            assert status["registration"]["queue_no"] >= 1
            assert httpx.get(url + "/api/v1/kiosk/hospital", timeout=5).status_code == 401
        assert httpx.get(url + "/openapi.json", timeout=5).status_code == 200
    finally:
        server.terminate()
        server.wait(15)
        log.close()
    assert DEMO_PATIENT["id_number"] not in (tmp_path / "serve.log").read_text()
    assert DEMO_PATIENT["name"] not in (tmp_path / "serve.log").read_text()
