"""A kiosk's deliverer in a process of its own, for the crash tests (the parent kills it with SIGKILL).

    python -m tests.offline_queue.deliver_child KIOSK_DB SERVER_URL

The terminal id and secret come in OUTBOX_TERMINAL and OUTBOX_SECRET (not argv, which `ps` shows).

Delivers until the outbox is empty, then prints ``DRAINED`` and exits. With ``OUTBOX_HOLD_AFTER=n`` it prints
``ANSWERED <key>`` after the server's n-th answer and hangs before recording it: the window in which a crash
leaves a message stored on the server but undelivered on the kiosk. Imports nothing beyond offline_queue,
so it starts as fast as the kiosk's own deliverer would.
"""
from __future__ import annotations

import os
import sys
import time
from typing import Any

from offline_queue.delivery import Backoff, Deliverer, Reply, UrllibTransport
from offline_queue.outbox import Outbox


class Announcing:
    def __init__(self, inner: UrllibTransport, hold_after: int):
        self.inner = inner
        self.hold_after = hold_after
        self.answers = 0

    def post(self, body: dict[str, Any], idempotency_key: str) -> Reply:
        reply = self.inner.post(body, idempotency_key)
        self.answers += 1
        if self.answers == self.hold_after:
            print(f"ANSWERED {idempotency_key}", flush=True)
            time.sleep(3600)
        return reply


def main() -> None:
    db, url = sys.argv[1], sys.argv[2]
    outbox = Outbox(db)
    transport = Announcing(UrllibTransport(url, os.environ["OUTBOX_TERMINAL"], os.environ["OUTBOX_SECRET"], timeout=5),
                           int(os.environ.get("OUTBOX_HOLD_AFTER", "0")))
    deliverer = Deliverer(outbox, transport, backoff=Backoff(base=0.05, cap=0.5), idle_poll=0.05)
    print("STARTED", flush=True)
    while outbox.depth() > 0:
        time.sleep(deliverer.run_once() if outbox.depth() else 0)
    print("DRAINED", flush=True)


if __name__ == "__main__":
    main()
