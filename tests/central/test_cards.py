"""办卡绑卡 (K2) against the real server over HTTP: e-health cards issued once per patient and recognised by the
kiosk's scanner, visit cards bound to one patient and identifying them afterwards, and bad input refused."""
from __future__ import annotations

import logging
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from central.his.seed import DEMO_PATIENT_ID
from drivers.scanner.classify import ScanKind, classify
from tests.central.conftest import Kiosk, LiveCentral, provision

PATIENT = "P00000001"  # a seeded patient without an e-health card
OTHER = "P00000002"
CARD = "6123451234"


@pytest.fixture
def kiosk(live: LiveCentral) -> Kiosk:
    return provision(live.svc, "KIOSK-001")


def call(live: LiveCentral, kiosk: Kiosk, method: str, path: str, **kwargs: object) -> httpx.Response:
    return live.api(kiosk, method, path, **kwargs)


def test_an_e_health_card_is_issued_once_scans_as_one_and_identifies(live: LiveCentral, kiosk: Kiosk,
                                                                     data_dir: Path) -> None:
    before = call(live, kiosk, "GET", f"/patients/{PATIENT}/cards")
    assert before.status_code == 200, before.text
    assert before.json() == {"ehealth_card": {"held": False, "can_show": False}, "visit_cards": []}

    first = call(live, kiosk, "POST", f"/patients/{PATIENT}/ehealth-card")
    assert first.status_code == 200, first.text
    assert first.headers["cache-control"] == "no-store"
    code = first.json()["code"]
    assert first.json()["created"] is True and first.json()["held_elsewhere"] is False
    assert re.fullmatch(r"[0-9a-f]{64}", code)
    scan = classify(code)  # what the kiosk's scanner makes of the QR the next time
    assert scan.kind is ScanKind.E_HEALTH_CARD and scan.value == code

    again = call(live, kiosk, "POST", f"/patients/{PATIENT}/ehealth-card")
    assert again.status_code == 200 and again.json() == {"code": code, "created": False, "held_elsewhere": False}

    found = call(live, kiosk, "POST", "/patients/identify", json={"method": "e_health_code", "code": code})
    assert found.status_code == 200, found.text
    assert found.json()["patient_id"] == PATIENT
    after = call(live, kiosk, "GET", f"/patients/{PATIENT}/cards").json()
    assert after["ehealth_card"] == {"held": True, "can_show": True}

    live.svc.engine.dispose()
    raw = b"".join(path.read_bytes() for path in data_dir.glob("central.db*"))
    assert code.encode() not in raw and code.upper().encode() not in raw  # encrypted and indexed only


def test_kiosks_asking_at_once_get_one_card(live: LiveCentral, kiosk: Kiosk) -> None:
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: call(live, kiosk, "POST", f"/patients/{OTHER}/ehealth-card"), range(4)))
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    assert len({a.json()["code"] for a in answers}) == 1
    assert sum(a.json()["created"] for a in answers) == 1


def test_a_patient_holding_a_card_from_elsewhere_is_told_so_and_gets_no_second_one(live: LiveCentral,
                                                                                    kiosk: Kiosk) -> None:
    answer = call(live, kiosk, "POST", f"/patients/{DEMO_PATIENT_ID}/ehealth-card")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"code": None, "created": False, "held_elsewhere": True}
    held = call(live, kiosk, "GET", f"/patients/{DEMO_PATIENT_ID}/cards").json()
    assert held["ehealth_card"] == {"held": True, "can_show": False}


def test_a_bound_visit_card_identifies_its_patient_and_only_that_one(live: LiveCentral, kiosk: Kiosk,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    unbound = call(live, kiosk, "POST", "/patients/identify", json={"method": "visit_card", "code": CARD})
    assert unbound.status_code == 404 and unbound.json()["code"] == "PATIENT_NOT_FOUND"

    bound = call(live, kiosk, "POST", f"/patients/{PATIENT}/visit-cards", json={"card_no": CARD})
    assert bound.status_code == 200, bound.text
    assert bound.json()["created"] is True and bound.json()["card_masked"] == "6*****1234"
    assert bound.json()["visit_cards"] == ["6*****1234"]

    again = call(live, kiosk, "POST", f"/patients/{PATIENT}/visit-cards", json={"card_no": CARD})
    assert again.status_code == 200 and again.json()["created"] is False  # a retried request changes nothing
    assert again.json()["visit_cards"] == ["6*****1234"]

    found = call(live, kiosk, "POST", "/patients/identify", json={"method": "visit_card", "code": CARD})
    assert found.status_code == 200, found.text
    assert found.json()["patient_id"] == PATIENT and set(found.json()) == {"patient_id", "name_masked", "gender",
                                                                           "age"}

    taken = call(live, kiosk, "POST", f"/patients/{OTHER}/visit-cards", json={"card_no": CARD})
    assert taken.status_code == 409 and taken.json()["code"] == "VISIT_CARD_TAKEN"
    assert "已绑定其他就诊人" in taken.json()["message"] and "another patient" in taken.json()["message_en"]
    assert call(live, kiosk, "GET", f"/patients/{OTHER}/cards").json()["visit_cards"] == []

    second = call(live, kiosk, "POST", f"/patients/{PATIENT}/visit-cards", json={"card_no": "JZ00012345"})
    assert second.json()["visit_cards"] == ["6*****1234", "J*****2345"]
    assert CARD not in caplog.text and "JZ00012345" not in caplog.text


@pytest.mark.parametrize("path, body", [
    (f"/patients/{PATIENT}/visit-cards", {"card_no": "12-345678"}),  # not a barcode's characters
    (f"/patients/{PATIENT}/visit-cards", {"card_no": "12345"}),  # too short to be a card
    (f"/patients/{PATIENT}/visit-cards", {"card_no": "1" * 21}),
    (f"/patients/{PATIENT}/visit-cards", {}),
    ("/patients/P%20001/visit-cards", {"card_no": CARD}),
    ("/patients/identify", {"method": "visit_card"}),
    ("/patients/identify", {"method": "visit_card", "code": "卡号123456"}),
])
def test_malformed_input_is_refused_with_words_for_the_patient(live: LiveCentral, kiosk: Kiosk, path: str,
                                                                body: dict[str, str]) -> None:
    answer = call(live, kiosk, "POST", path, json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] == "BAD_REQUEST" and answer.json()["message"] == "请求内容有误"


@pytest.mark.parametrize("method, path, body", [
    ("GET", "/cards", None), ("POST", "/ehealth-card", None), ("POST", "/visit-cards", {"card_no": CARD})])
def test_an_unknown_patient_is_404_and_nothing_is_bound(live: LiveCentral, kiosk: Kiosk, method: str, path: str,
                                                         body: dict[str, str] | None) -> None:
    answer = call(live, kiosk, method, f"/patients/P99999999{path}", json=body)
    assert answer.status_code == 404 and answer.json()["code"] == "PATIENT_NOT_FOUND"
    assert answer.json()["message"] and answer.json()["message_en"]
    found = call(live, kiosk, "POST", "/patients/identify", json={"method": "visit_card", "code": CARD})
    assert found.status_code == 404


def test_an_unknown_terminal_is_refused(live: LiveCentral) -> None:
    answer = httpx.get(f"{live.url}/api/v1/kiosk/patients/{PATIENT}/cards", auth=("KIOSK-X", "wrong"), timeout=15)
    assert answer.status_code == 401
