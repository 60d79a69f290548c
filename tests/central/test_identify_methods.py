"""K1 identification by every credential the kiosk reads, and K2 patient files made at the kiosk, against the
real server (kiosk API, reference HIS, insurance platform sandbox over loopback HTTP)."""
from __future__ import annotations

import logging
import uuid
from datetime import date, timedelta

import pytest
from sqlalchemy import text

from central.his.seed import DEMO_EHEALTH_CODE, DEMO_PATIENT, DEMO_PATIENT_ID
from central.payments.insurance_sandbox import demo_persons
from tests.central.conftest import LiveCentral, provision
from tests.central.visits import future_slot

PERSONS = {p.name: p for p in demo_persons()}
SHAPE = {"patient_id", "name_masked", "gender", "age"}


def identify(live: LiveCentral, **body: str):  # type: ignore[no-untyped-def]
    return live.api(provision(live.svc, "KIOSK-001"), "POST", "/patients/identify", json=body)


def create(live: LiveCentral, **body: str):  # type: ignore[no-untyped-def]
    return live.api(provision(live.svc, "KIOSK-001"), "POST", "/patients", json=body)


def wang_wu(**changes: str) -> dict[str, str]:
    person = PERSONS["王五"]  # 110101199003074258: born 1990-03-07, 17th digit 5 (odd) → male
    return {"id_number": person.id_number, "name": person.name, "gender": "男", "birth": "1990-03-07",
            "phone": "13912345678", **changes}


def test_e_health_code_finds_the_demo_patient_and_an_unknown_code_says_how_to_make_a_file(
        live: LiveCentral) -> None:
    found = identify(live, method="e_health_code", code=DEMO_EHEALTH_CODE)
    assert found.status_code == 200, found.text
    assert set(found.json()) == SHAPE
    assert found.json()["patient_id"] == DEMO_PATIENT_ID and found.json()["name_masked"] == "李*英"
    unknown = identify(live, method="e_health_code", code="0" * 64)
    assert unknown.status_code == 404 and unknown.json()["code"] == "PATIENT_NOT_FOUND"
    assert "建档" in unknown.json()["message"] and unknown.json()["can_create"] is False  # no ID card read


def test_an_unknown_id_card_may_make_a_file_here(live: LiveCentral) -> None:
    person = PERSONS["李四"]
    unknown = identify(live, method="id_card", id_number=person.id_number, name=person.name)
    assert unknown.status_code == 404 and unknown.json()["can_create"] is True


def test_visit_code_of_a_registration_finds_its_patient(live: LiveCentral) -> None:
    his = live.svc.his
    slot = future_slot(live)
    lock = his.lock_slot(slot.id, DEMO_PATIENT_ID, live.svc.now() + timedelta(minutes=5), uuid.uuid4().hex)
    registration = his.confirm_registration(lock, "TEST-" + uuid.uuid4().hex[:8])
    found = identify(live, method="visit_code", code=registration.visit_code)
    assert found.status_code == 200, found.text
    assert found.json()["patient_id"] == DEMO_PATIENT_ID and set(found.json()) == SHAPE
    other = "0" * 12 if registration.visit_code != "0" * 12 else "1" * 12
    assert identify(live, method="visit_code", code=other).json()["code"] == "PATIENT_NOT_FOUND"


def test_a_file_made_at_the_kiosk_is_then_found_by_insurance_voucher_and_social_security_card(
        live: LiveCentral, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    person = PERSONS["王五"]
    before = identify(live, method="insurance_voucher", code=person.e_voucher)
    assert before.status_code == 404 and before.json()["code"] == "PATIENT_NOT_FOUND"

    made = create(live, **wang_wu())
    assert made.status_code == 201, made.text
    assert made.json()["created"] is True and made.json()["name_masked"] == "王*" and made.json()["gender"] == "男"
    again = create(live, **wang_wu())
    assert again.status_code == 201 and again.json()["created"] is False
    assert again.json()["patient_id"] == made.json()["patient_id"]

    by_voucher = identify(live, method="insurance_voucher", code=person.e_voucher)
    assert by_voucher.status_code == 200, by_voucher.text
    assert by_voucher.json()["patient_id"] == made.json()["patient_id"] and set(by_voucher.json()) == SHAPE
    by_card = identify(live, method="social_security_card", code=person.card_number)
    assert by_card.json()["patient_id"] == made.json()["patient_id"]
    by_id_card = identify(live, method="id_card", id_number=person.id_number, name=person.name)
    assert by_id_card.json()["patient_id"] == made.json()["patient_id"]

    logged = caplog.text
    assert person.id_number not in logged and person.e_voucher not in logged and "13912345678" not in logged
    with live.svc.sessions() as session:  # personal data encrypted at rest, like the seeded files
        row = session.execute(text("SELECT name, id_number, phone FROM his_patients WHERE patient_id = :p"),
                              {"p": made.json()["patient_id"]}).one()
    assert all(isinstance(v, bytes) for v in row)
    assert person.name.encode() not in row[0] and person.id_number.encode() not in row[1]
    assert b"13912345678" not in row[2]


def test_an_unknown_voucher_is_refused_by_the_insurance_platform(live: LiveCentral) -> None:
    refused = identify(live, method="insurance_voucher", code="not-a-voucher-000")
    assert refused.status_code == 409 and refused.json()["code"] == "INSURANCE_REFUSED"


def test_making_a_file_checks_the_card_data_and_the_name(live: LiveCentral) -> None:
    assert create(live, **wang_wu(birth="1990-03-08")).json()["code"] == "ID_CARD_INVALID"
    assert create(live, **wang_wu(gender="女")).json()["code"] == "ID_CARD_INVALID"
    assert create(live, **wang_wu(phone="12345")).status_code == 422
    # The demo patient already has a file: the same number with another name is not handed out.
    clash = create(live, id_number=DEMO_PATIENT["id_number"], name="王五", gender="女", birth="1956-03-14",
                   phone="13912345678")
    assert clash.status_code == 409 and clash.json()["code"] == "NAME_MISMATCH"
    mine = create(live, id_number=DEMO_PATIENT["id_number"], name="李秀英", gender="女", birth="1956-03-14",
                  phone="13912345678")
    assert mine.json()["patient_id"] == DEMO_PATIENT_ID and mine.json()["created"] is False


def test_passport_number_with_the_name_finds_the_file(live: LiveCentral) -> None:
    patient, _ = live.svc.his.create_patient("SMITH JOHN", "E12345678", "男", date(1980, 1, 2), None)
    found = identify(live, method="document_number", document_number="e12345678", name="Smith  John")
    assert found.status_code == 200, found.text
    assert found.json()["patient_id"] == patient.patient_id and found.json()["name_masked"] == "S**** J***"
    wrong = identify(live, method="document_number", document_number="E12345678", name="SMITH JANE")
    assert wrong.status_code == 409 and wrong.json()["code"] == "NAME_MISMATCH"
    assert identify(live, method="document_number", document_number="E99999999",
                    name="SMITH JOHN").json()["code"] == "PATIENT_NOT_FOUND"


def test_one_e_health_account_with_a_family_answers_the_list_to_choose_from(live: LiveCentral) -> None:
    child, _ = live.svc.his.create_patient("李小明", "360702201503140013", "男", date(2015, 3, 14), None)
    live.svc.his.bind_ehealth_card(DEMO_EHEALTH_CODE, child.patient_id)
    answer = identify(live, method="e_health_code", code=DEMO_EHEALTH_CODE)
    assert answer.status_code == 200, answer.text
    patients = answer.json()["patients"]
    assert {p["patient_id"] for p in patients} == {DEMO_PATIENT_ID, child.patient_id}
    assert all(set(p) == SHAPE and "*" in p["name_masked"] for p in patients)


@pytest.mark.parametrize("body", [{"method": "visit_code"}, {"method": "document_number", "name": "X"},
                                  {"method": "e_health_code", "code": "<script>alert(1)</script>"},
                                  {"method": "face", "code": "123456"}])
def test_a_method_without_its_credential_is_a_bad_request(live: LiveCentral, body: dict[str, str]) -> None:
    assert identify(live, **body).status_code == 422
