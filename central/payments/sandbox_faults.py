"""The network faults the bank-card and insurance sandboxes both play: every answer late, and an answer the
service processed but that never reaches the server (held until the caller gives up, then dropped).

Those two are what the money rules are tested against (docs/money-safety.md: a lost answer is asked again
or reversed, never guessed), so both sandboxes take them the same way in ``/simulate/control``; each adds its
own service's faults (declines, refusals, bad signatures) next to them.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Collection, Mapping
from typing import Any, Protocol

from fastapi import Request
from fastapi.responses import Response

DEFAULT_DROP_HOLD_SECONDS = 5.0


class LinkFaults(Protocol):
    delay_seconds: float  # before processing every message
    drop_next: dict[str, int]  # message name -> answers to withhold after processing
    drop_hold_seconds: float  # how long a withheld answer keeps the caller waiting


def set_link_faults(controls: LinkFaults, params: Mapping[str, Any], messages: Collection[str]) -> None:
    """Apply the shared fields of a ``/simulate/control`` body; omitted fields stay. Raises ValueError for a
    message name the service does not have, so a typo in a test fails loudly instead of dropping nothing."""
    if "delay_seconds" in params:
        controls.delay_seconds = float(params["delay_seconds"])
    if "drop_hold_seconds" in params:
        controls.drop_hold_seconds = float(params["drop_hold_seconds"])
    for name, count in dict(params.get("drop_next") or {}).items():
        if name not in messages:
            raise ValueError(f"unknown message {name}")
        controls.drop_next[name] = int(count)


def take_drop(controls: LinkFaults, name: str) -> float | None:
    """Whether this answer is to be lost (counting it off), and for how long to hold the caller. Call it under
    the sandbox's lock."""
    if controls.drop_next.get(name, 0) <= 0:
        return None
    controls.drop_next[name] -= 1
    return controls.drop_hold_seconds


async def withhold(request: Request, hold: float) -> Response:
    """Keep the caller waiting until it gives up (a real timeout on its side) or `hold` passes; the answer
    goes nowhere."""
    deadline = time.monotonic() + hold
    while time.monotonic() < deadline and not await request.is_disconnected():
        await asyncio.sleep(0.05)
    return Response(status_code=504)
