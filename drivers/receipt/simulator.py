"""Receipt printers that keep what they were sent, so tests can read the slip back: one on 127.0.0.1 TCP
(each connection is one job, as on a raw port-9100 printer) and one on the device end of a serial pty pair
(a job ends when the line goes quiet, as a serial printer simply prints what arrives), and one at the pyusb
backend layer for the USB printer driver.

DLE EOT status queries get the answer an Epson-compatible printer gives for its current state: paper near
end, paper out, cover open, cutter jammed, or `garbage` (a byte no real printer sends, for tests of the
driver's error handling).
"""
from __future__ import annotations

import array
import errno
import os
import socket
import threading
import time
from types import SimpleNamespace

import serial
import usb.backend
import usb.core

from drivers.serial_line import PORT_ERRORS, SerialSimulator

DLE_EOT = b"\x10\x04"

FIXED_BITS = 0x12  # every DLE EOT answer has bits 1 and 4 set and bits 0 and 7 clear


class PrinterModel:
    """The printer's side whatever the wire: its switches, its status answers and the jobs it printed."""

    def __init__(self) -> None:
        self.paper_out = False
        self.paper_near_end = False
        self.cover_open = False
        self.cutter_jammed = False
        self.garbage: int | None = None  # answer every query with this byte instead
        self.jobs: list[bytes] = []
        self._handed_out = 0
        self._cond = threading.Condition()

    def wait_for_job(self, timeout: float) -> bytes:
        """The next job not yet returned by this method, waiting up to `timeout` seconds for it."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.jobs) > self._handed_out, timeout=timeout):
                raise TimeoutError(f"no print job arrived within {timeout} s")
            job = self.jobs[self._handed_out]
            self._handed_out += 1
            return job

    def status_byte(self, n: int) -> int:
        """The answer to DLE EOT n, built bit by bit as in the ESC/POS reference."""
        if self.garbage is not None:
            return self.garbage
        b = FIXED_BITS
        if n == 1 and (self.paper_out or self.cover_open or self.cutter_jammed):
            b |= 0x08  # offline
        elif n == 2:
            b |= (0x04 if self.cover_open else 0) | (0x20 if self.paper_out else 0) \
                | (0x40 if self.cutter_jammed else 0)
        elif n == 3 and self.cutter_jammed:
            b |= 0x08  # autocutter error
        elif n == 4:
            b |= (0x0C if self.paper_near_end or self.paper_out else 0) | (0x60 if self.paper_out else 0)
        return b

    def _status_answers(self, chunk: bytes) -> bytes:
        """Answer the queries at the end of a chunk: a host waiting for a status sends the query last.

        Raster data can contain 10 04 by chance; only a trailing run of queries is taken as real.
        """
        answers = []
        end = len(chunk)
        while end >= 3 and chunk[end - 3:end - 1] == DLE_EOT and 1 <= chunk[end - 1] <= 4:
            answers.append(self.status_byte(chunk[end - 1]))
            end -= 3
        return bytes(reversed(answers))

    def _record(self, job: bytes) -> None:
        if job and not only_status_queries(job):
            with self._cond:
                self.jobs.append(job)
                self._cond.notify_all()


class PrinterListener(PrinterModel):
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__()
        self.host = host
        self._requested_port = port
        self.port = 0
        self._server: socket.socket | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        # Jobs are kept in the order their connections were accepted, as a port-9100 printer prints them: a
        # short second job must not overtake a first one whose connection is still being read.
        self._next_seq = 0
        self._in_flight: set[int] = set()
        self._finished: dict[int, bytes] = {}

    def start(self) -> None:
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((self.host, self._requested_port))
        server.listen(8)
        server.settimeout(0.1)
        self._server = server
        self.port = server.getsockname()[1]
        self._stop.clear()
        self._spawn(self._accept_loop, "printer-listener")

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()
        if self._server is not None:
            self._server.close()
            self._server = None

    def __enter__(self) -> "PrinterListener":
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _spawn(self, target, name: str, *args: object) -> None:  # type: ignore[no-untyped-def]
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        assert self._server is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._cond:
                seq = self._next_seq
                self._next_seq += 1
                self._in_flight.add(seq)
            self._spawn(self._serve, "printer-job", conn, seq)

    def _serve(self, conn: socket.socket, seq: int) -> None:
        job = bytearray()
        conn.settimeout(0.1)
        with conn:
            while not self._stop.is_set():
                try:
                    chunk = conn.recv(65536)
                except socket.timeout:
                    continue
                except OSError:
                    break
                if not chunk:
                    break
                job += chunk
                answers = self._status_answers(chunk)
                if answers:
                    try:
                        conn.sendall(answers)
                    except OSError:
                        break
        self._finish(seq, bytes(job))

    def _finish(self, seq: int, job: bytes) -> None:
        """Release finished jobs in accept order, each once no earlier connection is still open."""
        with self._cond:
            self._in_flight.discard(seq)
            if job and not only_status_queries(job):
                self._finished[seq] = job
            for done in sorted(self._finished):
                if any(open_seq < done for open_seq in self._in_flight):
                    break
                self.jobs.append(self._finished.pop(done))
            self._cond.notify_all()


def only_status_queries(data: bytes) -> bool:
    return len(data) % 3 == 0 and all(data[i:i + 2] == DLE_EOT for i in range(0, len(data), 3))


class SerialPrinterSimulator(PrinterModel, SerialSimulator):
    """The printer on the device end of a pty pair. `stop()` is the printer switched off: it stops
    answering, as a powered-down printer does, while the host's port stays open."""

    THREAD_NAME = "serial-printer"
    JOB_GAP = 0.2  # seconds of quiet that end a job

    def __init__(self, port: str | os.PathLike[str], baudrate: int = 19200) -> None:
        super().__init__()
        self.port = str(port)
        self.baudrate = baudrate
        self._serial: serial.Serial | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _serve(self) -> None:
        line = self._serial
        assert line is not None
        job = bytearray()
        last = time.monotonic()
        while not self._stop.is_set():
            try:
                chunk = line.read(4096)
            except PORT_ERRORS:
                break
            now = time.monotonic()
            if chunk:
                job += chunk
                last = now
                answers = self._status_answers(chunk)
                if answers:
                    line.write(answers)
                    if only_status_queries(bytes(job)):
                        job.clear()
            elif job and now - last > self.JOB_GAP:
                self._record(bytes(job))
                job.clear()
        self._record(bytes(job))


def _descriptor(**fields: object) -> SimpleNamespace:
    return SimpleNamespace(extra_descriptors=b"", **fields)


class UsbPrinterBackend(PrinterModel, usb.backend.IBackend):
    """A pyusb backend with one ESC/POS printer on it (USB printer class, bulk OUT 0x01 and bulk IN 0x82).

    No USB bus can be emulated on a build machine, so the fake sits where libusb would: the driver and
    python-escpos make their own pyusb calls unchanged. A job is what was written between claiming the
    interface and releasing it; `unplug` fails every call with ENODEV, as libusb does.
    """

    VENDOR_ID, PRODUCT_ID = 0x1209, 0x0002  # pid.codes test IDs: nothing real matches them
    OUT_EP, IN_EP = 0x01, 0x82

    def __init__(self) -> None:
        PrinterModel.__init__(self)
        usb.backend.IBackend.__init__(self)
        self.plugged = True
        self._job = bytearray()
        self._replies = bytearray()

    def unplug(self) -> None:
        self.plugged = False

    def plug(self) -> None:
        self.plugged = True

    def _check(self) -> None:
        if not self.plugged:
            raise usb.core.USBError("No such device (it may have been disconnected)", -4, errno.ENODEV)

    def enumerate_devices(self):  # type: ignore[no-untyped-def]
        return ["printer"] if self.plugged else []

    def get_parent(self, dev: object) -> None:
        return None

    def get_device_descriptor(self, dev: object) -> SimpleNamespace:
        return _descriptor(bLength=18, bDescriptorType=1, bcdUSB=0x0200, bDeviceClass=0, bDeviceSubClass=0,
                           bDeviceProtocol=0, bMaxPacketSize0=64, idVendor=self.VENDOR_ID,
                           idProduct=self.PRODUCT_ID, bcdDevice=0x0100, iManufacturer=0, iProduct=0,
                           iSerialNumber=0, bNumConfigurations=1, address=8, bus=1, port_number=2,
                           port_numbers=(2,), speed=2)

    def get_configuration_descriptor(self, dev: object, config: int) -> SimpleNamespace:
        if config != 0:
            raise IndexError(config)
        return _descriptor(bLength=9, bDescriptorType=2, wTotalLength=32, bNumInterfaces=1,
                           bConfigurationValue=1, iConfiguration=0, bmAttributes=0xC0, bMaxPower=1)

    def get_interface_descriptor(self, dev: object, intf: int, alt: int, config: int) -> SimpleNamespace:
        if (intf, alt, config) != (0, 0, 0):
            raise IndexError((intf, alt, config))
        return _descriptor(bLength=9, bDescriptorType=4, bInterfaceNumber=0, bAlternateSetting=0,
                           bNumEndpoints=2, bInterfaceClass=7, bInterfaceSubClass=1, bInterfaceProtocol=2,
                           iInterface=0)

    def get_endpoint_descriptor(self, dev: object, ep: int, intf: int, alt: int, config: int) -> SimpleNamespace:
        if ep not in (0, 1) or (intf, alt, config) != (0, 0, 0):
            raise IndexError((ep, intf, alt, config))
        return _descriptor(bLength=7, bDescriptorType=5, bEndpointAddress=(self.OUT_EP, self.IN_EP)[ep],
                           bmAttributes=0x02, wMaxPacketSize=64, bInterval=0, bRefresh=0, bSynchAddress=0)

    def open_device(self, dev: object) -> str:
        self._check()
        return "handle"

    def close_device(self, dev_handle: object) -> None:
        pass

    def set_configuration(self, dev_handle: object, config_value: int) -> None:
        self._check()

    def get_configuration(self, dev_handle: object) -> int:
        self._check()
        return 1

    def reset_device(self, dev_handle: object) -> None:
        self._check()

    def claim_interface(self, dev_handle: object, intf: int) -> None:
        self._check()
        self._job.clear()

    def release_interface(self, dev_handle: object, intf: int) -> None:
        job, self._job = bytes(self._job), bytearray()
        self._record(job)

    def is_kernel_driver_active(self, dev_handle: object, intf: int) -> bool:
        self._check()
        return False

    def detach_kernel_driver(self, dev_handle: object, intf: int) -> None:
        self._check()

    def bulk_write(self, dev_handle: object, ep: int, intf: int, data: array.array, timeout: int) -> int:
        self._check()
        chunk = bytes(data)
        self._job += chunk
        self._replies += self._status_answers(chunk)
        return len(chunk)

    def bulk_read(self, dev_handle: object, ep: int, intf: int, buff: array.array, timeout: int) -> int:
        self._check()
        if not self._replies:
            raise usb.core.USBTimeoutError("Operation timed out", -7, errno.ETIMEDOUT)
        n = min(len(buff), len(self._replies))
        buff[:n] = array.array("B", self._replies[:n])
        del self._replies[:n]
        return n
