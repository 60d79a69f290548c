"""The staff commands of ``kiosk-central``:

    kiosk-central add-staff --username U --role admin|it|readonly [--display-name N] [--password-stdin]
    kiosk-central unlock-staff --username U
    kiosk-central demo-staff [--code]      # DEMO ONLY: a demo admin whose secrets sit in the data directory

``add-staff`` prints the password (when generated) and the TOTP secret with its otpauth:// URI exactly once:
they are stored only as a hash and as ciphertext. Scan the URI into an authenticator app (or type the secret).
"""
from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path
from typing import Any

from central.config import Settings

COMMANDS = ("add-staff", "unlock-staff", "demo-staff")
DEMO_USER = "demo-admin"
DEMO_FILE = "demo-staff.json"


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    add = sub.add_parser("add-staff", parents=[common], help="create a console user (prints the TOTP secret once)")
    add.add_argument("--username", required=True)
    add.add_argument("--role", required=True, choices=("admin", "it", "readonly"))
    add.add_argument("--display-name", default="", help="the name shown in the console and the audit log")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from standard input (default: prompt on a terminal, else generate)")
    unlock = sub.add_parser("unlock-staff", parents=[common], help="clear a console user's lockout")
    unlock.add_argument("--username", required=True)
    demo = sub.add_parser("demo-staff", parents=[common],
                          help=f"DEMO ONLY: create {DEMO_USER} with its secrets in the data directory")
    demo.add_argument("--code", action="store_true", help=f"print the current TOTP code of {DEMO_USER}")


def _password(args: argparse.Namespace) -> str | None:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    if sys.stdin.isatty():
        first = getpass.getpass("password (empty: generate one): ")
        if not first:
            return None
        if getpass.getpass("again: ") != first:
            raise SystemExit("the passwords differ")
        return first
    return None


def _print_qr(uri: str) -> None:
    if not sys.stdout.isatty():
        return
    import qrcode

    qr = qrcode.QRCode(border=1)
    qr.add_data(uri)
    qr.print_ascii(invert=True)


def run(command: str, args: argparse.Namespace, settings: Settings) -> int:
    from central.services import build_services
    from central.staff import accounts, totp
    from central.staff.errors import StaffError

    svc = build_services(settings)
    try:
        if command == "add-staff":
            try:
                new = accounts.create_staff(svc, args.username, args.role, password=_password(args),
                                            display_name=args.display_name, actor="cli")
            except StaffError as exc:
                print(f"add-staff: {exc.message_en}", file=sys.stderr)
                return 2
            print(f"console user {new.view.username} ({new.view.role}) created.")
            if not args.password_stdin:
                print(f"password:    {new.password}")
            print(f"TOTP secret: {new.totp_secret}")
            print(f"otpauth URI: {new.otpauth_uri}")
            _print_qr(new.otpauth_uri)
            print("These are shown once: put the secret in an authenticator app now.")
            return 0
        if command == "unlock-staff":
            try:
                accounts.unlock(svc, args.username, actor="cli")
            except StaffError as exc:
                print(f"unlock-staff: {exc.message_en}", file=sys.stderr)
                return 2
            print(f"console user {args.username} unlocked")
            return 0
        path = Path(settings.data_dir) / DEMO_FILE
        if args.code:
            if not path.exists():
                print("demo-staff: no demo admin yet; run `kiosk-central demo-staff` first", file=sys.stderr)
                return 2
            secret = json.loads(path.read_text(encoding="utf-8"))["totp_secret"]
            print(totp.code_at(secret, svc.now()))
            return 0
        if accounts.get_staff(svc, DEMO_USER) is None:
            new = accounts.create_staff(svc, DEMO_USER, "admin", display_name="演示管理员 Demo admin",
                                        actor="cli:demo-staff")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"username": DEMO_USER, "password": new.password, "totp_secret": new.totp_secret,
                           "otpauth_uri": new.otpauth_uri, "warning": "demo only; never on a production server"},
                          f, indent=2)
        demo = json.loads(path.read_text(encoding="utf-8"))
        print(f"DEMO ONLY console login: {demo['username']} / {demo['password']}; TOTP secret "
              f"{demo['totp_secret']} (current code: `kiosk-central demo-staff --code`)")
        return 0
    finally:
        svc.close()
