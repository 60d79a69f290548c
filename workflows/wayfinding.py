"""Where is it and how do I get there: a place named on a slip → a route on the map, with the words (K12).

`route_to(place_text)` is the one function other services call: it takes the text the HIS gives ("门诊楼3层
B区", "检验科（门诊楼二楼）", "门诊西药房 1–4 号窗口") and returns a `Route` (the polyline per floor drawn by the
map screen, the floor and building, the walking directions in Chinese and English), or None when the place
is not on the map. None is an answer, not an error: the screen then sends the patient to the help desk
(`ASK_HELP_DESK`), because a guess that sends an 80-year-old to the wrong floor is worse than no map.

The route is the shortest walk over the corridors of `workflows.hospital_map` (Dijkstra over a graph built
once from the corridor centre lines, the room doors and the lifts). Plain Python, no Qt: a service's thread
may call it, and tests check every department of the reference HIS.
"""
from __future__ import annotations

import heapq
import logging
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from workflows.hospital_map import (BUILDINGS, DEFAULT_SPOT, LANDMARKS, LIFT_SHAFT, NEAREST, PASSING, ROOMS, SHEETS, SPOTS,
                                    Point, Room, Spot)

log = logging.getLogger(__name__)

ASK_HELP_DESK = ("地图上找不到这个地点，请到门诊楼一楼服务台（导诊台）咨询工作人员",
                 "This place is not on the map. Please ask the staff at the help desk, outpatient building 1F.")
WALK_M_PER_MIN = 50.0  # an unhurried pace; an elderly patient should not arrive later than the screen said
LIFT_COST_M = 20.0  # waiting for a lift, in metres of walking, so one floor by lift is not "free"
LIFT_PER_FLOOR_M = 3.0

Node = tuple[str, float, float]  # sheet, x, y


@dataclass(frozen=True)
class Leg:
    """The part of a route drawn on one sheet (floor)."""

    sheet: str
    floor: int
    points: tuple[Point, ...]
    title: str  # "门诊楼 3层"
    title_en: str  # "Outpatient Bldg 3F"


@dataclass(frozen=True)
class Route:
    destination: Room
    start: Spot
    legs: tuple[Leg, ...]
    steps: tuple[tuple[str, str], ...]  # (Chinese, English), in walking order
    distance_m: int
    minutes: int
    where: str  # building, floor, zone: "门诊楼3层 B区"
    where_en: str

    def to_view(self) -> dict[str, Any]:
        """What the map screen needs, as plain data (a View carries no objects of the workflow's)."""
        d = self.destination
        return {"destination": {"id": d.id, "name": d.name, "name_en": d.name_en, "sheet": d.sheet},
                "here": {"name": self.start.name, "name_en": self.start.name_en, "sheet": self.start.sheet,
                         "point": list(self.start.point)},
                "legs": [{"sheet": leg.sheet, "floor": leg.floor, "title": leg.title, "title_en": leg.title_en,
                          "points": [list(p) for p in leg.points]} for leg in self.legs],
                "steps": [list(s) for s in self.steps], "distance_m": self.distance_m, "minutes": self.minutes,
                "where": self.where, "where_en": self.where_en}


# ---- resolving a place's text ------------------------------------------------------------------------------

_NUMERALS = {"一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9, "十": 10}
_FLOOR = re.compile(r"([一二三四五六七八九十]|\d{1,2})\s*(?:楼|层|F|f)(?![a-z])")
_ZONE = re.compile(r"(门诊楼|医技楼|急诊楼)?(\d{1,2})层([A-Da-d])区")


def normalise(text: str) -> str:
    """One spelling for the many a slip uses: no spaces, ASCII brackets, "二楼"/"2F"/"2楼" → "2层"."""
    text = (text or "").strip().replace("（", "(").replace("）", ")").replace("－", "-").replace("—", "-")
    text = _FLOOR.sub(lambda m: f"{_NUMERALS.get(m.group(1), m.group(1))}层", text)
    return re.sub(r"\s+", "", text)


@lru_cache(maxsize=1)
def _names() -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Exact spellings → room id, and the same spellings longest first for "contained in the text"."""
    exact: dict[str, str] = {}
    for room in ROOMS.values():
        if room.kind in ("toilet", "lift") and not room.aliases:
            continue  # "卫生间" alone means the nearest one, not a particular floor's
        for spelling in (room.name, room.label, *room.aliases):
            if spelling and room.kind not in ("toilet", "lift") or spelling in room.aliases:
                exact.setdefault(normalise(spelling), room.id)
        exact.setdefault(normalise(room.name_en).lower(), room.id)
    contained = sorted(((k, v) for k, v in exact.items() if len(k) >= 2), key=lambda kv: -len(kv[0]))
    return exact, contained


_NEAREST_WORDS = {"toilets": ("卫生间", "厕所", "洗手间", "toilet", "toilets", "restroom", "wc"),
                  "lifts": ("电梯", "电梯厅", "lift", "lifts", "elevator")}


def resolve(place_text: str, here: Spot | None = None) -> Room | None:
    """The room a text names, or None. "卫生间" and "电梯" mean the nearest from `here`."""
    here = here or SPOTS[DEFAULT_SPOT]
    text = normalise(place_text)
    if not text:
        return None
    exact, contained = _names()
    if text in exact or text.lower() in exact:
        return ROOMS[exact.get(text) or exact[text.lower()]]
    zone = _ZONE.search(text)
    if zone and zone.group(1) in (None, "门诊楼"):
        return ROOMS.get(f"OPD{int(zone.group(2))}-{zone.group(3).upper()}")
    for key, words in _NEAREST_WORDS.items():
        if text.lower() in words:
            return nearest(key, here)
    for spelling, room_id in contained:
        if spelling in text or spelling in text.lower():
            return ROOMS[room_id]
    return None


def order_places(order: dict[str, Any] | None) -> list[str]:
    """Where a registration or an appointment sends the patient, as the HIS writes it: the clinic room it gave
    ("门诊楼2层 B区 5诊室"), else the department's location. What a result screen offers the map to."""
    order = order or {}
    place = (order.get("registration") or {}).get("location") or (order.get("department") or {}).get("location")
    return [str(place)] if place else []


def nearest(key: str, here: Spot) -> Room | None:
    """The closest room of a kind ("toilets", "lifts") by walking distance, not as the crow flies."""
    kind = NEAREST[key][0]
    best: tuple[float, Room] | None = None
    for room in ROOMS.values():
        if room.kind != kind:
            continue
        found = _shortest(_spot_node(here), _door_node(room))
        if found is not None and (best is None or found[0] < best[0]):
            best = (found[0], room)
    return best[1] if best else None


def spot(name: str | None) -> Spot:
    """The configured kiosk position; an unknown name falls back to the default with a warning (a kiosk with
    a mistyped location must still show a map, and the log tells the installer what to fix)."""
    if not name:
        return SPOTS[DEFAULT_SPOT]
    found = SPOTS.get(name) or SPOTS.get(next((k for k in SPOTS if normalise(k) == normalise(name)), ""))
    if found is None:
        log.warning("kiosk_location %r is not on the map (known: %s); using %s", name, ", ".join(SPOTS),
                    DEFAULT_SPOT)
        return SPOTS[DEFAULT_SPOT]
    return found


# ---- the corridor graph --------------------------------------------------------------------------------------

def _key(sheet: str, p: Point) -> Node:
    return (sheet, round(p[0], 2), round(p[1], 2))


def _project(sheet: str, p: Point) -> Point:
    """The nearest point on the sheet's corridors: where a door or a kiosk meets the walking line."""
    best: tuple[float, Point] | None = None
    for (x1, y1), (x2, y2) in SHEETS[sheet].corridors:
        qx = min(max(p[0], min(x1, x2)), max(x1, x2))
        qy = min(max(p[1], min(y1, y2)), max(y1, y2))
        d = math.hypot(p[0] - qx, p[1] - qy)
        if best is None or d < best[0]:
            best = (d, (qx, qy))
    assert best is not None
    return best[1]


def _door_node(room: Room) -> Node:
    return _key(room.sheet, room.door)


def _spot_node(s: Spot) -> Node:
    return _key(s.sheet, s.point)


@lru_cache(maxsize=1)
def _graph() -> dict[Node, dict[Node, float]]:
    graph: dict[Node, dict[Node, float]] = {}

    def link(a: Node, b: Node, cost: float | None = None) -> None:
        if a == b:
            return
        w = math.hypot(a[1] - b[1], a[2] - b[2]) if cost is None else cost
        graph.setdefault(a, {})[b] = w
        graph.setdefault(b, {})[a] = w

    stubs: dict[str, list[Point]] = {sid: [] for sid in SHEETS}
    for room in ROOMS.values():
        stubs[room.sheet].append(room.door)
    for s in SPOTS.values():
        stubs[s.sheet].append(s.point)
    for sid, sheet in SHEETS.items():
        for (x1, y1), (x2, y2) in sheet.corridors:
            on_line: set[Point] = {(x1, y1), (x2, y2)}
            for other in sheet.corridors:  # junctions: another corridor's end on this one
                for q in other:
                    if min(x1, x2) <= q[0] <= max(x1, x2) and min(y1, y2) <= q[1] <= max(y1, y2):
                        on_line.add(q)
            for p in stubs[sid]:
                q = _project(sid, p)
                if min(x1, x2) <= q[0] <= max(x1, x2) and min(y1, y2) <= q[1] <= max(y1, y2):
                    on_line.add(q)
            ordered = sorted(on_line, key=lambda q: (q[0] - x1) ** 2 + (q[1] - y1) ** 2)
            for a, b in zip(ordered, ordered[1:]):
                link(_key(sid, a), _key(sid, b))
        for p in stubs[sid]:
            link(_key(sid, p), _key(sid, _project(sid, p)))
    lifts = sorted((SHEETS[r.sheet].floor, r) for r in ROOMS.values() if r.kind == "lift" and r.building == "OPD")
    assert LIFT_SHAFT  # one shaft: every outpatient floor's lift reaches every other
    for i, (fa, a) in enumerate(lifts):
        for fb, b in lifts[i + 1:]:
            link(_door_node(a), _door_node(b), LIFT_COST_M + LIFT_PER_FLOOR_M * abs(fb - fa))
    return graph


def _shortest(start: Node, goal: Node) -> tuple[float, list[Node]] | None:
    graph = _graph()
    if start not in graph or goal not in graph:
        return None
    dist: dict[Node, float] = {start: 0.0}
    prev: dict[Node, Node] = {}
    heap: list[tuple[float, Node]] = [(0.0, start)]
    while heap:
        d, node = heapq.heappop(heap)
        if node == goal:
            path = [goal]
            while path[-1] != start:
                path.append(prev[path[-1]])
            return d, path[::-1]
        if d > dist.get(node, math.inf):
            continue
        for nxt, w in graph[node].items():
            if d + w < dist.get(nxt, math.inf):
                dist[nxt] = d + w
                prev[nxt] = node
                heapq.heappush(heap, (d + w, nxt))
    return None


# ---- the route and its words ---------------------------------------------------------------------------------

def route_to(place_text: str, here: str | Spot | None = None) -> Route | None:
    """The route from this kiosk (`here`: a `kiosk_location` name or a Spot; the default hall when None) to the
    place a slip names; None when the place is not on the map (show `ASK_HELP_DESK` then)."""
    start = here if isinstance(here, Spot) else spot(here)
    room = resolve(place_text, start)
    return None if room is None else route_to_room(room.id, start)


def route_to_room(room_id: str, here: Spot | None = None) -> Route | None:
    start = here or SPOTS[DEFAULT_SPOT]
    room = ROOMS.get(room_id)
    if room is None:
        return None
    found = _shortest(_spot_node(start), _door_node(room))
    if found is None:
        return None
    distance, path = found
    legs: list[Leg] = []
    for sheet_id, x, y in path:
        if not legs or legs[-1].sheet != sheet_id:
            title, title_en = _floor_title(sheet_id, (x, y))
            legs.append(Leg(sheet_id, SHEETS[sheet_id].floor, (), title, title_en))
        last = legs[-1]
        legs[-1] = Leg(last.sheet, last.floor, last.points + ((x, y),), last.title, last.title_en)
    legs = [Leg(leg.sheet, leg.floor, _simplify(leg.points), leg.title, leg.title_en) for leg in legs]
    walked = sum(_length(leg.points) for leg in legs)
    lift_minutes = 1 if len(legs) > 1 else 0
    where, where_en = place_words(room)
    return Route(room, start, tuple(legs), tuple(_steps(legs, room, start)), int(round(walked)),
                 max(1, math.ceil(walked / WALK_M_PER_MIN) + lift_minutes), where, where_en)


def place_words(room: Room) -> tuple[str, str]:
    """Building, floor and zone in words: what the patient reads on the lift buttons and the signs."""
    building = BUILDINGS[room.building]
    floor = SHEETS[room.sheet].floor
    zh = f"{building.name}{floor}层" + (f" {room.zone}区" if room.zone else "")
    en = f"{building.short_en} {floor}F" + (f", Zone {room.zone}" if room.zone else "")
    return zh, en


def _floor_title(sheet_id: str, p: Point) -> tuple[str, str]:
    floor = SHEETS[sheet_id].floor
    if sheet_id == "G":
        return f"{floor}层", f"{floor}F, ground floor"
    return f"门诊楼 {floor}层", f"Outpatient Bldg {floor}F"


def _simplify(points: tuple[Point, ...]) -> tuple[Point, ...]:
    """Drop points in the middle of a straight stretch: each remaining point is a turn."""
    out: list[Point] = []
    for p in points:
        if out and p == out[-1]:
            continue
        if len(out) >= 2:
            (ax, ay), (bx, by) = out[-2], out[-1]
            if abs((bx - ax) * (p[1] - by) - (by - ay) * (p[0] - bx)) < 1e-6 and \
                    (bx - ax) * (p[0] - bx) + (by - ay) * (p[1] - by) >= 0:
                out[-1] = p
                continue
        out.append(p)
    return tuple(out)


def _length(points: tuple[Point, ...]) -> float:
    return sum(math.hypot(b[0] - a[0], b[1] - a[1]) for a, b in zip(points, points[1:]))


def _turn(a: Point, b: Point, c: Point) -> str:
    """"left" or "right" at b, walking a → b → c (y grows southwards, so a positive cross is clockwise)."""
    cross = (b[0] - a[0]) * (c[1] - b[1]) - (b[1] - a[1]) * (c[0] - b[0])
    return "right" if cross > 0 else "left"


def _metres(m: float) -> tuple[str, str]:
    if m < 6:
        return "走几步", "walk a few steps"
    n = int(5 * round(m / 5))
    return f"直走约 {n} 米", f"go straight about {n} m"


def _landmark(sheet: str, p: Point) -> tuple[str, str] | None:
    for q, zh, en in LANDMARKS.get(sheet, []):
        if math.hypot(q[0] - p[0], q[1] - p[1]) < 1.0:
            return zh, en
    return None


def _passing(sheet: str, a: Point, b: Point) -> tuple[str, str]:
    """What the stretch a → b walks through, as a clause to append ("", "" when nothing worth saying)."""
    said = [(zh, en) for q, zh, en in PASSING.get(sheet, [])
            if min(a[0], b[0]) <= q[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= q[1] <= max(a[1], b[1])]
    return "".join(f"，{zh}" for zh, _ in said), "".join(f", {en}" for _, en in said)


TURN_WORDS = {"left": ("左转", "turn left"), "right": ("右转", "turn right")}
SIDE_WORDS = {"left": ("左手边", "on your left"), "right": ("右手边", "on your right")}


def _steps(legs: list[Leg], room: Room, start: Spot) -> list[tuple[str, str]]:
    """Walking directions a patient can follow without the map: one line per stretch, turns named with the
    landmark where they happen, the lift as its own line, and which hand the door is on at the end.

    Each leg is start → corridor → turns … → the last corner → door (of the room, or of the lift). Left and
    right are relative to the walking direction, which is known from the first stretch (walking out to the
    corridor, or out of the lift); compass words would not help in a lobby."""
    steps: list[tuple[str, str]] = [(f"您在：{start.name}（本机）", f"You are here: {start.name_en} (this kiosk)")]
    for index, leg in enumerate(legs):
        pts = leg.points
        final = index == len(legs) - 1
        last = len(pts) - 2  # the last corner before the door
        begin_zh, begin_en = ("出电梯，走到走廊", "Leave the lift, walk out to the corridor") if index else \
            ("沿地图上的橙色线出发", "Set off along the orange line on the map")
        if last < 1:
            steps.append((f"{room.name}就在前方", f"{room.name_en} is right ahead") if final else
                         (f"乘电梯到 {legs[index + 1].floor} 层", f"Take the lift to floor {legs[index + 1].floor}"))
            continue
        for i in range(1, last + 1):
            turn = _turn(pts[i - 1], pts[i], pts[i + 1])
            mark = _landmark(leg.sheet, pts[i])
            go_zh, go_en = ("", "") if i == 1 else _metres(_length(pts[i - 1:i + 1]))
            if go_zh:
                via_zh, via_en = _passing(leg.sheet, pts[i - 1], pts[i])
                go_zh, go_en = go_zh + via_zh, go_en + via_en
            to_zh = f"{go_zh}到{mark[0]}" if mark and go_zh else go_zh
            to_en = f"{go_en} to {mark[1]}" if mark and go_en else go_en
            if i == 1:
                to_zh, to_en = begin_zh, begin_en
            if i == last and final:
                side_zh, side_en = SIDE_WORDS[turn]
                steps.append((f"{to_zh}，{room.name}在您的{side_zh}", f"{to_en}; {side_en}: {room.name_en}"))
            elif i == last:
                nxt = legs[index + 1].floor
                steps.append((f"{to_zh}，到电梯厅乘电梯到 {nxt} 层" if i == 1 else f"{to_zh}，乘电梯到 {nxt} 层",
                              f"{to_en}, take the lift to floor {nxt}"))
            else:
                turn_zh, turn_en = TURN_WORDS[turn]
                steps.append((f"{to_zh}，{turn_zh}", f"{to_en}, then {turn_en}"))
    where, where_en = place_words(room)
    steps.append((f"到达：{where} {room.name}", f"Arrive: {room.name_en}, {where_en}"))
    return steps
