"""The reference hospital's floor map as data: buildings, floors, rooms, corridors, lifts (K12).

Why a Python module and not an image: a route is computed over the same rectangles the screen draws, so the
line on the glass and the words on the screen can never disagree, and a hospital changes its map by editing
data, not by redrawing a picture. Why not in `ui/`: `workflows.wayfinding.route_to` must work without Qt, so
other services can ask "where is this place" from their own thread.

Units are metres; y grows southwards (north is up on the screen, as on the lobby's wall maps). A *sheet* is
what is drawn at once: the ground floor of the whole campus ("G": outpatient, medical-technology and
emergency buildings with the link bridge between them), or one upper floor of the outpatient building.

The locations are those of the reference HIS (`central/his/seed.py`, `central/his/reference.py`); a test
checks that every location the seed hands out leads somewhere on this map. A real hospital replaces this
module's tables with its own.
"""
from __future__ import annotations

from dataclasses import dataclass, field

Rect = tuple[float, float, float, float]  # x, y, width, height
Point = tuple[float, float]
Segment = tuple[Point, Point]


@dataclass(frozen=True)
class Building:
    id: str
    name: str
    name_en: str
    short_en: str  # "Outpatient Bldg": what the seed's English locations call it


@dataclass(frozen=True)
class Sheet:
    """One drawing: a floor, with the outline of each building on it and the corridors one walks along."""

    id: str
    floor: int
    outlines: tuple[tuple[str, Rect], ...]  # (building id, outline)
    corridors: tuple[Segment, ...]  # axis-aligned centre lines of corridors and walkways


@dataclass(frozen=True)
class Room:
    """A place a patient can be sent to. `door` lies on the room's edge towards a corridor."""

    id: str
    sheet: str
    building: str
    rect: Rect
    door: Point
    name: str
    name_en: str
    kind: str  # clinic, zone, pharmacy, lab, imaging, cashier, desk, treatment, toilet, lift, emergency, lobby
    label: str = ""  # shorter text for the map; the name when empty
    aliases: tuple[str, ...] = ()  # other ways the HIS or a slip writes this place
    zone: str = ""  # "A" … "D" on the outpatient floors


@dataclass(frozen=True)
class Spot:
    """Where a kiosk stands: the "您在这里 You are here" of the map (configuration key `kiosk_location`)."""

    name: str
    name_en: str
    sheet: str
    building: str
    point: Point


BUILDINGS = {
    "OPD": Building("OPD", "门诊楼", "Outpatient Building", "Outpatient Bldg"),
    "MT": Building("MT", "医技楼", "Medical Technology Building", "Medical Technology Bldg"),
    "ER": Building("ER", "急诊楼", "Emergency Building", "Emergency Bldg"),
}
OPD_FLOORS = range(1, 9)
OPD_OUTLINE: Rect = (0, 0, 100, 40)
MT_OUTLINE: Rect = (120, 0, 50, 40)
ER_OUTLINE: Rect = (120, 56, 50, 28)
LIFT_SHAFT = "OPD-lifts"  # the lift rooms of all outpatient floors are one shaft

#: Departments by floor and zone of the outpatient building (the seed's "门诊楼3层 B区").
ZONES: dict[tuple[int, str], tuple[str, str]] = {
    (1, "B"): ("儿科", "Paediatrics"), (1, "C"): ("中医科", "Traditional Chinese Medicine"),
    (1, "D"): ("康复医学科", "Rehabilitation Medicine"),
    (2, "A"): ("心血管内科", "Cardiology"), (2, "B"): ("呼吸与危重症医学科", "Respiratory Medicine"),
    (2, "C"): ("消化内科", "Gastroenterology"), (2, "D"): ("检验科 · 抽血", "Laboratory · blood tests"),
    (3, "A"): ("内分泌科", "Endocrinology"), (3, "B"): ("神经内科", "Neurology"), (3, "C"): ("肾内科", "Nephrology"),
    (3, "D"): ("老年医学科", "Geriatrics"),
    (4, "A"): ("普通外科", "General Surgery"), (4, "B"): ("骨科", "Orthopaedics"), (4, "C"): ("泌尿外科", "Urology"),
    (4, "D"): ("神经外科", "Neurosurgery"),
    (5, "A"): ("心胸外科", "Cardiothoracic Surgery"), (5, "B"): ("妇科", "Gynaecology"), (5, "C"): ("产科", "Obstetrics"),
    (6, "A"): ("眼科", "Ophthalmology"), (6, "B"): ("耳鼻咽喉头颈外科", "ENT"), (6, "C"): ("口腔科", "Stomatology"),
    (6, "D"): ("皮肤科", "Dermatology"),
    (7, "A"): ("肿瘤科", "Oncology"), (7, "B"): ("精神心理科", "Psychological Medicine"),
    (8, "A"): ("特需诊区", "Special-needs clinic"), (8, "B"): ("MDT诊室", "MDT clinic"),
}

#: Names a slip or a person uses for a zone besides "门诊楼2层 D区".
EXTRA_ALIASES: dict[tuple[int, str], tuple[str, ...]] = {
    (2, "D"): ("检验科", "化验室", "抽血", "采血", "检验", "laboratory"),
    (8, "A"): ("特需门诊", "门诊楼8层 特需诊区"), (8, "B"): ("多学科联合门诊", "MDT", "门诊楼8层 MDT诊室"),
}


def opd_sheet(floor: int) -> str:
    return "G" if floor == 1 else f"OPD-{floor}"


def _upper_floor_rooms(floor: int) -> list[Room]:
    """Floors 2–8 share one plan: zones A and B north of the corridor, D and C south, lifts and toilets in the
    middle, as the seed's zone letters read clockwise from the north-west."""
    sheet = opd_sheet(floor)
    rooms = [
        Room(f"OPD{floor}-lift", sheet, "OPD", (44, 0, 12, 16), (50, 16), "电梯", "Lifts", "lift",
             aliases=(f"门诊楼{floor}层 电梯", f"门诊楼{floor}层 电梯厅")),
        Room(f"OPD{floor}-wc", sheet, "OPD", (44, 24, 12, 16), (50, 24), "卫生间", "Toilets", "toilet"),
    ]
    zone_rects = {"A": ((0, 0, 44, 16), (22, 16)), "B": ((56, 0, 44, 16), (78, 16)),
                  "D": ((0, 24, 44, 16), (22, 24)), "C": ((56, 24, 44, 16), (78, 24))}
    for zone, (rect, door) in zone_rects.items():
        name, name_en = ZONES.get((floor, zone), ("", ""))
        rooms.append(Room(f"OPD{floor}-{zone}", sheet, "OPD", rect, door, name or f"{zone}区",
                          name_en or f"Zone {zone}", "zone" if not name else "clinic",
                          label=f"{zone}区 {name}".strip(), zone=zone,
                          aliases=(f"门诊楼{floor}层 {zone}区",) + EXTRA_ALIASES.get((floor, zone), ())))
    return rooms


def _ground_rooms() -> list[Room]:
    def zone(z: str, rect: Rect, door: Point) -> Room:
        name, name_en = ZONES[(1, z)]
        return Room(f"OPD1-{z}", "G", "OPD", rect, door, name, name_en, "clinic", label=f"{z}区 {name}",
                    zone=z, aliases=(f"门诊楼1层 {z}区",))

    return [
        # outpatient building, north of the corridor
        Room("cashier", "G", "OPD", (0, 0, 22, 16), (11, 16), "门诊收费处", "Cashier", "cashier",
             label="挂号收费处", aliases=("门诊收费处", "收费处", "挂号收费处", "人工窗口", "收费窗口")),
        Room("pharmacy-west", "G", "OPD", (22, 0, 22, 16), (33, 16), "门诊西药房 1–4 号窗口",
             "Western pharmacy, windows 1–4", "pharmacy", label="西药房 1–4号窗口",
             aliases=("西药房", "门诊西药房", "药房", "取药")),
        Room("OPD1-lift", "G", "OPD", (44, 0, 12, 16), (50, 16), "电梯", "Lifts", "lift",
             aliases=("门诊楼1层 电梯", "门诊楼1层 电梯厅")),
        Room("pharmacy-tcm", "G", "OPD", (56, 0, 14, 16), (63, 16), "门诊中药房 5 号窗口",
             "Chinese-medicine pharmacy, window 5", "pharmacy", label="中药房 5号窗口",
             aliases=("中药房", "门诊中药房")),
        zone("B", (70, 0, 30, 16), (85, 16)),
        # outpatient building, south of the corridor
        Room("treatment", "G", "OPD", (0, 24, 16, 16), (8, 24), "门诊治疗室", "Treatment room", "treatment",
             label="治疗室 输液", aliases=("治疗室", "门诊治疗室", "输液")),
        zone("D", (16, 24, 24, 16), (28, 24)),
        Room("lobby", "G", "OPD", (40, 24, 20, 16), (50, 24), "门诊大厅", "Main hall", "lobby", label="门诊大厅",
             aliases=("大厅", "门诊楼1层 大厅")),
        Room("help-desk", "G", "OPD", (53, 28, 6, 6), (53, 31), "服务台（导诊台）", "Help desk", "desk",
             label="服务台", aliases=("门诊楼一楼服务台", "服务台", "导诊台", "咨询台")),
        Room("OPD1-wc", "G", "OPD", (60, 24, 10, 16), (65, 24), "卫生间", "Toilets", "toilet"),
        zone("C", (70, 24, 30, 16), (85, 24)),
        # medical-technology building, over the link bridge
        Room("imaging", "G", "MT", (120, 0, 30, 16), (135, 16), "医学影像科", "Imaging (X-ray, CT)", "imaging",
             label="影像科 CT·X光", aliases=("医学影像科", "影像科", "放射科", "CT", "X光", "医技楼1层 影像", "imaging")),
        Room("mri", "G", "MT", (150, 0, 20, 16), (160, 16), "磁共振室", "MRI", "imaging", label="磁共振",
             aliases=("磁共振", "核磁", "MRI")),
        Room("MT1-wc", "G", "MT", (120, 24, 10, 16), (125, 24), "卫生间", "Toilets", "toilet"),
        Room("ultrasound", "G", "MT", (140, 24, 30, 16), (155, 24), "超声科 · 心电图", "Ultrasound · ECG",
             "imaging", label="超声 心电图", aliases=("超声科", "B超", "彩超", "心电图", "超声")),
        # emergency building, out of the medical-technology building's south door
        Room("resus", "G", "ER", (120, 56, 13, 28), (133, 70), "抢救大厅", "Resuscitation hall", "emergency",
             label="抢救大厅", aliases=("抢救室", "抢救大厅")),
        Room("emergency", "G", "ER", (137, 56, 33, 28), (137, 70), "急诊内科", "Emergency Medicine (24 h)",
             "emergency", label="急诊内科 24小时", aliases=("急诊楼1层 抢救大厅旁", "急诊", "急诊内科", "急诊科")),
    ]


def _ground_sheet() -> Sheet:
    return Sheet("G", 1, (("OPD", OPD_OUTLINE), ("MT", MT_OUTLINE), ("ER", ER_OUTLINE)), (
        ((2, 20), (100, 20)),  # outpatient main corridor
        ((50, 20), (50, 39)),  # across the hall, from the corridor to the main entrance
        ((100, 20), (120, 20)),  # link bridge (连廊)
        ((120, 20), (168, 20)),  # medical-technology corridor
        ((135, 20), (135, 40)),  # passage to the south door
        ((135, 40), (135, 56)),  # covered walkway to the emergency building
        ((135, 56), (135, 82)),  # emergency building corridor
    ))


def _upper_sheet(floor: int) -> Sheet:
    return Sheet(opd_sheet(floor), floor, (("OPD", OPD_OUTLINE),), (((2, 20), (98, 20)),))


SHEETS: dict[str, Sheet] = {"G": _ground_sheet(), **{opd_sheet(f): _upper_sheet(f) for f in OPD_FLOORS if f > 1}}
ROOMS: dict[str, Room] = {r.id: r for r in _ground_rooms() + [r for f in OPD_FLOORS if f > 1
                                                              for r in _upper_floor_rooms(f)]}

#: Named points on corridors, for the words of a route ("在电梯厅左转").
LANDMARKS: dict[str, list[tuple[Point, str, str]]] = {
    "G": [((50, 20), "电梯厅", "the lift hall"), ((100, 20), "连廊入口", "the link bridge"),
          ((120, 20), "医技楼", "the Medical Technology Building"), ((135, 40), "医技楼南门", "the south door"),
          ((135, 56), "急诊楼", "the Emergency Building")],
    **{opd_sheet(f): [((50, 20), "电梯厅", "the lift hall")] for f in OPD_FLOORS if f > 1},
}

#: What a straight stretch passes through, said on the way ("直走约 90 米，过连廊进入医技楼").
PASSING: dict[str, list[tuple[Point, str, str]]] = {
    "G": [((110, 20), "过连廊进入医技楼", "over the link bridge into the Medical Technology Building"),
          ((135, 48), "出医技楼南门，进入急诊楼", "out of the south door into the Emergency Building")],
}

#: Where a kiosk may stand. The default is the outpatient hall, where most kiosks are.
SPOTS: dict[str, Spot] = {
    "门诊楼1层 大厅": Spot("门诊楼1层 大厅", "Outpatient Bldg 1F, main hall", "G", "OPD", (46, 31)),
    "门诊楼1层 收费处": Spot("门诊楼1层 收费处", "Outpatient Bldg 1F, by the cashier", "G", "OPD", (11, 22)),
    "医技楼1层": Spot("医技楼1层", "Medical Technology Bldg 1F", "G", "MT", (130, 22)),
    "急诊楼1层": Spot("急诊楼1层", "Emergency Bldg 1F", "G", "ER", (135, 60)),
    **{f"门诊楼{f}层 电梯厅": Spot(f"门诊楼{f}层 电梯厅", f"Outpatient Bldg {f}F, lift hall", opd_sheet(f), "OPD",
                               (46, 22)) for f in OPD_FLOORS if f > 1},
}
DEFAULT_SPOT = "门诊楼1层 大厅"


@dataclass(frozen=True)
class Group:
    """A heading of the destination list on the guidance screen."""

    id: str
    name: str
    name_en: str
    rooms: tuple[str, ...] = field(default_factory=tuple)


def _clinics(*names: str) -> tuple[str, ...]:
    by_name = {r.name: r.id for r in ROOMS.values() if r.kind == "clinic"}
    return tuple(by_name[n] for n in names)


#: The destination list, most asked-for first. "toilets" and "lifts" mean the nearest ones.
GROUPS: list[Group] = [
    Group("common", "常用地点", "Common places", ("cashier", "pharmacy-west", "pharmacy-tcm", "OPD2-D", "imaging",
                                          "ultrasound", "treatment", "help-desk", "toilets", "lifts", "emergency")),
    Group("medicine", "内科", "Medicine", _clinics("心血管内科", "呼吸与危重症医学科", "消化内科", "内分泌科", "神经内科",
                                                "肾内科", "老年医学科", "肿瘤科")),
    Group("surgery", "外科", "Surgery", _clinics("普通外科", "骨科", "泌尿外科", "神经外科", "心胸外科")),
    Group("women_children", "妇产科 · 儿科", "Women and children", _clinics("妇科", "产科", "儿科")),
    Group("senses", "五官 · 皮肤", "Eye, ENT, teeth, skin", _clinics("眼科", "耳鼻咽喉头颈外科", "口腔科", "皮肤科")),
    Group("other", "其他科室", "Other clinics", _clinics("中医科", "康复医学科", "精神心理科", "特需诊区", "MDT诊室")
          + ("emergency",)),
]
NEAREST = {"toilets": ("toilet", "卫生间", "Toilets"), "lifts": ("lift", "电梯", "Lifts")}
