"""就诊导航 (K12): every place the reference HIS hands out leads somewhere on the map, with words that match the
drawing; unknown places send the patient to the help desk; the service keeps the kiosk's idle rule."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from central.his.adapter import HisRules
from central.his.reference import PLACES, PLACES_EN
from central.his.seed import DEPARTMENTS, SPECIAL_CLINICS
from offline_queue.outbox import Outbox
from workflows.guidance import Guidance
from workflows.hospital_map import GROUPS, NEAREST, ROOMS, SHEETS, SPOTS
from workflows.journal import Journal
from workflows.service_base import Timeouts
from workflows.wayfinding import ASK_HELP_DESK, resolve, route_to, route_to_room, spot

from .fakes import Clock, FakeBackend, RecordingPrinter

SEED_LOCATIONS = [d[4] for d in DEPARTMENTS] + [c[4] for c in SPECIAL_CLINICS]


@pytest.fixture
def env(tmp_path):
    journal = Journal(tmp_path / "journal.db")
    outbox = Outbox(tmp_path / "journal.db")
    views = []
    clock = Clock()
    wf = Guidance(FakeBackend(journal), RecordingPrinter(), journal, views.append, "KIOSK-T01", Timeouts(),
                  clock=clock, outbox=outbox)
    return wf, views, journal, outbox, clock


@pytest.mark.parametrize("location", SEED_LOCATIONS)
def test_every_department_of_the_seed_has_a_route_to_its_own_floor(location):
    route = route_to(location)
    assert route is not None, location
    floor = int(re.search(r"(\d+)层", location).group(1))
    building = location[:3]
    assert route.where.startswith(f"{building}{floor}层"), (location, route.where)
    zone = re.search(r"([A-D])区", location)
    if zone:
        assert route.destination.zone == zone.group(1)
    # the line starts at this kiosk and ends at the destination's door, on the destination's floor
    assert route.legs[0].points[0] == SPOTS["门诊楼1层 大厅"].point and route.legs[0].sheet == "G"
    assert route.legs[-1].points[-1] == route.destination.door
    assert route.legs[-1].floor == floor == SHEETS[route.destination.sheet].floor
    assert route.steps[-1][0].startswith("到达") and route.minutes >= 1


@pytest.mark.parametrize("category", sorted(PLACES))
def test_every_place_on_a_bill_slip_has_a_route(category):
    for text in (PLACES[category], PLACES_EN[category]):
        route = route_to(text)
        assert route is not None, text
    kind = ROOMS[route.destination.id].kind
    assert kind == {"西药费": "pharmacy", "中成药费": "pharmacy", "化验费": "clinic", "检查费": "imaging",
                    "治疗费": "treatment"}[category]


def test_the_reprint_place_and_the_registration_slip_location_have_routes():
    assert route_to(HisRules().reprint_place).destination.id == "help-desk"
    assert route_to("门诊楼2层 B区 5诊室").destination.id == "OPD2-B"  # a room number inside a zone
    assert route_to("检验科（门诊楼二楼）").destination.id == "OPD2-D"


def test_upstairs_the_route_takes_the_lift_and_turns_the_right_way():
    route = route_to("门诊楼3层 B区")
    assert [leg.sheet for leg in route.legs] == ["G", "OPD-3"]
    words = [zh for zh, _ in route.steps]
    assert any("乘电梯到 3 层" in w for w in words)
    # out of the lift (which faces south) towards zone B in the east: east is on the left when facing south,
    # and zone B lies north of the corridor, so on the left when walking east
    assert any(w.startswith("出电梯") and w.endswith("左转") for w in words)
    assert "神经内科在您的左手边" in words[-2]
    assert route.where == "门诊楼3层 B区" and route.where_en == "Outpatient Bldg 3F, Zone B"


def test_imaging_is_over_the_link_bridge_and_the_words_say_so():
    route = route_to("医学影像科（医技楼一楼）")
    assert len(route.legs) == 1 and route.destination.building == "MT"
    assert any("过连廊进入医技楼" in zh for zh, _ in route.steps)
    assert any("link bridge" in en for _, en in route.steps)


def test_unknown_places_get_no_guess():
    for text in ("火星门诊", "", "   ", "门诊楼9层 A区"):
        assert route_to(text) is None, text
    assert "服务台" in ASK_HELP_DESK[0] and "help desk" in ASK_HELP_DESK[1]


def test_toilets_and_lifts_mean_the_nearest_ones():
    assert resolve("卫生间").id == "OPD1-wc"
    upstairs = SPOTS["门诊楼5层 电梯厅"]
    assert resolve("厕所", upstairs).id == "OPD5-wc"
    assert route_to("卫生间", "门诊楼5层 电梯厅").legs[0].sheet == "OPD-5"
    assert resolve("电梯", upstairs).id == "OPD5-lift"


def test_an_unknown_kiosk_location_falls_back_to_the_hall(caplog):
    assert spot("门诊楼99层").name == "门诊楼1层 大厅"
    assert "not on the map" in caplog.text
    assert spot("门诊楼3层电梯厅").name == "门诊楼3层 电梯厅"  # spacing does not matter


def test_every_place_in_the_list_has_a_route_from_every_kiosk_position():
    for here in SPOTS.values():
        for group in GROUPS:
            for place in group.rooms:
                route = route_to(NEAREST[place][1], here) if place in NEAREST else route_to_room(place, here)
                assert route is not None, (here.name, place)
                assert route.legs[0].points[0] == here.point


def test_choose_a_place_see_the_map_and_go_home(env):
    wf, views, journal, outbox, clock = env
    wf.handle("start")
    assert wf.state == "choosing_place" and views[-1].screen == "guidance_places"
    assert [g["id"] for g in views[-1].data["groups"]][0] == "common"
    wf.handle("pick_group", group="surgery")
    assert views[-1].data["group"] == "surgery" and views[-1].data["places"][0]["name"] == "普通外科"
    wf.handle("pick_place", place="OPD4-B")
    view = views[-1]
    assert wf.state == "showing_route" and view.screen == "guidance_map" and view.can_back and not view.message
    assert view.data["route"]["destination"]["name"] == "骨科" and view.data["route"]["where"] == "门诊楼4层 B区"
    wf.handle("back")
    assert wf.state == "choosing_place"
    wf.handle("pick_place", place="toilets")
    assert views[-1].data["route"]["destination"]["id"] == "OPD1-wc"
    wf.handle("finish")
    assert wf.state == "home" and views[-1].screen == "home" and wf.visit.place == ""
    # the journal and the outbox know where someone asked to go, and nothing about who
    for entry in journal.entries():
        assert set(entry["data"]) == {"destination"}


def test_an_unknown_place_shows_the_way_to_the_help_desk(env):
    wf, views, journal, outbox, clock = env
    wf.handle("start")
    wf.handle("pick_place", place="火星门诊")
    view = views[-1]
    assert view.screen == "guidance_map"
    assert (view.message, view.message_en) == ASK_HELP_DESK
    assert view.data["route"]["destination"]["id"] == "help-desk"


@pytest.mark.parametrize("walk", [[], ["pick_place"], ["pick_place", "rate"]])
def test_idle_returns_home_from_every_screen(env, walk):
    wf, views, journal, outbox, clock = env
    wf.handle("start")
    for intent in walk:
        wf.handle(intent, **({"place": "cashier"} if intent == "pick_place" else {}))
    state = wf.state
    clock.t += Timeouts().choosing - 1
    wf.tick()
    assert wf.state == state  # not yet
    wf.handle("activity")  # a touch keeps it alive
    clock.t += Timeouts().choosing - 1
    wf.tick()
    assert wf.state == state
    clock.t += 2
    wf.tick()
    assert wf.state == "home" and views[-1].screen == "home" and wf.visit.place == ""


def test_the_guidance_service_imports_no_qt():
    code = ("import sys, workflows.guidance, workflows.wayfinding, workflows.survey; "
            "sys.exit(1 if any(m.startswith('PySide6') for m in sys.modules) else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
