"""The front desk of the kiosk: the home screen, which service runs now, and maintenance.

Each service is its own journaled state machine (`workflows.registration.SameDayRegistration`, ...), with the
same small interface (`Service` below). The hub shows every service of the catalogue on the home screen with
its availability, starts the one the patient taps, forwards events to it while it runs, and takes the home
screen back when it returns to its own "home" state. One service at a time: a patient's visit never shares
the glass, the card reader or the scanner with another.

Maintenance (a remote command from IT, or a technician) replaces the home screen with "暂停服务"; a visit in
progress is allowed to finish first, since it may have money in flight.

The end of a visit is the hub's too, so that every service ends the same way without knowing of the others:

* "查看路线 Show the way": a service's result screen lists the places it sends the patient to (`way_to` in its
  view's data: the clinic, the pharmacy window, the help desk). The hub asks the guidance service which of them
  are on the map and adds them to the view as `ways`; the screen shows a button for each. A tap ends the
  service as "Done" would and opens the guidance service's map at that place (`show_way`).
* 满意度评价 (K13): when a service that served the patient is left with "Done" from its `done` state (directly,
  or through the map opened from it), the hub runs the survey service once. Never after a failure, never when
  the result screen or the map timed out (the patient has gone), and never twice for one visit.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any, Callable, Protocol

from workflows.view import View

log = logging.getLogger(__name__)


class Service(Protocol):
    """What the hub needs of a service workflow."""

    state: str  # "home" when idle

    def handle(self, intent: str, **kwargs: Any) -> None: ...
    def tick(self) -> None: ...
    def availability(self) -> tuple[bool, str, str]: ...


#: The guidance service's id: its map answers "Show the way".
GUIDANCE = "guidance"
#: The survey service's id; it is no tile of the home screen.
SURVEY = "survey"
#: The state in which every service shows its result, and "Done" leaves it.
DONE = "done"
#: The places a result screen offers a map to, at most: more would crowd out the result itself.
MAX_WAYS = 5


def served(view: View | None) -> bool:
    """Whether the result screen a patient left with "Done" shows a service that served them. A service reaches
    `done` only when it did its work; two results there still send the patient elsewhere for all of it: a
    refund only a counter may give, and documents of which none came out of the printer."""
    if view is None or view.screen in ("busy", "error"):
        return False
    if view.screen == "refund_done":
        return not view.data.get("at_counter")
    if view.screen == "print_result":
        return any(job.get("status") == "printed" for job in view.data.get("jobs") or [])
    return True


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

    def __init__(self, catalogue: list[Entry], publish: Callable[[View], None],
                 survey: Callable[[Callable[[View], None]], Service] | None = None):
        self.publish = publish
        self.catalogue = catalogue
        # Each service publishes through the hub, which keeps the home screen its own.
        self.services: dict[str, Service] = {
            entry.service_id: entry.factory(self._publish_from(entry.service_id))
            for entry in catalogue if entry.factory is not None}
        if survey is not None:
            self.services[SURVEY] = survey(self._publish_from(SURVEY))
        self.active: str | None = None
        self.maintenance: tuple[str, str] | None = None
        self._shown: View | None = None  # the last screen the running service put on the glass
        self._survey_for: str | None = None  # the service whose visit ended well, until the survey is offered
        self._way_from_result = False  # the running guidance service was opened from a result screen

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
        if intent == "show_way":
            self._show_way(str(kwargs.get("place", "")))
            return
        service = self.services[self.active]
        left = service.state
        service.handle(intent, **kwargs)
        self._check_returned(finished_from=left if intent == "finish" else None)

    def tick(self) -> None:
        """Only the clock moves a service here, so a service that returns home now timed out: nobody is there."""
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
        service = self.services.get(service_id) if service_id != SURVEY else None
        if self.active is not None or service is None or self.maintenance is not None:
            return  # double taps, unbuilt tiles and taps during maintenance do nothing
        if not service.availability()[0]:
            self.publish(self.home_view())
            return
        self.active = service_id
        service.handle("start")
        self._check_returned()

    def _check_returned(self, finished_from: str | None = None) -> None:
        """When the running service is back home: the survey if a visit just ended well, else the home screen.

        `finished_from`: the state whose screen the patient left with "Done"; None when the clock or Cancel
        sent the service home."""
        service = self.current
        if service is None or service.state != "home":
            return
        ended, shown = self.active, self._shown
        self.active, self._shown = None, None
        if ended == SURVEY:
            self._survey_for = None
        elif ended == GUIDANCE and self._way_from_result:
            self._way_from_result = False
            if finished_from is None:  # the map timed out: the patient has gone, nobody to ask
                self._survey_for = None
        else:
            self._survey_for = ended if finished_from == DONE and served(shown) else None
        if self._survey_for is not None and not self._offer_survey():
            self._survey_for = None
        if self.active is None:
            self.publish(self.home_view())

    def _offer_survey(self) -> bool:
        survey = self.services.get(SURVEY)
        if survey is None or self.maintenance is not None or survey.state != "home":
            return False
        rated, self._survey_for = self._survey_for, None  # once per visit, whatever the patient does with it
        self.active = SURVEY
        survey.handle("start", service=rated)
        if survey.state == "home":
            self.active = None
            return False
        return True

    def _show_way(self, place: str) -> None:
        """A tap on "Show the way": the result screen's service ends as on "Done" and the map opens at the
        place. Only a place the screen on the glass offered is taken, and only from a result screen."""
        service, guide = self.current, self.services.get(GUIDANCE)
        if service is None or guide is None or self.active == GUIDANCE or service.state != DONE:
            return
        offered = (self._shown.data.get("ways") or []) if self._shown is not None else []
        if place not in {way["place"] for way in offered}:
            return
        ended, shown = self.active, self._shown
        service.handle("finish")  # the service goes home and forgets the patient, as after "Done"
        if service.state != "home":
            return
        self._survey_for = ended if served(shown) else None
        self.active, self._shown, self._way_from_result = GUIDANCE, None, True
        guide.handle("show_way", place=place)
        if guide.state == "home":  # the map could not open: the visit still ends as after "Done"
            self._way_from_result = False
            self.active = None
            if self._survey_for is None or not self._offer_survey():
                self._survey_for = None
                self.publish(self.home_view())

    def _ways(self, view: View) -> View:
        """The result screen's places that the map knows, as `ways` for its "Show the way" buttons. The guidance
        service answers (`Guidance.destination`), from where this kiosk stands; a kiosk without it offers none."""
        guide = self.services.get(GUIDANCE)
        destination = getattr(guide, "destination", None)
        if destination is None:
            return view
        ways: list[dict[str, Any]] = []
        for text in view.data.get("way_to") or []:
            found = destination(str(text)) if text else None
            if found is not None and found["place"] not in {w["place"] for w in ways}:
                ways.append({**found, "text": str(text)})
        return replace(view, data={**view.data, "ways": ways[:MAX_WAYS]})

    def _publish_from(self, service_id: str) -> Callable[[View], None]:
        """A service's screens reach the glass only while it runs. Its own home screen never does: the hub
        draws home once per event (after a device report, or when a service ends), not once per service."""
        def publish(view: View) -> None:
            if view.screen != "home" and self.active == service_id:
                if "way_to" in view.data:
                    view = self._ways(view)
                self._shown = view
                self.publish(view)
        return publish

    def _set_maintenance(self, on: bool, reason: str, reason_en: str) -> None:
        self.maintenance = (reason or "设备维护中", reason_en or "Under maintenance") if on else None
        log.info("maintenance %s", "on" if on else "off")
        if self.active is None:
            self.publish(self.home_view())
