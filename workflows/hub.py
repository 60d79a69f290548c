"""The front desk of the kiosk: the home screen, which service runs now, and maintenance.

Each service is its own journaled state machine (`workflows.registration.SameDayRegistration`, ...), with the
same small interface (`Service` below). The hub shows every service of the catalogue on the home screen with
its availability, starts the one the patient taps, forwards events to it while it runs, and takes the home
screen back when it returns to its own "home" state. One service at a time: a patient's visit never shares
the glass, the card reader or the scanner with another.

Maintenance (a remote command from IT, or a technician) replaces the home screen with "暂停服务"; a visit in
progress is allowed to finish first, since it may have money in flight.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from workflows.view import View

log = logging.getLogger(__name__)


class Service(Protocol):
    """What the hub needs of a service workflow."""

    state: str  # "home" when idle

    def handle(self, intent: str, **kwargs: Any) -> None: ...
    def tick(self) -> None: ...
    def availability(self) -> tuple[bool, str, str]: ...


@dataclass(frozen=True)
class Entry:
    """One tile on the home screen. `factory` is None for a service that is not built yet: the tile says so."""

    service_id: str
    name: str
    name_en: str
    factory: Callable[[Callable[[View], None]], Service] | None = None


class ServiceHub:
    """Call `handle(intent, **kw)` for every patient, device and fleet event and `tick()` on a clock (the
    `WorkflowRunner` does both from one thread)."""

    def __init__(self, catalogue: list[Entry], publish: Callable[[View], None]):
        self.publish = publish
        self.catalogue = catalogue
        # Each service publishes through the hub, which keeps the home screen its own.
        self.services: dict[str, Service] = {
            entry.service_id: entry.factory(self._publish_from(entry.service_id))
            for entry in catalogue if entry.factory is not None}
        self.active: str | None = None
        self.maintenance: tuple[str, str] | None = None

    # ---- inputs -------------------------------------------------------------------------------------

    def handle(self, intent: str, **kwargs: Any) -> None:
        if intent == "device_health":  # every service keeps its own picture of the devices it needs
            for service in self.services.values():
                service.handle(intent, **kwargs)
            if self.active is None:
                self.publish(self.home_view())
            return
        if intent == "maintenance":
            self._set_maintenance(bool(kwargs.get("on")), kwargs.get("reason_zh") or "",
                                  kwargs.get("reason_en") or "")
            return
        if intent == "open_service":
            self._open(str(kwargs.get("service", "")))
            return
        if self.active is None:
            return  # a card or a code at the home screen starts nothing by itself
        self.services[self.active].handle(intent, **kwargs)
        self._check_returned()

    def tick(self) -> None:
        if self.active is not None:
            self.services[self.active].tick()
            self._check_returned()

    @property
    def current(self) -> Service | None:
        return self.services.get(self.active) if self.active else None

    # ---- the home screen ----------------------------------------------------------------------------

    def home_view(self) -> View:
        tiles = []
        for entry in self.catalogue:
            service = self.services.get(entry.service_id)
            tile: dict[str, Any] = {"id": entry.service_id, "name": entry.name, "name_en": entry.name_en,
                                    "built": service is not None, "available": False, "reason": "",
                                    "reason_en": ""}
            if service is not None:
                tile["available"], tile["reason"], tile["reason_en"] = service.availability()
            tiles.append(tile)
        data: dict[str, Any] = {"services": tiles}
        if self.maintenance is not None:
            data["maintenance"] = {"reason": self.maintenance[0], "reason_en": self.maintenance[1]}
        return View("home", data)

    # ---- internals ----------------------------------------------------------------------------------

    def _open(self, service_id: str) -> None:
        service = self.services.get(service_id)
        if self.active is not None or service is None or self.maintenance is not None:
            return  # double taps, unbuilt tiles and taps during maintenance do nothing
        if not service.availability()[0]:
            self.publish(self.home_view())
            return
        self.active = service_id
        service.handle("start")
        self._check_returned()

    def _check_returned(self) -> None:
        service = self.current
        if service is not None and service.state == "home":
            self.active = None
            self.publish(self.home_view())

    def _publish_from(self, service_id: str) -> Callable[[View], None]:
        """A service's screens reach the glass only while it runs. Its own home screen never does: the hub
        draws home once per event (after a device report, or when a service ends), not once per service."""
        def publish(view: View) -> None:
            if view.screen != "home" and self.active == service_id:
                self.publish(view)
        return publish

    def _set_maintenance(self, on: bool, reason: str, reason_en: str) -> None:
        self.maintenance = (reason or "设备维护中", reason_en or "Under maintenance") if on else None
        log.info("maintenance %s", "on" if on else "off")
        if self.active is None:
            self.publish(self.home_view())
