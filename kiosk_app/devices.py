"""Device selection by configuration: `[devices.<role>]` names a driver and its parameters.

An unknown driver name or a missing parameter is a configuration error reported at start-up, not a crash
in the middle of a visit.

Each factory imports its driver module itself: the kiosk imports only the drivers its configuration names (a
terminal without a PC/SC reader never loads pyscard), and a driver library missing from the terminal is a
configuration error naming it. The heavy libraries behind the drivers (OpenCV, python-escpos, reportlab) are
imported later still, when the device is opened on its own thread (`drivers.lazy_module`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from drivers.camera.camera import FaceCamera
    from drivers.idcard.reader import SerialIdCardReader
    from drivers.pcsc.reader import PcscCardReader
    from drivers.pinpad.pad import SerialPinPad
    from drivers.receipt.printer import NetworkReceiptPrinter, SerialReceiptPrinter, UsbReceiptPrinter
    from drivers.report.printer import CupsReportPrinter
    from drivers.scanner.hid_scanner import HidScanner
    from drivers.scanner.serial_scanner import SerialScanner


class ConfigError(Exception):
    pass


def _serial_id_card(p: dict[str, Any]) -> SerialIdCardReader:
    from drivers.idcard.reader import SerialIdCardReader

    return SerialIdCardReader(p["port"], baudrate=int(p.get("baudrate", 115200)))


def _network_printer(p: dict[str, Any]) -> NetworkReceiptPrinter:
    from drivers.receipt.printer import NetworkReceiptPrinter

    return NetworkReceiptPrinter(p["host"], int(p.get("port", 9100)))


def _serial_printer(p: dict[str, Any]) -> SerialReceiptPrinter:
    from drivers.receipt.printer import SerialReceiptPrinter

    return SerialReceiptPrinter(p["port"], baudrate=int(p.get("baudrate", 19200)))


def _opencv_camera(p: dict[str, Any]) -> FaceCamera:
    from drivers.camera.camera import FaceCamera

    return FaceCamera(p["source"], loop=bool(p.get("loop", False)))


def _usb_printer(p: dict[str, Any]) -> UsbReceiptPrinter:
    from drivers.receipt.printer import UsbReceiptPrinter

    return UsbReceiptPrinter(int(str(p["vendor_id"]), 0), int(str(p["product_id"]), 0))


def _cups_report_printer(p: dict[str, Any]) -> CupsReportPrinter:
    from drivers.report.printer import CupsReportPrinter

    return CupsReportPrinter(p["queue"], server=p.get("server"), job_timeout=float(p.get("job_timeout", 120)))


def _serial_scanner(p: dict[str, Any]) -> SerialScanner:
    from drivers.scanner.serial_scanner import SerialScanner

    return SerialScanner(p["port"], baudrate=int(p.get("baudrate", 9600)), aim_prefix=bool(p.get("aim_prefix")))


def _hid_scanner(p: dict[str, Any]) -> HidScanner:
    from drivers.scanner.hid_scanner import HidScanner

    return HidScanner(int(str(p["vendor_id"]), 0), int(str(p["product_id"]), 0))


def _serial_pinpad(p: dict[str, Any]) -> SerialPinPad:
    from drivers.pinpad.pad import SerialPinPad

    return SerialPinPad(p["port"], baudrate=int(p.get("baudrate", 9600)), algorithm=p.get("algorithm", "sm4"))


def _pcsc_reader(p: dict[str, Any]) -> PcscCardReader:
    from drivers.pcsc.reader import PcscCardReader

    return PcscCardReader(p.get("reader", ""))


FACTORIES: dict[str, dict[str, Callable[[dict[str, Any]], Any]]] = {
    "id_card": {"serial": _serial_id_card},
    "pcsc": {"pcsc": _pcsc_reader},
    "scanner": {"serial": _serial_scanner, "hid": _hid_scanner},
    "camera": {"opencv": _opencv_camera},
    "report_printer": {"cups": _cups_report_printer},
    "receipt_printer": {"network": _network_printer, "serial": _serial_printer, "usb": _usb_printer},
    "pinpad": {"serial": _serial_pinpad},
}


def make_device(role: str, devices: dict[str, dict[str, Any]]) -> Any:
    params = devices.get(role)
    if params is None:
        raise ConfigError(f"no [devices.{role}] section in the terminal configuration")
    driver = params.get("driver", "")
    factory = FACTORIES.get(role, {}).get(driver)
    if factory is None:
        known = ", ".join(FACTORIES.get(role, {})) or "none"
        raise ConfigError(f"[devices.{role}] driver {driver!r} is unknown (known: {known})")
    try:
        return factory(params)
    except KeyError as exc:
        raise ConfigError(f"[devices.{role}] is missing {exc.args[0]!r}") from exc
    except ModuleNotFoundError as exc:
        raise ConfigError(f"[devices.{role}] driver {driver!r} needs the Python package {exc.name!r}, "
                          "which is not installed on this terminal") from exc
