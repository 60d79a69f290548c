"""就诊导航 (K12): choose a place, see it on the floor map with the way there in words; then optionally 评价 (K13).

States: `home → choosing_place → showing_route (→ surveying → thanks) → home`, plus `failed`. Another service's
result screen opens the map straight at its place ("查看路线 Show the way", `show_way`: `home → showing_route`);
that map has no Back and no survey of its own, since the hub offers the visit's survey once the map is closed.
No card, no
patient, no money: anyone may ask the way, so nothing here identifies anyone, and the journal holds only the
destination's id. The idle timeout returns home from every screen, as everywhere on the kiosk.

The map and the routes are `workflows.wayfinding` (plain data and Dijkstra); this service only walks the
patient through choosing. A place the map does not know (another service passing the HIS's text) shows the
way to the help desk with `ASK_HELP_DESK`, never a guess.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, ClassVar

from transitions import EventData

from workflows.hospital_map import GROUPS, NEAREST, ROOMS
from workflows.service_base import JournaledService, Session, ending_transitions
from workflows.survey import SurveyForm, answer_message, journal_with_messages, survey_view
from workflows.view import View
from workflows.wayfinding import ASK_HELP_DESK, place_words, resolve, route_to_room, spot

log = logging.getLogger(__name__)

HELP_DESK = "help-desk"


@dataclass
class GuidanceSession(Session):
    group: str = GROUPS[0].id
    place: str = ""  # room id, or "toilets" / "lifts", or the text another service passed
    from_result: bool = False  # opened from another service's result screen, not from the home screen
    survey: SurveyForm = field(default_factory=SurveyForm)

    def journal_data(self) -> dict[str, Any]:
        """Only where the person asked to go: no patient, and the survey's scores stay out of the journal."""
        return {"destination": self.place[:80] or None}


class Guidance(JournaledService):
    WORKFLOW = "guidance"
    STATES = ["home", "choosing_place", "showing_route", "surveying", "thanks", "failed"]
    TRANSITIONS: ClassVar[list[dict[str, Any]]] = [
        {"trigger": "start", "source": "home", "dest": "choosing_place", "conditions": "_devices_usable"},
        {"trigger": "pick_place", "source": "choosing_place", "dest": "showing_route", "prepare": "_take_place"},
        {"trigger": "show_way", "source": "home", "dest": "showing_route", "prepare": "_take_way",
         "conditions": "_devices_usable"},
        {"trigger": "back", "source": "showing_route", "dest": "choosing_place", "unless": "_from_result"},
        {"trigger": "rate", "source": "showing_route", "dest": "surveying", "unless": "_from_result"},
        {"trigger": "back", "source": "surveying", "dest": "showing_route"},
        {"trigger": "submit", "source": "surveying", "dest": "thanks", "conditions": "_survey_answered"},
        {"trigger": "skip", "source": "surveying", "dest": "home"},
        {"trigger": "cancel", "source": ["choosing_place", "showing_route", "surveying"], "dest": "home"},
        {"trigger": "finish", "source": ["showing_route", "thanks"], "dest": "home"},
        {"trigger": "timeout", "source": ["choosing_place", "showing_route", "surveying", "thanks"], "dest": "home"},
        *ending_transitions(["home", "choosing_place", "showing_route", "surveying", "thanks", "failed"]),
    ]
    IDLE = {"choosing_place": "choosing", "showing_route": "choosing", "surveying": "choosing", "thanks": "done",
            "failed": "failed"}
    CANCELLABLE = frozenset({"choosing_place"})

    visit: GuidanceSession

    def __init__(self, *args: Any, kiosk_location: str | None = None, **kwargs: Any):
        self.here = spot(kiosk_location)
        super().__init__(*args, **kwargs)

    def new_session(self) -> GuidanceSession:
        return GuidanceSession()

    # ---- inputs that change the screen, not the state ------------------------------------------------

    def handle(self, intent: str, **kwargs: Any) -> None:
        """Switching the list's heading and tapping a face change only what is on the glass; they keep the
        idle clock alive but are not transitions (nothing to journal, nothing to resume after a crash)."""
        if intent == "pick_group" and self.state == "choosing_place":
            self._last_activity = self.clock()
            if any(g.id == kwargs.get("group") for g in GROUPS):
                self.visit.group = str(kwargs["group"])
            self.publish(self._view_for(self.state))
            return
        if intent == "answer" and self.state == "surveying":
            self._last_activity = self.clock()
            self.visit.survey.answer(str(kwargs.get("question", "")), kwargs.get("score"))  # type: ignore[arg-type]
            self.publish(self._view_for(self.state))
            return
        super().handle(intent, **kwargs)

    def _take_place(self, event: EventData) -> None:
        self.visit.place = str(event.kwargs.get("place", ""))

    def _take_way(self, event: EventData) -> None:
        self.visit.place = str(event.kwargs.get("place", ""))
        self.visit.from_result = True

    def _from_result(self, event: EventData) -> bool:
        return self.visit.from_result

    def _survey_answered(self, event: EventData) -> bool:
        return self.visit.survey.answered

    def destination(self, place_text: str) -> dict[str, Any] | None:
        """The room a result screen's place names, as seen from this kiosk, or None when the map does not know
        it (the screen then offers no map rather than a guess)."""
        room = ROOMS.get(place_text) or resolve(place_text, self.here)
        if room is None:
            return None
        where, where_en = place_words(room)
        return {"place": room.id, "name": room.name, "name_en": room.name_en, "where": where, "where_en": where_en}

    def _journal(self, event: EventData) -> None:
        extra = []
        if event.event.name == "submit":
            extra.append(answer_message(self.visit.survey, self.terminal_id, self.WORKFLOW, self.now()))
            if self.outbox is None:
                log.warning("survey answer not stored: this kiosk has no outbox")
        journal_with_messages(self, event, extra)

    # ---- views --------------------------------------------------------------------------------------

    def _view_for(self, state: str) -> View:
        base = self._base_view(state)
        if state == "home":
            return self._home_view()
        if state == "choosing_place":
            return View("guidance_places", {"groups": [{"id": g.id, "name": g.name, "name_en": g.name_en}
                                                       for g in GROUPS],
                                            "group": self.visit.group, "places": self._places(self.visit.group)},
                        **base)
        if state == "showing_route":
            return self._map_view(base)
        if state == "surveying":
            return View("survey", survey_view(self.visit.survey), **base, can_back=True)
        if state == "thanks":
            return View("survey_thanks", {}, **base)
        return View("error", message=self.visit.notice[0], message_en=self.visit.notice[1], **base)

    def _places(self, group_id: str) -> list[dict[str, Any]]:
        group = next((g for g in GROUPS if g.id == group_id), GROUPS[0])
        places = []
        for place in group.rooms:
            if place in NEAREST:
                _, name, name_en = NEAREST[place]
                places.append({"id": place, "name": name, "name_en": name_en, "where": "最近的",
                               "where_en": "the nearest"})
                continue
            room = ROOMS[place]
            where, where_en = place_words(room)
            places.append({"id": room.id, "name": room.name, "name_en": room.name_en, "where": where,
                           "where_en": where_en})
        return places

    def _map_view(self, base: dict[str, Any]) -> View:
        room = ROOMS.get(self.visit.place) or resolve(self.visit.place, self.here)
        route = route_to_room(room.id, self.here) if room is not None else None
        message = ("", "")
        if route is None:
            route = route_to_room(HELP_DESK, self.here)
            message = ASK_HELP_DESK
        return View("guidance_map", {"route": route.to_view() if route else None,
                                     "can_rate": not self.visit.from_result},
                    message=message[0], message_en=message[1], **base, can_back=not self.visit.from_result)
