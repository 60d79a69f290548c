"""What the order logic and the API work with: the database, the HIS and the payment channel, built once from
the settings. Tests build their own with a different HIS, channel or clock."""
from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from central.config import Settings
from central.crypto import FieldCipher, attach_cipher
from central.db import make_engine, make_sessionmaker, utcnow
from central.his.adapter import HisAdapter, HisRules
from central.his.reference import ReferenceHis
from central.his.seed import HOSPITAL
from central.payments.alipay_keys import AlipayKeys, ensure_alipay_sandbox_keys, load_alipay_keys
from central.payments.channel import PaymentChannel
from central.payments.keys import WeChatPayKeys, ensure_sandbox_keys, load_wechatpay_keys

if TYPE_CHECKING:
    from central.face.platform import FacePlatform

log = logging.getLogger(__name__)

WECHATPAY_KEY_DIR = "wechatpay"
ALIPAY_KEY_DIR = "alipay"
UNIONPAY_KEY_FILE = "unionpay/mac.key"  # MAC key shared with the acquirer
INSURANCE_KEY_FILE = "insurance/app.secret"  # app secret shared with the insurance platform


@dataclass
class Services:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    cipher: FieldCipher
    his: HisAdapter
    channels: dict[str, PaymentChannel]  # by provider: "wechat", "alipay", ...
    wechatpay_keys: WeChatPayKeys | None = None
    clock: Callable[[], datetime] = field(default=utcnow)
    face: FacePlatform | None = None  # the hospital face platform (刷脸, K1); None: not configured

    def now(self) -> datetime:
        return self.clock()

    def today(self) -> date:
        """Today in the hospital's timezone, which is what "same-day" means to a patient."""
        return self.now().astimezone(self.settings.tz).date()

    @property
    def channel(self) -> PaymentChannel:
        """WeChat Pay: the channel of the first payment method, kept for the code that knows only it."""
        return self.channels["wechat"]

    def channel_for(self, method: str) -> PaymentChannel:
        """The provider behind a payment method ("wechat_native" → WeChat Pay); KeyError if not set up."""
        return self.channels[provider_of(method)]

    def close(self) -> None:
        for channel in self.channels.values():
            shutdown = getattr(channel, "shutdown", None)
            if callable(shutdown):
                shutdown()
        self.engine.dispose()


def provider_of(method: str) -> str:
    return method.split("_", 1)[0]


def wechatpay_keys(settings: Settings) -> WeChatPayKeys:
    """Sandbox keys are generated on first use; production keys must already be in place."""
    directory = Path(settings.data_dir) / WECHATPAY_KEY_DIR
    return ensure_sandbox_keys(directory) if settings.sandbox_enabled else load_wechatpay_keys(directory)


def alipay_keys(settings: Settings) -> AlipayKeys:
    directory = Path(settings.data_dir) / ALIPAY_KEY_DIR
    return ensure_alipay_sandbox_keys(directory) if settings.sandbox_enabled else load_alipay_keys(directory)


def shared_secret(settings: Settings, name: str) -> bytes | None:
    """A key shared with a provider by configuration (the acquirer's MAC key, the insurance app secret).
    The sandbox gets a random one on first use; in production it must be put in place, or the channel is off."""
    path = Path(settings.data_dir) / name
    if not path.exists():
        if not settings.sandbox_enabled:
            return None
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(os.urandom(32).hex().encode("ascii"))
    return bytes.fromhex(path.read_text().strip())


def build_services(settings: Settings, *, channel: PaymentChannel | None = None,
                   his: HisAdapter | None = None, channels: dict[str, PaymentChannel] | None = None) -> Services:
    """`channel` replaces WeChat Pay (tests); `channels` adds or replaces other providers."""
    from central.payments.alipay import AlipayChannel
    from central.payments.insurance import InsuranceChannel
    from central.payments.unionpay import BankCardChannel
    from central.payments.wechatpay import WeChatPayChannel
    from central.face.configured import face_platform_for

    data_dir = Path(settings.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)  # the database holds (encrypted) patient data
    engine = make_engine(settings.db_url)
    cipher = FieldCipher.load_or_create(data_dir)
    attach_cipher(engine, cipher)
    sessions = make_sessionmaker(engine)
    keys = None
    if channel is None:
        keys = wechatpay_keys(settings)
        channel = WeChatPayChannel.from_keys(settings.wechat_url, keys)
    channels = dict(channels or {})
    if "alipay" not in channels and (settings.sandbox_enabled or (data_dir / ALIPAY_KEY_DIR).exists()):
        channels["alipay"] = AlipayChannel.from_keys(settings.alipay_url, alipay_keys(settings),
                                                     notify_url=settings.notify_url_for("alipay"))
    if "unionpay" not in channels and (mac_key := shared_secret(settings, UNIONPAY_KEY_FILE)) is not None:
        channels["unionpay"] = BankCardChannel(settings.unionpay_url, settings.unionpay_merchant_id, mac_key)
    if "insurance" not in channels and (secret := shared_secret(settings, INSURANCE_KEY_FILE)) is not None:
        channels["insurance"] = InsuranceChannel(settings.insurance_url, settings.insurance_hospital_code,
                                                 settings.insurance_app_id, secret)
    return Services(settings=settings, engine=engine, sessions=sessions, cipher=cipher,
                    his=his or ReferenceHis(sessions, cipher, HOSPITAL, HisRules(
                        max_per_department_per_day=settings.his_max_per_department_per_day,
                        max_per_day=settings.his_max_per_day)), channels={"wechat": channel, **channels},
                    wechatpay_keys=keys, face=face_platform_for(settings))
