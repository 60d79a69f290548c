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


def test_identify_by_face_finds_the_demo_patient_on_the_embedded_defaults(backend, tmp_path):
    """The embedded-defaults server answers 刷脸 with the reference platform, the demo patient enrolled with the
    face the simulated kiosk camera shows; the picture comes from the real camera driver."""
    from drivers.camera import FaceCamera, synthetic

    with FaceCamera(synthetic.face_video(tmp_path / "demo.avi", count=4)) as camera:
        demo = camera.capture_face_jpeg(2.0)
    with FaceCamera(synthetic.face_video(tmp_path / "other.avi", count=4, style=synthetic.OTHER_STYLE)) as camera:
        other = camera.capture_face_jpeg(2.0)
    assert backend.identify_by_face(demo) == backend.identify_by_id_card(DEMO_PATIENT["id_number"],
                                                                         DEMO_PATIENT["name"])
    with pytest.raises(BackendError) as err:
        backend.identify_by_face(other)
    assert err.value.code == "FACE_NOT_RECOGNISED" and "身份证" in err.value.message and err.value.message_en
    with pytest.raises(BackendError) as err:
        backend.identify_by_face(b"not a picture")
    assert err.value.code == "FACE_IMAGE_INVALID" and err.value.message and err.value.message_en


def test_identify_by_face_on_an_unreachable_server_is_unavailable():
    client = HttpBackend(Credentials("KIOSK-X", "s", f"http://127.0.0.1:{free_port()}"), timeout=2)
    with pytest.raises(BackendUnavailable):
        client.identify_by_face(b"\xff\xd8 any picture")
    client.close()
