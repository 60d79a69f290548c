"""The USB receipt printer: python-escpos's `Usb` through pyusb, against a fake at the pyusb backend layer
(no USB bus can be emulated on a build machine)."""
from __future__ import annotations

import pytest

from drivers.health import Status
from drivers.receipt.document import QrCode, Text
from drivers.receipt.printer import PrinterError, UsbReceiptPrinter
from drivers.receipt.render import decode_qr_codes, printed_text
from drivers.receipt.simulator import UsbPrinterBackend


@pytest.fixture
def rig():
    backend = UsbPrinterBackend()
    printer = UsbReceiptPrinter(backend.VENDOR_ID, backend.PRODUCT_ID, timeout=0.5, backend=backend)
    return backend, printer


def test_slip_travels_over_usb_as_one_job(rig):
    backend, printer = rig
    printer.print_document([Text("王*明  急诊内科", size=2), QrCode("V20261123-0002")])
    job = backend.wait_for_job(2)
    assert "王*明  急诊内科" in printed_text(job) and decode_qr_codes(job) == ["V20261123-0002"]


@pytest.mark.parametrize("switch, status, reason", [
    (None, Status.OK, ""),
    ("paper_near_end", Status.DEGRADED, "paper_low"),
    ("paper_out", Status.FAULT, "paper_out"),
    ("cover_open", Status.FAULT, "cover_open"),
])
def test_status_over_usb(rig, switch, status, reason):
    backend, printer = rig
    if switch:
        setattr(backend, switch, True)
    health = printer.health()
    assert (health.status, health.reason) == (status, reason)
    assert not backend.jobs


def test_unplugged_is_disconnected_and_replugged_prints_again(rig):
    backend, printer = rig
    backend.unplug()
    assert printer.health().reason == "disconnected"
    with pytest.raises(PrinterError, match="USB"):
        printer.print_document([Text("lost")])
    backend.plug()
    assert printer.health().status is Status.OK
    printer.print_document([Text("back")])
    assert "back" in printed_text(backend.wait_for_job(2))


def test_a_printer_that_never_answers_status_is_a_fault(rig):
    backend, printer = rig
    backend._status_answers = lambda chunk: b""  # type: ignore[method-assign]
    assert printer.health().reason == "no_answer"
