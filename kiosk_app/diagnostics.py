"""Diagnostic mode: what the technician sees behind the hidden gesture and the PIN.

Every device with its health, a self-test per device that exercises it the way a patient would (print a
test slip, read a card, scan a code, look through the camera), and the tail of the kiosk's log. The
controller is plain Python publishing Views like a workflow does; the screens only draw them. Self-tests run
on each device's own thread, so a printer that hangs never freezes the screen.
"""
from __future__ import annotations

import logging
import time
from concurrent.futures import Future
from typing import Any, Callable

from drivers.device import DeviceWorker
from drivers.health import Health
from drivers.lazy_module import LazyModule
from kiosk_app.log_tail import LogTail
from kiosk_app.pin import PinGate
from workflows.view import View

cv2 = LazyModule("cv2")  # only the camera test draws with it; not worth 0.2 s before the first screen

log = logging.getLogger(__name__)

# Role → (Chinese, English) as the technician's manual names them, in the order they walk the terminal.
DEVICE_NAMES: dict[str, tuple[str, str]] = {
    "id_card": ("身份证读卡器", "ID-card reader"), "pcsc": ("社保卡/银行卡读卡器", "PC/SC card reader"),
    "scanner": ("扫码器", "QR / barcode scanner"), "camera": ("人脸摄像头", "Face camera"),
    "receipt_printer": ("凭条打印机", "Receipt printer"), "report_printer": ("报告打印机", "Report printer"),
    "pinpad": ("密码键盘", "PIN pad"),
}
IDLE_EXIT_SECONDS = 300.0  # a technician who walked away must not leave the glass in diagnostic mode
PIN_LENGTH = 6
CARD_WAIT_SECONDS = 5.0  # the technician taps Test, then inserts the card


def _camera_probe(camera: Any) -> dict[str, Any]:
    capture = camera.capture_best(3.0)
    frame = capture.frame.copy()
    box = capture.quality.face_box
    if box:
        x, y, w, h = box
        cv2.rectangle(frame, (x, y), (x + w, y + h), (0, 200, 0) if capture.ok else (0, 140, 255), 3)
    ok, png = cv2.imencode(".png", frame)
    lines = ["人脸质量合格 / face quality ok" if capture.ok else f"{capture.prompt}",
             f"frames {capture.frames_seen}, sharpness {capture.quality.sharpness:.0f}, "
             f"brightness {capture.quality.brightness:.0f}"]
    return {"lines": lines, "image": png.tobytes() if ok else None}


def _self_test_probe(device: Any) -> dict[str, Any]:
    health: Health = device.self_test()
    return {"lines": [_health_line(health)], "health": health}


def _card_probe(reader: Any) -> dict[str, Any]:
    """Read whatever card is in the PC/SC reader: a bank card first, else a social-security card."""
    from drivers.pcsc.errors import CardError

    health: Health = reader.self_test()
    if not health.usable:
        return {"lines": [_health_line(health)], "health": health}
    if not reader.wait_for_card(CARD_WAIT_SECONDS):
        return {"lines": [f"{CARD_WAIT_SECONDS:g} 秒内未插卡，请插入社保卡或银行卡后再试 / no card within "
                          f"{CARD_WAIT_SECONDS:g} s: insert a card and test again", _health_line(health)]}
    try:
        card = reader.read_bank_card()
    except CardError:
        try:
            card = reader.read_social_security_card()
        except CardError as exc:
            return {"lines": [f"读卡失败 / read failed: {exc}"]}
    shown = ", ".join(f"{k}={v}" for k, v in card.to_dict(masked=True).items())
    return {"lines": ["读卡成功 / card read", shown], "health": health}


# Probes that run on the device's thread and describe what they saw. Devices read by the patient (ID card,
# scanner) are probed by waiting for the patient's action instead: see `card_read` and `scanned`.
PROBES: dict[str, Callable[[Any], dict[str, Any]]] = {"camera": _camera_probe, "pcsc": _card_probe}
WAIT_FOR_PATIENT_ACTION = {
    "id_card": ("请在读卡器上放一张身份证…", "Lay an ID card on the reader…"),
    "scanner": ("请扫描一个二维码或条码…", "Scan a QR code or barcode…"),
}


def _health_line(health: Health) -> str:
    text = f"{health.status.value} {health.reason}".strip()
    return f"{text}  {health.detail}" if health.detail else text


class Diagnostics:
    def __init__(self, publish: Callable[[View], None], workers: dict[str, DeviceWorker],
                 health: dict[str, Health], gate: PinGate, log_tail: LogTail,
                 clock: Callable[[], float] = time.monotonic):
        self.publish = publish
        self.workers = workers
        self.health = health  # the kiosk's live dict: every device thread writes its latest report here
        self.gate = gate
        self.log_tail = log_tail
        self.clock = clock
        self.active = False  # the technician is in: device events go to diagnostics, not to a visit
        self.asking_pin = False
        self.waiting_for: str | None = None  # a role whose self-test waits for a card or a scan
        self.result: dict[str, Any] = {}
        self._last_touch = clock()

    # --- entering and leaving -----------------------------------------------------------------------

    def open(self) -> bool:
        """The hidden gesture was made: ask for the PIN (if diagnostics are enabled on this terminal)."""
        if not self.gate.enabled:
            log.info("diagnostic gesture ignored: no technician PIN is configured")
            return False
        self.asking_pin, self._last_touch = True, self.clock()
        self.publish(self._pin_view())
        return True

    def handle(self, intent: str, **kwargs: Any) -> None:
        self._last_touch = self.clock()
        if intent == "diag_pin" and self.asking_pin:
            self._check_pin(str(kwargs.get("pin", "")))
        elif intent == "diag_exit":
            self.close()
        elif not self.active:
            return
        elif intent == "diag_self_test":
            self.self_test(kwargs["role"])
        elif intent == "diag_refresh":
            self.publish(self.view())

    def close(self) -> None:
        if self.active:
            log.info("diagnostic mode closed")
        self.active = self.asking_pin = False
        self.waiting_for, self.result = None, {}

    def expired(self) -> bool:
        return (self.active or self.asking_pin) and self.clock() - self._last_touch > IDLE_EXIT_SECONDS

    def _check_pin(self, pin: str) -> None:
        if self.gate.check(pin):
            self.asking_pin, self.active = False, True
            log.info("diagnostic mode opened")
            self.publish(self.view())
            return
        locked = self.gate.locked_for()
        log.warning("wrong technician PIN%s", f"; locked for {locked:.0f} s" if locked else "")
        self.publish(self._pin_view(wrong=True))

    # --- self-tests ---------------------------------------------------------------------------------

    def self_test(self, role: str) -> None:
        if role in WAIT_FOR_PATIENT_ACTION:
            self.waiting_for = role
            zh, en = WAIT_FOR_PATIENT_ACTION[role]
            self.result = {"role": role, "lines": [zh, en], "running": True}
            self.publish(self.view())
            return
        worker = self.workers.get(role)
        if worker is None:
            self.result = {"role": role, "lines": ["该设备未配置 / this device is not configured"]}
            self.publish(self.view())
            return
        self.result = {"role": role, "lines": ["正在自检… / testing…"], "running": True}
        self.publish(self.view())
        probe = PROBES.get(role, _self_test_probe)
        worker.submit(probe).add_done_callback(lambda future: self._probe_done(role, future))

    def _probe_done(self, role: str, future: Future[dict[str, Any]]) -> None:
        """Runs on the device's thread; publishing is thread-safe (the bridge queues to the Qt thread)."""
        try:
            outcome = future.result()
        except Exception as exc:  # the failure is the finding; the technician reads it on the glass
            outcome = {"lines": [f"自检失败 / self-test failed: {exc}"]}
        if outcome.get("health") is not None:
            self.health[role] = outcome["health"]
        self.result = {"role": role, **outcome}
        if self.active:
            self.publish(self.view())

    def card_read(self, fields: dict[str, Any]) -> None:
        """A card arrived while diagnostics were open: show it (masked), never start a visit."""
        self.waiting_for = None
        shown = ", ".join(f"{k}={v}" for k, v in fields.items() if k not in ("photo",))
        self.result = {"role": "id_card", "lines": ["读卡成功 / card read", shown]}
        self.publish(self.view())

    def scanned(self, description: str) -> None:
        self.waiting_for = None
        self.result = {"role": "scanner", "lines": ["扫码成功 / scanned", description]}
        self.publish(self.view())

    # --- views --------------------------------------------------------------------------------------

    def view(self) -> View:
        roles = [r for r in DEVICE_NAMES if r in self.health or r in self.workers]
        roles += [r for r in self.health if r not in roles]
        devices = []
        for role in roles:
            health = self.health.get(role, Health.fault("not_started", "no report yet"))
            zh, en = DEVICE_NAMES.get(role, (role, role))
            devices.append({"role": role, "name": zh, "name_en": en, "status": health.status.value,
                            "reason": health.reason, "detail": health.detail})
        return View("diag", {"devices": devices, "result": self.result, "log": self.log_tail.tail(18)})

    def _pin_view(self, wrong: bool = False) -> View:
        locked = self.gate.locked_for()
        if locked:
            msg = (f"错误次数过多，请 {int(locked // 60) + 1} 分钟后再试", "Too many wrong PINs. Try again later.")
        elif wrong:
            msg = ("密码错误", "Wrong PIN")
        else:
            msg = ("", "")
        return View("diag_pin", {"length": PIN_LENGTH, "locked": bool(locked)}, message=msg[0],
                    message_en=msg[1])
