"""Bringing a data directory up to date: schema, keys, demo hospital, schedule window. Safe to run at every
start and from several processes at once."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, func, select

from central.config import Settings
from central.his.schedule import roll_schedule
from central.his.seed import seed_reference_his
from central.his.tables import HisDepartment, HisDoctor, HisPatient
from central.services import Services, build_services

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def migrate(engine: Engine) -> None:
    with engine.begin() as connection:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, "heads")  # parts of the server may add branches


@dataclass
class InitSummary:
    database: str
    seeded: bool
    days_generated: int
    departments: int
    doctors: int
    patients: int

    def line(self) -> str:
        seeded = "seeded the demo hospital" if self.seeded else "hospital already present"
        return (f"kiosk-central ready: {self.database}; {seeded}; {self.departments} departments, "
                f"{self.doctors} doctors, {self.patients} patients; schedule: {self.days_generated} new day(s)")


def initialize(settings: Settings, services: Services | None = None) -> InitSummary:
    own = services is None
    svc = services or build_services(settings)
    try:
        migrate(svc.engine)
        seeded = seed_reference_his(svc.sessions, svc.cipher, settings.tz, settings.seed, svc.today())
        days = roll_schedule(svc.sessions, settings.tz, svc.today())
        with svc.sessions() as session:
            counts = [session.scalar(select(func.count()).select_from(table)) or 0
                      for table in (HisDepartment, HisDoctor, HisPatient)]
        return InitSummary(_safe_url(settings.db_url), seeded, days, *counts)
    finally:
        if own:
            svc.close()


def _safe_url(url: str) -> str:
    """The database URL without its password, fit for a console line."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
