"""`kiosk`: the terminal application.

    kiosk run --config kiosk.toml            the terminal, fullscreen, on its configured devices
    kiosk run --simulated [--windowed]       on simulated devices, against a local kiosk-central
    kiosk demo --headless --out DIR          one scripted visit, screens and receipt written to DIR
    kiosk diag --config kiosk.toml           one line per device: NAME STATUS REASON; exit 1 on a fault
    kiosk diag --simulated [--inject R=F]    the same against the simulators (optionally one put in fault)
    kiosk diag id-card --port PORT           read one ID card and print its fields as JSON (masked)
    kiosk pin-hash                           hash a technician PIN for `technician_pin_hash` in kiosk.toml
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kiosk", description="Hospital self-service kiosk")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the terminal")
    run.add_argument("--config", type=Path, help="terminal configuration (TOML)")
    run.add_argument("--simulated", action="store_true",
                     help="start simulated devices and a simulator panel (no hardware needed)")
    run.add_argument("--windowed", action="store_true", help="a window instead of fullscreen")
    run.add_argument("--credentials", type=Path, default=Path("var/kiosk/credentials.json"),
                     help="with --simulated and no --config: credentials from kiosk-central provision-terminal")
    demo = sub.add_parser("demo", help="walk one scripted visit and save every screen")
    demo.add_argument("--headless", action="store_true", help="render offscreen (no display needed)")
    demo.add_argument("--out", type=Path, default=Path("out/demo"), help="where screens and receipt go")
    diag = sub.add_parser("diag", help="check every device, or read one card")
    diag.add_argument("device", nargs="?", choices=["id-card"], help="read one card from this device")
    diag.add_argument("--config", type=Path, help="terminal configuration (TOML)")
    diag.add_argument("--simulated", action="store_true", help="start the device simulators and check those")
    diag.add_argument("--inject", action="append", default=[], metavar="ROLE=FAULT",
                      help="with --simulated: put a simulator into a fault first, e.g. receipt_printer=paper_out")
    diag.add_argument("--verbose", "-v", action="store_true", help="add each device's own words to its line")
    diag.add_argument("--port", help="id-card: the serial port of the reader")
    diag.add_argument("--timeout", type=float, default=15.0, help="id-card: seconds to wait for a card")
    diag.add_argument("--unmasked", action="store_true",
                      help="id-card: print name and number in full (for the technician only; never in a ticket)")
    sub.add_parser("pin-hash", help="read a technician PIN from stdin and print its hash for kiosk.toml")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for chatty in ("transitions", "httpx"):  # one line per HTTP call or callback drowns the story
        logging.getLogger(chatty).setLevel(logging.WARNING)
    from kiosk_app.log_tail import not_library_chatter
    for handler in logging.getLogger().handlers:
        handler.addFilter(not_library_chatter)
        if args.command == "demo":  # the demo tells its own story on the console; the log still fills the tail
            handler.setLevel(logging.WARNING)

    if args.command == "diag":
        return _diag(args)
    if args.command == "pin-hash":
        return _pin_hash()
    if args.command == "demo":
        if args.headless:
            os.environ["QT_QPA_PLATFORM"] = "offscreen"
        from kiosk_app.demo import run_demo
        return run_demo(args.out)
    return _run(args)


def _run(args: argparse.Namespace) -> int:
    from PySide6.QtWidgets import QApplication

    from kiosk_app.app import Kiosk
    from kiosk_app.config import Credentials, KioskConfig

    if args.config:
        config = KioskConfig.load(args.config)
    elif args.simulated:
        config = KioskConfig(credentials=Credentials.load(args.credentials), data_dir=Path("var/kiosk"))
    else:
        print("kiosk run: give --config FILE, or --simulated", file=sys.stderr)
        return 2
    if args.windowed:
        config.fullscreen = False
    if args.simulated and not config.technician_pin_hash:
        from kiosk_app.pin import SIMULATED_TECHNICIAN_PIN, hash_pin
        config.technician_pin_hash = hash_pin(SIMULATED_TECHNICIAN_PIN)
        logging.getLogger(__name__).info("simulated terminal: technician PIN %s (five taps on the header)",
                                         SIMULATED_TECHNICIAN_PIN)
    app = QApplication(sys.argv[:1])
    sims = None
    if args.simulated:
        from kiosk_app.simulated import SimulatedDevices
        sims = SimulatedDevices(Path(tempfile.mkdtemp(prefix="kiosk-devices-")))
        config.devices = sims.start()
    kiosk = Kiosk(config, app)
    kiosk.start()
    panel = None
    if sims:
        import httpx

        from central.his.seed import DEMO_PATIENT
        from kiosk_app.sim_panel import SimulatorPanel

        def pay(code_url: str) -> None:
            httpx.post(config.credentials.server_url + "/sandbox/wechatpay/simulate/pay",
                       json={"code_url": code_url}, timeout=10).raise_for_status()

        panel = SimulatorPanel(sims, DEMO_PATIENT, kiosk.window, pay, config.data_dir / "receipts")
        panel.show()
        panel.place()
    try:
        return app.exec()
    finally:
        kiosk.stop()
        if panel:
            panel.close()
        if sims:
            sims.stop()


def _pin_hash() -> int:
    import getpass

    from kiosk_app.pin import PinFormatError, hash_pin
    pin = getpass.getpass("technician PIN: ") if sys.stdin.isatty() else sys.stdin.readline().strip()
    try:
        print(f'technician_pin_hash = "{hash_pin(pin)}"')
    except PinFormatError as exc:
        print(f"kiosk pin-hash: {exc}", file=sys.stderr)
        return 2
    return 0


def _diag(args: argparse.Namespace) -> int:
    from kiosk_app import diag

    logging.getLogger().setLevel(logging.WARNING)  # the findings are the output; driver chatter is not
    if args.device == "id-card":
        if not args.port:
            print("kiosk diag id-card: give --port, e.g. --port /dev/ttyUSB0", file=sys.stderr)
            return 2
        try:
            print(diag.card_json(diag.read_id_card(args.port, args.timeout, unmasked=args.unmasked)))
        except TimeoutError as exc:
            print(f"id-card: {exc}", file=sys.stderr)
            return 1
        except Exception as exc:
            print(f"id-card: {exc}", file=sys.stderr)
            return 2
        return 0
    sims = None
    if args.simulated:
        from kiosk_app.simulated import SimulatedDevices
        sims = SimulatedDevices(Path(tempfile.mkdtemp(prefix="kiosk-devices-")))
        try:
            devices = sims.start()
        except Exception as exc:  # a missing system package (socat, cupsd) is the usual cause
            sims.stop()
            print(f"kiosk diag: the device simulators did not start: {exc}", file=sys.stderr)
            return 2
    elif args.config:
        from kiosk_app.config import KioskConfig
        devices = KioskConfig.load(args.config).devices
    else:
        print("kiosk diag: give --config FILE, or --simulated", file=sys.stderr)
        return 2
    try:
        for item in args.inject:
            if sims is None:
                print("kiosk diag: --inject needs --simulated", file=sys.stderr)
                return 2
            role, _, fault = item.partition("=")
            try:
                sims.inject(role, fault)
            except ValueError as exc:
                print(f"kiosk diag: {exc}", file=sys.stderr)
                return 2
        findings = diag.check_all(devices)
        for finding in findings:
            print(finding.line(args.verbose))
        return diag.exit_status(findings)
    finally:
        if sims:
            sims.stop()


if __name__ == "__main__":
    sys.exit(main())
