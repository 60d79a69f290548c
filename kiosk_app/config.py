"""Terminal configuration: which server, which credentials, which driver for each device.

Read from a TOML file (installer/kiosk.example.toml shows every key). The terminal secret lives in a
separate credentials file written by `kiosk-central provision-terminal`, so configs can be shared and
versioned without leaking it.
"""
from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Credentials:
    terminal_id: str
    secret: str
    server_url: str

    def __repr__(self) -> str:  # never print the secret
        return f"Credentials(terminal_id={self.terminal_id!r}, server_url={self.server_url!r})"

    @classmethod
    def load(cls, path: Path) -> "Credentials":
        data = json.loads(Path(path).read_text())
        return cls(data["terminal_id"], data["secret"], data["server_url"])


@dataclass
class KioskConfig:
    credentials: Credentials
    data_dir: Path
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)
    hospital_name: str = "自助服务"  # shown until the server tells the real name
    fullscreen: bool = True
    idle_seconds: float = 90.0
    timezone: str = "Asia/Shanghai"  # the hospital's clock, whatever the terminal's OS is set to
    device_poll_seconds: float = 2.0  # how soon a printer out of paper switches its services off
    technician_pin_hash: str = ""  # `kiosk pin-hash`; empty: no diagnostic mode on the glass
    # The QR the outpatient payment shows: "wechat_native", "alipay_native" or "aggregate" (either app pays it).
    payment_qr: str = "wechat_native"
    # Where this terminal stands on the floor map (就诊导航's "您在这里"); a name from workflows.hospital_map.SPOTS.
    kiosk_location: str = "门诊楼1层 大厅"

    @classmethod
    def load(cls, path: Path) -> "KioskConfig":
        path = Path(path)
        raw = tomllib.loads(path.read_text())
        base = path.parent
        creds = Credentials.load(base / raw["credentials"])
        if raw.get("server_url"):
            creds.server_url = raw["server_url"]
        return cls(credentials=creds, data_dir=base / raw.get("data_dir", "var/kiosk"),
                   devices=raw.get("devices", {}), hospital_name=raw.get("hospital_name", cls.hospital_name),
                   fullscreen=raw.get("fullscreen", True), idle_seconds=float(raw.get("idle_seconds", 90)),
                   timezone=raw.get("timezone", cls.timezone),
                   device_poll_seconds=float(raw.get("device_poll_seconds", cls.device_poll_seconds)),
                   technician_pin_hash=raw.get("technician_pin_hash", ""),
                   payment_qr=raw.get("payment_qr", cls.payment_qr),
                   kiosk_location=raw.get("kiosk_location", cls.kiosk_location))
