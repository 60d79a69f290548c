"""What the kiosk does on start-up about a visit the last run left half-way (a crash, kill -9, power cut).

The server is the authority on money and its sweeper finishes every order on its own, so the kiosk's part
is small but it matters: an order it created but never saw paid must not stay open for the patient's phone
to pay into after the patient has gone. The journal says which order (or, if the crash came before the
answer, the idempotency key it was asked for with); the kiosk asks the server to cancel it, and the server's rule
applies: it closes only after the channel confirms nothing was paid, and honours a payment that came first.

Every step may be repeated: if the server cannot be reached, the visit stays unresolved and the next start
(or the next call) tries again.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from workflows.backend import Backend, BackendError, BackendUnavailable
from workflows.journal import Journal

log = logging.getLogger(__name__)

FINISHED_STATES = {"home", "done", "failed"}  # a visit whose last entry lands here needs nothing
RECOVERED = "recovered"
# Once the order is past these, the server finishes it (fulfil or refund) without the kiosk.
SERVER_OWNED = {"PAID", "FULFILLED", "REFUND_PENDING", "REFUNDED", "CLOSED"}


@dataclass(frozen=True)
class Recovery:
    session: str
    state: str  # where the last run stopped
    order_no: str | None
    outcome: str  # "cancelled", "server_owned", "no_order", "unresolved"


def unfinished(journal: Journal) -> list[dict[str, Any]]:
    """The last entry of every session that stopped outside a finished state and was not recovered yet."""
    last: dict[str, dict[str, Any]] = {}
    for entry in journal.entries():
        last[entry["session"]] = entry
    return [e for e in last.values() if e["dest"] not in FINISHED_STATES and e["event"] != RECOVERED]


def recover(journal: Journal, backend: Backend) -> list[Recovery]:
    results = []
    for entry in unfinished(journal):
        result = _recover_one(entry, backend)
        results.append(result)
        if result.outcome != "unresolved":
            journal.record(entry["session"], entry["workflow"], RECOVERED, entry["dest"], "home",
                           {**entry["data"], "outcome": result.outcome})
        log.info("visit %s left in %s: %s", entry["session"][:8], entry["dest"], result.outcome)
    return results


def _recover_one(entry: dict[str, Any], backend: Backend) -> Recovery:
    data = entry["data"]
    session, state = entry["session"], entry["dest"]
    order_no = data.get("order_no")
    try:
        if order_no is None and data.get("order_key"):
            # The crash may have come after the server made the order and before we heard: ask by the key.
            found = backend.registration_by_key(data["order_key"])
            order_no = found["order_no"] if found else None
        if order_no is None:
            return Recovery(session, state, None, "no_order")
        order = backend.order(order_no)
        if order.get("status") in SERVER_OWNED:
            return Recovery(session, state, order_no, "server_owned")
        order = backend.cancel(order_no)
        return Recovery(session, state, order_no, "cancelled" if order.get("status") == "CLOSED" else "server_owned")
    except BackendUnavailable:
        return Recovery(session, state, order_no, "unresolved")
    except BackendError as exc:
        log.warning("visit %s: the server refused recovery (%s); leaving it to the server", session[:8], exc)
        return Recovery(session, state, order_no, "server_owned")
