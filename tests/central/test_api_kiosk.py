"""The kiosk API in-process: authentication, identification, the schedule lists, error shapes."""
from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from central.his.seed import DEMO_PATIENT, DEMO_PATIENT_ID
from central.services import Services
from tests.central.conftest import Kiosk, provision

API = "/api/v1/kiosk"


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code and body["message"] and body["message_en"]
    assert "Traceback" not in response.text
    return body


def test_health_and_openapi_are_public(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    paths = client.get("/openapi.json").json()["paths"]
    assert f"{API}/registrations" in paths and "/api/v1/pay/wechat/notify" in paths
    assert client.get("/docs").status_code == 200


@pytest.mark.parametrize("auth", [None, ("KIOSK-001", "wrong"), ("NOBODY", "x" * 43), ("KIOSK-001", "")])
def test_every_kiosk_call_needs_the_terminal_credentials(client: TestClient, kiosk: Kiosk, auth) -> None:
    for method, path in [("GET", "/hospital"), ("GET", "/departments"), ("POST", "/patients/identify"),
                         ("GET", "/orders/RG000"), ("POST", "/registrations")]:
        response = client.request(method, API + path, auth=auth, json={})
        body = assert_error(response, 401, "UNAUTHORIZED")
        assert set(body) == {"code", "message", "message_en"}


def test_reprovisioning_replaces_the_secret(client: TestClient, svc: Services, kiosk: Kiosk) -> None:
    assert client.get(API + "/hospital", auth=kiosk.auth).status_code == 200
    rekeyed = provision(svc, kiosk.terminal_id)
    assert client.get(API + "/hospital", auth=kiosk.auth).status_code == 401
    assert client.get(API + "/hospital", auth=rekeyed.auth).status_code == 200


def test_hospital(client: TestClient, kiosk: Kiosk, svc: Services) -> None:
    body = client.get(API + "/hospital", auth=kiosk.auth).json()
    assert body["name"] == "示范市人民医院" and body["name_en"] == "Demo City People's Hospital"
    assert body["date"] == svc.today().isoformat() and body["address"] and body["phone"]


def test_identify_by_id_card(client: TestClient, kiosk: Kiosk, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    ok = client.post(API + "/patients/identify", auth=kiosk.auth,
                     json={"method": "id_card", "id_number": DEMO_PATIENT["id_number"], "name": "李秀英"})
    assert ok.status_code == 200, ok.text
    body = ok.json()
    assert body["patient_id"] == DEMO_PATIENT_ID and body["name_masked"] == "李*英"
    assert body["gender"] == "女" and 60 < body["age"] < 90
    unknown = "11010519491231002X"
    assert_error(client.post(API + "/patients/identify", auth=kiosk.auth,
                             json={"method": "id_card", "id_number": unknown, "name": "王五"}), 404, "PATIENT_NOT_FOUND")
    mismatch = assert_error(client.post(API + "/patients/identify", auth=kiosk.auth,
                                        json={"method": "id_card", "id_number": DEMO_PATIENT["id_number"],
                                              "name": "李秀"}), 409, "NAME_MISMATCH")
    assert "李秀英" not in str(mismatch)
    assert DEMO_PATIENT["id_number"] not in caplog.text and "李秀英" not in caplog.text
    foreigner = client.post(API + "/patients/identify", auth=kiosk.auth,  # permanent residence card number
                            json={"method": "id_card", "id_number": "USA110085010123", "name": "SMITH JOHN"})
    assert_error(foreigner, 404, "PATIENT_NOT_FOUND")  # accepted as a number, not on file
    assert_error(client.post(API + "/patients/identify", auth=kiosk.auth,
                             json={"method": "id_card", "id_number": "usa11008501012", "name": "X"}), 422, "BAD_REQUEST")


def test_departments_doctors_slots(client: TestClient, kiosk: Kiosk, svc: Services) -> None:
    body = client.get(API + "/departments", auth=kiosk.auth).json()
    assert body["date"] == svc.today().isoformat()
    departments = {d["code"]: d for d in body["departments"]}
    assert len(departments) >= 20
    emergency = departments["JZNK"]
    assert emergency["name"] == "急诊内科" and emergency["remaining"] > 0 and emergency["location"]
    assert set(emergency) >= {"code", "name", "name_en", "category", "location", "remaining"}

    doctors = client.get(API + "/departments/JZNK/doctors", auth=kiosk.auth).json()
    assert doctors["department"]["code"] == "JZNK"
    on_duty = [d for d in doctors["doctors"] if d["remaining"] > 0]
    assert on_duty and sum(d["remaining"] for d in doctors["doctors"]) == emergency["remaining"]
    doctor = on_duty[0]
    assert set(doctor) >= {"code", "name", "title", "title_en", "specialty", "fee_fen", "remaining"}

    slots = client.get(f"{API}/departments/JZNK/doctors/{doctor['code']}/slots", auth=kiosk.auth).json()
    assert slots["slots"] and sum(s["remaining"] for s in slots["slots"]) == doctor["remaining"]
    now_local = svc.now().astimezone(svc.settings.tz).strftime("%H:%M")
    assert all(s["end"] > now_local or s["end"] == "24:00" for s in slots["slots"])
    assert all(set(s) == {"slot_id", "start", "end", "remaining"} for s in slots["slots"])

    later = (svc.today() + timedelta(days=3)).isoformat()
    future = client.get(API + "/departments", params={"date": later}, auth=kiosk.auth).json()
    assert future["date"] == later and sum(d["remaining"] for d in future["departments"]) > 0


def test_unknown_things_and_malformed_requests_answer_json(client: TestClient, kiosk: Kiosk) -> None:
    assert_error(client.get(API + "/departments/NOPE/doctors", auth=kiosk.auth), 404, "DEPARTMENT_NOT_FOUND")
    assert_error(client.get(API + "/departments/JZNK/doctors/D9999/slots", auth=kiosk.auth), 404, "DOCTOR_NOT_FOUND")
    assert_error(client.get(API + "/orders/RG2020", auth=kiosk.auth), 404, "NOT_FOUND")
    assert_error(client.get("/api/v1/nothing-here"), 404, "NOT_FOUND")
    assert_error(client.get(API + "/departments", params={"date": "tomorrow"}, auth=kiosk.auth), 422, "BAD_REQUEST")
    assert_error(client.post(API + "/patients/identify", auth=kiosk.auth,
                             json={"method": "passport", "id_number": "1", "name": ""}), 422, "BAD_REQUEST")
    assert_error(client.post(API + "/registrations", auth=kiosk.auth, content=b"{not json",
                             headers={"Content-Type": "application/json"}), 422, "BAD_REQUEST")
    assert_error(client.post(API + "/registrations", auth=kiosk.auth,
                             json={"patient_id": DEMO_PATIENT_ID, "slot_id": "abc", "idempotency_key": "k" * 16}),
                 422, "BAD_REQUEST")
    assert_error(client.delete(API + "/hospital", auth=kiosk.auth), 405, "METHOD_NOT_ALLOWED")


def test_internal_errors_carry_no_traceback(client: TestClient, kiosk: Kiosk, svc: Services,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(svc.his, "list_departments", broken)
    body = assert_error(client.get(API + "/departments", auth=kiosk.auth), 500, "INTERNAL_ERROR")
    assert "secret internals" not in str(body)
