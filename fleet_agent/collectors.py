"""What the agent measures on the terminal itself: CPU, memory, disk, temperature where a sensor is readable,
and the facts that rarely change (sent only when they do). Nothing here reads patient data."""
from __future__ import annotations

import platform
import socket
from pathlib import Path
from typing import Any

import psutil


def system(disk_path: Path | str = "/") -> dict[str, float | None]:
    """CPU (since the previous call), memory and disk use in percent; temperature in °C or None."""
    try:
        disk: float | None = psutil.disk_usage(str(disk_path)).percent
    except OSError:
        disk = None
    return {"cpu_pct": min(100.0, psutil.cpu_percent(interval=None)), "mem_pct": psutil.virtual_memory().percent,
            "disk_pct": disk, "temp_c": temperature()}


def temperature() -> float | None:
    """The hottest CPU-ish sensor, where the platform exposes one (many VMs and containers do not)."""
    reader = getattr(psutil, "sensors_temperatures", None)
    if reader is None:
        return None
    try:
        sensors = reader()
    except (OSError, RuntimeError):
        return None
    readings = [t.current for entries in sensors.values() for t in entries
                if t.current is not None and -50 <= t.current <= 150]
    return round(max(readings), 1) if readings else None


def facts(agent_version: str) -> dict[str, Any]:
    """The heavy, rarely changing items: sent with the first beat and whenever one changes."""
    return {"hostname": socket.gethostname()[:60], "os": platform.platform()[:60],
            "python": platform.python_version(), "agent_version": agent_version,
            "cpu_count": psutil.cpu_count() or 0,
            "mem_total_mb": int(psutil.virtual_memory().total / 2**20)}
