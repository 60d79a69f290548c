"""Sending the outbox to the central server: at least once, in creation order per kind, never hot-looping.

One message per request (``POST {server}/api/v1/kiosk/outbox`` with the terminal's Basic credentials and an
``Idempotency-Key`` header). What the answer means:

* 2xx, or a 409 whose body says ``duplicate``: delivered (the server has it; a repeat is dropped there).
* no answer (connection refused, timeout, reset): the server or the network is down. The message backs off and
  the whole deliverer pauses for the same delay, so an outage costs one probe per delay, not one per message.
* 5xx, 429, 409, a redirect (the server URL is wrong), and the 4xx that speak about the terminal or the
  server rather than the message (401 unknown terminal, 403, 404/405 route not deployed yet, 408, 425): the
  message backs off (1 s doubling to 5 min, with jitter) and other kinds go on. Parking on these would set aside every message of a terminal whose secret
  was just rotated or whose server is one release behind.
* any other 4xx (400, 413, 422 …): the server refuses *this* message for good. It is parked with the reason:
  kept, visible in ``Outbox.stats``, retried only after ``Outbox.unpark``; the next message of its kind goes on.

Clock, sleep (through ``stop``/``wake``), randomness and the HTTP transport are injectable, and ``run_once``
does one pass synchronously, so tests drive every path without waiting. The default transport is the standard
library's urllib: this package stays importable without the kiosk's HTTP stack.
"""
from __future__ import annotations

import base64
import json
import logging
import random
import ssl
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

from offline_queue.outbox import Message, Outbox

log = logging.getLogger(__name__)

OUTBOX_PATH = "/api/v1/kiosk/outbox"
# Answers that say nothing about the message itself: back off and try again, never park.
RETRY_STATUSES = frozenset({401, 403, 404, 405, 408, 409, 425, 429})


class TransportError(Exception):
    """No trustworthy answer from the server (refused, reset, timed out): the message may or may not have
    arrived, so it is sent again later with the same key."""


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any = None  # parsed JSON, or None
    retry_after: float | None = None  # seconds, from a Retry-After header


class Transport(Protocol):
    def post(self, body: dict[str, Any], idempotency_key: str) -> Reply: ...


class UrllibTransport:
    """POST to the outbox route with HTTP Basic auth, using only the standard library."""

    def __init__(self, server_url: str, terminal_id: str, secret: str, *, timeout: float = 10.0,
                 ssl_context: ssl.SSLContext | None = None):
        self.url = server_url.rstrip("/") + OUTBOX_PATH
        token = base64.b64encode(f"{terminal_id}:{secret}".encode("utf-8")).decode("ascii")
        self._auth = f"Basic {token}"
        self._timeout = timeout
        self._ssl = ssl_context

    def __repr__(self) -> str:  # never print the secret
        return f"UrllibTransport({self.url!r})"

    @classmethod
    def from_credentials(cls, credentials: Any, **options: Any) -> UrllibTransport:
        """From anything with ``server_url``, ``terminal_id`` and ``secret`` (kiosk_app.config.Credentials)."""
        return cls(credentials.server_url, credentials.terminal_id, credentials.secret, **options)

    def post(self, body: dict[str, Any], idempotency_key: str) -> Reply:
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        request = urllib.request.Request(self.url, data=data, method="POST", headers={
            "Content-Type": "application/json", "Accept": "application/json", "Authorization": self._auth,
            "Idempotency-Key": idempotency_key})
        try:
            with urllib.request.urlopen(request, timeout=self._timeout, context=self._ssl) as response:
                return Reply(response.status, _json(response.read()), _retry_after(response.headers))
        except urllib.error.HTTPError as exc:
            with exc:
                return Reply(exc.code, _json(exc.read()), _retry_after(exc.headers))
        except (OSError, ValueError) as exc:  # URLError, timeouts, resets, and http.client's protocol errors
            raise TransportError(type(exc).__name__) from exc


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def _retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: rare enough to ignore; the backoff covers it


@dataclass
class Backoff:
    """Exponential backoff with "equal jitter": the n-th retry waits between half and all of
    ``min(cap, base * 2**(n-1))``. Half the delay is random, so a ward of kiosks coming back after an outage
    does not knock on the server in step; the other half guarantees the delay really grows."""

    base: float = 1.0
    cap: float = 300.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempts: int) -> float:
        ceiling = min(self.cap, self.base * 2 ** min(max(attempts, 1) - 1, 32))
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)


class Outcome:
    DELIVERED = "delivered"
    RETRY = "retry"  # the server answered, but not yet
    UNREACHABLE = "unreachable"  # no answer at all
    PARKED = "parked"


def is_duplicate(body: Any) -> bool:
    return isinstance(body, dict) and (body.get("duplicate") is True or body.get("code") == "DUPLICATE")


def _reason(reply: Reply) -> str:
    body = reply.body if isinstance(reply.body, dict) else {}
    code = body.get("code") or "-"
    detail = body.get("message_en") or ""
    return f"HTTP {reply.status} {code}: {detail}".rstrip(": ")


class Deliverer:
    """Sends the outbox to the server from a background thread (``start``/``stop``), or one pass at a time
    (``run_once``) in tests.

    It never drops a message: a message leaves the undelivered set only when the server confirms it has it,
    and a crash between the server's answer and ``mark_delivered`` only means the message is sent again with
    the same key, which the server recognises.
    """

    def __init__(self, outbox: Outbox, transport: Transport, *, clock: Callable[[], float] | None = None,
                 backoff: Backoff | None = None, idle_poll: float = 2.0,
                 on_delivered: Callable[[Message], None] | None = None):
        self.outbox = outbox
        self.transport = transport
        self.clock = clock or outbox.clock
        self.backoff = backoff or Backoff()
        self.idle_poll = idle_poll  # how soon a message committed by another connection is noticed
        self.on_delivered = on_delivered
        self._paused_until = 0.0  # set when the server is unreachable: one probe per backoff delay
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- thread -----------------------------------------------------------------------------------------

    def start(self) -> Deliverer:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="outbox-deliverer", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 15.0) -> None:
        """Ask the thread to finish after the request in flight (bounded by the transport's timeout)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)

    def wake(self) -> None:
        """Look at the outbox now (after a commit that enqueued something), instead of at the next poll."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                wait = self.run_once()
            except Exception:  # a database hiccup must not end delivery for the rest of the day
                log.exception("outbox delivery pass failed")
                wait = self.idle_poll
            self._wake.wait(timeout=wait)
            self._wake.clear()

    # ---- one pass ---------------------------------------------------------------------------------------

    def run_once(self) -> float:
        """Send every message that is due, in order; return how long to wait before the next pass."""
        retried: set[str] = set()  # kinds whose head failed in this pass: their next message must wait
        while not self._stop.is_set():
            now = self.clock()
            if now < self._paused_until:
                return min(self.idle_poll, self._paused_until - now)
            message = self.outbox.next_due(now, self.backoff.cap, frozenset(retried))
            if message is None:
                break
            outcome = self.deliver(message)
            if outcome == Outcome.UNREACHABLE:
                break
            if outcome == Outcome.RETRY:
                retried.add(message.kind)
        now = self.clock()
        if now < self._paused_until:
            return min(self.idle_poll, self._paused_until - now)
        due_in = self.outbox.next_attempt_in(now)
        return self.idle_poll if due_in is None else min(self.idle_poll, due_in)

    def deliver(self, message: Message) -> str:
        """One attempt for one message; records the result in the outbox and returns the Outcome."""
        try:
            body = {"kind": message.kind, "payload": message.body(),
                    "created_at": datetime.fromtimestamp(message.created_at, timezone.utc).isoformat()}
        except (ValueError, OverflowError, OSError):  # a damaged row: set aside, do not spin on it
            self.outbox.park(message.id, "local: stored message unreadable", self.clock())
            log.error("outbox %s %s parked: stored message unreadable", message.kind, message.key)
            return Outcome.PARKED
        try:
            reply = self.transport.post(body, message.key)
        except TransportError as exc:
            delay = self._retry(message, f"unreachable: {exc}", None)
            self._paused_until = self.clock() + delay
            return Outcome.UNREACHABLE
        except Exception as exc:  # a transport bug must not lose the message or kill the thread
            log.exception("outbox %s %s: transport failed", message.kind, message.key)
            delay = self._retry(message, f"transport: {type(exc).__name__}", None)
            self._paused_until = self.clock() + delay
            return Outcome.UNREACHABLE

        if 200 <= reply.status < 300 or (reply.status == 409 and is_duplicate(reply.body)):
            self.outbox.mark_delivered(message.id, self.clock())
            self._paused_until = 0.0
            log.info("outbox %s %s delivered%s", message.kind, message.key,
                     " (duplicate)" if is_duplicate(reply.body) else "")
            if self.on_delivered is not None:
                self.on_delivered(message)
            return Outcome.DELIVERED
        if reply.status >= 500 or reply.status in RETRY_STATUSES or reply.status < 400:
            self._retry(message, _reason(reply), reply.retry_after)
            return Outcome.RETRY
        reason = _reason(reply)
        self.outbox.park(message.id, reason, self.clock())
        log.error("outbox %s %s parked: HTTP %s", message.kind, message.key, reply.status)
        return Outcome.PARKED

    def _retry(self, message: Message, reason: str, retry_after: float | None) -> float:
        delay = self.backoff.delay(message.attempts + 1)
        if retry_after is not None:
            delay = min(self.backoff.cap, max(delay, retry_after))
        attempts = self.outbox.mark_failed(message.id, reason, self.clock() + delay)
        log.warning("outbox %s %s: attempt %d failed (%s); next in %.1f s", message.kind, message.key, attempts,
                    reason.split(":")[0], delay)
        return delay
