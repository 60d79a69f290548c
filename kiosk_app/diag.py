"""Device diagnostics from the shell, for the technician with a screwdriver and no screen to tap.

`kiosk diag` opens every configured device the way the kiosk would, asks each for its health and prints
one line per device: `NAME STATUS REASON`. The exit status is non-zero when any device is in fault, so a
site script or the fleet agent can act on it. It must not run beside a live kiosk on the same terminal:
serial ports and the PIN pad belong to one process at a time.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Iterable

from drivers.health import Health, Status
from kiosk_app.devices import ConfigError, make_device

# Roles in the order a technician walks the terminal, with the names printed for them.
NAMES = {"id_card": "id-card", "pcsc": "card-reader", "scanner": "scanner", "camera": "camera",
         "receipt_printer": "receipt-printer", "report_printer": "report-printer", "pinpad": "pin-pad"}


@dataclass(frozen=True)
class Finding:
    role: str
    health: Health

    @property
    def name(self) -> str:
        return NAMES.get(self.role, self.role.replace("_", "-"))

    def line(self, verbose: bool = False) -> str:
        text = f"{self.name:<16} {self.health.status.value:<9} {self.health.reason or '-'}"
        return f"{text}  {self.health.detail}" if verbose and self.health.detail else text


def check(role: str, devices: dict[str, dict[str, Any]]) -> Finding:
    """One device's health as the kiosk would see it on start-up; never raises."""
    try:
        device = make_device(role, devices)
    except ConfigError as exc:
        return Finding(role, Health.fault("config", str(exc)))
    try:
        try:
            device.open()
        except Exception as exc:  # the device's health() says what is wrong in its own words
            opened_error = exc
        else:
            opened_error = None
        health = device.health()
        if health.usable and opened_error is not None:
            health = Health.fault("open_failed", str(opened_error))
        return Finding(role, health)
    except Exception as exc:
        return Finding(role, Health.fault("health_check_failed", f"{type(exc).__name__}: {exc}"))
    finally:
        try:
            device.close()
        except Exception:
            pass


def check_all(devices: dict[str, dict[str, Any]]) -> list[Finding]:
    ordered = [role for role in NAMES if role in devices] + [role for role in devices if role not in NAMES]
    return [check(role, devices) for role in ordered]


def exit_status(findings: Iterable[Finding]) -> int:
    return 1 if any(f.health.status is Status.FAULT for f in findings) else 0


def read_id_card(port: str, timeout: float, unmasked: bool = False, baudrate: int = 115200) -> dict[str, Any]:
    """Wait up to `timeout` seconds for a card on the reader and return its fields, masked unless asked."""
    from drivers.idcard.reader import SerialIdCardReader

    reader = SerialIdCardReader(port, baudrate=baudrate)
    deadline = time.monotonic() + timeout
    try:
        reader.open()
        while True:
            card = reader.read_card()
            if card is not None:
                return card.to_dict(masked=not unmasked)
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no card was laid on the reader within {timeout:g} s")
            time.sleep(0.3)  # the SAM needs this much between find-card commands
    finally:
        reader.close()


def card_json(fields: dict[str, Any]) -> str:
    return json.dumps(fields, ensure_ascii=False, indent=2)
