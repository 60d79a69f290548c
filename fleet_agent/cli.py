"""``kiosk-agent`` (or ``python -m fleet_agent``): the fleet agent beside the kiosk app.

    kiosk-agent --credentials /etc/kiosk/credentials.json --data-dir /var/lib/kiosk-agent \
        [--kiosk-cmd "kiosk run --config /etc/kiosk/kiosk.toml"] [--link-port 47150] \
        [--reboot-cmd "systemctl reboot"] [--update-cmd "/opt/kiosk/update.sh {version}"] [--log-dir DIR]

Without ``--kiosk-cmd`` the agent only reports (the app runs under another supervisor); with it, the agent
starts the app and is its watchdog. The agent stops on SIGTERM or SIGINT and takes the app with it.
"""
from __future__ import annotations

import argparse
import logging
import shlex
import signal
import sys
import threading
from pathlib import Path

from fleet_agent.agent import Agent
from fleet_agent.client import Credentials, FleetClient, QueuedTransport
from fleet_agent.executors import Executors
from fleet_agent.link import DEFAULT_PORT, LinkServer
from fleet_agent.watchdog import Watchdog
from offline_queue.delivery import Deliverer
from offline_queue.outbox import Outbox


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kiosk-agent", description="Fleet agent of a kiosk terminal.")
    p.add_argument("--credentials", required=True, type=Path, help="the terminal's credentials file")
    p.add_argument("--data-dir", required=True, type=Path, help="where the agent keeps its offline queue")
    p.add_argument("--kiosk-cmd", help="command line of the kiosk app to run and watch (none: report only)")
    p.add_argument("--link-port", type=int, default=DEFAULT_PORT, help="UDP port of the local link (loopback)")
    p.add_argument("--hang-seconds", type=float, default=20.0, help="restart the app after this long without "
                                                                     "its local heartbeat")
    p.add_argument("--start-grace", type=float, default=60.0, help="how long a starting app may take to beat")
    p.add_argument("--interval", type=float, default=10.0, help="heartbeat interval until the server sets one")
    p.add_argument("--reboot-cmd", help="command that reboots the terminal")
    p.add_argument("--update-cmd", help="command that installs a version ({version} is replaced)")
    p.add_argument("--log-dir", type=Path, action="append", default=[], help="logs to collect (repeatable)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per beat says nothing to a technician
    credentials = Credentials.load(args.credentials)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    outbox = Outbox(args.data_dir / "agent-outbox.db")
    deliverer = Deliverer(outbox, QueuedTransport(credentials), idle_poll=1.0)
    link = LinkServer(args.link_port).start()
    watchdog = Watchdog(shlex.split(args.kiosk_cmd), link, hang_seconds=args.hang_seconds,
                        start_grace=args.start_grace) if args.kiosk_cmd else None
    executors = Executors(link, watchdog, reboot_command=shlex.split(args.reboot_cmd or ""),
                          update_command=shlex.split(args.update_cmd or ""), log_dirs=args.log_dir,
                          work_dir=args.data_dir)
    client = FleetClient(credentials)
    agent = Agent(client, outbox, deliverer, link, executors, watchdog=watchdog, interval=args.interval)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if watchdog is not None:
        watchdog.start()
    agent.start()
    logging.getLogger(__name__).info("fleet agent of %s running (link port %d)", credentials.terminal_id,
                                     link.port)
    print(f"AGENT READY {credentials.terminal_id} link={link.port}", flush=True)
    stop.wait()
    agent.stop()
    if watchdog is not None:
        watchdog.stop()
    link.stop()
    client.close()
    outbox.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
