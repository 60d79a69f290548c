"""ESC/POS receipt printers on the network (raw TCP, port 9100), a serial line or USB, built on python-escpos.

The document is rendered to bytes first and sent in one go: a slip that cannot be rendered (a QR code too
wide for the paper) fails before any paper moves, and a line fault surfaces as one `PrinterError`. Health
comes from the printer itself (DLE EOT), the same four questions on either wire.
"""
from __future__ import annotations

import socket
import threading
from typing import TYPE_CHECKING, Any, Sequence

import serial
import usb.core
import usb.util

from drivers.health import Health
from drivers.lazy_module import LazyModule
from drivers.receipt.document import Block, Feed, QrCode, Rule, Text
from drivers.receipt.escpos_cache import import_with_cache
from drivers.receipt.status import QUERIES, health_from_status
from drivers.serial_line import PORT_ERRORS, SerialLine

if TYPE_CHECKING:
    from escpos.printer import Network, Usb

# python-escpos costs ~0.15 s to import, plus ~0.45 s for its printer database unless that is cached: the driver
# imports it when the printer is opened, on the printer's own thread, not when the kiosk imports its drivers.
escpos_printer = LazyModule("escpos.printer")
escpos_exceptions = LazyModule("escpos.exceptions")
_escpos_loading = threading.Lock()


def load_escpos() -> None:
    """Import python-escpos now, with its parsed printer database kept between runs (`escpos_cache`)."""
    if escpos_printer.loaded:
        return
    with _escpos_loading:
        if not escpos_printer.loaded:
            import_with_cache(escpos_printer.load)

# 80 mm paper, 72 mm printable at 203 dpi: 576 dots, 48 columns of font A (a CJK character takes two).
PROFILE_NAME = "TM-T20II"
PAPER_DOTS = 576
COLUMNS = 48

ESC, GS, FS = b"\x1b", b"\x1d", b"\x1c"
INIT = ESC + b"@"
CHINESE_ON = FS + b"&"
ALIGN = {"left": 0, "center": 1, "right": 2}
ENCODING = "gb18030"


DLE_EOT = b"\x10\x04"


class PrinterError(Exception):
    """The slip was not printed (or not completely): the workflow offers a reprint at the counter."""


def text_bytes(block: Text) -> bytes:
    if block.align not in ALIGN:
        raise ValueError(f"align must be one of {', '.join(ALIGN)}, got {block.align!r}")
    if block.size not in (1, 2):
        raise ValueError(f"size must be 1 or 2, got {block.size}")
    size = 0x11 if block.size == 2 else 0x00
    return (ESC + b"a" + bytes([ALIGN[block.align]]) + ESC + b"E" + bytes([1 if block.bold else 0])
            + GS + b"!" + bytes([size]) + block.text.encode(ENCODING, errors="replace") + b"\n")


def render_document(blocks: Sequence[Block]) -> bytes:
    """The ESC/POS bytes for `blocks`, ending with a feed and a full cut."""
    load_escpos()
    out = escpos_printer.Dummy(profile=PROFILE_NAME)
    out._raw(INIT + CHINESE_ON)
    for block in blocks:
        if isinstance(block, Text):
            out._raw(text_bytes(block))
        elif isinstance(block, QrCode):
            out._raw(ESC + b"a\x01" + ESC + b"E\x00" + GS + b"!\x00")
            out.qr(block.data, size=max(1, min(16, block.size)), native=False, center=True,
                   image_arguments={"impl": "bitImageRaster"})
        elif isinstance(block, Rule):
            out._raw(ESC + b"a\x00" + ESC + b"E\x00" + GS + b"!\x00" + b"-" * COLUMNS + b"\n")
        elif isinstance(block, Feed):
            out._raw(ESC + b"d" + bytes([max(0, min(255, block.lines))]))
        else:
            raise TypeError(f"not a receipt block: {block!r}")
    out._raw(ESC + b"a\x00")
    out.cut()
    return out.output


class _EscposReceiptPrinter:
    """What every wire has in common: the self-test slip and the render-then-send print path."""

    address = ""

    def self_test(self) -> Health:
        health = self.health()
        if health.usable:
            self.print_document([Text("自助机凭条打印机自检 / receipt printer self-test", align="center", bold=True),
                                 Rule(), Text(f"{self.address}"), Feed(2)])
        return health

    def health(self) -> Health:
        raise NotImplementedError

    def print_document(self, blocks: Sequence[Block]) -> None:
        try:
            data = render_document(blocks)
        except (escpos_exceptions.Error, ValueError, TypeError) as exc:
            raise PrinterError(f"凭条无法排版 / the receipt cannot be laid out: {exc}") from exc
        self._send(data)

    def _send(self, data: bytes) -> None:
        raise NotImplementedError


class NetworkReceiptPrinter(_EscposReceiptPrinter):
    def __init__(self, host: str, port: int = 9100, timeout: float = 5.0) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout

    @property
    def address(self) -> str:  # type: ignore[override]
        return f"{self.host}:{self.port}"

    def open(self) -> None:
        """Nothing to hold open: a raw port-9100 printer takes one connection as one job, so each slip gets
        its own connection and a printer that was switched off and on needs no reconnect. python-escpos is
        imported here, on the printer's thread, so the first slip does not wait for it."""
        load_escpos()

    def close(self) -> None:
        pass

    def health(self) -> Health:
        """Ask the printer itself (DLE EOT 1–4) for paper, cover and cutter state, on a short connection of
        its own so it never interleaves with a job."""
        answers: dict[int, int] = {}
        try:
            with socket.create_connection((self.host, self.port), timeout=self.timeout) as conn:
                conn.settimeout(min(self.timeout, 2.0))
                for n in QUERIES:
                    conn.sendall(DLE_EOT + bytes([n]))
                    reply = conn.recv(1)
                    if not reply:
                        return Health.fault("disconnected", f"receipt printer {self.address} closed the line")
                    answers[n] = reply[0]
        except socket.timeout:
            return Health.degraded("no_status", f"receipt printer {self.address} does not answer status queries")
        except OSError as exc:
            return Health.fault("disconnected", f"receipt printer {self.address} is unreachable: {exc}")
        return health_from_status(answers)

    def _send(self, data: bytes) -> None:
        printer = self._connect()
        try:
            printer._raw(data)
        except socket.timeout as exc:
            raise PrinterError(f"打印超时 / receipt printer {self.address} timed out mid-job") from exc
        except OSError as exc:
            raise PrinterError(f"打印中断 / receipt printer {self.address} closed the connection mid-job: "
                               f"{exc}") from exc
        finally:
            try:
                printer.close()
            except OSError:
                pass

    def _connect(self) -> Network:
        load_escpos()
        printer = escpos_printer.Network(self.host, self.port, timeout=self.timeout, profile=PROFILE_NAME)
        try:
            printer.open()
        except escpos_exceptions.Error as exc:
            cause = exc.__cause__ or exc.__context__ or exc
            raise PrinterError(f"打印机无法连接 / cannot connect to the receipt printer {self.address}: "
                               f"{cause}") from exc
        except OSError as exc:
            raise PrinterError(f"打印机无法连接 / cannot connect to the receipt printer {self.address}: "
                               f"{exc}") from exc
        return printer


class SerialReceiptPrinter(_EscposReceiptPrinter, SerialLine):
    """A printer on RS-232 or a USB-serial adapter. The port stays open; the device worker keeps status
    queries and jobs from interleaving on it."""

    def __init__(self, port: str, baudrate: int = 19200, timeout: float = 2.0) -> None:
        self.port = port
        self.baudrate = baudrate
        self.timeout = timeout
        self._serial: serial.Serial | None = None
        self._lock = threading.RLock()

    @property
    def address(self) -> str:  # type: ignore[override]
        return self.port

    def open(self) -> None:
        """The port, and python-escpos for the slips (on the printer's thread, before the first slip)."""
        load_escpos()
        SerialLine.open(self)

    def _port_settings(self) -> dict[str, Any]:
        return {"timeout": self.timeout, "write_timeout": self.timeout}

    def _open_error(self, exc: BaseException) -> Exception:
        return PrinterError(f"打印机无法连接 / cannot open the receipt printer on {self.port}: {exc}")

    def health(self) -> Health:
        """A serial printer always answers DLE EOT, so silence is a printer switched off, not a quirk."""
        answers: dict[int, int] = {}
        try:
            self.open()
            assert self._serial is not None
            self._serial.reset_input_buffer()
            for n in QUERIES:
                self._serial.write(DLE_EOT + bytes([n]))
                reply = self._serial.read(1)
                if not reply:
                    return Health.fault("no_answer", f"receipt printer on {self.port} does not answer")
                answers[n] = reply[0]
        except PrinterError as exc:
            return Health.fault("disconnected", str(exc))
        except PORT_ERRORS as exc:
            self.close()
            return Health.fault("disconnected", f"receipt printer on {self.port} went away: {exc}")
        return health_from_status(answers)

    def _send(self, data: bytes) -> None:
        self.open()
        assert self._serial is not None
        try:
            self._serial.write(data)
            self._serial.flush()
        except serial.SerialTimeoutException as exc:
            raise PrinterError(f"打印超时 / receipt printer on {self.port} stopped taking data") from exc
        except PORT_ERRORS as exc:
            self.close()
            raise PrinterError(f"打印中断 / receipt printer on {self.port} went away mid-job: {exc}") from exc


class UsbReceiptPrinter(_EscposReceiptPrinter):
    """A printer on USB through python-escpos's `Usb` (pyusb). Each job and each status check claims the
    device and releases it, so a printer unplugged and plugged back is simply found again."""

    def __init__(self, vendor_id: int, product_id: int, timeout: float = 5.0, in_ep: int = 0x82,
                 out_ep: int = 0x01, backend: Any = None) -> None:
        self.vendor_id, self.product_id = vendor_id, product_id
        self.timeout = timeout
        self.in_ep, self.out_ep = in_ep, out_ep
        self.backend = backend  # None: libusb; tests pass the simulator's backend

    @property
    def address(self) -> str:  # type: ignore[override]
        return f"usb {self.vendor_id:04x}:{self.product_id:04x}"

    def open(self) -> None:
        """Nothing to claim between jobs; python-escpos is imported here, on the printer's thread."""
        load_escpos()

    def close(self) -> None:
        pass

    def health(self) -> Health:
        answers: dict[int, int] = {}
        try:
            printer = self._claim()
        except PrinterError as exc:
            return Health.fault("disconnected", str(exc))
        try:
            for n in QUERIES:
                printer._raw(DLE_EOT + bytes([n]))
                reply = bytes(printer.device.read(self.in_ep, 1, int(self.timeout * 1000)))
                if not reply:
                    return Health.fault("no_answer", f"receipt printer {self.address} does not answer")
                answers[n] = reply[0]
        except usb.core.USBTimeoutError:
            return Health.fault("no_answer", f"receipt printer {self.address} does not answer")
        except usb.core.USBError as exc:
            return Health.fault("disconnected", f"receipt printer {self.address} went away: {exc}")
        finally:
            _release(printer)
        return health_from_status(answers)

    def _send(self, data: bytes) -> None:
        printer = self._claim()
        try:
            printer._raw(data)
        except usb.core.USBTimeoutError as exc:
            raise PrinterError(f"打印超时 / receipt printer {self.address} stopped taking data") from exc
        except usb.core.USBError as exc:
            raise PrinterError(f"打印中断 / receipt printer {self.address} went away mid-job: {exc}") from exc
        finally:
            _release(printer)

    def _claim(self) -> Usb:
        usb_args = {"backend": self.backend} if self.backend is not None else {}
        load_escpos()
        printer = escpos_printer.Usb(self.vendor_id, self.product_id, usb_args=usb_args,
                                     timeout=int(self.timeout * 1000), in_ep=self.in_ep, out_ep=self.out_ep,
                                     profile=PROFILE_NAME)
        try:
            printer.open()
        except escpos_exceptions.Error as exc:
            raise PrinterError(f"打印机未连接 / receipt printer {self.address} is not on the USB bus: "
                               f"{exc}") from exc
        return printer


def _release(printer: Usb) -> None:
    try:
        usb.util.dispose_resources(printer.device)
    except (usb.core.USBError, AttributeError):
        pass
