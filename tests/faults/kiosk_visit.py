"""A kiosk process for the fault-injection tests: the real registration workflow, HTTP client, journal and
receipt-printer driver, without a screen, walking one visit the way a patient's taps would.

    python -m tests.faults.kiosk_visit --creds C --journal J --printer-port P --pick N [--stall-before M]
                                       [--stall-after M] [--qr-file F] [--recover-only]

On start it runs the same recovery as the real kiosk. `--stall-before/--stall-after METHOD` freezes the
process just before or just after a backend call (`create_registration`, `pay`, `order`) or the print
(`print_document`), so a test can kill -9 it at exactly that point. The payment QR is written to
`--qr-file` for the test's simulated phone.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

from central.his.seed import DEMO_PATIENT
from drivers.idcard.protocol import IdentityCard
from drivers.receipt.printer import NetworkReceiptPrinter
from kiosk_app.backend_client import HttpBackend
from kiosk_app.config import Credentials
from workflows.journal import Journal
from workflows.recovery import recover
from workflows.registration import SameDayRegistration, Timeouts
from workflows.view import View

STALLED = "STALLED"  # printed when the process freezes, so the test knows the point was reached


class Stalling:
    """Wraps the backend or the printer: freezes before or after one named call until killed."""

    def __init__(self, inner: Any, before: str | None, after: str | None) -> None:
        self._inner, self._before, self._after = inner, before, after

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._inner, name)
        if not callable(target) or name not in (self._before, self._after):
            return target

        def call(*args: Any, **kwargs: Any) -> Any:
            if name == self._before:
                _stall(f"before {name}")
            result = target(*args, **kwargs)
            if name == self._after:
                _stall(f"after {name}")
            return result

        return call


def _stall(where: str) -> None:
    print(f"{STALLED} {where}", flush=True)
    while True:
        time.sleep(60)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--creds", type=Path, required=True)
    ap.add_argument("--journal", type=Path, required=True)
    ap.add_argument("--printer-port", type=int, required=True)
    ap.add_argument("--pick", type=int, default=0, help="which free slot to take, so runs do not compete")
    ap.add_argument("--stall-before")
    ap.add_argument("--stall-after")
    ap.add_argument("--qr-file", type=Path)
    ap.add_argument("--recover-only", action="store_true")
    args = ap.parse_args()

    creds = json.loads(args.creds.read_text())
    backend = HttpBackend(Credentials(creds["terminal_id"], creds["secret"], creds["server_url"]), timeout=5)
    journal = Journal(args.journal)
    outcomes = recover(journal, backend)
    print("RECOVERED " + json.dumps([o.outcome for o in outcomes]), flush=True)
    if args.recover_only:
        return 0 if all(o.outcome != "unresolved" for o in outcomes) else 3

    views: list[View] = []
    printer = NetworkReceiptPrinter("127.0.0.1", args.printer_port)
    wf = SameDayRegistration(Stalling(backend, args.stall_before, args.stall_after),
                             Stalling(printer, args.stall_before, args.stall_after), journal, views.append,
                             creds["terminal_id"], Timeouts(awaiting_payment=120, poll_interval=0.3))
    card = IdentityCard(name=DEMO_PATIENT["name"], gender=DEMO_PATIENT["gender"], nation="汉",
                        birth=date.fromisoformat(DEMO_PATIENT["birth"]), address=DEMO_PATIENT["address"],
                        id_number=DEMO_PATIENT["id_number"], authority="示范市公安局", valid_from=date(2016, 5, 1),
                        valid_to=None, photo=bytes(1024))
    wf.handle("start")
    wf.handle("card_read", card=card)
    free = [(d, doc, slot) for d in views[-1].data["departments"] if d["remaining"] > 0
            for doc in backend.doctors(d["code"]) if doc["remaining"] > 0
            for slot in backend.slots(d["code"], doc["code"]) if slot["remaining"] > 0]
    dept, doctor, slot = free[args.pick % len(free)]
    wf.handle("pick_department", code=dept["code"])
    wf.handle("pick_doctor", code=doctor["code"])
    wf.handle("pick_slot", slot_id=slot["slot_id"])
    wf.handle("confirm")
    if wf.state == "awaiting_payment" and args.qr_file:
        args.qr_file.write_text(wf.visit.order["payment"]["code_url"])
    deadline = time.monotonic() + 150
    while wf.state not in ("done", "failed", "home") and time.monotonic() < deadline:
        time.sleep(0.1)
        wf.tick()
    print(f"FINISHED {wf.state} {json.dumps((wf.visit.order or {}).get('status'))}", flush=True)
    return 0 if wf.state == "done" else 4


if __name__ == "__main__":
    sys.exit(main())
