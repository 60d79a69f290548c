"""Composition root: builds the terminal from its configuration and runs it.

Threads: the Qt thread draws; one workflow thread owns the visit (workflows.runner); one thread owns the
ID-card reader (drivers.idcard.reader.IdCardPoller) and one owns each other device (drivers.device.DeviceWorker).
They meet only through the runner's event queue and the ViewBridge signal. Every device reports its health
to the workflow as a `device_health` event, so the home screen switches off what a broken device stops.
"""
from __future__ import annotations

import logging
import threading
from datetime import datetime
from functools import partial
from typing import Callable
from zoneinfo import ZoneInfo

from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication

from drivers.device import DeviceProxy, DeviceWorker
from drivers.health import Health
from drivers.idcard.reader import IdCardPoller
from drivers.scanner.classify import Scan
from drivers.scanner.poller import ScannerPoller
from kiosk_app.agent_link import link_kiosk
from kiosk_app.backend_client import HttpBackend
from kiosk_app.card_watch import CardWatch, PinpadSignOn
from offline_queue.delivery import Deliverer, UrllibTransport
from offline_queue.outbox import Outbox
from kiosk_app.config import KioskConfig
from kiosk_app.devices import make_device
from kiosk_app.diagnostics import Diagnostics
from kiosk_app.log_tail import LogTail
from kiosk_app.pin import PinGate
from ui.window import KioskWindow, ViewBridge
from workflows.backend import BackendError, BackendUnavailable
from workflows.journal import Journal
from workflows.peripherals import Peripherals
from workflows.recovery import recover
from workflows.hub import ServiceHub
from workflows.registration import SameDayRegistration, Timeouts
from workflows.outpatient_payment import OutpatientPayment
from workflows.appointment import AppointmentBooking
from workflows.checkin import CheckIn
from workflows.guidance import Guidance
from workflows.visit_survey import VisitSurvey
from workflows.queries import RecordQueries
from workflows.patient_cards import PatientCards
from workflows.report_printing import ReportPrinting
from workflows.services import catalogue
from workflows.runner import WorkflowRunner
from workflows.view import View

log = logging.getLogger(__name__)


class ActivityFilter(QObject):
    """Any touch keeps the visit alive: the idle timeout counts from the patient's last touch."""

    TOUCHES = {QEvent.Type.MouseButtonPress, QEvent.Type.TouchBegin, QEvent.Type.KeyPress}

    def __init__(self, runner: WorkflowRunner):
        super().__init__()
        self.runner = runner

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802
        if event.type() in self.TOUCHES and obj.isWidgetType():
            self.runner.post("activity")
        return False


class Kiosk:
    def __init__(self, config: KioskConfig, app: QApplication, timeouts: Timeouts | None = None):
        self.config = config
        self.app = app
        self.backend = HttpBackend(config.credentials)
        self.journal = Journal(config.data_dir / "journal.db")
        self.outbox = Outbox(config.data_dir / "journal.db")  # same file: one transaction with the journal
        self.deliverer = Deliverer(self.outbox, UrllibTransport.from_credentials(config.credentials))
        self.health: dict[str, Health] = {}  # last report per device role, for diagnostics and the fleet
        self.reader = make_device("id_card", config.devices)
        # Devices that speak unasked (card laid down, code scanned) get a poller; the rest a worker thread.
        roles = sorted({"receipt_printer", *config.devices} - {"id_card", "scanner"})  # no printer fails here
        self.workers = {role: DeviceWorker(role, make_device(role, config.devices), self._device_health,
                                           config.device_poll_seconds) for role in roles}
        self.printer = DeviceProxy(self.workers["receipt_printer"])
        # The camera, the PC/SC reader and the PIN pad, for the services that use them in a visit.
        self.peripherals = Peripherals(**{name: DeviceProxy(self.workers[role]) for name, role in (
            ("face_camera", "camera"), ("card_reader", "pcsc"), ("pinpad", "pinpad")) if role in self.workers})
        self.bridge = ViewBridge()
        terminal_id = config.credentials.terminal_id
        if timeouts is None:
            timeouts = Timeouts(choosing=config.idle_seconds)
        now = partial(datetime.now, ZoneInfo(config.timezone))
        def registration(publish: Callable[[View], None]) -> SameDayRegistration:
            return SameDayRegistration(self.backend, self.printer, self.journal, publish, terminal_id, timeouts,
                                       now=now, outbox=self.outbox, peripherals=self.peripherals,
                                       qr_channel=config.payment_qr)

        def outpatient_payment(publish: Callable[[View], None]) -> OutpatientPayment:
            return OutpatientPayment(self.backend, self.printer, self.journal, publish, terminal_id,
                                     timeouts, now=now, outbox=self.outbox, peripherals=self.peripherals,
                                     qr_channel=config.payment_qr)

        # Report printing (K8) on the A4 printer's own thread; the proxy waits as long as a job may take.
        report_worker = self.workers.get("report_printer")
        report_timeout = float(config.devices.get("report_printer", {}).get("job_timeout", 120)) + 30

        def reports(publish: Callable[[View], None]) -> ReportPrinting:
            assert report_worker is not None
            return ReportPrinting(self.backend, self.printer, self.journal, publish, terminal_id, timeouts,
                                  now=now, outbox=self.outbox, peripherals=self.peripherals,
                                  report_printer=DeviceProxy(report_worker, timeout=report_timeout))

        def queries(publish: Callable[[View], None]) -> RecordQueries:
            return RecordQueries(self.backend, self.printer, self.journal, publish, terminal_id, timeouts, now=now,
                                 outbox=self.outbox, peripherals=self.peripherals)

        def appointment(publish: Callable[[View], None]) -> AppointmentBooking:
            return AppointmentBooking(self.backend, self.printer, self.journal, publish, terminal_id, timeouts,
                                      now=now, outbox=self.outbox, peripherals=self.peripherals,
                                      qr_channel=config.payment_qr)

        def checkin(publish: Callable[[View], None]) -> CheckIn:
            return CheckIn(self.backend, self.printer, self.journal, publish, terminal_id, timeouts, now=now,
                           outbox=self.outbox, peripherals=self.peripherals)

        def guidance(publish: Callable[[View], None]) -> Guidance:
            return Guidance(self.backend, self.printer, self.journal, publish, terminal_id, timeouts, now=now,
                            outbox=self.outbox, peripherals=self.peripherals,
                            kiosk_location=config.kiosk_location)

        def survey(publish: Callable[[View], None]) -> VisitSurvey:  # offered by the hub after a visit (K13)
            return VisitSurvey(self.backend, self.printer, self.journal, publish, terminal_id, timeouts, now=now,
                               outbox=self.outbox, peripherals=self.peripherals)

        def patient_cards(publish: Callable[[View], None]) -> PatientCards:
            return PatientCards(self.backend, self.printer, self.journal, publish, terminal_id, timeouts, now=now,
                                outbox=self.outbox, peripherals=self.peripherals)

        records_services = {"queries": queries, **({"reports": reports} if report_worker is not None else {})}
        self.hub = ServiceHub(catalogue({"registration": registration, "outpatient_payment": outpatient_payment,
                                         "appointment": appointment, "checkin": checkin,
                                         "guidance": guidance,
                                         "patient_cards": patient_cards,
                                         **records_services}),
                              self.bridge.publish, survey=survey)
        self.workflow = self.hub.services["registration"]  # the service the end-to-end tests drive
        self.runner = WorkflowRunner(self.hub)
        self.log_tail = LogTail()
        logging.getLogger().addHandler(self.log_tail)
        self.diagnostics = Diagnostics(self.bridge.publish, self.workers, self.health,
                                       PinGate(config.technician_pin_hash), self.log_tail)
        self.poller = IdCardPoller(self.reader, on_card=self._on_card,
                                   on_error=lambda exc: log.warning("ID-card reader: %s", exc),
                                   on_health=partial(self._device_health, "id_card"))
        self.scanner_poller = None
        if "scanner" in config.devices:
            self.scanner_poller = ScannerPoller(make_device("scanner", config.devices), on_scan=self._on_scan,
                                                on_health=partial(self._device_health, "scanner"))
        self.window = KioskWindow(self.send, self._hospital_name(), terminal_id, now=now)
        self.bridge.changed.connect(self._on_view)
        self._workflow_view = self.window.view  # what to show again when diagnostics close
        # The PC/SC reader's card events for the visit (K1, K6): a social-security card on the insert-card screen
        # identifies the patient; the screens that asked for a card hear it come and go.
        self.card_watch: CardWatch | None = None
        if "pcsc" in self.workers:
            self.card_watch = CardWatch(self.workers["pcsc"], self.runner.post, lambda: self._workflow_view.screen,
                                        lambda: self.diagnostics.active).attach()
            self.card_watch.notices.shown.connect(self.window.show_notice)
        self.pinpad_sign_on: PinpadSignOn | None = None
        self._diag_timer = QTimer()
        self._diag_timer.timeout.connect(self._close_idle_diagnostics)
        self._diag_timer.start(1000)
        self.activity = ActivityFilter(self.runner)
        app.installEventFilter(self.activity)

    def _device_health(self, role: str, health: Health) -> None:
        """Called on the device's own thread; the workflow hears of it through its queue."""
        self.health[role] = health
        self.runner.post("device_health", device=role, health=health)

    def send(self, intent: str, **kwargs) -> None:
        """Taps from the window: diagnostic intents stay here, everything else is the visit's."""
        if intent == "diag_open":
            self.diagnostics.open()
        elif intent.startswith("diag_"):
            self.diagnostics.handle(intent, **kwargs)
            if not (self.diagnostics.active or self.diagnostics.asking_pin):
                self.window.render(self._workflow_view)
        else:
            self.runner.post(intent, **kwargs)

    def _on_card(self, card) -> None:
        """On the reader's thread. While the technician is in, a card is a test read, never a visit."""
        if self.diagnostics.active:
            if self.diagnostics.waiting_for == "id_card":
                self.diagnostics.card_read(card.to_dict(masked=True))
            return
        self.runner.post("card_read", card=card)

    def _on_scan(self, scan: Scan) -> None:
        """On the scanner's thread. The visit decides whether its screen takes this kind of code (a payment
        code on the payment screen); diagnostics show what a scan was taken for."""
        if self.diagnostics.active:
            if self.diagnostics.waiting_for == "scanner":
                self.diagnostics.scanned(f"{scan.kind.value}: {scan.message_zh} / {scan.message_en}")
            return
        if scan.recognised:
            self.runner.post("code_scanned", kind=scan.kind.value, code=scan.value)
        else:
            log.info("unrecognised scan ignored")

    def _on_view(self, view: View) -> None:
        if view.screen.startswith("diag"):
            if self.diagnostics.active or self.diagnostics.asking_pin:
                self.window.render(view)
            return
        self._workflow_view = view
        if self.diagnostics.active or self.diagnostics.asking_pin:
            return  # the visit's screens wait behind the technician's
        self.window.render(view)
        if view.screen == "insert_card":
            self.poller.rearm()  # a card laid down before the patient touched the service counts too
        if self.card_watch is not None:
            self.card_watch.screen_changed(view.screen)

    def _close_idle_diagnostics(self) -> None:
        if self.diagnostics.expired():
            log.info("diagnostic mode left idle; back to the patient screens")
            self.diagnostics.close()
            self.window.render(self._workflow_view)

    def _hospital_name(self) -> str:
        try:
            return self.backend.hospital()["name"]
        except (BackendError, BackendUnavailable, KeyError) as exc:
            log.warning("hospital name not available from the server (%s); using the configured one", exc)
            return self.config.hospital_name

    def start(self, show: bool = True) -> None:
        # A visit the last run left half-way (crash, power cut): close its unpaid order, off the Qt thread.
        threading.Thread(target=recover, args=(self.journal, self.backend), name="recovery", daemon=True).start()
        self.runner.start()
        self.deliverer.start()
        self.agent_link = link_kiosk(self)  # the fleet agent's watchdog and beats (fleet_agent/)
        for worker in self.workers.values():
            worker.start()
        if self.peripherals.pinpad is not None:  # 签到: the PIN pad's working key before the first bank card
            self.pinpad_sign_on = PinpadSignOn(self.backend, self.peripherals.pinpad).start()
        self.poller.start()
        if self.scanner_poller:
            self.scanner_poller.start()
        if show:
            if self.config.fullscreen:
                self.window.showFullScreen()
            else:
                self.window.show()

    def stop(self) -> None:
        if getattr(self, "agent_link", None) is not None:
            self.agent_link.stop()
        self.poller.stop()
        if self.scanner_poller:
            self.scanner_poller.stop()
        if self.pinpad_sign_on is not None:
            self.pinpad_sign_on.stop()
        for worker in self.workers.values():
            worker.stop()
        self.runner.stop()
        self.deliverer.stop()
        self.outbox.close()
        self.backend.close()
        self.journal.close()
        self.app.removeEventFilter(self.activity)
        self._diag_timer.stop()
        logging.getLogger().removeHandler(self.log_tail)
        self.window.close()
