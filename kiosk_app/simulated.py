"""Simulated devices for a machine with no hardware: the real drivers talk to these over the real wire
protocols: serial pseudo-terminal pairs for the ID-card reader, the scanner and the PIN pad, TCP for the
receipt printer, a looping video file for the face camera, a private cupsd with a cups-pdf queue for the
report printer, pcscd with vpcd and the project's card emulator for the PC/SC reader."""
from __future__ import annotations

import os
import time
from datetime import date
from pathlib import Path
from typing import Any

from drivers.camera.synthetic import face_video
from drivers.idcard.protocol import IdentityCard
from drivers.idcard.simulator import IdCardReaderSimulator
from drivers.pcsc.testbed import VPCD_PORTS, PcscTestbed, virtual_reader
from drivers.pcsc.vcard import VirtualCard
from drivers.pinpad.crypto import Algorithm, encrypt, kcv
from drivers.pinpad.pad import SerialPinPad
from drivers.pinpad.simulator import DEMO_MASTER_KEYS, PinPadSimulator
from drivers.report.pdf import test_page_pdf
from drivers.report.printer import CupsReportPrinter
from drivers.report.testbed import FAULT_SCHEME, CupsTestbed
from drivers.receipt.simulator import PrinterListener
from drivers.scanner.simulator import ScannerSimulator
from drivers.serial_pair import SerialPair


class SimulatedDevices:
    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.serial: SerialPair | None = None
        self.id_card: IdCardReaderSimulator | None = None
        self.printer: PrinterListener | None = None
        self.camera_video: Path | None = None
        self.cups: CupsTestbed | None = None
        self.scanner_line: SerialPair | None = None
        self.scanner: ScannerSimulator | None = None
        self.pinpad_line: SerialPair | None = None
        self.pinpad: PinPadSimulator | None = None
        self.pcsc: PcscTestbed | None = None
        self.card: VirtualCard | None = None  # the bank or social-security card in the PC/SC reader, if any

    def start(self) -> dict[str, dict[str, Any]]:
        """Start every simulator and return the `devices` configuration that points the drivers at them."""
        self.serial = SerialPair(self.workdir)
        self.serial.__enter__()
        self.id_card = IdCardReaderSimulator(self.serial.device_end)
        self.id_card.start()
        self.printer = PrinterListener()
        self.printer.start()
        self.camera_video = face_video(self.workdir / "camera.avi", count=20)
        self.cups = CupsTestbed(die_with_parent=False)  # a private cupsd with a cups-pdf queue
        queue = self.cups.start()
        self.scanner_line = SerialPair(self.workdir, name="scanner").open()
        self.scanner = ScannerSimulator(self.scanner_line.device_end)
        self.scanner.start()
        self.pinpad_line = SerialPair(self.workdir, name="pinpad").open()
        self.pinpad = PinPadSimulator(self.pinpad_line.device_end)
        self.pinpad.start()
        self._sign_in_pinpad(str(self.pinpad_line.host_end))
        self.pcsc = PcscTestbed().start()  # pcscd started here only if none is running
        return {
            "id_card": {"driver": "serial", "port": str(self.serial.host_end)},
            "pcsc": {"driver": "pcsc", "reader": virtual_reader(0)},
            "scanner": {"driver": "serial", "port": str(self.scanner_line.host_end)},
            "camera": {"driver": "opencv", "source": str(self.camera_video), "loop": True},
            "receipt_printer": {"driver": "network", "host": "127.0.0.1", "port": self.printer.port},
            "report_printer": {"driver": "cups", "queue": queue, "server": self.cups.server},
            "pinpad": {"driver": "serial", "port": str(self.pinpad_line.host_end), "algorithm": "sm4"},
        }

    @staticmethod
    def _sign_in_pinpad(port: str) -> None:
        """What the bank sign-in does each morning: load a working key, sent encrypted under the pad's master
        key with its check value. Here the demo master key stands in for the acquirer's key system."""
        working = os.urandom(16)
        pad = SerialPinPad(port, algorithm=Algorithm.SM4)
        try:
            pad.open()
            pad.load_working_key(encrypt(Algorithm.SM4, DEMO_MASTER_KEYS[Algorithm.SM4], working),
                                 kcv(Algorithm.SM4, working))
        finally:
            pad.close()

    FAULTS = {
        "id_card": ("sam_fault", "off"),
        "receipt_printer": ("paper_out", "paper_low", "cover_open", "cutter_jammed", "off"),
        "camera": ("off",),
        "report_printer": ("paper_out", "paused", "off"),
        "scanner": ("unplugged",),
        "pinpad": ("tampered", "off"),
        "pcsc": ("pcscd_off",),
    }

    def inject(self, role: str, fault: str) -> None:
        """Put one simulator into a fault a technician meets in the field ("off" is switched off)."""
        if fault not in self.FAULTS.get(role, ()):
            known = "; ".join(f"{r}: {', '.join(f)}" for r, f in self.FAULTS.items())
            raise ValueError(f"no fault {fault!r} for {role!r} (known: {known})")
        if role == "id_card" and self.id_card:
            if fault == "off":
                self.id_card.stop()
            else:
                self.id_card.sam_ok = False
        elif role == "camera" and self.camera_video:
            self.camera_video.rename(self.camera_video.with_suffix(".unplugged"))
        elif role == "scanner" and self.scanner and self.scanner_line:
            self.scanner.stop()
            self.scanner_line.close()  # the USB-serial adapter pulled: the port node goes away
        elif role == "pinpad" and self.pinpad:
            if fault == "off":
                self.pinpad.stop()
            else:
                self.pinpad.tampered = True
        elif role == "pcsc" and self.pcsc:
            if not self.pcsc.started_pcscd:
                raise ValueError("pcscd was already running on this machine; it is not ours to stop")
            self.pcsc.stop_pcscd_only()
        elif role == "report_printer" and self.cups:
            self._report_printer_fault(fault)
        elif role == "receipt_printer" and self.printer:
            if fault == "off":
                self.printer.stop()
            else:
                attr = {"paper_low": "paper_near_end"}.get(fault, fault)
                setattr(self.printer, attr, True)

    def _report_printer_fault(self, fault: str) -> None:
        assert self.cups is not None
        if fault == "off":
            self.cups.stop()
        elif fault == "paused":
            self.cups.pause()
        else:  # a printer out of paper with a job waiting: the backend reports media-empty and holds the job
            self.cups.connection().setPrinterDevice(self.cups.queue, f"{FAULT_SCHEME}:/media-empty-error?hang")
            CupsReportPrinter(self.cups.queue, server=self.cups.server).print_pdf(test_page_pdf("SIM"), "paper")
            deadline = time.monotonic() + 10
            while CupsReportPrinter(self.cups.queue, server=self.cups.server).health().reason != "paper_out":
                if time.monotonic() > deadline:
                    raise RuntimeError("the simulated report printer did not report paper out")
                time.sleep(0.1)

    def insert_card(self, profile: str = "bank") -> VirtualCard:
        """Lay a bank ("bank") or social-security ("social_security") card in the PC/SC reader."""
        self.remove_card()
        self.card = VirtualCard(profile, VPCD_PORTS[0])
        self.card.start()
        return self.card

    def remove_card(self) -> None:
        card, self.card = self.card, None
        if card:
            card.stop()

    def stop(self) -> None:
        self.remove_card()
        if self.pcsc:
            self.pcsc.stop()
        if self.cups:
            self.cups.stop()
        for sim in (self.scanner, self.pinpad):
            if sim:
                sim.stop()
        for line in (self.scanner_line, self.pinpad_line):
            if line:
                line.close()
        if self.id_card:
            self.id_card.stop()
        if self.printer:
            self.printer.stop()
        if self.serial:
            self.serial.close()


def card_for(person: dict[str, Any]) -> IdentityCard:
    """An ID card carrying a (demo) patient's data, as the reader would return it."""
    birth = person["birth"]
    if isinstance(birth, str):
        birth = date.fromisoformat(birth)
    return IdentityCard(name=person["name"], gender=person["gender"], nation=person.get("nation", "汉"),
                        birth=birth, address=person["address"], id_number=person["id_number"],
                        authority=person.get("authority", "示范市公安局"), valid_from=date(2016, 5, 1),
                        valid_to=None, photo=bytes(1024))
