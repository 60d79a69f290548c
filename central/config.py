"""Server settings: embedded defaults, overridden by environment variables, overridden by the command line.

The defaults run the whole product on one machine with nothing attached (SQLite, the reference HIS, the WeChat
Pay sandbox on loopback); production changes the database URL, the public URL the payment provider calls back
on, and turns the sandbox off.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ENV_PREFIX = "KIOSK_CENTRAL_"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
FACE_PLATFORMS = ("auto", "none", "reference")


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("./var/central")
    database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    public_base_url: str | None = None
    timezone: str = "Asia/Shanghai"
    wechat_base_url: str | None = None
    alipay_gateway_url: str | None = None
    unionpay_base_url: str | None = None  # the acquirer (bank cards)
    insurance_base_url: str | None = None  # the medical-insurance platform
    #: Identities the hospital's contracts assign (the defaults are the sandboxes' demo hospital).
    unionpay_merchant_id: str = "898440379930001"
    insurance_hospital_code: str = "H44030500001"
    insurance_app_id: str = "kiosk-demo"
    sandbox_enabled: bool = True
    slot_lock_minutes: int = 10
    #: The built-in reference HIS's limits per patient and day (a hospital's own HIS states its own).
    his_max_per_department_per_day: int = 1
    his_max_per_day: int = 3
    #: Seconds between sweeps of orders a kiosk left half-way; 0 turns the sweeper off (tests drive it by hand).
    sweep_seconds: float = 30.0
    seed: int = 20240601
    #: Threads that run the sync routes (anyio's default is 40). Python runs one of them at a time; beyond a few
    #: they only queue for the interpreter lock and SQLite's one writer while holding other work up.
    threads: int = 40
    #: One log line per request: useful on a quiet day, a measurable share of the work under a surge.
    access_log: bool = True
    #: How often terminals' fleet agents beat (the server tells them in every answer).
    fleet_heartbeat_seconds: float = 10.0
    #: The fleet monitor thread (silent terminals, command expiry); tests that drive it by hand turn it off.
    fleet_monitor: bool = True
    #: Minutes of no use after which a console login ends (env KIOSK_CENTRAL_CONSOLE_IDLE_MINUTES).
    console_idle_minutes: float = 30.0
    #: The console's session cookie carries Secure: "auto" (when the request came over HTTPS, or the public URL
    #: is https), "always" (behind a TLS proxy that talks plain HTTP to us), "never" (env ..._CONSOLE_SECURE_COOKIE).
    console_secure_cookie: str = "auto"
    extra: Mapping[str, Any] = field(default_factory=dict)
    #: The hospital face platform behind 刷脸 (K1), env KIOSK_CENTRAL_FACE_PLATFORM: "none" (刷脸 is off),
    #: "reference" (the built-in adapter, NOT biometric-grade, with the demo patient's drawn face enrolled) or
    #: "auto": "reference" while the sandboxes are on (the embedded defaults, demos, tests), "none" in production.
    face_platform: str = "auto"

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir.resolve() / 'central.db'}"

    @property
    def base_url(self) -> str:
        """Where the payment provider reaches this server; behind a proxy this is the proxy's address."""
        return (self.public_base_url or f"http://127.0.0.1:{self.port}").rstrip("/")

    @property
    def notify_url(self) -> str:
        return self.notify_url_for("wechat")

    def notify_url_for(self, provider: str) -> str:
        return f"{self.base_url}/api/v1/pay/{provider}/notify"

    @property
    def alipay_url(self) -> str:
        return (self.alipay_gateway_url or f"http://127.0.0.1:{self.port}/sandbox/alipay/gateway.do").rstrip("/")

    @property
    def unionpay_url(self) -> str:
        return (self.unionpay_base_url or f"http://127.0.0.1:{self.port}/sandbox/unionpay").rstrip("/")

    @property
    def insurance_url(self) -> str:
        return (self.insurance_base_url or f"http://127.0.0.1:{self.port}/sandbox/insurance").rstrip("/")

    @property
    def wechat_url(self) -> str:
        return (self.wechat_base_url or f"http://127.0.0.1:{self.port}/sandbox/wechatpay").rstrip("/")

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def with_overrides(self, **changes: Any) -> Settings:
        """Apply command-line values; ``None`` means "not given on the command line"."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env

        def get(name: str) -> str | None:
            value = env.get(ENV_PREFIX + name)
            return value if value not in (None, "") else None

        values: dict[str, Any] = {}
        if (data := get("DATA")) is not None:
            values["data_dir"] = Path(data)
        for name, key in (("DATABASE_URL", "database_url"), ("HOST", "host"), ("PUBLIC_URL", "public_base_url"),
                          ("TIMEZONE", "timezone"), ("WECHAT_URL", "wechat_base_url"),
                          ("ALIPAY_URL", "alipay_gateway_url"), ("UNIONPAY_URL", "unionpay_base_url"),
                          ("INSURANCE_URL", "insurance_base_url"), ("UNIONPAY_MERCHANT_ID", "unionpay_merchant_id"),
                          ("INSURANCE_HOSPITAL_CODE", "insurance_hospital_code"),
                          ("INSURANCE_APP_ID", "insurance_app_id")):
            if (value := get(name)) is not None:
                values[key] = value
        for name, key in (("PORT", "port"), ("SLOT_LOCK_MINUTES", "slot_lock_minutes"), ("THREADS", "threads"),
                          ("HIS_MAX_PER_DEPARTMENT_PER_DAY", "his_max_per_department_per_day"),
                          ("HIS_MAX_PER_DAY", "his_max_per_day")):
            if (value := get(name)) is not None:
                values[key] = int(value)
        if (value := get("SWEEP_SECONDS")) is not None:
            values["sweep_seconds"] = float(value)
        if (value := get("SANDBOX")) is not None:
            values["sandbox_enabled"] = _parse_bool(ENV_PREFIX + "SANDBOX", value)
        if (value := get("FLEET_HEARTBEAT_SECONDS")) is not None:
            values["fleet_heartbeat_seconds"] = float(value)
        if (value := get("CONSOLE_IDLE_MINUTES")) is not None:
            values["console_idle_minutes"] = float(value)
        if (value := get("CONSOLE_SECURE_COOKIE")) is not None:
            if value not in ("auto", "always", "never"):
                raise ValueError(f"{ENV_PREFIX}CONSOLE_SECURE_COOKIE must be auto, always or never")
            values["console_secure_cookie"] = value
        if (value := get("ACCESS_LOG")) is not None:
            values["access_log"] = _parse_bool(ENV_PREFIX + "ACCESS_LOG", value)
        if (value := get("FACE_PLATFORM")) is not None:
            values["face_platform"] = value
        settings = cls(**values)
        if settings.face_platform not in FACE_PLATFORMS:
            raise ValueError(f"{ENV_PREFIX}FACE_PLATFORM must be one of {', '.join(FACE_PLATFORMS)}")
        if settings.threads < 1:
            raise ValueError(f"{ENV_PREFIX}THREADS must be at least 1")
        ZoneInfo(settings.timezone)  # fail at start-up, not on the first request
        return settings

    @property
    def face_platform_in_use(self) -> str:
        """The adapter that runs, "none" or "reference". The reference one is not biometric-grade, so it never
        switches itself on where payments are real: production (sandboxes off) gets "none" unless it is named."""
        if self.face_platform == "auto":
            return "reference" if self.sandbox_enabled else "none"
        return self.face_platform


def _parse_bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"{name} must be one of {sorted(_TRUE | _FALSE)}, not {value!r}")
