"""办卡绑卡 (K2) driven without Qt, devices or network against a backend that keeps the server's rules: the
e-health card issued once and shown as a QR on glass and paper, visit cards bound to one patient, and every way
it can go wrong (card taken, wrong code, server down, answer lost, printer out of paper, scanner broken)."""
from __future__ import annotations

import json
from datetime import datetime

import pytest

from drivers.health import Health
from drivers.receipt.document import QrCode
from workflows.hub import ServiceHub
from workflows.journal import Journal
from workflows.patient_cards import HELD_ELSEWHERE, NOT_A_VISIT_CARD, SCANNER_DOWN, PatientCards
from workflows.service_base import OFFLINE, Timeouts
from workflows.services import SERVICES, catalogue

from .fakes import Clock, FakeCard, FakeCardsBackend, RecordingPrinter

CARD = "6123451234"


@pytest.fixture
def env(tmp_path):
    journal = Journal(tmp_path / "journal.db")
    backend = FakeCardsBackend(journal)
    printer = RecordingPrinter()
    views: list = []
    clock = Clock()
    wf = PatientCards(backend, printer, journal, views.append, "KIOSK-T01", Timeouts(), clock=clock,
                      sleep=lambda s: None, now=lambda: datetime(2026, 11, 23, 10, 5))
    return wf, backend, printer, views, journal, clock


def identify(wf) -> None:
    wf.handle("start")
    wf.handle("card_read", card=FakeCard())
    assert wf.state == "choosing_card"


def calls(backend, name: str) -> list[tuple]:
    return [args for n, args, _ in backend.calls if n == name]


def private_parts(journal, *secrets: str) -> list[str]:
    dump = json.dumps(journal.entries(), ensure_ascii=False)
    return [s for s in (*secrets, "李秀英", FakeCard.id_number, "李*英") if s in dump]


def test_the_menu_says_what_the_patient_holds(env):
    wf, backend, printer, views, journal, clock = env
    backend.visit_cards["6999991111"] = "P0001"
    identify(wf)
    menu = views[-1]
    assert menu.screen == "card_menu" and menu.can_cancel and menu.patient.startswith("李*英")
    assert menu.data == {"ehealth": "none", "visit_cards": ["6*****1111"], "can_bind": True, "bind_reason": "",
                         "bind_reason_en": ""}
    assert calls(backend, "patient_cards") == [("P0001",)]


def test_an_e_health_card_is_issued_shown_and_printed_and_the_same_card_comes_back(env):
    wf, backend, printer, views, journal, clock = env
    identify(wf)
    wf.handle("apply_ehealth")
    assert wf.state == "done"
    code = backend.ehealth["P0001"]
    shown = views[-1]
    assert shown.screen == "ehealth_card" and shown.data == {"code": code, "created": True, "print_failed": False}
    assert not shown.can_cancel and shown.deadline is not None
    slip = printer.documents[0]
    assert [b.data for b in slip if isinstance(b, QrCode)] == [code]
    texts = [getattr(b, "text", "") for b in slip]
    assert "电子健康卡" in texts and "持卡人：李*英" in texts and not any(code in t for t in texts)

    wf.handle("back")
    assert wf.state == "choosing_card" and views[-1].data["ehealth"] == "here"
    assert len(calls(backend, "patient_cards")) == 1  # the menu as the patient left it
    wf.handle("apply_ehealth")  # 出示 / 补打: the same card, printed again
    assert wf.state == "done" and views[-1].data == {"code": code, "created": False, "print_failed": False}
    assert len(printer.documents) == 2 and calls(backend, "issue_ehealth_card") == [("P0001",), ("P0001",)]

    entry = [e for e in journal.entries() if e["dest"] == "issuing"][-1]
    assert entry["data"] == {"patient_id": "P0001", "action": "ehealth"}  # journaled before the server was asked
    assert private_parts(journal, code) == []
    wf.handle("finish")
    assert wf.state == "home"  # ending from the QR screen is a tap away; "finish" on done goes home
    assert wf.visit.code == "" and wf.visit.patient is None


def test_a_lost_answer_is_asked_again_and_gives_one_card(env):
    wf, backend, printer, views, journal, clock = env
    backend.lost_answers.add("issue_ehealth_card")
    identify(wf)
    wf.handle("apply_ehealth")
    assert wf.state == "done" and len(calls(backend, "issue_ehealth_card")) == 2
    assert len(backend.ehealth) == 1 and views[-1].data["code"] == backend.ehealth["P0001"]


def test_a_card_held_from_elsewhere_is_named_and_not_applied_for_again(env):
    wf, backend, printer, views, journal, clock = env
    backend.held_elsewhere.add("P0001")
    identify(wf)
    assert views[-1].data["ehealth"] == "elsewhere"
    wf.handle("apply_ehealth")  # the tile is greyed; a tap that gets through anyway changes nothing
    assert wf.state == "choosing_card" and calls(backend, "issue_ehealth_card") == []


def test_the_server_saying_a_card_is_held_elsewhere_returns_to_the_menu_in_words(env):
    wf, backend, printer, views, journal, clock = env
    identify(wf)
    backend.held_elsewhere.add("P0001")  # bound on the phone while the patient stood at the kiosk
    wf.handle("apply_ehealth")
    assert wf.state == "choosing_card" and views[-1].screen == "card_menu"
    assert (views[-1].message, views[-1].message_en) == HELD_ELSEWHERE and views[-1].data["ehealth"] == "elsewhere"
    assert printer.documents == []


def test_printer_out_of_paper_keeps_the_card_and_the_qr_on_the_glass(env):
    wf, backend, printer, views, journal, clock = env
    printer.fail = True
    identify(wf)
    wf.handle("apply_ehealth")
    assert wf.state == "done" and views[-1].data["print_failed"] is True
    assert views[-1].data["code"] == backend.ehealth["P0001"]


def test_a_printer_known_to_be_out_of_paper_is_not_tried(env):
    wf, backend, printer, views, journal, clock = env
    wf.handle("device_health", device="receipt_printer", health=Health.fault("paper_out", "out of paper"))
    assert wf.availability()[0]  # the slip is a courtesy: the service still starts
    identify(wf)
    wf.handle("apply_ehealth")
    assert wf.state == "done" and views[-1].data["print_failed"] is True and printer.documents == []


@pytest.mark.parametrize("method, step", [("identify_by_id_card", "identify"), ("patient_cards", "identify"),
                                          ("issue_ehealth_card", "apply"), ("bind_visit_card", "bind")])
def test_server_down_ends_with_the_offline_message(env, method, step):
    wf, backend, printer, views, journal, clock = env
    backend.offline.add(method)
    wf.handle("start")
    wf.handle("card_read", card=FakeCard())
    if step == "apply":
        wf.handle("apply_ehealth")
    elif step == "bind":
        wf.handle("bind_card")
        wf.handle("code_scanned", kind="visit_card", code=CARD)
    assert wf.state == "failed" and views[-1].screen == "error"
    assert (views[-1].message, views[-1].message_en) == OFFLINE
    if step in ("apply", "bind"):
        assert len(calls(backend, method)) == 3  # asked again with the same request before giving up
    assert printer.documents == []
    clock.t += Timeouts().failed + 1
    wf.tick()
    assert wf.state == "home"


def test_a_visit_card_is_bound_and_listed_and_identifies_next_time(env):
    wf, backend, printer, views, journal, clock = env
    identify(wf)
    wf.handle("bind_card")
    assert wf.state == "scanning_card"
    scan = views[-1]
    assert scan.screen == "scan_visit_card" and scan.can_back and scan.can_cancel and scan.message == ""
    wf.handle("code_scanned", kind="visit_card", code=CARD)
    assert wf.state == "choosing_card"
    menu = views[-1]
    assert menu.data["visit_cards"] == ["6*****1234"] and "6*****1234" in menu.message and "绑定成功" in menu.message
    assert calls(backend, "bind_visit_card") == [("P0001", CARD)]
    assert private_parts(journal, CARD) == []
    entry = [e for e in journal.entries() if e["dest"] == "binding"][-1]
    assert entry["data"] == {"patient_id": "P0001", "action": "visit_card"}
    wf.handle("finish")
    assert wf.state == "home" and wf.visit.cards is None

    # next visit: the card at the insert-card screen is the patient
    wf.handle("start")
    wf.handle("code_scanned", kind="visit_card", code=CARD)
    assert wf.state == "choosing_card" and wf.visit.patient["patient_id"] == "P0001"
    assert calls(backend, "identify_by_code")[-1] == ("visit_card", CARD)


def test_a_lost_bind_answer_is_asked_again(env):
    wf, backend, printer, views, journal, clock = env
    backend.lost_answers.add("bind_visit_card")
    identify(wf)
    wf.handle("bind_card")
    wf.handle("code_scanned", kind="visit_card", code=CARD)
    assert wf.state == "choosing_card" and views[-1].data["visit_cards"] == ["6*****1234"]
    assert len(calls(backend, "bind_visit_card")) == 2


def test_a_card_bound_to_someone_else_is_refused_and_another_may_be_scanned(env):
    wf, backend, printer, views, journal, clock = env
    identify(wf)
    wf.handle("bind_card")
    wf.handle("code_scanned", kind="visit_card", code="6000000009")  # P0002's card
    assert wf.state == "scanning_card" and views[-1].screen == "scan_visit_card"
    assert "已绑定其他就诊人" in views[-1].message and "another patient" in views[-1].message_en
    assert backend.visit_cards["6000000009"] == "P0002"
    wf.handle("code_scanned", kind="visit_card", code=CARD)
    assert wf.state == "choosing_card" and views[-1].data["visit_cards"] == ["6*****1234"]


@pytest.mark.parametrize("kind, code", [("e_health_card", "ab" * 32), ("wechat_pay", "134567890123456789"),
                                        ("visit_card", "12-34"), ("visit_card", "")])
def test_a_code_that_is_not_a_visit_card_is_explained_and_nothing_is_sent(env, kind, code):
    wf, backend, printer, views, journal, clock = env
    identify(wf)
    wf.handle("bind_card")
    wf.handle("code_scanned", kind=kind, code=code)
    assert wf.state == "scanning_card" and (views[-1].message, views[-1].message_en) == NOT_A_VISIT_CARD
    assert calls(backend, "bind_visit_card") == []


def test_a_broken_scanner_greys_binding_but_not_the_e_health_card(env):
    wf, backend, printer, views, journal, clock = env
    wf.handle("device_health", device="scanner", health=Health.fault("disconnected", "unplugged"))
    identify(wf)
    menu = views[-1]
    assert menu.data["can_bind"] is False and menu.data["bind_reason"] == SCANNER_DOWN[0]
    wf.handle("bind_card")
    assert wf.state == "choosing_card" and views[-1].message == SCANNER_DOWN[0]
    wf.handle("apply_ehealth")
    assert wf.state == "done"


def test_back_and_cancel_from_the_scanner_screen(env):
    wf, backend, printer, views, journal, clock = env
    identify(wf)
    wf.handle("bind_card")
    wf.handle("back")
    assert wf.state == "choosing_card" and len(calls(backend, "patient_cards")) == 1
    wf.handle("bind_card")
    wf.handle("cancel")
    assert wf.state == "home" and wf.visit.patient is None


@pytest.mark.parametrize("state", ["choosing_card", "scanning_card", "done"])
def test_idle_goes_home_and_wipes_the_visit(env, state):
    wf, backend, printer, views, journal, clock = env
    identify(wf)
    if state == "scanning_card":
        wf.handle("bind_card")
    elif state == "done":
        wf.handle("apply_ehealth")
    assert wf.state == state
    clock.t += Timeouts().choosing - 1
    wf.tick()
    assert wf.state == state
    clock.t += 2
    wf.tick()
    assert wf.state == "home" and wf.visit.code == "" and wf.visit.patient is None and wf.visit.cards is None


def test_needs_only_the_id_card_reader(env):
    wf, backend, printer, views, journal, clock = env
    wf.handle("device_health", device="id_card", health=Health.fault("disconnected", "unplugged"))
    usable, why, why_en = wf.availability()
    assert not usable and "身份证读卡器" in why and "ID-card reader" in why_en
    wf.handle("start")
    assert wf.state == "home"


def test_the_home_screen_offers_it_after_queries(env, tmp_path):
    wf, backend, printer, views, journal, clock = env
    ids = [service_id for service_id, _, _ in SERVICES]
    assert ids.index("patient_cards") == ids.index("queries") + 1
    shown: list = []
    hub = ServiceHub(catalogue({"patient_cards": lambda publish: PatientCards(
        backend, printer, Journal(tmp_path / "hub.db"), publish, "KIOSK-T01", Timeouts(), clock=clock,
        sleep=lambda s: None)}), shown.append)
    tile = next(t for t in hub.home_view().data["services"] if t["id"] == "patient_cards")
    assert tile["name"] == "办卡绑卡" and tile["built"] and tile["available"]
    hub.handle("open_service", service="patient_cards")
    assert shown[-1].screen == "insert_card"
    hub.handle("card_read", card=FakeCard())
    assert shown[-1].screen == "card_menu"
    hub.handle("finish")
    assert hub.active is None and shown[-1].screen == "home"
