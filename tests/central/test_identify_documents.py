"""K1 by a passport or HK-Macao-Taiwan permit number typed at the kiosk, with the name as the kiosk's letter
keyboard types it: the kiosk's HTTP client against the real server (kiosk API, reference HIS) over loopback."""
from __future__ import annotations

import logging
from datetime import date

import pytest

from central.his.latin_names import latin_name_matches
from kiosk_app.backend_client import HttpBackend
from kiosk_app.config import Credentials
from tests.central.conftest import LiveCentral, provision
from workflows.backend import BackendError


@pytest.mark.parametrize("on_file, typed", [
    ("SMITH JOHN", "smith john"), ("SMITH, JOHN", "SMITH JOHN"), ("SMITH JOHN", "JOHN SMITH"),
    ("SMITH-JONES ANNA", "SMITHJONES ANNA"), ("José García", "JOSE GARCIA"), ("张三", "ZHANG SAN"),
    ("张三", "zhangsan"), ("张三", "SAN ZHANG"), ("吕文", "LYU WEN"), ("吕文", "LV WEN"), ("吕文", "LU WEN"),
    ("曾小明", "ZENG XIAOMING"), ("欧阳娜娜", "OUYANG NANA"), ("欧阳娜娜", "NANA OUYANG")])
def test_a_latin_name_as_the_document_spells_it_matches(on_file: str, typed: str) -> None:
    assert latin_name_matches(on_file, typed)


@pytest.mark.parametrize("on_file, typed", [
    ("SMITH JOHN", "SMITH JANE"), ("SMITH JOHN", "SMITH"), ("张三", "ZHANG SI"), ("李秀英", "LI XIU"),
    ("李秀英", "LI XIU YING X"), ("张三", "ZHANGSANZHANGSAN"), ("张三", ""), ("张三", "张三")])
def test_another_name_or_part_of_it_does_not(on_file: str, typed: str) -> None:
    assert not latin_name_matches(on_file, typed)


def test_the_kiosk_client_finds_files_by_passport_and_permit_with_the_typed_name(
        live: LiveCentral, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    foreign, _ = live.svc.his.create_patient("SMITH, JOHN", "E12345678", "男", date(1980, 1, 2), None)
    citizen, _ = live.svc.his.create_patient("吕文华", "EA7654321", "女", date(1991, 5, 6), None)
    kiosk = provision(live.svc, "KIOSK-DOC")
    backend = HttpBackend(Credentials(kiosk.terminal_id, kiosk.secret, live.url))
    try:
        found = backend.identify_by_document("e12345678", "Smith John")
        assert found["patient_id"] == foreign.patient_id and found["name_masked"] == "S****, J***"
        assert set(found) == {"patient_id", "name_masked", "gender", "age"}
        by_pinyin = backend.identify_by_document("EA7654321", "LYU WENHUA")
        assert by_pinyin["patient_id"] == citizen.patient_id and by_pinyin["name_masked"] == "吕*华"
        with pytest.raises(BackendError) as wrong:
            backend.identify_by_document("EA7654321", "LI WENHUA")
        assert wrong.value.code == "NAME_MISMATCH" and wrong.value.message
        with pytest.raises(BackendError) as unknown:
            backend.identify_by_document("E99999999", "SMITH JOHN")
        assert unknown.value.code == "PATIENT_NOT_FOUND" and unknown.value.payload["can_create"] is False
        with pytest.raises(BackendError) as bad:
            backend.identify_by_document("E1-2345", "SMITH JOHN")
        assert bad.value.code != "PATIENT_NOT_FOUND"  # refused as a malformed request, not looked up
    finally:
        backend.close()
    for secret in ("E12345678", "EA7654321", "SMITH", "LYU", "吕文华"):
        assert secret not in caplog.text
