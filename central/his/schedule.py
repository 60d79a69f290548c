"""Turning weekly session templates into bookable slots, a rolling window of days ahead.

Generation is idempotent per date (a day is generated once, marked in ``his_schedule_days``) and runs at every
start-up, so a server that keeps running for weeks still offers today plus the next fourteen days after a restart.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from central.his.tables import HisScheduleDay, HisSessionTemplate, HisSlot

WINDOW_DAYS = 15  # today and the next 14 days


def local_moment(day: date, hhmm: str, tz: ZoneInfo) -> datetime:
    """An aware moment for a time of day; "24:00" is the midnight that ends ``day``."""
    hours, minutes = (int(part) for part in hhmm.split(":"))
    return datetime.combine(day, time(0, 0), tzinfo=tz) + timedelta(hours=hours, minutes=minutes)


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _minutes(hhmm: str) -> int:
    hours, minutes = (int(part) for part in hhmm.split(":"))
    return hours * 60 + minutes


def slots_for_day(template: HisSessionTemplate, day: date, tz: ZoneInfo) -> list[HisSlot]:
    slots = []
    start, end = _minutes(template.start), _minutes(template.end)
    while start + template.slot_minutes <= end:
        first, last = _hhmm(start), _hhmm(start + template.slot_minutes)
        slots.append(HisSlot(dept_code=template.dept_code, doctor_code=template.doctor_code, day=day, start=first,
                             end=last, starts_at=local_moment(day, first, tz), ends_at=local_moment(day, last, tz),
                             capacity=template.capacity, booked=0))
        start += template.slot_minutes
    return slots


def roll_schedule(sessions: sessionmaker[Session], tz: ZoneInfo, today: date, days: int = WINDOW_DAYS) -> int:
    """Generate the slots of every day in the window that has none yet; returns how many days were generated."""
    generated = 0
    for offset in range(days):
        day = today + timedelta(days=offset)
        try:
            with sessions() as session, session.begin():
                if session.get(HisScheduleDay, day) is not None:
                    continue
                templates = session.scalars(select(HisSessionTemplate).where(
                    HisSessionTemplate.weekday == day.weekday()).order_by(HisSessionTemplate.id)).all()
                for template in templates:
                    session.add_all(slots_for_day(template, day, tz))
                session.add(HisScheduleDay(day=day))
            generated += 1
        except IntegrityError:
            continue  # another process generated this day at the same moment
    return generated
