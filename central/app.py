"""The server application: the kiosk API, payment notifications, and (by default) the payment sandboxes."""
from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from central import orders
from central.api import aggregate, kiosk, notify, outbox
from central.api import appointments as appointment_routes, records as record_routes
from central.api import cards as card_routes
from central.api import face as face_routes
from central.api.errors import install_error_handlers
from central.api.fleet import install_fleet
from central.console.app import install_console
from central.config import Settings
from central.fleet.monitor import start_fleet_monitor
from central.services import (INSURANCE_KEY_FILE, UNIONPAY_KEY_FILE, Services, alipay_keys, build_services,
                              shared_secret, wechatpay_keys)

log = logging.getLogger(__name__)

SANDBOX_PREFIX = "/sandbox/wechatpay"
ALIPAY_SANDBOX_PREFIX = "/sandbox/alipay"
UNIONPAY_SANDBOX_PREFIX = "/sandbox/unionpay"
INSURANCE_SANDBOX_PREFIX = "/sandbox/insurance"


class Sweeper:
    """Finishes orders kiosks left half-way, every few seconds, in a background thread."""

    def __init__(self, svc: Services, interval: float):
        self._svc = svc
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="order-sweeper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                report = orders.sweep(self._svc)
                if report.closed or report.fulfilled or report.refunded or report.unresolved:
                    log.info("sweeper: %s", report)
            except Exception:  # the sweeper must outlive one bad order or a database hiccup
                log.exception("sweeper run failed")


def create_app(settings: Settings, services: Services | None = None) -> FastAPI:
    """The ASGI app over an initialised data directory (``central.bootstrap.initialize`` first)."""
    svc = services or build_services(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        sweeper = Sweeper(svc, settings.sweep_seconds) if settings.sweep_seconds > 0 else None
        if sweeper:
            sweeper.start()
        fleet_monitor = start_fleet_monitor(svc)
        try:
            yield
        finally:
            if fleet_monitor:
                fleet_monitor.stop()
            if sweeper:
                sweeper.stop()
            if services is None:
                svc.close()

    app = FastAPI(title="kiosk-central", version="0.1.0", lifespan=lifespan,
                  description="Central server of the hospital self-service kiosk platform: kiosk API and "
                              "payment notifications.")
    app.state.services = svc
    install_error_handlers(app)
    app.include_router(kiosk.router)
    app.include_router(notify.router)
    app.include_router(outbox.router)
    app.include_router(aggregate.router)
    app.include_router(record_routes.router)
    app.include_router(appointment_routes.router)
    app.include_router(card_routes.router)
    app.include_router(face_routes.router)
    install_fleet(app, svc)
    install_console(app)

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    if settings.sandbox_enabled:
        from central.payments.wechatpay_sandbox import create_sandbox_app

        app.mount(SANDBOX_PREFIX, create_sandbox_app(svc.wechatpay_keys or wechatpay_keys(settings)))
        from central.payments.alipay_sandbox import create_sandbox_app as create_alipay_sandbox

        app.mount(ALIPAY_SANDBOX_PREFIX, create_alipay_sandbox(alipay_keys(settings)))
        from central.payments import insurance_sandbox, unionpay_sandbox

        mac_key = shared_secret(settings, UNIONPAY_KEY_FILE)
        if mac_key is not None:
            app.mount(UNIONPAY_SANDBOX_PREFIX, unionpay_sandbox.create_sandbox_app(
                mac_key, merchant_id=settings.unionpay_merchant_id))
        app_secret = shared_secret(settings, INSURANCE_KEY_FILE)
        if app_secret is not None:
            app.mount(INSURANCE_SANDBOX_PREFIX, insurance_sandbox.create_sandbox_app(
                app_secret, app_id=settings.insurance_app_id,
                platform=insurance_sandbox.Platform(settings.insurance_hospital_code)))
    return app
