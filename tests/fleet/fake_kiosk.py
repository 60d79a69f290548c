"""A stand-in for the kiosk app in the agent's tests: a real process that speaks the real local link
(``kiosk_app.agent_link``) without a screen, and carries out maintenance, reload and self-test with the real
``KioskHandlers`` over a stand-in kiosk (a runner that writes each posted intent to a file, the configuration
loaded from ``--config``, no devices). A JSON control file steers it while it runs:
``{"hang": true}`` stops its beats (a frozen app, as the agent sees it) while the process lives on,
``{"payment": true}`` says a payment is in progress, ``{"devices": {...}}`` sets device health."""
from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleet_agent.png import status_card
from kiosk_app.agent_link import AgentLink, KioskHandlers
from kiosk_app.config import KioskConfig
from workflows.registration import Timeouts


class RecordingRunner:
    """The workflow runner's ``post``, written down as one JSON line per intent (with this process's pid)."""

    def __init__(self, path: Path):
        self.path = path

    def post(self, intent: str, **kwargs: Any) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps({"pid": os.getpid(), "intent": intent, **kwargs}, ensure_ascii=False) + "\n")


@dataclass
class Workflow:
    state: str = "home"
    timeouts: Timeouts = field(default_factory=Timeouts)


@dataclass
class StandInKiosk:
    config: KioskConfig
    runner: RecordingRunner
    workflow: Workflow
    workers: dict[str, Any] = field(default_factory=dict)
    health: dict[str, Any] = field(default_factory=dict)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--control", type=Path, required=True)
    parser.add_argument("--pids", type=Path, required=True, help="every start appends its pid here")
    parser.add_argument("--config", type=Path, required=True, help="the kiosk configuration (TOML)")
    parser.add_argument("--intents", type=Path, required=True, help="posted intents go here, one JSON a line")
    args = parser.parse_args()
    with args.pids.open("a") as f:
        f.write(f"{os.getpid()}\n")
    config = KioskConfig.load(args.config)
    kiosk = StandInKiosk(config, RecordingRunner(args.intents),
                         Workflow(timeouts=Timeouts(choosing=config.idle_seconds)))
    handlers = KioskHandlers(kiosk, args.config)

    def control() -> dict[str, Any]:
        try:
            return json.loads(args.control.read_text())
        except (OSError, ValueError):
            return {}

    def state() -> dict[str, Any]:
        c = control()
        return {"screen": "awaiting_payment" if c.get("payment") else "home",
                "service": "registration" if c.get("payment") else "", "payment_in_progress": bool(c.get("payment")),
                "maintenance": handlers.maintenance_on,
                "devices": c.get("devices", {"receipt_printer": {"status": "ok"}, "id_card": {"status": "ok"}})}

    def screenshot(a: dict[str, Any]) -> dict[str, Any]:
        Path(a["path"]).write_bytes(status_card([d["status"] for d in state()["devices"].values()]))
        return {"ok": True, "result": "screenshot written"}

    link = AgentLink(state, version="1.4.2", interval=0.2)
    handlers.register(link).handle("screenshot", screenshot)
    link.handle("self_test", lambda a: {"ok": True, "result": "all devices passed"})
    link.start()
    while True:
        link.paused = bool(control().get("hang"))
        kiosk.workflow.state = "awaiting_payment" if control().get("payment") else "home"
        time.sleep(0.1)


if __name__ == "__main__":
    main()
