"""A stand-in for the kiosk app in the agent's tests: a real process that speaks the real local link
(``kiosk_app.agent_link``) without a screen. A JSON control file steers it while it runs:
``{"hang": true}`` stops its beats (a frozen app, as the agent sees it) while the process lives on,
``{"payment": true}`` says a payment is in progress, ``{"devices": {...}}`` sets device health."""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from fleet_agent.png import status_card
from kiosk_app.agent_link import AgentLink


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--control", type=Path, required=True)
    parser.add_argument("--pids", type=Path, required=True, help="every start appends its pid here")
    args = parser.parse_args()
    with args.pids.open("a") as f:
        f.write(f"{os.getpid()}\n")
    maintenance = {"on": False}

    def control() -> dict[str, Any]:
        try:
            return json.loads(args.control.read_text())
        except (OSError, ValueError):
            return {}

    def state() -> dict[str, Any]:
        c = control()
        return {"screen": "awaiting_payment" if c.get("payment") else "home",
                "service": "registration" if c.get("payment") else "", "payment_in_progress": bool(c.get("payment")),
                "maintenance": maintenance["on"],
                "devices": c.get("devices", {"receipt_printer": {"status": "ok"}, "id_card": {"status": "ok"}})}

    def screenshot(a: dict[str, Any]) -> dict[str, Any]:
        Path(a["path"]).write_bytes(status_card([d["status"] for d in state()["devices"].values()]))
        return {"ok": True, "result": "screenshot written"}

    def set_maintenance(a: dict[str, Any]) -> dict[str, Any]:
        maintenance["on"] = bool(a.get("on"))
        return {"ok": True, "result": f"maintenance {'on' if maintenance['on'] else 'off'}"}

    link = AgentLink(state, version="1.4.2", interval=0.2)
    link.handle("screenshot", screenshot).handle("maintenance", set_maintenance)
    link.handle("self_test", lambda a: {"ok": True, "result": "all devices passed"})
    link.start()
    while True:
        link.paused = bool(control().get("hang"))
        time.sleep(0.1)


if __name__ == "__main__":
    main()
