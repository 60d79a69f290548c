"""Migrations build the schema from nothing; the demo hospital is complete, consistent and encrypted at rest."""
from __future__ import annotations

import sqlite3
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import func, inspect, select

from central.bootstrap import initialize, migrate
from central.config import Settings
from central.db import make_engine
from central.his.schedule import roll_schedule
from central.his.seed import DEMO_PATIENT, DEMO_PATIENT_ID
from drivers.idcard.idnumber import check_digit
from central.his.tables import (HisBill, HisBillItem, HisDepartment, HisDoctor, HisDoctorDepartment, HisLabReport,
                                HisLabResult, HisPatient, HisScheduleDay, HisSlot)
from central.services import Services
import central.fleet.models  # noqa: F401  (the fleet tables, so compare_metadata sees them)
import central.staff.models  # noqa: F401  (the staff tables, likewise)
import central.records_models  # noqa: F401  (print records, likewise)


def test_migrations_create_the_schema_from_an_empty_database(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    migrate(engine)
    migrate(engine)  # at head already: nothing to do, nothing fails
    tables = set(inspect(engine).get_table_names())
    assert {"terminals", "orders", "payments", "order_events", "his_departments", "his_doctors", "his_slots",
            "his_slot_locks", "his_registrations", "his_patients", "his_bills", "his_lab_reports",
            "kiosk_messages", "alembic_version"} <= tables
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from central.db import Base
    with engine.connect() as connection:  # the migrations and the models describe the same schema
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
    engine.dispose()


def test_init_is_idempotent_and_says_what_it_did(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "c", sweep_seconds=0)
    first = initialize(settings)
    second = initialize(settings)
    assert first.seeded and not second.seeded
    assert first.days_generated == 15 and second.days_generated == 0
    assert "26 departments" in second.line()  # 24 clinical, the special-needs and MDT clinics
    assert oct((tmp_path / "c" / "field.key").stat().st_mode & 0o777) == "0o600"


def test_seed_counts_and_invariants(svc: Services) -> None:
    with svc.sessions() as session:
        count = lambda table: session.scalar(select(func.count()).select_from(table))  # noqa: E731
        assert count(HisDepartment) >= 20
        assert count(HisDoctor) >= 80
        assert count(HisPatient) >= 200
        assert count(HisBill) > 0 and count(HisBillItem) > count(HisBill) // 2
        assert count(HisLabReport) > 0 and count(HisLabResult) > count(HisLabReport)
        two_departments = session.execute(select(HisDoctorDepartment.doctor_code).group_by(
            HisDoctorDepartment.doctor_code).having(func.count() >= 2)).all()
        assert len(two_departments) >= 5
        emergency = session.get(HisDepartment, "JZNK")
        assert emergency is not None and emergency.name == "急诊内科"
        fees = dict(session.execute(select(HisDoctor.title, func.max(HisDoctor.fee_fen)).group_by(HisDoctor.title)).all())
        assert fees == {"主任医师": 5000, "副主任医师": 3000, "主治医师": 2000, "住院医师": 1000}

        today = svc.today()
        days = session.scalars(select(HisScheduleDay.day).order_by(HisScheduleDay.day)).all()
        assert days[0] <= today and days[-1] >= today + timedelta(days=14)
        # The emergency clinic has an hourly slot for every hour of every day of the window.
        for offset in range(15):
            hours = session.scalars(select(HisSlot.start).where(HisSlot.dept_code == "JZNK",
                                                                HisSlot.day == today + timedelta(days=offset)))
            assert sorted(hours) == [f"{h:02d}:00" for h in range(24)]

        patients = session.scalars(select(HisPatient)).all()
        for patient in patients:
            number = patient.id_number
            assert len(number) == 18 and number[:17].isdigit()
            assert check_digit(number[:17]) == number[17], number[:6]
            assert number[6:14] == f"{patient.birth:%Y%m%d}"
            assert (int(number[16]) % 2 == 1) == (patient.gender == "男")
        assert len({p.id_number for p in patients}) == len(patients)
        demo = session.get(HisPatient, DEMO_PATIENT_ID)
        assert demo is not None and demo.name == "李秀英" and demo.id_number == DEMO_PATIENT["id_number"]


def test_demo_patient_is_the_documented_one() -> None:
    number = DEMO_PATIENT["id_number"]
    assert number.startswith("36070219560314028") and number[17] == check_digit(number[:17])
    assert DEMO_PATIENT["gender"] == "女" and DEMO_PATIENT["birth"] == "1956-03-14"
    assert DEMO_PATIENT["nation"] == "汉" and DEMO_PATIENT["authority"] == "赣州市公安局章贡分局"


def test_check_digit_matches_the_standard_example() -> None:
    # GB 11643-1999 appendix example: 11010519491231002X.
    assert check_digit("11010519491231002") == "X"


def test_personal_data_is_not_stored_in_plaintext(svc: Services, data_dir: Path) -> None:
    with svc.sessions() as session:
        patients = session.scalars(select(HisPatient).limit(30)).all()
        secrets = [(p.name, p.id_number, p.phone or "", p.address or "") for p in patients]
    svc.engine.dispose()
    raw = b"".join(path.read_bytes() for path in data_dir.glob("central.db*"))
    for name, id_number, phone, address in secrets:
        for value in (name, id_number, phone, address):
            assert value.encode("utf-8") not in raw
    with sqlite3.connect(data_dir / "central.db") as connection:
        row = connection.execute("SELECT name, id_number, phone, address, id_index FROM his_patients "
                                 "WHERE patient_id = ?", (DEMO_PATIENT_ID,)).fetchone()
    assert all(isinstance(value, bytes) for value in row[:4])
    assert DEMO_PATIENT["name"].encode() not in row[0] and DEMO_PATIENT["id_number"].encode() not in row[1]
    assert len(row[4]) == 64 and DEMO_PATIENT["id_number"] not in row[4]


def test_schedule_generation_is_idempotent_per_day_and_rolls_forward(svc: Services) -> None:
    today = svc.today()
    assert roll_schedule(svc.sessions, svc.settings.tz, today) == 0
    with svc.sessions() as session:
        before = session.scalar(select(func.count()).select_from(HisSlot))
    assert roll_schedule(svc.sessions, svc.settings.tz, today + timedelta(days=1)) == 1
    with svc.sessions() as session:
        after = session.scalar(select(func.count()).select_from(HisSlot))
        assert after > before
        assert session.get(HisScheduleDay, today + timedelta(days=15)) is not None


def test_slot_times_are_in_the_hospital_timezone(svc: Services) -> None:
    with svc.sessions() as session:
        slot = session.scalars(select(HisSlot).where(HisSlot.dept_code == "JZNK", HisSlot.start == "23:00")).first()
        assert slot is not None
        local_start = slot.starts_at.astimezone(svc.settings.tz)
        local_end = slot.ends_at.astimezone(svc.settings.tz)
        assert (local_start.hour, local_start.date()) == (23, slot.day)
        assert (local_end.hour, local_end.date()) == (0, slot.day + timedelta(days=1))
        assert isinstance(slot.day, date)
