"""Printing a service's slip the same way everywhere: the slip is a courtesy, never the service itself.

A failed print leaves what the service did standing (the registration, the payment, the check-in); the
visit's `print_failed` makes the done screen say where to get the slip instead."""
from __future__ import annotations

import logging
from typing import Any, Callable

from drivers.receipt.document import Block

log = logging.getLogger(__name__)


def print_slip(service: Any, make: Callable[[str], list[Block]], what: str) -> None:
    """Print `make(hospital_name)` on the service's receipt printer, then fire `printed`."""
    service._fetch_hospital_name()
    try:
        service.printer.print_document(make(service.hospital_name))
    except Exception:  # a slip only: what was done stands
        log.exception("slip printing failed for %s", what)
        service.visit.print_failed = True
    service._go("printed")
