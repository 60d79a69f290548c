"""``GET /metrics`` for Prometheus: terminals by status, active alerts by rule, heartbeat lag, command
outcomes, beats taken in.

Counts that live in the database (terminals, alerts, commands) are read at scrape time, so every server
instance reports the same truth and a restart loses nothing; what only a process sees (beats it took in, the
lag of each) is counted in memory per process. Each app has its own registry, so tests can build many apps.
"""
from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from central.fleet.models import CommandStatus, FleetCommand, FleetStatus
from central.fleet.service import fleet_summary
from central.services import Services

LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 6 * 3600, 24 * 3600)


class _FleetCollector(Collector):
    def __init__(self, svc: Services):
        self.svc = svc

    def collect(self) -> Iterator[Metric]:
        summary = fleet_summary(self.svc)
        terminals = GaugeMetricFamily("kiosk_fleet_terminals", "Terminals by status", labels=["status"])
        for status, count in summary.by_status.items():
            terminals.add_metric([status], count)
        yield terminals
        alerts = GaugeMetricFamily("kiosk_fleet_open_alerts", "Active alerts (open or acknowledged) by rule",
                                   labels=["rule"])
        for rule, count in summary.open_alerts_by_rule.items():
            alerts.add_metric([rule], count)
        yield alerts
        with self.svc.sessions() as session:
            by_status = dict(session.execute(select(FleetCommand.status, func.count())
                                             .group_by(FleetCommand.status)).all())
            oldest = session.scalar(select(func.min(FleetStatus.last_beat_at)))
        outcomes = CounterMetricFamily("kiosk_fleet_command_outcomes", "Commands that ended, by outcome",
                                       labels=["outcome"])
        for status in CommandStatus.FINAL:
            outcomes.add_metric([status.lower()], by_status.get(status, 0))
        yield outcomes
        open_commands = GaugeMetricFamily("kiosk_fleet_commands_open", "Commands not finished yet, by status",
                                          labels=["status"])
        for status in CommandStatus.OPEN:
            open_commands.add_metric([status.lower()], by_status.get(status, 0))
        yield open_commands
        age = GaugeMetricFamily("kiosk_fleet_oldest_heartbeat_age_seconds",
                                "Seconds since the least recently heard terminal's last beat")
        age.add_metric([], max(0.0, (self.svc.now() - oldest).total_seconds()) if oldest else 0.0)
        yield age


class FleetMetrics:
    """The registry behind one app's ``/metrics`` and the per-process instruments the fleet API feeds."""

    def __init__(self, svc: Services):
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_FleetCollector(svc))
        self.beats = Counter("kiosk_fleet_heartbeats", "Heartbeats taken in by this process", ["via"],
                             registry=self.registry)
        self.lag = Histogram("kiosk_fleet_heartbeat_lag_seconds",
                             "Seconds from a beat leaving the terminal to this server taking it in",
                             ["via"], buckets=LAG_BUCKETS, registry=self.registry)

    def observe_beat(self, via: str, lag_s: float) -> None:
        self.beats.labels(via).inc()
        self.lag.labels(via).observe(lag_s)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
