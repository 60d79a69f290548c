from __future__ import annotations

import json

import pytest

from kiosk_app.config import KioskConfig
from kiosk_app.devices import ConfigError, make_device


def test_example_config_loads(tmp_path):
    from pathlib import Path
    example = Path(__file__).resolve().parents[2] / "installer" / "kiosk.example.toml"
    (tmp_path / "kiosk.toml").write_text(example.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "credentials.json").write_text(json.dumps(
        {"terminal_id": "KIOSK-001", "secret": "s3cret", "server_url": "http://127.0.0.1:8000"}))
    config = KioskConfig.load(tmp_path / "kiosk.toml")
    assert config.credentials.terminal_id == "KIOSK-001"
    assert "s3cret" not in repr(config.credentials)
    assert config.devices["id_card"]["driver"] == "serial"
    made = {role: type(make_device(role, config.devices)).__name__ for role in config.devices}
    assert made == {"id_card": "SerialIdCardReader", "pcsc": "PcscCardReader", "scanner": "SerialScanner",
                    "camera": "FaceCamera", "receipt_printer": "NetworkReceiptPrinter",
                    "report_printer": "CupsReportPrinter", "pinpad": "SerialPinPad"}
    assert config.device_poll_seconds == 2 and config.technician_pin_hash == ""


@pytest.mark.parametrize("devices, needle", [
    ({}, "no [devices.id_card]"),
    ({"id_card": {"driver": "usb"}}, "unknown"),
    ({"id_card": {"driver": "serial"}}, "missing 'port'"),
])
def test_bad_device_config_is_a_clear_error(devices, needle):
    with pytest.raises(ConfigError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        make_device("id_card", devices)
