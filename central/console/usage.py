"""Usage statistics shaped for people: per service per hour of day, per day, per terminal (page and PDF)."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date

from central.fleet.views import UsageStats


@dataclass(frozen=True)
class UsageSummary:
    stats: UsageStats
    services: list[str]
    by_hour: dict[str, list[int]]  # service -> visits in each hour of the day (0..23), all days together
    hour_max: int
    by_day: list[tuple[date, int, int, int]]  # day, visits, payments, failures
    by_terminal: list[tuple[str, int, int, int]]  # busiest first
    failure_rate: float


def summarise(stats: UsageStats) -> UsageSummary:
    by_hour: dict[str, list[int]] = defaultdict(lambda: [0] * 24)
    days: dict[date, list[int]] = defaultdict(lambda: [0, 0, 0])
    for row in stats.rows:
        by_hour[row.service][row.hour.hour] += row.visits
        day = days[row.hour.date()]
        day[0] += row.visits
        day[1] += row.payments
        day[2] += row.failures
    terminals = sorted(((tid, c["visits"], c["payments"], c["failures"]) for tid, c in stats.by_terminal.items()),
                       key=lambda t: (-t[1], t[0]))
    hour_max = max((n for hours in by_hour.values() for n in hours), default=0)
    return UsageSummary(stats, sorted(by_hour), dict(by_hour), hour_max,
                        [(d, *counts) for d, counts in sorted(days.items())], terminals,
                        stats.failures / stats.visits if stats.visits else 0.0)
