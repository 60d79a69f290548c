"""Key material for the Alipay OpenAPI gateway (public-key mode, RSA2).

In production the merchant generates its application key pair with Alipay's key tool, uploads the public half,
and downloads the "Alipay public key" of its app: the directory then holds ``app_private_key.pem``,
``alipay_public_key.pem`` and ``alipay.json``. For the demo and the tests ``ensure_alipay_sandbox_keys``
generates an equivalent set once, plus the Alipay *private* key the sandbox signs with; a production deployment
has no such file. Layout, atomic writes and the generation lock follow ``keys.py`` (WeChat Pay).
"""
from __future__ import annotations

import functools
import json
import secrets
import string
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from central.payments.keys import _generation_lock, _write_private

DEMO_APP_ID = "2021000000000001"

_META = "alipay.json"
_APP_KEY = "app_private_key.pem"
_APP_PUB = "app_public_key.pem"
_ALIPAY_KEY = "alipay_private_key.pem"
_ALIPAY_PUB = "alipay_public_key.pem"


@dataclass
class AlipayKeys:
    """One Alipay application's keys; key bytes stay out of ``repr`` so a logged object cannot leak them.

    ``seller_id`` is the merchant's 16-digit partner id (``2088…``); notifications name it and the channel
    checks it when known.
    """

    app_id: str
    seller_id: str
    app_private_key: bytes = field(repr=False)
    app_public_key: bytes = field(repr=False)
    alipay_public_key: bytes = field(repr=False)
    alipay_private_key: bytes = field(repr=False, default=b"")  # sandbox only


def ensure_alipay_sandbox_keys(directory: Path, *, app_id: str = DEMO_APP_ID) -> AlipayKeys:
    """Load the key set in ``directory``, generating it first if there is none.

    As for WeChat Pay, the metadata file is the commit marker: key files without it are an interrupted
    generation and are regenerated; metadata with missing files is refused rather than silently replaced.
    """
    directory = Path(directory)
    if not (directory / _META).exists():
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        with _generation_lock(directory):
            if not (directory / _META).exists():
                _generate(directory, app_id)
    return load_alipay_keys(directory)


def load_alipay_keys(directory: Path) -> AlipayKeys:
    """Read a key set laid out as ``ensure_alipay_sandbox_keys`` writes it; production uses the same names.

    ``app_public_key.pem`` is optional in production (Alipay holds it); when present it must match the private
    key, because a mismatch only shows up later as every request being refused with isv.invalid-signature.
    """
    directory = Path(directory)
    meta = json.loads((directory / _META).read_text(encoding="utf-8"))
    app_private = (directory / _APP_KEY).read_bytes()
    private_key = load_private_key(app_private, "application")
    app_public_path = directory / _APP_PUB
    if app_public_path.exists():
        app_public = app_public_path.read_bytes()
        if load_public_key(app_public, "application").public_numbers() != private_key.public_key().public_numbers():
            raise ValueError("app_public_key.pem does not belong to app_private_key.pem")
    else:
        app_public = _public_pem(private_key)
    alipay_public = (directory / _ALIPAY_PUB).read_bytes()
    alipay_public_key = load_public_key(alipay_public, "Alipay")
    alipay_private_path = directory / _ALIPAY_KEY
    alipay_private = alipay_private_path.read_bytes() if alipay_private_path.exists() else b""
    if alipay_private and (load_private_key(alipay_private, "Alipay").public_key().public_numbers()
                           != alipay_public_key.public_numbers()):
        raise ValueError("alipay_private_key.pem does not belong to alipay_public_key.pem")
    return AlipayKeys(app_id=str(meta["app_id"]), seller_id=str(meta.get("seller_id") or ""),
                      app_private_key=app_private, app_public_key=app_public, alipay_public_key=alipay_public,
                      alipay_private_key=alipay_private)


def _generate(directory: Path, app_id: str) -> None:
    app_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    alipay_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem_private = dict(encoding=serialization.Encoding.PEM, format=serialization.PrivateFormat.PKCS8,
                       encryption_algorithm=serialization.NoEncryption())
    seller_id = "2088" + "".join(secrets.choice(string.digits) for _ in range(12))
    _write_private(directory / _APP_KEY, app_key.private_bytes(**pem_private))
    _write_private(directory / _APP_PUB, _public_pem(app_key))
    _write_private(directory / _ALIPAY_KEY, alipay_key.private_bytes(**pem_private))
    _write_private(directory / _ALIPAY_PUB, _public_pem(alipay_key))
    meta = {"app_id": app_id, "seller_id": seller_id}
    _write_private(directory / _META, json.dumps(meta, indent=2).encode("utf-8"))


def _public_pem(private_key: rsa.RSAPrivateKey) -> bytes:
    return private_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)


def load_private_key(pem: bytes | str, whose: str = "application") -> rsa.RSAPrivateKey:
    """An RSA2 private key from PEM, or from the bare base64 PKCS#8 text Alipay's key tool writes."""
    key = _parse_private_key(_as_pem(pem, "PRIVATE KEY"))
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < 2048:
        raise ValueError(f"the {whose} private key must be an RSA key of at least 2048 bits (RSA2)")
    return key


@functools.lru_cache(maxsize=16)
def _parse_private_key(pem: bytes) -> object:
    """Parsing and checking an RSA key costs tens of milliseconds of CPU; a key is parsed once per process."""
    return serialization.load_pem_private_key(pem, password=None)


def load_public_key(pem: bytes | str, whose: str = "Alipay") -> rsa.RSAPublicKey:
    """An RSA2 public key from PEM, or from the bare base64 text the Alipay open platform shows."""
    key = serialization.load_pem_public_key(_as_pem(pem, "PUBLIC KEY"))
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size < 2048:
        raise ValueError(f"the {whose} public key must be an RSA key of at least 2048 bits (RSA2)")
    return key


def _as_pem(data: bytes | str, label: str) -> bytes:
    raw = data.encode("ascii") if isinstance(data, str) else data
    if b"-----BEGIN" in raw:
        return raw
    body = b"".join(raw.split())
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return b"\n".join([f"-----BEGIN {label}-----".encode(), *lines, f"-----END {label}-----".encode(), b""])
