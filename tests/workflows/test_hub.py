"""The hub: the home screen lists every service, starts the one tapped, hands events to it alone, takes the
home screen back when it ends, and keeps visits from starting during maintenance. At the end of a visit it
offers the map to the places the result names ("Show the way") and the survey, once, after a visit that served."""
from __future__ import annotations

import json

import pytest

from drivers.health import Health
from offline_queue.outbox import Outbox
from workflows.guidance import Guidance
from workflows.hub import Entry, ServiceHub, served
from workflows.journal import Journal
from workflows.outpatient_payment import OutpatientPayment
from workflows.registration import SameDayRegistration, Timeouts
from workflows.services import catalogue
from workflows.visit_survey import VisitSurvey

from .fakes import Clock, FakeBackend, FakeBillBackend, FakeCard, RecordingPrinter


class Echo:
    """A minimal service: goes to 'busy' on start, home on cancel; remembers what it was given."""

    def __init__(self, publish):
        self.publish = publish
        self.state = "home"
        self.seen: list[str] = []
        self.usable = True

    def handle(self, intent, **kwargs):
        self.seen.append(intent)
        if intent == "start":
            self.state = "busy"
        elif intent == "cancel":
            self.state = "home"
            from workflows.view import View
            self.publish(View("home"))

    def tick(self):
        self.seen.append("tick")

    def availability(self):
        return (True, "", "") if self.usable else (False, "扫码器暂时故障", "Scanner out of order")


@pytest.fixture
def hub(tmp_path):
    journal = Journal(tmp_path / "journal.db")
    backend = FakeBackend(journal)
    views = []

    def registration(publish):
        return SameDayRegistration(backend, RecordingPrinter(), journal, publish, "KIOSK-T01",
                                   Timeouts(poll_interval=1.0), sleep=lambda s: None)

    entries = catalogue({"registration": registration}) + [Entry("echo", "测试", "Echo", Echo)]
    h = ServiceHub(entries, views.append)
    return h, views


def tiles(view):
    return {t["id"]: t for t in view.data["services"]}


def test_home_lists_built_and_unbuilt_services(hub):
    h, views = hub
    home = h.home_view()
    listed = tiles(home)
    assert listed["registration"]["built"] and listed["registration"]["available"]
    assert not listed["appointment"]["built"] and not listed["appointment"]["available"]
    assert list(listed)[:2] == ["registration", "appointment"]


def test_a_tapped_service_runs_alone_and_hands_the_home_screen_back(hub):
    h, views = hub
    h.handle("open_service", service="registration")
    assert h.active == "registration" and views[-1].screen == "insert_card"
    h.handle("open_service", service="echo")  # a second tap elsewhere does nothing mid-visit
    assert h.active == "registration" and "start" not in h.services["echo"].seen
    h.handle("card_read", card=FakeCard())
    assert views[-1].screen == "departments"
    h.handle("cancel")
    assert h.active is None and views[-1].screen == "home" and "services" in views[-1].data


def test_events_at_the_home_screen_start_nothing(hub):
    h, views = hub
    h.handle("card_read", card=FakeCard())
    h.handle("code_scanned", kind="wechat_pay", code="134567890123456789")
    h.handle("open_service", service="appointment")  # not built
    h.handle("open_service", service="nonsense")
    assert h.active is None and h.services["registration"].state == "home"


def test_device_health_reaches_every_service_and_redraws_home(hub):
    h, views = hub
    h.handle("device_health", device="receipt_printer", health=Health.fault("paper_out", "纸张用完"))
    assert views[-1].screen == "home"
    assert not tiles(views[-1])["registration"]["available"]
    assert "凭条打印机" in tiles(views[-1])["registration"]["reason"]
    assert tiles(views[-1])["echo"]["available"]
    h.handle("open_service", service="registration")
    assert h.active is None  # refused while its printer is out


def test_maintenance_stops_new_visits_but_lets_a_running_one_finish(hub):
    h, views = hub
    h.handle("open_service", service="echo")
    h.handle("maintenance", on=True, reason_zh="系统升级", reason_en="Upgrading")
    assert h.active == "echo" and not any(v.data.get("maintenance") for v in views)  # the visit goes on
    h.handle("cancel")
    assert h.active is None and views[-1].data["maintenance"]["reason"] == "系统升级"
    h.handle("open_service", service="echo")
    assert h.active is None
    h.handle("maintenance", on=False)
    assert "maintenance" not in views[-1].data
    h.handle("open_service", service="echo")
    assert h.active == "echo"


def test_ticks_go_to_the_running_service_only(hub):
    h, views = hub
    h.tick()
    assert "tick" not in h.services["echo"].seen
    h.handle("open_service", service="echo")
    h.tick()
    assert h.services["echo"].seen[-1] == "tick"


def test_the_catalogue_refuses_unknown_services():
    with pytest.raises(ValueError):
        catalogue({"teleport": Echo})


def test_a_device_report_redraws_home_once_not_once_per_service(hub):
    h, views = hub
    before = len(views)
    h.handle("device_health", device="receipt_printer", health=Health.fault("paper_out", "纸张用完"))
    assert len(views) - before == 1 and views[-1].screen == "home"


# ---- the end of a visit: "Show the way" and the survey (K12, K13) ---------------------------------------------

class PlacedBackend(FakeBillBackend):
    """The fake server, with the room the reference HIS gives a registration (a place the map knows)."""

    def phone_pays(self, order_no: str, fulfil: bool = True) -> None:
        super().phone_pays(order_no, fulfil)
        registration = self.orders[order_no].get("registration")
        if registration:
            registration["location"] = "门诊楼3层 B区 5诊室"


@pytest.fixture
def visit(tmp_path):
    """A hub as the kiosk builds it: registration, outpatient payment, guidance and the survey, one journal
    and one outbox, a clock the test moves."""
    journal = Journal(tmp_path / "journal.db")
    outbox = Outbox(tmp_path / "journal.db")
    backend = PlacedBackend(journal)
    clock = Clock()
    printer = RecordingPrinter()
    views: list = []
    timeouts = Timeouts(poll_interval=1.0)
    kw = dict(timeouts=timeouts, clock=clock, sleep=lambda s: None, outbox=outbox)

    def factory(cls, **extra):
        return lambda publish: cls(backend, printer, journal, publish, "KIOSK-T01", **kw, **extra)

    h = ServiceHub(catalogue({"registration": factory(SameDayRegistration),
                              "outpatient_payment": factory(OutpatientPayment), "guidance": factory(Guidance)}),
                   views.append, survey=factory(VisitSurvey))
    return h, views, backend, clock, journal, outbox


def register(h, backend, clock):
    """A same-day registration paid by the phone, up to its result screen."""
    h.handle("open_service", service="registration")
    h.handle("card_read", card=FakeCard())
    h.handle("pick_department", code="NK")
    h.handle("pick_doctor", code="D01")
    h.handle("pick_slot", slot_id=102)  # two places: room for a second visit in one test
    h.handle("confirm")
    backend.phone_pays(h.current.visit.order["order_no"])
    clock.t += 1.5
    h.tick()
    assert h.active == "registration" and h.current.state == "done"


def surveys(outbox):
    return [m.body() for m in outbox.messages() if m.kind == "survey_answer"]


def test_done_after_a_visit_offers_the_survey_once_and_stores_it_anonymously(visit):
    h, views, backend, clock, journal, outbox = visit
    register(h, backend, clock)
    h.handle("finish")
    assert h.active == "survey" and views[-1].screen == "survey" and not views[-1].patient
    h.handle("answer", question="overall", score=5)
    h.handle("answer", question="speed", score=4)
    h.handle("submit")
    assert views[-1].screen == "survey_thanks"
    h.handle("finish")
    assert h.active is None and views[-1].screen == "home"
    [answer] = surveys(outbox)
    assert answer["service"] == "registration" and answer["terminal_id"] == "KIOSK-T01"
    assert answer["answers"] == {"overall": 5, "speed": 4}
    assert set(answer) == {"version", "terminal_id", "service", "day", "answered_at", "answers"}
    # nothing of the visit in the survey's journal entries or messages: not the session, not the order
    registration = {e["session"] for e in journal.entries() if e["workflow"] == "registration"}
    order_no = next(e["data"]["order_no"] for e in journal.entries() if e["data"].get("order_no"))
    survey_entries = [e for e in journal.entries() if e["workflow"] == "survey"]
    assert survey_entries and not {e["session"] for e in survey_entries} & registration
    assert order_no not in json.dumps(survey_entries) and order_no not in json.dumps(surveys(outbox))
    assert "李" not in json.dumps(survey_entries, ensure_ascii=False)
    # the next visit starts from home; the survey comes once per visit, not again on the way out
    h.handle("open_service", service="survey")
    assert h.active is None


def test_skip_is_one_tap_and_stores_nothing_and_an_unanswered_survey_goes_home_by_itself(visit):
    h, views, backend, clock, journal, outbox = visit
    register(h, backend, clock)
    h.handle("finish")
    h.handle("submit")  # nothing answered: Submit does nothing
    assert h.active == "survey"
    h.handle("skip")
    assert h.active is None and views[-1].screen == "home" and surveys(outbox) == []
    register(h, backend, clock)
    h.handle("finish")
    assert h.active == "survey"
    clock.t += Timeouts().done + 1
    h.tick()
    assert h.active is None and views[-1].screen == "home" and surveys(outbox) == []


def test_no_survey_when_the_result_timed_out_or_the_visit_failed_or_was_cancelled(visit):
    h, views, backend, clock, journal, outbox = visit
    register(h, backend, clock)
    clock.t += Timeouts().done + 1  # the patient took the slip and left
    h.tick()
    assert h.active is None and views[-1].screen == "home"
    # a failure: the server is down when the patient's card is read
    backend.offline.add("identify_by_id_card")
    h.handle("open_service", service="registration")
    h.handle("card_read", card=FakeCard())
    assert h.current.state == "failed"
    h.handle("finish")
    assert h.active is None and views[-1].screen == "home"
    backend.offline.clear()
    # cancelled before paying
    h.handle("open_service", service="registration")
    h.handle("cancel")
    assert h.active is None and views[-1].screen == "home"
    # guidance from its own tile ends without the hub's survey (it has its own "Rate us")
    h.handle("open_service", service="guidance")
    h.handle("pick_place", place="OPD3-B")
    h.handle("finish")
    assert h.active is None and views[-1].screen == "home"
    assert not any(v.screen == "survey" for v in views) and surveys(outbox) == []


def test_show_the_way_opens_the_map_at_the_clinic_and_then_the_survey(visit):
    h, views, backend, clock, journal, outbox = visit
    register(h, backend, clock)
    done = views[-1]
    assert done.screen == "done" and done.data["way_to"] == ["门诊楼3层 B区 5诊室"]
    [way] = done.data["ways"]
    assert way["place"] == "OPD3-B" and way["name"] == "神经内科" and way["where"] == "门诊楼3层 B区"
    h.handle("show_way", place="OPD1-B")  # a place the screen did not offer: nothing happens
    assert h.active == "registration" and views[-1] is done
    h.handle("show_way", place="OPD3-B")
    assert h.active == "guidance" and h.services["registration"].state == "home"
    assert h.services["registration"].visit.patient is None  # the visit is over: the patient's data is gone
    shown = views[-1]
    assert shown.screen == "guidance_map" and shown.data["route"]["destination"]["id"] == "OPD3-B"
    assert shown.data["route"]["legs"][-1]["sheet"] == "OPD-3" and shown.data["route"]["steps"]
    assert not shown.can_back and not shown.data["can_rate"]  # no way back into the finished visit, no 2nd survey
    h.handle("back")
    h.handle("rate")
    assert h.current.state == "showing_route"
    h.handle("finish")  # "知道了" on the map: the visit's survey
    assert h.active == "survey" and views[-1].screen == "survey"
    h.handle("answer", question="wayfinding", score=5)
    h.handle("submit")
    h.handle("finish")
    assert h.active is None and views[-1].screen == "home"
    assert [s["service"] for s in surveys(outbox)] == ["registration"]


def test_a_map_left_alone_goes_home_without_a_survey(visit):
    h, views, backend, clock, journal, outbox = visit
    register(h, backend, clock)
    h.handle("show_way", place="OPD3-B")
    assert h.active == "guidance"
    clock.t += Timeouts().choosing + 1
    h.tick()
    assert h.active is None and views[-1].screen == "home"
    assert not any(v.screen == "survey" for v in views)


def test_places_not_on_the_map_get_no_button(visit):
    h, views, backend, clock, journal, outbox = visit
    backend.phone_pays = super(PlacedBackend, backend).phone_pays  # the fake's own room: "门诊楼2层 3诊室"
    register(h, backend, clock)
    assert views[-1].data["way_to"] == ["门诊楼2层 3诊室"] and views[-1].data["ways"] == []
    h.handle("show_way", place="OPD2-B")
    assert h.active == "registration"


def test_a_paid_bill_offers_a_map_for_every_place_on_it(visit):
    h, views, backend, clock, journal, outbox = visit
    h.handle("open_service", service="outpatient_payment")
    h.handle("card_read", card=FakeCard())
    h.handle("pick_bill", bill_no="B001")
    h.handle("confirm")
    h.handle("pay")
    backend.phone_pays(h.current.visit.order["order_no"])
    clock.t += 1.5
    h.tick()
    done = views[-1]
    assert done.screen == "bill_done"
    assert [(w["text"], w["place"]) for w in done.data["ways"]] == [
        ("门诊西药房 1–4 号窗口", "pharmacy-west"), ("检验科（门诊楼二楼）", "OPD2-D"),
        ("医学影像科（医技楼一楼）", "imaging")]
    h.handle("show_way", place="imaging")
    route = views[-1].data["route"]
    assert views[-1].screen == "guidance_map" and route["destination"]["id"] == "imaging"
    assert any("连廊" in zh for zh, _ in route["steps"])  # over the link bridge to the other building
    h.handle("finish")
    assert h.active == "survey"
    h.handle("skip")
    assert h.active is None


def test_the_served_rule_for_partial_results():
    from workflows.view import View
    assert served(View("checkin_done", {"queue": {}}))
    assert not served(View("refund_done", {"at_counter": ["阿莫西林胶囊"], "refunded": []}))
    assert served(View("refund_done", {"at_counter": [], "refunded": [{"item_id": "11"}]}))
    assert not served(View("print_result", {"jobs": [{"status": "not_printed"}]}))
    assert served(View("print_result", {"jobs": [{"status": "printed"}, {"status": "skipped"}]}))
    assert not served(View("error")) and not served(None)
