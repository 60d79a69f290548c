"""The kiosk's services as the home screen lists them, in the order a patient looks for them.

A service is built by giving its id a factory (`catalogue({"registration": make_registration})`); a service
without one shows as "coming soon" rather than pretending to work.
"""
from __future__ import annotations

from typing import Callable

from workflows.hub import Entry, Service
from workflows.view import View

#: (id, Chinese, English)
SERVICES: list[tuple[str, str, str]] = [
    ("registration", "当日挂号", "Same-day registration"),
    ("appointment", "预约挂号", "Appointments"),
    ("checkin", "取号报到", "Check-in"),
    ("outpatient_payment", "门诊缴费", "Outpatient payment"),
    ("reports", "报告打印", "Print reports"),
    ("queries", "信息查询", "Records & queue"),
    ("patient_cards", "办卡绑卡", "E-health & visit cards"),
    ("guidance", "就诊导航", "Find your way"),
    ("inpatient", "住院服务", "Inpatient services"),
]

Factory = Callable[[Callable[[View], None]], Service]


def catalogue(factories: dict[str, Factory]) -> list[Entry]:
    unknown = set(factories) - {service_id for service_id, _, _ in SERVICES}
    if unknown:
        raise ValueError(f"services not in the catalogue: {sorted(unknown)}")
    return [Entry(service_id, zh, en, factories.get(service_id)) for service_id, zh, en in SERVICES]
