"""K1/K2 at the kiosk, in the service base, so every service that identifies a patient behaves the same:
an ID card or a scanned e-health card / visit code / e-voucher identifies; an unknown ID card may make a file
(建档) and the service goes on; nothing personal reaches the journal. Driven without Qt or network."""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest

from workflows.appointment import AppointmentBooking
from workflows.checkin import CheckIn
from workflows.journal import Journal
from workflows.outpatient_payment import OutpatientPayment
from workflows.queries import RecordQueries
from workflows.registration import SameDayRegistration
from workflows.report_printing import ReportPrinting
from workflows.service_base import Timeouts

from .fakes import (Clock, FakeAppointmentBackend, FakeBackend, FakeBillBackend, FakeCard, FakeRecordsBackend,
                    FakeReportPrinter, RecordingPrinter)

NEW_CARD = FakeCard(name="王小五", id_number="110101199003074258")  # valid number: born 1990-03-07, male
PHONE = "13912345678"
E_HEALTH = "ab" * 32

SERVICES: list[tuple[type, type, str, dict[str, Any]]] = [
    (SameDayRegistration, FakeBackend, "choosing_department", {}),
    (OutpatientPayment, FakeBillBackend, "choosing_bill", {}),
    (AppointmentBooking, FakeAppointmentBackend, "choosing_department",
     {"now": lambda: datetime(2026, 11, 23, 10, 0)}),
    (CheckIn, FakeAppointmentBackend, "choosing_appointment", {"now": lambda: datetime(2026, 11, 23, 13, 30)}),
    (ReportPrinting, FakeRecordsBackend, "choosing_documents", {"report_printer": None}),
    (RecordQueries, FakeRecordsBackend, "browsing", {}),
]


def build(tmp_path, cls, backend_cls, extra):  # type: ignore[no-untyped-def]
    journal = Journal(tmp_path / "journal.db")
    backend = backend_cls(journal)
    views: list = []
    clock = Clock()
    extra = dict(extra)
    if "report_printer" in extra:
        extra["report_printer"] = FakeReportPrinter()
    wf = cls(backend, RecordingPrinter(), journal, views.append, "KIOSK-T01", Timeouts(), clock=clock,
             sleep=lambda s: None, **extra)
    return wf, backend, views, journal, clock


@pytest.fixture(params=SERVICES, ids=[s[0].__name__ for s in SERVICES])
def service(request, tmp_path):  # type: ignore[no-untyped-def]
    cls, backend_cls, first_state, extra = request.param
    return (*build(tmp_path, cls, backend_cls, extra), first_state)


@pytest.mark.parametrize("kind, code, patient_id", [("e_health_card", E_HEALTH, "P0001"),
                                                    ("visit_code", "123456789012", "P0001"),
                                                    ("insurance_voucher", "ecXk3v9Q2mWJ7TzL0pRb5NfY8uHsAe1D", "P0002")])
def test_a_scanned_code_identifies_the_patient_in_every_service(service, kind, code, patient_id):
    wf, backend, views, journal, clock, first_state = service
    wf.handle("start")
    assert wf.state == "reading_card"
    wf.handle("code_scanned", kind=kind, code=code)
    assert wf.state == first_state and wf.visit.patient["patient_id"] == patient_id
    method = {"e_health_card": "e_health_code"}.get(kind, kind)
    assert ("identify_by_code", (method, code)) in [(n, a) for n, a, _ in backend.calls]
    assert code not in json.dumps(journal.entries(), ensure_ascii=False, default=str)


def test_a_payment_code_on_the_card_screen_identifies_nobody(service):
    wf, backend, views, journal, clock, first_state = service
    wf.handle("start")
    wf.handle("code_scanned", kind="wechat_pay", code="134567890123456789")
    wf.handle("code_scanned", kind="unknown", code="")
    assert wf.state == "reading_card"
    assert not any(name.startswith("identify") for name, _, _ in backend.calls)


def test_an_unknown_code_fails_with_the_servers_words(service):
    wf, backend, views, journal, clock, first_state = service
    wf.handle("start")
    wf.handle("code_scanned", kind="visit_code", code="999999999999")
    assert wf.state == "failed" and "建档" in views[-1].message


def test_an_unknown_id_card_is_offered_a_file_and_the_service_goes_on(service):
    wf, backend, views, journal, clock, first_state = service
    backend.can_create = True
    wf.handle("start")
    wf.handle("card_read", card=NEW_CARD)
    assert wf.state == "offering_file"
    offer = views[-1]
    assert offer.screen == "new_file" and offer.data["name_masked"] == "王**" and offer.data["gender"] == "男"
    assert offer.can_cancel and offer.deadline is not None
    assert NEW_CARD.id_number not in repr(offer) and "王小五" not in repr(offer)

    wf.handle("confirm_file", phone="12345")  # not a mobile number: asked again, nothing sent
    assert wf.state == "offering_file" and "手机号" in views[-1].message
    assert not any(name == "create_patient" for name, _, _ in backend.calls)

    wf.handle("confirm_file", phone=PHONE)
    assert wf.state == first_state
    assert ("create_patient", (NEW_CARD.id_number, "王小五", "男", "1990-03-07", PHONE)) in [
        (n, a) for n, a, _ in backend.calls]
    assert wf.visit.patient["patient_id"].startswith("P9") and wf.visit.new_file is None
    assert "王**" in wf.patient_banner()
    written = json.dumps(journal.entries(), ensure_ascii=False, default=str)
    for secret in (NEW_CARD.id_number, "王小五", PHONE):
        assert secret not in written
    assert [e["dest"] for e in journal.entries()][:4] == ["reading_card", "identifying", "offering_file",
                                                          "creating_file"]


def test_declining_the_file_goes_home_and_forgets_the_card(service):
    wf, backend, views, journal, clock, first_state = service
    backend.can_create = True
    wf.handle("start")
    wf.handle("card_read", card=NEW_CARD)
    assert wf.visit.new_file is not None
    wf.handle("cancel")
    assert wf.state == "home" and wf.visit.new_file is None


def test_the_offer_times_out_home(service):
    wf, backend, views, journal, clock, first_state = service
    backend.can_create = True
    wf.handle("start")
    wf.handle("card_read", card=NEW_CARD)
    clock.t += Timeouts().choosing + 1
    wf.tick()
    assert wf.state == "home" and wf.visit.new_file is None


def test_no_offer_where_the_server_cannot_make_files(tmp_path):
    wf, backend, views, journal, clock = build(tmp_path, RecordQueries, FakeRecordsBackend, {})
    wf.handle("start")
    wf.handle("card_read", card=NEW_CARD)
    assert wf.state == "failed" and "建档" in views[-1].message


def test_creating_the_file_with_the_server_gone_says_so_and_asks_again_first(tmp_path):
    wf, backend, views, journal, clock = build(tmp_path, RecordQueries, FakeRecordsBackend, {})
    backend.can_create = True
    wf.handle("start")
    wf.handle("card_read", card=NEW_CARD)
    backend.offline.add("create_patient")
    wf.handle("confirm_file", phone=PHONE)
    assert wf.state == "failed" and "网络" in views[-1].message
    assert sum(1 for name, _, _ in backend.calls if name == "create_patient") == len(Timeouts().retry_delays) + 1
    assert wf.visit.new_file is None


def test_a_family_on_one_e_health_account_is_sent_to_another_credential(tmp_path):
    wf, backend, views, journal, clock = build(tmp_path, RecordQueries, FakeRecordsBackend, {})
    wf.handle("start")
    wf.handle("code_scanned", kind="e_health_card", code="cd" * 32)
    assert wf.state == "failed" and "身份证" in views[-1].message and wf.visit.patient is None


def test_a_social_security_card_in_the_pcsc_reader_identifies_the_patient(service):
    wf, backend, views, journal, clock, first_state = service
    wf.handle("start")
    wf.handle("social_card_read", card_number="")  # nothing read: nothing asked
    assert wf.state == "reading_card"
    wf.handle("social_card_read", card_number="A12345678")
    assert wf.state == first_state and wf.visit.patient["patient_id"] == "P0002"
    assert ("identify_by_code", ("social_security_card", "A12345678")) in [(n, a) for n, a, _ in backend.calls]
    assert "A12345678" not in json.dumps(journal.entries(), ensure_ascii=False, default=str)
