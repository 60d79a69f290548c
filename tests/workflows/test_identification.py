"""K1/K2 at the kiosk, in the service base, so every service that identifies a patient behaves the same:
an ID card or a scanned e-health card / visit code / e-voucher identifies; an unknown ID card may make a file
(建档) and the service goes on; a family's e-health account lets the patient choose; a passport or permit
number is typed; 刷脸 takes one photo on the patient's tap. Nothing personal reaches the journal. Driven
without Qt or network; the 刷脸 path also with the real camera driver on drawn faces."""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest

from drivers.health import Health
from workflows.appointment import AppointmentBooking
from workflows.checkin import CheckIn
from workflows.journal import Journal
from workflows.outpatient_payment import OutpatientPayment
from workflows.peripherals import Peripherals
from workflows.queries import RecordQueries
from workflows.registration import SameDayRegistration
from workflows.report_printing import ReportPrinting
from workflows.service_base import FACE_SECONDS, FACE_TRIES, Timeouts

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


def test_a_social_security_card_in_the_pcsc_reader_identifies_the_patient(service):
    wf, backend, views, journal, clock, first_state = service
    wf.handle("start")
    wf.handle("social_card_read", card_number="")  # nothing read: nothing asked
    assert wf.state == "reading_card"
    wf.handle("social_card_read", card_number="A12345678")
    assert wf.state == first_state and wf.visit.patient["patient_id"] == "P0002"
    assert ("identify_by_code", ("social_security_card", "A12345678")) in [(n, a) for n, a, _ in backend.calls]
    assert "A12345678" not in json.dumps(journal.entries(), ensure_ascii=False, default=str)


# ---- a family on one e-health account -------------------------------------------------------------------------

FAMILY_CODE = "cd" * 32  # the fake server's account holding 李*英 (P0001) and 李*明 (P0003)


def journaled(journal: Journal) -> str:
    return json.dumps(journal.entries(), ensure_ascii=False, default=str)


def test_a_family_account_lets_the_patient_choose_who_is_seen_in_every_service(service):
    wf, backend, views, journal, clock, first_state = service
    wf.handle("start")
    wf.handle("code_scanned", kind="e_health_card", code=FAMILY_CODE)
    assert wf.state == "choosing_patient" and wf.visit.patient is None
    view = views[-1]
    assert view.screen == "choose_patient" and view.can_cancel and view.deadline is not None
    assert [p["patient_id"] for p in view.data["patients"]] == ["P0001", "P0003"]
    assert [p["name_masked"] for p in view.data["patients"]] == ["李*英", "李*明"]

    wf.handle("pick_patient", patient_id="P0099")  # not on the account: nothing moves
    assert wf.state == "choosing_patient" and wf.visit.patient is None
    wf.handle("pick_patient", patient_id="P0003")
    assert wf.state == first_state and wf.visit.patient["patient_id"] == "P0003"
    assert "李*明" in wf.patient_banner() and wf.visit.family is None
    entries = journal.entries()
    assert [e["data"]["patient_id"] for e in entries[:3]] == [None, None, None]  # the list itself: not written
    assert entries[3]["event"] == "pick_patient" and entries[3]["data"]["patient_id"] == "P0003"
    assert "P0001" not in journaled(journal) and FAMILY_CODE not in journaled(journal)


def test_a_family_account_of_one_goes_straight_on(tmp_path):
    for cls, backend_cls, first_state, extra in (SERVICES[0], SERVICES[3]):
        wf, backend, views, journal, clock = build(tmp_path / cls.__name__, cls, backend_cls, extra)
        backend.known_codes = {**backend.known_codes, ("e_health_code", "ef" * 32): {"patients": [
            {"patient_id": "P0003", "name_masked": "李*明", "gender": "男", "age": 11}]}}
        wf.handle("start")
        wf.handle("code_scanned", kind="e_health_card", code="ef" * 32)
        assert wf.state == first_state and wf.visit.patient["patient_id"] == "P0003"
        assert "choosing_patient" not in [e["dest"] for e in journal.entries()]


def test_the_family_choice_goes_home_on_cancel_or_when_left(tmp_path):
    for cls, backend_cls, first_state, extra in (SERVICES[0], SERVICES[3]):
        wf, backend, views, journal, clock = build(tmp_path / cls.__name__, cls, backend_cls, extra)
        wf.handle("start")
        wf.handle("code_scanned", kind="e_health_card", code=FAMILY_CODE)
        wf.handle("cancel")
        assert wf.state == "home" and wf.visit.family is None and wf.visit.patient is None
        wf.handle("start")
        wf.handle("code_scanned", kind="e_health_card", code=FAMILY_CODE)
        clock.t += Timeouts().choosing - 1
        wf.tick()
        assert wf.state == "choosing_patient"
        clock.t += 2
        wf.tick()
        assert wf.state == "home" and wf.visit.family is None


# ---- a passport or HK-Macao-Taiwan permit number, typed -----------------------------------------------------------

TWO = [SERVICES[0], SERVICES[3]]  # same-day registration and check-in: two services, one base


@pytest.fixture(params=TWO, ids=[s[0].__name__ for s in TWO])
def two(request, tmp_path):  # type: ignore[no-untyped-def]
    cls, backend_cls, first_state, extra = request.param
    return (*build(tmp_path, cls, backend_cls, extra), first_state)


def document_screen(wf, views):  # type: ignore[no-untyped-def]
    wf.handle("start")
    wf.handle("type_document")
    assert wf.state == "typing_document"
    view = views[-1]
    assert view.screen == "document" and view.can_cancel and view.can_back and view.deadline is not None
    return view


def test_a_typed_passport_number_and_name_identify_the_patient(two):
    wf, backend, views, journal, clock, first_state = two
    document_screen(wf, views)
    wf.handle("look_up_document", document_number="e12345678", name="  Smith   John ")
    assert wf.state == first_state and wf.visit.patient["patient_id"] == "P0004"
    assert ("identify_by_document", ("E12345678", "Smith John")) in [(n, a) for n, a, _ in backend.calls]
    assert "S**** J***" in wf.patient_banner()
    written = journaled(journal)
    for secret in ("12345678", "Smith", "SMITH", "John"):
        assert secret not in written
    assert [e["dest"] for e in journal.entries()][:3] == ["reading_card", "typing_document", "identifying"]


@pytest.mark.parametrize("number, name", [("E1234", ""), ("E12", "SMITH JOHN"), ("E1234567890123456789X", "A"),
                                          ("E1234-678", "SMITH JOHN"), ("", "SMITH JOHN")])
def test_what_is_not_a_document_number_and_a_name_is_asked_again_without_the_server(two, number, name):
    wf, backend, views, journal, clock, first_state = two
    document_screen(wf, views)
    wf.handle("look_up_document", document_number=number, name=name)
    assert wf.state == "typing_document" and views[-1].screen == "document"
    assert ("证件号码" if len(number) < 5 or len(number) > 20 or not number.isalnum() else "姓名") in views[-1].message
    assert not any(n == "identify_by_document" for n, _, _ in backend.calls)


@pytest.mark.parametrize("number, name, word", [("E99999999", "SMITH JOHN", "未找到"),
                                                ("E12345678", "SMITH JANE", "姓名与档案不符")])
def test_an_unknown_number_or_a_wrong_name_is_typed_again_then_the_counter_takes_over(two, number, name, word):
    wf, backend, views, journal, clock, first_state = two
    document_screen(wf, views)
    wf.handle("look_up_document", document_number=number, name=name)
    assert wf.state == "typing_document" and word in views[-1].message and views[-1].message_en
    wf.handle("look_up_document", document_number=number, name=name)
    assert wf.state == "typing_document" and word in views[-1].message
    wf.handle("look_up_document", document_number=number, name=name)  # the third miss: no more guessing here
    assert wf.state == "failed" and "人工窗口" in views[-1].message
    assert sum(1 for n, _, _ in backend.calls if n == "identify_by_document") == 3
    assert name.split()[0] not in journaled(journal) and number not in journaled(journal)


def test_a_corrected_name_after_a_miss_goes_on(two):
    wf, backend, views, journal, clock, first_state = two
    document_screen(wf, views)
    wf.handle("look_up_document", document_number="E12345678", name="SMITH JANE")
    wf.handle("look_up_document", document_number="E12345678", name="SMITH JOHN")
    assert wf.state == first_state and wf.visit.patient["patient_id"] == "P0004"
    assert "姓名" not in wf.visit.notice[0]  # the service's own notices only from here on


def test_a_document_look_up_with_the_server_gone_says_so(two):
    wf, backend, views, journal, clock, first_state = two
    backend.offline.add("identify_by_document")
    document_screen(wf, views)
    wf.handle("look_up_document", document_number="E12345678", name="SMITH JOHN")
    assert wf.state == "failed" and "网络" in views[-1].message and wf.visit.patient is None


def test_the_document_screen_goes_back_to_the_card_cancels_home_and_times_out(two):
    wf, backend, views, journal, clock, first_state = two
    document_screen(wf, views)
    wf.handle("back")
    assert wf.state == "reading_card" and views[-1].screen == "insert_card"
    wf.handle("type_document")
    wf.handle("cancel")
    assert wf.state == "home"
    document_screen(wf, views)
    clock.t += Timeouts().choosing + 1
    wf.tick()
    assert wf.state == "home"


# ---- 刷脸 ---------------------------------------------------------------------------------------------------------

try:  # the camera driver's own exceptions where it has them; stand-ins with the same names and fields otherwise
    from drivers.camera.camera import CameraDisconnectedError, FaceNotCapturedError
except ImportError:  # pragma: no cover - only before the driver offers capture_face_jpeg
    class FaceNotCapturedError(Exception):  # type: ignore[no-redef]
        def __init__(self, problem: str = "no_face", frames_seen: int = 0) -> None:
            super().__init__(problem)
            self.prompt_zh, self.prompt_en = "未检测到人脸，请正对摄像头", "No face found; please face the camera"

    class CameraDisconnectedError(Exception):  # type: ignore[no-redef]
        pass

PHOTO = b"\xff\xd8\xff\xe0 a face \xff\xd9"
LI = {"patient_id": "P0001", "name_masked": "李*英", "gender": "女", "age": 70}


class FakeFaceCamera:
    """`capture_face_jpeg` as the camera driver offers it: each look takes the next outcome, a photo (bytes)
    or an exception to raise; the last outcome repeats."""

    def __init__(self, *outcomes: Any) -> None:
        self.outcomes = list(outcomes)
        self.looks: list[float] = []

    def capture_face_jpeg(self, seconds: float = 4.0) -> bytes:
        self.looks.append(seconds)
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def with_camera(wf, camera, health: Health | None = None):  # type: ignore[no-untyped-def]
    wf.peripherals = Peripherals(face_camera=camera)
    wf.handle("device_health", device="camera", health=health or Health.ok())
    return camera


def face_button(wf, views) -> bool:  # type: ignore[no-untyped-def]
    shown = [v for v in views if v.screen == "insert_card"]
    return bool(shown and shown[-1].data.get("face"))


def test_a_recognised_face_identifies_the_patient_and_the_photo_goes_nowhere_else(two, caplog):
    wf, backend, views, journal, clock, first_state = two
    backend.known_faces = {PHOTO: LI}
    camera = with_camera(wf, FakeFaceCamera(PHOTO))
    wf.handle("start")
    assert face_button(wf, views)
    wf.handle("scan_face")
    assert wf.state == first_state and wf.visit.patient["patient_id"] == "P0001"
    assert camera.looks == [FACE_SECONDS]
    assert any(v.screen == "face_capture" and "正对摄像头" in v.data["text"] and v.can_cancel for v in views)
    assert ("identify_by_face", (len(PHOTO),)) in [(n, a) for n, a, _ in backend.calls]
    assert [e["dest"] for e in journal.entries()][:2] == ["reading_card", "capturing_face"]
    assert "a face" not in journaled(journal) and "a face" not in caplog.text
    assert all("a face" not in repr(v) for v in views) and "a face" not in repr(wf.visit)


def test_a_face_on_a_family_account_chooses_like_a_code(two):
    wf, backend, views, journal, clock, first_state = two
    backend.known_faces = {PHOTO: backend.known_codes[("e_health_code", FAMILY_CODE)]}
    with_camera(wf, FakeFaceCamera(PHOTO))
    wf.handle("start")
    wf.handle("scan_face")
    assert wf.state == "choosing_patient" and views[-1].screen == "choose_patient"
    wf.handle("pick_patient", patient_id="P0001")
    assert wf.state == first_state and wf.visit.patient["patient_id"] == "P0001"


def test_a_face_the_platform_does_not_recognise_ends_with_its_words(two):
    wf, backend, views, journal, clock, first_state = two
    backend.known_faces = {}
    with_camera(wf, FakeFaceCamera(b"\xff\xd8 somebody else"))
    wf.handle("start")
    wf.handle("scan_face")
    assert wf.state == "failed" and "身份证" in views[-1].message and wf.visit.patient is None


def test_a_face_look_up_with_the_server_gone_says_so(two):
    wf, backend, views, journal, clock, first_state = two
    backend.offline.add("identify_by_face")
    with_camera(wf, FakeFaceCamera(PHOTO))
    wf.handle("start")
    wf.handle("scan_face")
    assert wf.state == "failed" and "网络" in views[-1].message


def test_no_good_frame_asks_again_with_the_cameras_words_then_suggests_the_id_card(two):
    wf, backend, views, journal, clock, first_state = two
    missed = FaceNotCapturedError("no_face", 12)
    camera = with_camera(wf, FakeFaceCamera(missed))
    wf.handle("start")
    for look in range(1, FACE_TRIES):
        wf.handle("scan_face")
        assert wf.state == "reading_card", look
        view = views[-1]
        assert view.screen == "insert_card" and view.message == missed.prompt_zh
        assert view.message_en == missed.prompt_en and view.data["face"]
    wf.handle("scan_face")
    assert wf.state == "reading_card" and "身份证" in views[-1].message and not views[-1].data["face"]
    wf.handle("scan_face")  # the button is gone; a late tap does not look again
    assert len(camera.looks) == FACE_TRIES and wf.state == "reading_card"
    assert not any(n == "identify_by_face" for n, _, _ in backend.calls)
    wf.handle("card_read", card=FakeCard())  # the ID card still works, and the notice goes with the visit on
    assert wf.state == first_state and "摄像头" not in wf.visit.notice[0] and "面部" not in wf.visit.notice[0]


def test_a_camera_fault_says_use_the_id_card_and_hides_the_button(two, caplog):
    wf, backend, views, journal, clock, first_state = two
    camera = with_camera(wf, FakeFaceCamera(CameraDisconnectedError("摄像头未连接 / camera unplugged")))
    wf.handle("start")
    wf.handle("scan_face")
    assert wf.state == "reading_card"
    assert views[-1].message == "摄像头暂不可用，请使用身份证" and not views[-1].data["face"]
    wf.handle("scan_face")
    assert len(camera.looks) == 1
    assert "CameraDisconnectedError" in caplog.text


def test_no_face_button_without_a_working_camera(two):
    wf, backend, views, journal, clock, first_state = two
    wf.handle("start")
    assert not face_button(wf, views)
    wf.handle("scan_face")  # no camera at all
    assert wf.state == "reading_card"
    wf.handle("cancel")
    camera = with_camera(wf, FakeFaceCamera(PHOTO), Health.fault("no_frames", "摄像头无画面 / no frames"))
    wf.handle("start")
    assert not face_button(wf, views)
    wf.handle("scan_face")
    assert wf.state == "reading_card" and camera.looks == [] and "摄像头" in views[-1].message


def test_cancel_tapped_during_the_look_ends_the_visit(two):
    """The look blocks the workflow's thread for its few seconds; the Cancel tapped meanwhile is handled next,
    wherever the look left the visit, and takes the patient home with nothing kept."""
    wf, backend, views, journal, clock, first_state = two
    backend.known_faces = {PHOTO: LI}
    with_camera(wf, FakeFaceCamera(PHOTO))
    wf.handle("start")
    wf.handle("scan_face")
    wf.handle("cancel")
    assert wf.state == "home" and wf.visit.patient is None
    with_camera(wf, FakeFaceCamera(FaceNotCapturedError("no_face")))
    wf.handle("start")
    wf.handle("scan_face")
    wf.handle("cancel")
    assert wf.state == "home" and wf.visit.face_tries == 0


class JpegFaceBackend(FakeBackend):
    """The fake face platform for the real camera: any JPEG of a drawn face is the demo patient."""

    def identify_by_face(self, image_jpeg):  # type: ignore[no-untyped-def]
        self._call("identify_by_face", len(image_jpeg))
        if not image_jpeg.startswith(b"\xff\xd8"):
            raise AssertionError("not a JPEG")
        return dict(LI)


def test_the_real_camera_driver_on_drawn_faces(tmp_path):
    """The camera driver against generated clips: a drawn face is sent as a JPEG and identifies; an empty
    scene comes back to the card screen with the driver's own prompt."""
    camera_module = pytest.importorskip("drivers.camera.camera")
    if not hasattr(camera_module.FaceCamera, "capture_face_jpeg"):
        pytest.skip("the camera driver has no capture_face_jpeg")
    import numpy as np

    from drivers.camera import synthetic

    wf, backend, views, journal, clock = build(tmp_path, SameDayRegistration, JpegFaceBackend, {})
    with camera_module.FaceCamera(synthetic.face_video(tmp_path / "face.avi", count=8), loop=True) as camera:
        with_camera(wf, camera)
        wf.handle("start")
        wf.handle("scan_face")
    assert wf.state == "choosing_department" and wf.visit.patient["patient_id"] == "P0001"
    wf.handle("cancel")
    empty = [np.full((480, 640, 3), 128, np.uint8) for _ in range(4)]
    with camera_module.FaceCamera(synthetic.write_video(tmp_path / "empty.avi", empty), loop=True) as camera:
        with_camera(wf, camera)
        wf.handle("start")
        wf.handle("scan_face")
    assert wf.state == "reading_card" and views[-1].message and views[-1].data["face"]
    assert sum(1 for n, _, _ in backend.calls if n == "identify_by_face") == 1
