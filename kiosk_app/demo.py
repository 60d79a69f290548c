"""The headless demo: a real central server, simulated devices, the real kiosk window rendered offscreen,
and one complete same-day registration clicked through like a patient would. Every screen is saved as a
PNG, the printed slip as raw ESC/POS bytes and as a picture. Exit status 0 only if the visit completed and
the slip's QR code carries the visit code the HIS issued."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from kiosk_app.config import KioskConfig
from kiosk_app.pin import SIMULATED_TECHNICIAN_PIN, hash_pin
from kiosk_app.local_central import LocalCentral
from kiosk_app.phone import qr_on_screen
from kiosk_app.scripted import ScriptError, click_button, click_tile, visible_tiles, wait_for_screen, wait_until
from kiosk_app.simulated import SimulatedDevices, card_for


def run_demo(out: Path, keep_work: bool = False) -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from central.his.seed import DEMO_PATIENT
    from drivers.receipt.render import decode_qr_codes, render_receipt
    from kiosk_app.app import Kiosk

    from PySide6.QtCore import qInstallMessageHandler

    def qt_messages(_kind, _context, message: str) -> None:
        if "propagateSizeHints" not in message:  # the offscreen platform's note on every window resize
            print(f"qt: {message}")

    qInstallMessageHandler(qt_messages)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="kiosk-demo-"))
    app = QApplication.instance() or QApplication([])
    central = sims = kiosk = None
    shots: list[str] = []

    def shot(screen: str) -> None:
        wait_for_screen(app, kiosk.window, screen)
        name = f"{len(shots) + 1:02d}-{screen}.png"
        kiosk.window.grab().save(str(out / name))
        shots.append(name)
        print(f"  screen {name}")

    try:
        print("starting kiosk-central (SQLite, reference HIS, WeChat Pay sandbox) ...")
        central = LocalCentral(work / "central").start()
        credentials = central.provision("KIOSK-DEMO")
        sims = SimulatedDevices(work / "devices")
        devices = sims.start()
        config = KioskConfig(credentials=credentials, data_dir=work / "kiosk", devices=devices, fullscreen=False,
                             technician_pin_hash=hash_pin(SIMULATED_TECHNICIAN_PIN))
        kiosk = Kiosk(config, app)
        kiosk.window.resize(1920, 1080)
        kiosk.start(show=True)

        print("walking one same-day registration ...")
        shot("home")
        click_tile(kiosk.window, "当日挂号")
        shot("insert_card")
        sims.id_card.insert(card_for(DEMO_PATIENT))
        shot("departments")
        names = [text for _tile, text in visible_tiles(kiosk.window)]
        click_tile(kiosk.window, next((t.split()[0] for t in names if "急诊" not in t), ""))
        shot("doctors")
        click_tile(kiosk.window)
        shot("slots")
        click_tile(kiosk.window)
        shot("confirm")
        click_button(kiosk.window, "确认挂号并支付")
        shot("payment")
        code_url = qr_on_screen(kiosk.window)
        if not code_url.startswith("weixin://"):
            raise ScriptError(f"the payment QR on screen could not be read (got {code_url!r})")
        print("  the phone scans the QR and pays in the WeChat Pay sandbox")
        central.pay_as_phone(code_url)
        wait_until(app, lambda: kiosk.window.view.screen in ("done", "error"), 60, "the registration result")
        if kiosk.window.view.screen == "error":
            shot("error")
            raise ScriptError(f"the visit failed: {kiosk.window.view.message}")
        shot("done")
        order = kiosk.window.view.data["order"]
        receipt = sims.printer.wait_for_job(15)
        (out / "receipt.bin").write_bytes(receipt)
        render_receipt(receipt).save(out / "receipt.png")
        printed = decode_qr_codes(receipt)
        visit_code = order["registration"]["visit_code"]
        if printed != [visit_code]:
            raise ScriptError(f"the slip's QR code reads {printed!r}, the HIS issued {visit_code!r}")
        click_button(kiosk.window, "返回首页")
        wait_for_screen(app, kiosk.window, "home")

        print("the receipt printer runs out of paper; a technician comes ...")
        sims.printer.paper_out = True
        wait_until(app, lambda: not kiosk.window.screens["home"].tiles["registration"].isEnabled(),
                   config.device_poll_seconds + 5, "same-day registration to switch off")
        shot("home")
        kiosk.send("diag_open")  # what five taps on the header send
        shot("diag_pin")
        kiosk.send("diag_pin", pin=SIMULATED_TECHNICIAN_PIN)
        shot("diag")
        kiosk.send("diag_self_test", role="camera")
        wait_until(app, lambda: kiosk.window.screens["diag"].image.isVisible(), 20, "the camera test")
        shot("diag")
        sims.printer.paper_out = False
        kiosk.send("diag_exit")
        wait_until(app, lambda: kiosk.window.screens["home"].tiles["registration"].isEnabled(),
                   config.device_poll_seconds + 5, "same-day registration to come back")
        summary = {"order_no": order["order_no"], "status": order["status"],
                   "queue_no": order["registration"]["queue_no"], "visit_code": visit_code,
                   "screens": shots, "receipt": ["receipt.bin", "receipt.png"]}
        (out / "visit.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2))
        print(f"visit completed: order {order['order_no']}, queue number {order['registration']['queue_no']}, "
              f"slip QR = visit code {visit_code}")
        print(f"screens and receipt written to {out}")
        return 0
    except (ScriptError, RuntimeError, TimeoutError) as exc:
        print(f"demo failed: {exc}")
        return 1
    finally:
        if kiosk:
            kiosk.stop()
        if sims:
            sims.stop()
        if central:
            central.stop()
        if not keep_work:
            shutil.rmtree(work, ignore_errors=True)
