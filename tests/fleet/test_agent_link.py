"""The kiosk app's side of the link (``kiosk_app.agent_link.KioskHandlers``) against a minimal kiosk: the
maintenance intent handed to the workflow runner, the configuration reloaded in place (and what needs a
restart named), the device self-test per device; and the same requests over the real loopback link."""
from __future__ import annotations

import json
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from drivers.health import Health
from fleet_agent.executors import Executors
from fleet_agent.link import LinkServer
from kiosk_app.agent_link import AgentLink, KioskHandlers, config_path_from_argv
from kiosk_app.config import KioskConfig
from workflows.registration import Timeouts

TOML = """credentials = "credentials.json"
data_dir = "kiosk-data"
idle_seconds = {idle}
device_poll_seconds = {poll}
{extra}
"""


class Runner:
    def __init__(self) -> None:
        self.posted: list[tuple[str, dict[str, Any]]] = []

    def post(self, intent: str, **kwargs: Any) -> None:
        self.posted.append((intent, kwargs))


@dataclass
class Workflow:
    state: str = "home"
    timeouts: Timeouts = field(default_factory=Timeouts)


class Worker:
    """A device thread as the handlers see it: jobs run on a thread of their own, health checked every
    ``health_interval``."""

    def __init__(self, health: Health, delay: float = 0.0):
        self.health = health
        self.delay = delay
        self.health_interval = 2.0

    def submit(self, job: Any) -> Future[Any]:
        future: Future[Any] = Future()

        def run() -> None:
            time.sleep(self.delay)
            future.set_result(job(self))

        threading.Thread(target=run, daemon=True).start()
        return future

    def self_test(self) -> Health:
        return self.health


@dataclass
class Kiosk:
    config: KioskConfig
    runner: Runner = field(default_factory=Runner)
    workflow: Workflow = field(default_factory=Workflow)
    workers: dict[str, Worker] = field(default_factory=dict)
    health: dict[str, Health] = field(default_factory=dict)


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    (tmp_path / "credentials.json").write_text(json.dumps({"terminal_id": "KIOSK-001", "secret": "s",
                                                           "server_url": "http://127.0.0.1:9"}))
    path = tmp_path / "kiosk.toml"
    path.write_text(TOML.format(idle=90, poll=2.0, extra=""))
    return path


@pytest.fixture
def kiosk(config_file: Path) -> Kiosk:
    config = KioskConfig.load(config_file)
    return Kiosk(config, workflow=Workflow(timeouts=Timeouts(choosing=config.idle_seconds)),
                 workers={"receipt_printer": Worker(Health.ok()), "pinpad": Worker(Health.fault("tampered", "lid"))},
                 health={"id_card": Health.ok(), "receipt_printer": Health.ok(), "pinpad": Health.ok()})


def test_maintenance_posts_the_intent_to_the_workflow_runner(kiosk: Kiosk) -> None:
    handlers = KioskHandlers(kiosk)
    assert handlers.state()["maintenance"] is False
    reply = handlers.maintenance({"on": True})
    assert reply["ok"] is True
    intent, kwargs = kiosk.runner.posted[-1]
    assert intent == "maintenance" and kwargs["on"] is True
    assert kwargs["reason_zh"].startswith("本机正在维护") and "maintenance" in kwargs["reason_en"]
    assert handlers.state()["maintenance"] is True  # the beats say so from now on
    reply = handlers.maintenance({"on": False, "reason_zh": "更换打印纸", "reason_en": "Changing the paper"})
    assert reply["ok"] is True
    assert kiosk.runner.posted[-1] == ("maintenance", {"on": False, "reason_zh": "更换打印纸",
                                                      "reason_en": "Changing the paper"})
    assert handlers.state()["maintenance"] is False


@pytest.mark.parametrize("args, words", [({}, "'on'"), ({"on": "yes"}, "'on'"),
                                         ({"on": True, "reason_zh": ""}, "reason_zh"),
                                         ({"on": True, "reason_en": "x" * 201}, "reason_en")])
def test_maintenance_refuses_bad_arguments_and_posts_nothing(kiosk: Kiosk, args: dict[str, Any],
                                                             words: str) -> None:
    reply = KioskHandlers(kiosk).maintenance(args)
    assert reply["ok"] is False and words in reply["result"]
    assert kiosk.runner.posted == []


def test_reload_applies_the_run_time_keys(kiosk: Kiosk, config_file: Path) -> None:
    handlers = KioskHandlers(kiosk, config_file)
    assert handlers.reload_config({}) == {"ok": True, "result": "configuration reloaded: nothing to apply at run time"}
    config_file.write_text(TOML.format(idle=45, poll=0.5, extra=""))
    reply = handlers.reload_config({})
    assert reply["ok"] is True, reply
    assert kiosk.workflow.timeouts.choosing == 45 and kiosk.workflow.timeouts.reading_card == 60  # only the idle one
    assert all(w.health_interval == 0.5 for w in kiosk.workers.values())
    assert (kiosk.config.idle_seconds, kiosk.config.device_poll_seconds) == (45, 0.5)


def test_reload_names_what_needs_a_restart_and_still_applies_the_rest(kiosk: Kiosk, config_file: Path) -> None:
    handlers = KioskHandlers(kiosk, config_file)
    config_file.write_text(TOML.format(idle=30, poll=2.0, extra='timezone = "Asia/Urumqi"\n'
                                                                  '[devices.receipt_printer]\nport = "/dev/ttyS3"'))
    reply = handlers.reload_config({})
    assert reply["ok"] is False
    assert "devices" in reply["result"] and "timezone" in reply["result"] and "restart" in reply["result"]
    assert "idle_seconds 90 → 30" in reply["result"] and kiosk.workflow.timeouts.choosing == 30


def test_reload_compares_start_up_keys_with_the_file_not_the_command_line(kiosk: Kiosk, config_file: Path) -> None:
    kiosk.config.fullscreen = False  # kiosk run --windowed
    kiosk.config.devices = {"receipt_printer": {"driver": "simulated"}}  # kiosk run --simulated
    assert KioskHandlers(kiosk, config_file).reload_config({})["ok"] is True


@pytest.mark.parametrize("content, words", [("idle_seconds = [", "not valid TOML"),
                                            (TOML.format(idle=1, poll=2.0, extra=""), "idle_seconds = 1 is outside"),
                                            (TOML.format(idle=90, poll=0, extra=""), "device_poll_seconds = 0"),
                                            ('data_dir = "x"', "KeyError")])
def test_a_bad_file_changes_nothing(kiosk: Kiosk, config_file: Path, content: str, words: str) -> None:
    handlers = KioskHandlers(kiosk, config_file)
    config_file.write_text(content)
    reply = handlers.reload_config({})
    assert reply["ok"] is False and words in reply["result"] and "not reloaded" in reply["result"]
    assert kiosk.workflow.timeouts.choosing == 90 and kiosk.config.idle_seconds == 90
    assert all(w.health_interval == 2.0 for w in kiosk.workers.values())


def test_reload_without_a_file(kiosk: Kiosk, config_file: Path) -> None:
    reply = KioskHandlers(kiosk, None).reload_config({})
    assert reply["ok"] is False and "not started from a configuration file" in reply["result"]
    missing = KioskHandlers(kiosk, config_file)
    config_file.unlink()
    reply = missing.reload_config({})
    assert reply["ok"] is False and "kiosk.toml does not exist" in reply["result"]


def test_config_path_from_the_command_line() -> None:
    assert config_path_from_argv(["kiosk", "run", "--config", "etc/kiosk.toml"]) == Path("etc/kiosk.toml")
    assert config_path_from_argv(["kiosk", "run", "--config=k.toml", "--windowed"]) == Path("k.toml")
    assert config_path_from_argv(["kiosk", "run", "--simulated"]) is None


def test_self_test_answers_per_device(kiosk: Kiosk) -> None:
    handlers = KioskHandlers(kiosk)
    reply = handlers.self_test({})
    assert reply["ok"] is False
    assert reply["devices"]["pinpad"] == {"status": "fault", "reason": "tampered", "detail": "lid",
                                          "source": "self-test"}  # the test's answer, not the older report
    assert reply["devices"]["receipt_printer"]["status"] == "ok"
    assert reply["devices"]["id_card"]["source"] == "last report"  # owned by its poller
    assert "1 failed" in reply["result"] and "pinpad fault (tampered)" in reply["result"]
    one = handlers.self_test({"device": "receipt_printer"})
    assert one["ok"] is True and list(one["devices"]) == ["receipt_printer"]
    unknown = handlers.self_test({"device": "fax"})
    assert unknown["ok"] is False and "no device 'fax'" in unknown["result"]


def test_the_requests_over_the_real_link(kiosk: Kiosk, config_file: Path, tmp_path: Path) -> None:
    """The agent's executors ask, the app's link answers: loopback UDP both ways."""
    server = LinkServer(port=0).start()
    handlers = KioskHandlers(kiosk, config_file)
    link = handlers.register(AgentLink(handlers.state, version="1.4.2", port=server.port, interval=0.1)).start()
    try:
        assert server.wait_for_beat(0, timeout=5) is not None
        executors = Executors(link=server, work_dir=tmp_path)
        assert executors.run("maintenance_on", {}).ok
        assert kiosk.runner.posted[-1][0] == "maintenance" and kiosk.runner.posted[-1][1]["on"] is True
        after = time.monotonic()
        assert server.wait_for_beat(after, timeout=5).maintenance is True
        config_file.write_text(TOML.format(idle=60, poll=2.0, extra=""))
        done = executors.run("reload_config", {})
        assert done.ok and "idle_seconds 90 → 60" in done.result
        tested = executors.run("self_test", {"device": "pinpad"})
        assert not tested.ok and "pinpad fault (tampered)" in tested.result
        assert executors.run("maintenance_off", {}).ok and kiosk.runner.posted[-1][1]["on"] is False
    finally:
        link.stop()
        server.stop()


def test_an_app_without_reload_is_restarted_only_when_idle(tmp_path: Path) -> None:
    """An app too old to know ``reload_config`` says so; the agent restarts it instead, unless a patient
    is paying."""
    server = LinkServer(port=0).start()
    paying = {"on": True}
    link = AgentLink(lambda: {"payment_in_progress": paying["on"]}, version="1.0", port=server.port,
                     interval=0.1).start()

    class Watchdog:
        start_grace = 1.0
        restarts: list[str] = []

        def restart(self, reason: str) -> None:
            self.restarts.append(reason)

    watchdog = Watchdog()
    try:
        assert server.wait_for_beat(0, timeout=5) is not None
        executors = Executors(link=server, watchdog=watchdog, work_dir=tmp_path)  # type: ignore[arg-type]
        refused = executors.run("reload_config", {})
        assert not refused.ok and "payment is in progress" in refused.result and watchdog.restarts == []
        paying["on"] = False
        server.wait_for_beat(time.monotonic(), timeout=5)
        restarted = executors.run("reload_config", {})
        assert restarted.ok and "reloaded by restarting" in restarted.result and watchdog.restarts == ["command"]
    finally:
        link.stop()
        server.stop()
