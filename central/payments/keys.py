"""Merchant and platform key material for WeChat Pay v3.

In production these files come from the merchant platform (merchant key and certificate, platform public key
or certificates, APIv3 key). For the demo and the tests ``ensure_sandbox_keys`` generates an equivalent set once,
so a fresh checkout runs the real signing code without any account. Only the sandbox ever holds the platform
private key; a production deployment has no such file.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import string
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

DEMO_MCHID = "1900000109"
DEMO_APPID = "wxd678efh567hg6787"

_META = "wechatpay.json"
_MERCHANT_KEY = "apiclient_key.pem"
_MERCHANT_CERT = "apiclient_cert.pem"
_PLATFORM_KEY = "platform_key.pem"
_PLATFORM_PUB = "pub_key.pem"
_APIV3_KEY = "apiv3.key"


@dataclass
class WeChatPayKeys:
    """Everything one merchant needs to speak v3; secret fields stay out of ``repr`` so logs cannot leak them."""

    mchid: str
    appid: str
    merchant_private_key: bytes = field(repr=False)
    merchant_serial_no: str
    merchant_certificate: bytes = field(repr=False)
    platform_private_key: bytes = field(repr=False)
    platform_public_key: bytes = field(repr=False)
    platform_public_key_id: str
    apiv3_key: str = field(repr=False)


def serial_hex(certificate: x509.Certificate) -> str:
    """WeChat Pay writes certificate serials as upper-case hex without separators."""
    return format(certificate.serial_number, "X")


def ensure_sandbox_keys(directory: Path, *, mchid: str = DEMO_MCHID, appid: str = DEMO_APPID) -> WeChatPayKeys:
    """Load the key set in ``directory``, generating it first if there is none.

    The metadata file is written last and acts as the commit marker: a directory with key files but no metadata
    is an interrupted generation and is regenerated, while a directory with metadata but missing files is
    refused, because silently replacing a merchant's keys would break every trade signed with them.
    """
    directory = Path(directory)
    if not (directory / _META).exists():
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        with _generation_lock(directory):
            # Another process may have finished generating while this one waited for the lock.
            if not (directory / _META).exists():
                _generate(directory, mchid, appid)
    return load_wechatpay_keys(directory)


def load_wechatpay_keys(directory: Path) -> WeChatPayKeys:
    """Read a key set laid out as ``ensure_sandbox_keys`` writes it (production files use the same names)."""
    directory = Path(directory)
    meta = json.loads((directory / _META).read_text(encoding="utf-8"))
    merchant_cert = (directory / _MERCHANT_CERT).read_bytes()
    merchant_key = (directory / _MERCHANT_KEY).read_bytes()
    certificate = x509.load_pem_x509_certificate(merchant_cert)
    if serial_hex(certificate).upper() != str(meta["merchant_serial_no"]).upper():
        raise ValueError("merchant certificate serial does not match the configured merchant_serial_no")
    private_key = serialization.load_pem_private_key(merchant_key, password=None)
    if private_key.public_key().public_numbers() != certificate.public_key().public_numbers():  # type: ignore[union-attr]
        raise ValueError("merchant private key does not belong to the merchant certificate")
    platform_key_path = directory / _PLATFORM_KEY
    apiv3_key = (directory / _APIV3_KEY).read_text(encoding="ascii").strip()
    if len(apiv3_key.encode("ascii")) != 32:
        raise ValueError("the APIv3 key must be 32 ASCII characters")
    return WeChatPayKeys(
        mchid=str(meta["mchid"]),
        appid=str(meta["appid"]),
        merchant_private_key=merchant_key,
        merchant_serial_no=str(meta["merchant_serial_no"]),
        merchant_certificate=merchant_cert,
        platform_private_key=platform_key_path.read_bytes() if platform_key_path.exists() else b"",
        platform_public_key=(directory / _PLATFORM_PUB).read_bytes(),
        platform_public_key_id=str(meta["platform_public_key_id"]),
        apiv3_key=apiv3_key,
    )


def issue_platform_certificate(keys: WeChatPayKeys, *, days: int = 365) -> bytes:
    """A platform certificate over the platform key, for exercising certificate mode (older merchants use it)."""
    private_key = serialization.load_pem_private_key(keys.platform_private_key, password=None)
    assert isinstance(private_key, rsa.RSAPrivateKey)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tenpay.com Root CA (sandbox)"),
                      x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Tenpay.com CA Center")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(private_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
            .sign(private_key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


def _generate(directory: Path, mchid: str, appid: str) -> None:
    merchant_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    platform_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = dt.datetime.now(dt.timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, mchid),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "WeChat Pay sandbox merchant"),
                         x509.NameAttribute(NameOID.COUNTRY_NAME, "CN")])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(merchant_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=5 * 365))
            .sign(merchant_key, hashes.SHA256()))
    pem_private = dict(encoding=serialization.Encoding.PEM, format=serialization.PrivateFormat.PKCS8,
                       encryption_algorithm=serialization.NoEncryption())
    alphabet = string.ascii_letters + string.digits
    apiv3_key = "".join(secrets.choice(alphabet) for _ in range(32))
    public_key_id = "PUB_KEY_ID_01" + mchid + "".join(secrets.choice(string.digits) for _ in range(15))
    _write_private(directory / _MERCHANT_KEY, merchant_key.private_bytes(**pem_private))
    _write_private(directory / _MERCHANT_CERT, cert.public_bytes(serialization.Encoding.PEM))
    _write_private(directory / _PLATFORM_KEY, platform_key.private_bytes(**pem_private))
    _write_private(directory / _PLATFORM_PUB, platform_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    _write_private(directory / _APIV3_KEY, apiv3_key.encode("ascii"))
    meta = {"mchid": mchid, "appid": appid, "merchant_serial_no": serial_hex(cert),
            "platform_public_key_id": public_key_id}
    _write_private(directory / _META, json.dumps(meta, indent=2).encode("utf-8"))


@contextmanager
def _generation_lock(directory: Path) -> Iterator[None]:
    """Two server processes starting together must not interleave two different key sets."""
    try:
        import fcntl
    except ImportError:  # not POSIX: single-process deployments only
        yield
        return
    fd = os.open(directory / ".generate.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _write_private(path: Path, data: bytes) -> None:
    """Write via a temporary file and rename, created 0600 from the start so no reader ever sees it looser."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
