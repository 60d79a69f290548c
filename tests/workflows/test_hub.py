"""The hub: the home screen lists every service, starts the one tapped, hands events to it alone, takes the
home screen back when it ends, and keeps visits from starting during maintenance."""
from __future__ import annotations

import pytest

from drivers.health import Health
from workflows.hub import Entry, ServiceHub
from workflows.journal import Journal
from workflows.registration import SameDayRegistration, Timeouts
from workflows.services import catalogue

from .fakes import FakeBackend, FakeCard, RecordingPrinter


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
