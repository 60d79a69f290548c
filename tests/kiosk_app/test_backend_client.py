"""The kiosk's HTTP client against a real kiosk-central process: authentication, error mapping, and an
unreachable server."""
from __future__ import annotations

import pytest

from central.his.seed import DEMO_PATIENT
from kiosk_app.backend_client import HttpBackend
from kiosk_app.config import Credentials
from kiosk_app.local_central import LocalCentral, free_port
from workflows.backend import BackendError, BackendUnavailable


@pytest.fixture(scope="module")
def central(tmp_path_factory):
    server = LocalCentral(tmp_path_factory.mktemp("central")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def backend(central):
    client = HttpBackend(central.provision("KIOSK-CLIENT"))
    yield client
    client.close()


def test_identify_and_browse(backend):
    patient = backend.identify_by_id_card(DEMO_PATIENT["id_number"], DEMO_PATIENT["name"])
    assert patient["name_masked"] != DEMO_PATIENT["name"] and patient["name_masked"].startswith("李")
    departments = backend.departments()
    assert len(departments) >= 20
    open_dept = next(d for d in departments if d["remaining"] > 0)
    doctors = backend.doctors(open_dept["code"])
    doctor = next(d for d in doctors if d["remaining"] > 0)
    slots = backend.slots(open_dept["code"], doctor["code"])
    assert slots and all(s["remaining"] > 0 for s in slots)


def test_unknown_patient_is_a_clear_backend_error(backend):
    with pytest.raises(BackendError) as err:
        backend.identify_by_id_card("11010119900307803X", "王小明")
    assert err.value.code == "PATIENT_NOT_FOUND" and "建档" in err.value.message


def test_wrong_secret_is_refused(central):
    client = HttpBackend(Credentials("KIOSK-CLIENT", "not-the-secret", central.url))
    with pytest.raises(BackendError) as err:
        client.departments()
    assert err.value.payload.get("code") == err.value.code
    client.close()


def test_unreachable_server_is_unavailable_not_an_error():
    client = HttpBackend(Credentials("KIOSK-X", "s", f"http://127.0.0.1:{free_port()}"), timeout=2)
    with pytest.raises(BackendUnavailable):
        client.hospital()
    client.close()
