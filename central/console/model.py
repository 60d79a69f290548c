"""What the pages and the JSON API show, built from the fleet service layer's views: the grid grouped by
campus and floor, tile colours, and JSON-ready dicts of terminals and commands."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from central.console import labels
from central.console.web import ago, fmt_time
from central.fleet import service as fleet
from central.fleet.views import CommandView, TerminalView
from central.services import Services


@dataclass(frozen=True)
class Filters:
    campus: str = ""
    floor: str = ""
    status: str = ""
    text: str = ""

    def query(self) -> dict[str, str]:
        return {k: v for k, v in (("campus", self.campus), ("floor", self.floor), ("status", self.status),
                                  ("q", self.text)) if v}


@dataclass
class FloorGroup:
    campus: str
    floor: str
    terminals: list[TerminalView] = field(default_factory=list)

    @property
    def problems(self) -> int:
        return sum(labels.colour(t.status, t.paper) in ("red", "amber") for t in self.terminals)


@dataclass
class CampusGroup:
    campus: str
    floors: list[FloorGroup]

    @property
    def count(self) -> int:
        return sum(len(f.terminals) for f in self.floors)


def terminals(svc: Services, filters: Filters) -> list[TerminalView]:
    status = filters.status if filters.status in ("ok", "degraded", "fault", "offline", "maintenance") else None
    views = fleet.list_terminals(svc, campus=filters.campus or None, floor=filters.floor or None, status=status,
                                 text=filters.text or None)
    if filters.status in ("red", "amber", "green", "grey"):  # filter by colour: "everything that needs action"
        views = [v for v in views if labels.colour(v.status, v.paper) == filters.status]
    return views


def group(views: list[TerminalView]) -> list[CampusGroup]:
    by_campus: dict[str, dict[str, list[TerminalView]]] = defaultdict(lambda: defaultdict(list))
    for view in views:
        by_campus[view.campus or "未分配院区"][view.floor or "—"].append(view)
    return [CampusGroup(campus, [FloorGroup(campus, floor, items) for floor, items in
                                 sorted(floors.items(), key=lambda kv: labels.floor_key(kv[0]))])
            for campus, floors in sorted(by_campus.items())]


def places(svc: Services) -> tuple[list[str], list[str]]:
    """Every campus and every floor that has a terminal (the filter menus)."""
    views = fleet.list_terminals(svc)
    campuses = sorted({v.campus for v in views if v.campus})
    floors = sorted({v.floor for v in views if v.floor}, key=labels.floor_key)
    return campuses, floors


def colour_counts(views: list[TerminalView]) -> dict[str, int]:
    counts = {"red": 0, "amber": 0, "green": 0, "grey": 0}
    for view in views:
        counts[labels.colour(view.status, view.paper)] += 1
    return counts


def tile_json(svc: Services, view: TerminalView) -> dict[str, Any]:
    problems = [f"{labels.zh(labels.DEVICES, name)} {labels.zh(labels.STATUS, status)}"
                for name, status in view.devices.items() if status != "ok"]
    return {
        "id": view.terminal_id, "short": labels.short_id(view.terminal_id), "name": view.name,
        "campus": view.campus, "floor": view.floor, "location": view.location,
        "status": view.status, "status_zh": labels.zh(labels.STATUS, view.status),
        "status_en": labels.en(labels.STATUS, view.status), "paper": view.paper,
        "paper_zh": labels.zh(labels.PAPER, view.paper), "colour": labels.colour(view.status, view.paper),
        "open_alerts": view.open_alerts, "version": view.app_version, "service": view.service,
        "last_beat": fmt_time(svc, view.last_beat_at), "last_beat_ago": ago(svc, view.last_beat_at),
        "problems": problems,
    }


def command_json(svc: Services, command: CommandView) -> dict[str, Any]:
    return {
        "id": command.id, "terminal_id": command.terminal_id, "kind": command.kind,
        "kind_zh": labels.zh(labels.COMMANDS, command.kind), "kind_en": labels.en(labels.COMMANDS, command.kind),
        "args": command.args, "status": command.status,
        "status_zh": labels.zh(labels.COMMAND_STATUS, command.status), "issued_by": command.issued_by,
        "issued_at": fmt_time(svc, command.issued_at), "finished_at": fmt_time(svc, command.finished_at),
        "result": command.result, "artifact_id": command.artifact_id,
        "final": command.status in ("EXECUTED", "FAILED", "EXPIRED"),
    }
