"""The serial receipt printer: the real driver on a socat pty pair against the serial printer simulator."""
from __future__ import annotations

from pathlib import Path

import pytest

from drivers.health import Status
from drivers.receipt.document import QrCode, Text
from drivers.receipt.printer import PrinterError, SerialReceiptPrinter
from drivers.receipt.render import decode_qr_codes, printed_text
from drivers.receipt.simulator import SerialPrinterSimulator
from drivers.serial_pair import SerialPair

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def rig(tmp_path: Path):
    with SerialPair(tmp_path) as pair:
        sim = SerialPrinterSimulator(pair.device_end)
        sim.start()
        printer = SerialReceiptPrinter(str(pair.host_end), timeout=0.5)
        yield pair, sim, printer
        printer.close()
        sim.stop()


def test_slip_with_chinese_and_qr_arrives_whole(rig):
    _, sim, printer = rig
    printer.open()
    printer.print_document([Text("李*英  心血管内科", size=2), QrCode("V20261123-0001")])
    job = sim.wait_for_job(5)
    assert "李*英  心血管内科" in printed_text(job)
    assert decode_qr_codes(job) == ["V20261123-0001"]


@pytest.mark.parametrize("switch, status, reason", [
    (None, Status.OK, ""),
    ("paper_near_end", Status.DEGRADED, "paper_low"),
    ("paper_out", Status.FAULT, "paper_out"),
    ("cover_open", Status.FAULT, "cover_open"),
    ("cutter_jammed", Status.FAULT, "cutter_error"),
])
def test_status_over_the_serial_line(rig, switch, status, reason):
    _, sim, printer = rig
    if switch:
        setattr(sim, switch, True)
    health = printer.health()
    assert (health.status, health.reason) == (status, reason)
    assert not sim.jobs  # status queries are not print jobs


def test_printer_switched_off_is_a_fault_and_back_on_is_ok(rig):
    pair, sim, printer = rig
    assert printer.health().status is Status.OK
    sim.stop()
    assert printer.health().reason == "no_answer"
    sim = SerialPrinterSimulator(pair.device_end)
    sim.start()
    try:
        assert printer.health().status is Status.OK
    finally:
        sim.stop()


def test_cable_pulled_is_disconnected_and_a_job_fails_clearly(tmp_path):
    pair = SerialPair(tmp_path).open()
    sim = SerialPrinterSimulator(pair.device_end)
    sim.start()
    printer = SerialReceiptPrinter(str(pair.host_end), timeout=0.5)
    try:
        assert printer.health().status is Status.OK
        sim.stop()
        pair.close()
        assert printer.health().status is Status.FAULT
        with pytest.raises(PrinterError):
            printer.print_document([Text("lost")])
    finally:
        printer.close()
        sim.stop()
        pair.close()


def test_garbled_status_is_degraded_not_a_crash(rig):
    _, sim, printer = rig
    sim.garbage = 0xFF
    health = printer.health()
    assert health.status is Status.DEGRADED and health.reason == "status_garbled"
