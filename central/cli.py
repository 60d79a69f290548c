"""``kiosk-central``: prepare a data directory, run the server, provision terminals.

    kiosk-central init [--data-dir DIR] [--database-url URL]
    kiosk-central serve [--host H] [--port P] [--data-dir DIR] [--database-url URL] [--public-url URL]
    kiosk-central provision-terminal --id KIOSK-001 [--name N] [--location L] --out FILE [--server-url URL]
    kiosk-central demo-fleet [--terminals 100] [--duration S] [--fault-rate 0.05] [--fault SIM-0037=paper_out]
    kiosk-central add-staff --username U --role admin|it|readonly   (see central/staff/cli.py)
    kiosk-central reconcile --date YYYY-MM-DD [--provider wechat|alipay] [--out DIR] [--resolve]

Without a subcommand it serves. Every option has an environment variable (KIOSK_CENTRAL_DATA, ..._PORT, ...).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from central.config import Settings
from central.staff.cli import COMMANDS as STAFF_COMMANDS


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", type=Path, help="data directory (env KIOSK_CENTRAL_DATA; default ./var/central)")
    common.add_argument("--database-url", help="SQLAlchemy URL, e.g. postgresql+psycopg://… "
                                               "(env KIOSK_CENTRAL_DATABASE_URL; default SQLite in the data directory)")
    net = argparse.ArgumentParser(add_help=False)
    net.add_argument("--host", help="listen address (env KIOSK_CENTRAL_HOST; default 127.0.0.1)")
    net.add_argument("--port", type=int, help="listen port (env KIOSK_CENTRAL_PORT; default 8000)")
    net.add_argument("--public-url", help="this server's address as the payment provider reaches it, for "
                                          "notify_url (env KIOSK_CENTRAL_PUBLIC_URL)")
    net.add_argument("--wechat-url", help="WeChat Pay API base URL (env KIOSK_CENTRAL_WECHAT_URL; default the "
                                          "embedded sandbox)")
    net.add_argument("--no-sandbox", action="store_true", help="do not mount the WeChat Pay sandbox (production)")
    net.add_argument("--threads", type=int, help="threads for the sync routes (env KIOSK_CENTRAL_THREADS; "
                                                 "default 40)")
    net.add_argument("--no-access-log", action="store_true", help="no log line per request "
                                                                  "(env KIOSK_CENTRAL_ACCESS_LOG=0)")

    parser = argparse.ArgumentParser(prog="kiosk-central", description="Central server of the kiosk platform.",
                                     parents=[common, net])
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("init", parents=[common], help="migrate, create keys, seed the demo hospital if empty, "
                                                  "roll the schedule window")
    sub.add_parser("serve", parents=[common, net], help="init, then serve HTTP (the default)")
    provision = sub.add_parser("provision-terminal", parents=[common],
                               help="create or re-key a terminal and write its credentials file")
    provision.add_argument("--id", required=True, dest="terminal_id", help="terminal id, e.g. KIOSK-001")
    provision.add_argument("--name", help="display name")
    provision.add_argument("--location", help="where the terminal stands")
    provision.add_argument("--out", required=True, type=Path, help="credentials file to write (mode 0600)")
    provision.add_argument("--server-url", help="server URL written into the file (default this server's "
                                                "public URL)")
    reconcile = sub.add_parser("reconcile", parents=[common],
                               help="reconcile the channels' daily statements against our records (对账); "
                                    "exit 0 matched, 1 differences, 2 a statement unavailable, 3 bad input")
    reconcile.add_argument("--date", dest="bill_date", help="the day to reconcile, YYYY-MM-DD (hospital time)")
    reconcile.add_argument("--provider", choices=("wechat", "alipay"), help="one channel only (default: all)")
    reconcile.add_argument("--out", dest="out_dir", type=Path,
                           help="directory for <date>.json and <date>.csv (default <data-dir>/reconciliation)")
    reconcile.add_argument("--resolve", action="store_true",
                           help="first ask the channel about its trades we never recorded (lost notifications) "
                                "and apply the answers; nothing else is changed")
    from central.staff.cli import add_parsers as add_staff_parsers

    add_staff_parsers(sub, common)
    demo = sub.add_parser("demo-fleet", parents=[common, net], help="serve, with simulated fleet agents beating")
    demo.add_argument("--terminals", type=int, default=100, help="how many simulated terminals (default 100)")
    demo.add_argument("--duration", type=float, help="stop after this many seconds (default: run until Ctrl-C)")
    demo.add_argument("--fault-rate", type=float, default=0.05, help="share of terminals given a random fault")
    demo.add_argument("--fault", action="append", default=[], help="TERMINAL=FAULT, e.g. SIM-0037=paper_out "
                                                                    "(repeatable)")
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings.from_env().with_overrides(
        data_dir=getattr(args, "data_dir", None), database_url=getattr(args, "database_url", None),
        host=getattr(args, "host", None), port=getattr(args, "port", None),
        public_base_url=getattr(args, "public_url", None), wechat_base_url=getattr(args, "wechat_url", None),
        threads=getattr(args, "threads", None))
    if getattr(args, "no_sandbox", False):
        settings = settings.with_overrides(sandbox_enabled=False)
    if getattr(args, "no_access_log", False):
        settings = settings.with_overrides(access_log=False)
    return settings


def _with_thread_limit(app: Any, threads: int) -> Any:
    """Size the thread pool of sync routes when the server starts (the limiter belongs to the running loop)."""

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            import anyio.to_thread

            anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        await app(scope, receive, send)

    return asgi


def _write_private_json(path: Path, document: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        os.fchmod(f.fileno(), 0o600)  # an existing file keeps its old mode otherwise
        json.dump(document, f, ensure_ascii=False, indent=2)
        f.write("\n")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # its plugin set-up lines say nothing to an operator
    settings = _settings(args)
    command = args.command or "serve"

    from central.bootstrap import initialize

    summary = initialize(settings)
    if command == "init":
        print(summary.line())
        return 0
    if command in STAFF_COMMANDS:
        from central.staff.cli import run as run_staff_command

        return run_staff_command(command, args, settings)
    if command == "demo-fleet":
        from central.fleet.demo import run as run_demo_fleet

        return run_demo_fleet(settings, terminals=args.terminals, duration=args.duration,
                              fault_rate=args.fault_rate, faults=args.fault)
    if command == "provision-terminal":
        from central.db import make_engine, make_sessionmaker
        from central.terminals import provision_terminal

        engine = make_engine(settings.db_url)
        try:
            secret = provision_terminal(make_sessionmaker(engine), args.terminal_id, name=args.name,
                                        location=args.location)
        finally:
            engine.dispose()
        _write_private_json(args.out, {"terminal_id": args.terminal_id, "secret": secret,
                                       "server_url": args.server_url or settings.base_url})
        print(f"terminal {args.terminal_id} provisioned; credentials written to {args.out}")
        return 0
    if command == "reconcile":
        from central.reconciliation import run_command
        from central.services import build_services

        svc = build_services(settings)
        try:
            return run_command(svc, args.bill_date, provider=args.provider, out_dir=args.out_dir,
                               resolve_lost=args.resolve)
        finally:
            svc.close()

    import uvicorn

    from central.app import create_app

    print(summary.line(), flush=True)
    uvicorn.run(_with_thread_limit(create_app(settings), settings.threads), host=settings.host, port=settings.port,
                log_level="info", access_log=settings.access_log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
