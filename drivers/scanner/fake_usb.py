"""A pyusb backend with one fake keyboard-wedge scanner on it: the HID driver's simulator.

CI and a developer's laptop have no USB bus to plug a scanner into, so the fake sits where libusb would:
under `usb.core`. The driver's own pyusb calls (find, detach kernel driver, claim, interrupt read) all run
unchanged against it. `type_text` queues the reports a real scanner would send; `unplug` makes every call
fail with ENODEV as libusb does, and the device leaves the enumeration until `plug`.
"""
from __future__ import annotations

import array
import errno
import threading
from collections import deque
from types import SimpleNamespace
from typing import Any

import usb.backend
import usb.core

from drivers.scanner.hid_keymap import REPORT_LENGTH, reports_for

# Not a real vendor: 0x1209 is pid.codes' open-source VID and 0x0001 its test PID, so nothing real matches.
FAKE_VENDOR_ID = 0x1209
FAKE_PRODUCT_ID = 0x0001
ENDPOINT_IN = 0x81
LIBUSB_ERROR_NO_DEVICE, LIBUSB_ERROR_TIMEOUT = -4, -7


def _descriptor(**fields: Any) -> SimpleNamespace:
    return SimpleNamespace(extra_descriptors=b"", **fields)


class FakeUsbBackend(usb.backend.IBackend):
    def __init__(self, vendor_id: int = FAKE_VENDOR_ID, product_id: int = FAKE_PRODUCT_ID) -> None:
        super().__init__()
        self.vendor_id, self.product_id = vendor_id, product_id
        self.plugged = True
        self.kernel_driver_active = True  # the OS bound its keyboard driver at plug-in
        self.claimed: set[int] = set()
        self.open_handles = 0
        self._reports: deque[bytes] = deque()
        self._cond = threading.Condition()

    # --- the patient's side ----------------------------------------------------------------------------

    def type_text(self, text: str, enter: bool = True) -> None:
        self.send_reports(reports_for(text, enter))

    def send_reports(self, reports: list[bytes]) -> None:
        with self._cond:
            self._reports.extend(reports)
            self._cond.notify_all()

    def unplug(self) -> None:
        with self._cond:
            self.plugged = False
            self._reports.clear()
            self.claimed.clear()
            self._cond.notify_all()

    def plug(self) -> None:
        with self._cond:
            self.plugged = True
            self.kernel_driver_active = True
            self._cond.notify_all()

    # --- IBackend --------------------------------------------------------------------------------------

    def _check(self) -> None:
        if not self.plugged:
            raise usb.core.USBError("No such device (it may have been disconnected)", LIBUSB_ERROR_NO_DEVICE,
                                    errno.ENODEV)

    def enumerate_devices(self):  # type: ignore[no-untyped-def]
        return ["scanner"] if self.plugged else []

    def get_parent(self, dev: Any) -> None:
        return None

    def get_device_descriptor(self, dev: Any) -> SimpleNamespace:
        return _descriptor(bLength=18, bDescriptorType=1, bcdUSB=0x0200, bDeviceClass=0, bDeviceSubClass=0,
                           bDeviceProtocol=0, bMaxPacketSize0=64, idVendor=self.vendor_id,
                           idProduct=self.product_id, bcdDevice=0x0100, iManufacturer=0, iProduct=0,
                           iSerialNumber=0, bNumConfigurations=1, address=7, bus=1, port_number=1,
                           port_numbers=(1,), speed=2)

    def get_configuration_descriptor(self, dev: Any, config: int) -> SimpleNamespace:
        if config != 0:
            raise IndexError(config)
        return _descriptor(bLength=9, bDescriptorType=2, wTotalLength=34, bNumInterfaces=1,
                           bConfigurationValue=1, iConfiguration=0, bmAttributes=0xA0, bMaxPower=50)

    def get_interface_descriptor(self, dev: Any, intf: int, alt: int, config: int) -> SimpleNamespace:
        if intf != 0 or alt != 0 or config != 0:
            raise IndexError((intf, alt, config))
        # HID class, boot subclass, keyboard protocol: what a wedge scanner reports itself as.
        return _descriptor(bLength=9, bDescriptorType=4, bInterfaceNumber=0, bAlternateSetting=0,
                           bNumEndpoints=1, bInterfaceClass=3, bInterfaceSubClass=1, bInterfaceProtocol=1,
                           iInterface=0)

    def get_endpoint_descriptor(self, dev: Any, ep: int, intf: int, alt: int, config: int) -> SimpleNamespace:
        if ep != 0 or intf != 0 or alt != 0 or config != 0:
            raise IndexError((ep, intf, alt, config))
        return _descriptor(bLength=7, bDescriptorType=5, bEndpointAddress=ENDPOINT_IN, bmAttributes=0x03,
                           wMaxPacketSize=REPORT_LENGTH, bInterval=1, bRefresh=0, bSynchAddress=0)

    def open_device(self, dev: Any) -> str:
        self._check()
        self.open_handles += 1
        return "handle"

    def close_device(self, dev_handle: Any) -> None:
        self.open_handles -= 1

    def set_configuration(self, dev_handle: Any, config_value: int) -> None:
        self._check()

    def get_configuration(self, dev_handle: Any) -> int:
        self._check()
        return 1

    def claim_interface(self, dev_handle: Any, intf: int) -> None:
        self._check()
        if self.kernel_driver_active:
            raise usb.core.USBError("Resource busy", -6, errno.EBUSY)
        self.claimed.add(intf)

    def release_interface(self, dev_handle: Any, intf: int) -> None:
        self._check()
        self.claimed.discard(intf)

    def is_kernel_driver_active(self, dev_handle: Any, intf: int) -> bool:
        self._check()
        return self.kernel_driver_active

    def detach_kernel_driver(self, dev_handle: Any, intf: int) -> None:
        self._check()
        self.kernel_driver_active = False

    def attach_kernel_driver(self, dev_handle: Any, intf: int) -> None:
        self._check()
        self.kernel_driver_active = True

    def intr_read(self, dev_handle: Any, ep: int, intf: int, buff: array.array, timeout: int) -> int:
        with self._cond:
            self._check()
            if intf not in self.claimed:
                raise usb.core.USBError("Interface not claimed", -6, errno.EBUSY)
            if not self._reports:
                self._cond.wait_for(lambda: bool(self._reports) or not self.plugged, (timeout or 1000) / 1000)
            self._check()
            if not self._reports:
                raise usb.core.USBTimeoutError("Operation timed out", LIBUSB_ERROR_TIMEOUT, errno.ETIMEDOUT)
            report = self._reports.popleft()
            n = min(len(report), len(buff))
            buff[:n] = array.array("B", report[:n])
            return n
