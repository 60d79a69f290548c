"""`kiosk diag`: what a technician sees from the shell, run as the technician runs it."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from drivers.health import Health
from kiosk_app.diag import Finding, check, exit_status

KIOSK = str(Path(sys.executable).with_name("kiosk"))


def diag(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KIOSK, "diag", *args], capture_output=True, text=True, timeout=120)


def table(out: str) -> dict[str, tuple[str, str]]:
    rows = {}
    for line in out.splitlines():
        name, status, reason = line.split()[:3]
        rows[name] = (status, reason)
    return rows


def test_simulated_terminal_is_all_ok():
    result = diag("--simulated")
    assert result.returncode == 0, result.stderr
    rows = table(result.stdout)
    assert rows and all(status == "ok" for status, _ in rows.values()), result.stdout
    assert list(rows) == ["id-card", "card-reader", "scanner", "camera", "receipt-printer", "report-printer",
                          "pin-pad"], "all seven devices, in the order a technician walks the terminal"


@pytest.mark.parametrize("inject, name, status, reason", [
    ("receipt_printer=paper_out", "receipt-printer", "fault", "paper_out"),
    ("receipt_printer=cover_open", "receipt-printer", "fault", "cover_open"),
    ("receipt_printer=off", "receipt-printer", "fault", "disconnected"),
    ("id_card=sam_fault", "id-card", "fault", "sam_fault"),
    ("id_card=off", "id-card", "fault", "no_answer"),
    ("camera=off", "camera", "fault", "disconnected"),
    ("report_printer=paper_out", "report-printer", "fault", "paper_out"),
    ("report_printer=paused", "report-printer", "fault", "offline"),
    ("report_printer=off", "report-printer", "fault", "cups_unavailable"),
    ("scanner=unplugged", "scanner", "fault", "disconnected"),
    ("pinpad=tampered", "pin-pad", "fault", "tampered"),
    ("pinpad=off", "pin-pad", "fault", "disconnected"),
    ("pcsc=pcscd_off", "card-reader", "fault", "pcscd_unavailable"),
])
def test_each_injected_fault_shows_and_fails_the_exit_status(inject, name, status, reason):
    result = diag("--simulated", "--inject", inject)
    assert result.returncode == 1, result.stdout + result.stderr
    rows = table(result.stdout)
    assert rows[name] == (status, reason)
    assert all(s == "ok" for n, (s, _) in rows.items() if n != name), "the other devices stay ok"


def test_paper_low_is_degraded_and_still_exits_zero():
    result = diag("--simulated", "--inject", "receipt_printer=paper_low")
    assert result.returncode == 0
    assert table(result.stdout)["receipt-printer"] == ("degraded", "paper_low")


def test_unknown_fault_and_missing_arguments_are_clear_errors():
    result = diag("--simulated", "--inject", "receipt_printer=on_fire")
    assert result.returncode == 2 and "on_fire" in result.stderr and "paper_out" in result.stderr
    result = diag()
    assert result.returncode == 2 and "--config" in result.stderr
    result = diag("id-card")
    assert result.returncode == 2 and "--port" in result.stderr


def test_a_misconfigured_device_is_a_fault_not_a_crash():
    finding = check("receipt_printer", {"receipt_printer": {"driver": "carrier-pigeon"}})
    assert finding.health.reason == "config" and "carrier-pigeon" in finding.health.detail
    finding = check("id_card", {"id_card": {"driver": "serial", "port": "/nonexistent/ttyX"}})
    assert finding.health.reason == "disconnected"
    assert exit_status([finding]) == 1
    assert exit_status([Finding("pinpad", Health.degraded("x"))]) == 0


def test_config_file_is_read(tmp_path):
    (tmp_path / "credentials.json").write_text('{"terminal_id": "K1", "secret": "s", "server_url": "http://x"}')
    (tmp_path / "kiosk.toml").write_text('credentials = "credentials.json"\n'
                                          '[devices.receipt_printer]\ndriver = "network"\nhost = "127.0.0.1"\n'
                                          'port = 9\n')
    result = diag("--config", str(tmp_path / "kiosk.toml"))
    assert result.returncode == 1
    assert table(result.stdout)["receipt-printer"] == ("fault", "disconnected")


@pytest.fixture
def reader_on_a_pty(tmp_path):
    from drivers.idcard.simulator import IdCardReaderSimulator
    from drivers.serial_pair import SerialPair
    with SerialPair(tmp_path) as pair:
        sim = IdCardReaderSimulator(pair.device_end)
        sim.start()
        yield pair, sim
        sim.stop()


def test_id_card_read_prints_masked_json_and_full_only_when_asked(reader_on_a_pty):
    import json

    from drivers.idcard.simulator import demo_card, demo_foreigner_card
    pair, sim = reader_on_a_pty
    sim.insert(demo_card("王小明", "110101199003074514"))
    result = diag("id-card", "--port", str(pair.host_end), "--timeout", "5")
    assert result.returncode == 0, result.stderr
    fields = json.loads(result.stdout)
    assert fields["name"] == "王*明" and "110101199003074514" not in result.stdout
    assert "王小明" not in result.stdout and fields["photo"]["bytes"] > 0
    sim.remove()
    sim.insert(demo_foreigner_card())
    result = diag("id-card", "--port", str(pair.host_end), "--timeout", "5", "--unmasked")
    assert result.returncode == 0, result.stderr
    fields = json.loads(result.stdout)
    assert fields["card_type"] == "foreigner_permanent" and "*" not in fields["permit_number"]


def test_id_card_read_without_a_card_says_so(reader_on_a_pty):
    pair, _ = reader_on_a_pty
    result = diag("id-card", "--port", str(pair.host_end), "--timeout", "1")
    assert result.returncode == 1 and "no card" in result.stderr
    result = diag("id-card", "--port", "/nonexistent/ttyX", "--timeout", "1")
    assert result.returncode == 2 and "ttyX" in result.stderr and "Traceback" not in result.stderr
