"""A USB HID keyboard-wedge scanner read directly with pyusb, so scans never land in a focused text field.

Left to the OS, a wedge scanner types into whatever window has focus; a kiosk wants the scan delivered to
the workflow instead, and wants to know when the scanner is unplugged. So the driver detaches the kernel's
keyboard driver from the interface, reads 8-byte boot-keyboard reports from the interrupt IN endpoint and
turns key presses into characters (US layout, Shift honoured); Enter ends a scan.

Self-test: a wedge scanner has no query command. `self_test` checks that the device enumerates and its
interrupt IN endpoint can be claimed; it cannot tell whether the optics work.
"""
from __future__ import annotations

import errno
import logging
import threading
import time
from typing import Any

import usb.core
import usb.util

from drivers.health import Health
from drivers.scanner.base import MAX_SCAN_LENGTH, ScanDecodeError, ScanLine, ScannerDisconnectedError, strip_aim
from drivers.scanner.hid_keymap import ENTER, KEYPAD_ENTER, TAB, char_for

log = logging.getLogger(__name__)

# libusb reports an unplugged device as NO_DEVICE (ENODEV); some hubs give EIO or EPIPE on the way out.
GONE_ERRNOS = frozenset({errno.ENODEV, errno.EIO, errno.ENOENT, errno.ESHUTDOWN})
READ_SLICE_MS = 100


class HidScanner:
    def __init__(self, vendor_id: int, product_id: int, *, backend: Any = None, interface: int = 0,
                 aim_prefix: bool = False, tab_ends_scan: bool = False) -> None:
        self.vendor_id = vendor_id
        self.product_id = product_id
        self.backend = backend  # None: pyusb picks libusb; tests pass drivers.scanner.fake_usb.FakeUsbBackend
        self.interface = interface
        self.aim_prefix = aim_prefix
        self.tab_ends_scan = tab_ends_scan
        self._dev: Any = None
        self._endpoint: Any = None
        self._pressed: frozenset[int] = frozenset()
        self._chars: list[str] = []
        self._lock = threading.RLock()

    @property
    def label(self) -> str:
        return f"{self.vendor_id:04x}:{self.product_id:04x}"

    # --- connection ------------------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._dev is not None

    def open(self) -> None:
        with self._lock:
            if self._dev is not None:
                return
            try:
                dev = usb.core.find(idVendor=self.vendor_id, idProduct=self.product_id, backend=self.backend)
            except (usb.core.USBError, usb.core.NoBackendError) as exc:
                raise ScannerDisconnectedError(f"扫码器无法连接 / cannot look for the USB scanner {self.label}: "
                                               f"{exc}") from exc
            if dev is None:
                raise ScannerDisconnectedError(f"未找到扫码器 / no USB scanner {self.label} is plugged in")
            try:
                if dev.is_kernel_driver_active(self.interface):
                    dev.detach_kernel_driver(self.interface)
                try:
                    cfg = dev.get_active_configuration()
                except usb.core.USBError:
                    dev.set_configuration()
                    cfg = dev.get_active_configuration()
                intf = cfg[(self.interface, 0)]
                endpoint = usb.util.find_descriptor(
                    intf, custom_match=lambda e: (
                        usb.util.endpoint_direction(e.bEndpointAddress) == usb.util.ENDPOINT_IN
                        and usb.util.endpoint_type(e.bmAttributes) == usb.util.ENDPOINT_TYPE_INTR))
                if endpoint is None:
                    raise ScannerDisconnectedError(f"扫码器接口异常 / USB device {self.label} has no interrupt "
                                                   f"IN endpoint on interface {self.interface}")
                usb.util.claim_interface(dev, self.interface)
            except usb.core.USBError as exc:
                usb.util.dispose_resources(dev)
                raise ScannerDisconnectedError(f"扫码器无法使用 / cannot claim USB scanner {self.label}: "
                                               f"{exc}") from exc
            except ScannerDisconnectedError:
                usb.util.dispose_resources(dev)
                raise
            self._dev, self._endpoint = dev, endpoint
            self._pressed, self._chars = frozenset(), []

    def close(self) -> None:
        with self._lock:
            dev, self._dev, self._endpoint = self._dev, None, None
            if dev is None:
                return
            try:
                usb.util.release_interface(dev, self.interface)
                dev.attach_kernel_driver(self.interface)  # hand the keyboard back, as we found it
            except (usb.core.USBError, NotImplementedError):
                pass
            usb.util.dispose_resources(dev)

    # --- health ----------------------------------------------------------------------------------------

    def health(self) -> Health:
        """Re-enumerates: an unplugged device is gone from the bus even when no read is in flight."""
        with self._lock:
            try:
                present = usb.core.find(idVendor=self.vendor_id, idProduct=self.product_id,
                                        backend=self.backend) is not None
            except (usb.core.USBError, usb.core.NoBackendError) as exc:
                return Health.fault("disconnected", f"无法枚举 USB 设备 / cannot enumerate USB devices: {exc}")
            if not present:
                self.close()
                return Health.fault("disconnected", f"未找到扫码器 / no USB scanner {self.label} is plugged in")
            try:
                self.open()
            except ScannerDisconnectedError as exc:
                return Health.fault("disconnected", str(exc))
            return Health.ok()

    def self_test(self) -> Health:
        return self.health()

    # --- scans -----------------------------------------------------------------------------------------

    def read_scan(self, timeout: float) -> ScanLine | None:
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                report = self._read_report(max(1, min(READ_SLICE_MS, int(remaining * 1000))))
                if report is None:
                    continue
                line = self._feed(report)
                if line is not None:
                    return line

    def _read_report(self, timeout_ms: int) -> bytes | None:
        if self._dev is None:
            raise ScannerDisconnectedError(f"扫码器未打开 / the USB scanner {self.label} is not open")
        try:
            data = self._dev.read(self._endpoint.bEndpointAddress, self._endpoint.wMaxPacketSize, timeout_ms)
        except usb.core.USBTimeoutError:
            return None
        except usb.core.USBError as exc:
            if exc.errno in GONE_ERRNOS:
                self.close()
                raise ScannerDisconnectedError(
                    f"扫码器已拔出 / the USB scanner {self.label} went away: {exc}") from exc
            raise ScanDecodeError(f"扫码器读取错误 / USB read error from {self.label}: {exc}") from exc
        return bytes(data)

    def _feed(self, report: bytes) -> ScanLine | None:
        """Key-down events are the codes in this report that were not down in the previous one."""
        if len(report) < 3:
            return None
        modifiers = report[0]
        down = frozenset(code for code in report[2:] if code > 3)  # 1-3: rollover/error, not keys
        if any(code == 1 for code in report[2:]):
            return None  # phantom state (too many keys): the report says nothing reliable
        new = [code for code in report[2:] if code in down - self._pressed]
        self._pressed = down
        for code in new:
            if code in (ENTER, KEYPAD_ENTER) or (code == TAB and self.tab_ends_scan):
                return self._finish()
            ch = char_for(code, modifiers)
            if ch is not None:
                self._chars.append(ch)
            if len(self._chars) > MAX_SCAN_LENGTH:
                self._chars = []
                raise ScanDecodeError(f"扫码内容过长 / over {MAX_SCAN_LENGTH} keys without Enter; discarded")
        return None

    def _finish(self) -> ScanLine | None:
        text, self._chars = "".join(self._chars), []
        if not text:
            return None
        symbology = None
        if self.aim_prefix:
            text, symbology = strip_aim(text)
        log.debug("scan: %d chars, symbology %s", len(text), symbology)
        return ScanLine(text, symbology)
