"""WeChat Pay API v3 as a ``PaymentChannel``: native (QR code) payments, query, close, refund, notifications.

The protocol is implemented directly on ``cryptography`` rather than through an SDK so that the exact bytes
that are signed and verified are visible here, and the sandbox can share the same primitives:

* requests carry ``Authorization: WECHATPAY2-SHA256-RSA2048 mchid=…,nonce_str=…,signature=…,timestamp=…,
  serial_no=…`` where the signature is RSA-SHA256 (PKCS#1 v1.5) with the merchant key over
  ``METHOD\\nURL\\nTIMESTAMP\\nNONCE\\nBODY\\n`` and URL is the ``/v3/…`` path and query as sent;
* responses and notifications are signed by the platform over ``TIMESTAMP\\nNONCE\\nBODY\\n`` and identified by
  ``Wechatpay-Serial``: either a platform public key id (``PUB_KEY_ID_…``) or a platform certificate serial;
* notification payloads are AEAD_AES_256_GCM encrypted with the merchant's APIv3 key.
"""
from __future__ import annotations

import base64
import json
import logging
import re
import secrets
import string
import time
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote, urlencode

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from central.payments.channel import ChannelError, ChannelUnavailable, PaymentChannel, SignatureError, TradeState
from central.payments.keys import WeChatPayKeys, serial_hex

AUTH_SCHEME = "WECHATPAY2-SHA256-RSA2048"
#: Signed messages older or newer than this are refused, which bounds how long a captured one can be replayed.
MAX_CLOCK_SKEW_SECONDS = 300
#: China Standard Time has no daylight saving, so a fixed offset renders time_expire exactly as the API wants.
CHINA_TZ = timezone(timedelta(hours=8), "CST")
AEAD_ALGORITHM = "AEAD_AES_256_GCM"

SIGNATURE_HEADERS = ("wechatpay-timestamp", "wechatpay-nonce", "wechatpay-signature", "wechatpay-serial")

_OUT_TRADE_NO = re.compile(r"^[A-Za-z0-9_\-|*]{6,32}$")
_OUT_REFUND_NO = re.compile(r"^[A-Za-z0-9_\-|*@]{1,64}$")
_AUTH_PARAM = re.compile(r'(\w+)="([^"]*)"')
_NONCE_ALPHABET = string.ascii_uppercase + string.digits

# WeChat Pay also knows REVOKED, which only applies to other payment modes; for the order logic it is a
# trade that can no longer be paid.
_STATE_ALIASES = {"REVOKED": "CLOSED"}
_KNOWN_STATES = frozenset({"SUCCESS", "NOTPAY", "CLOSED", "USERPAYING", "REFUND", "PAYERROR"})


# --- protocol primitives (shared with the sandbox) ------------------------------------------------------------

def new_nonce(length: int = 32) -> str:
    return "".join(secrets.choice(_NONCE_ALPHABET) for _ in range(length))


def request_message(method: str, canonical_url: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    return f"{method.upper()}\n{canonical_url}\n{timestamp}\n{nonce}\n".encode("utf-8") + body + b"\n"


def response_message(timestamp: str, nonce: str, body: bytes) -> bytes:
    return f"{timestamp}\n{nonce}\n".encode("utf-8") + body + b"\n"


def load_private_key(pem: bytes | str) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem.encode("ascii") if isinstance(pem, str) else pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("WeChat Pay keys must be RSA keys")
    return key


def rsa_sign(private_key: rsa.RSAPrivateKey, message: bytes) -> str:
    return base64.b64encode(private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode("ascii")


def rsa_verify(public_key: rsa.RSAPublicKey, message: bytes, signature_b64: str) -> bool:
    try:
        signature = base64.b64decode(signature_b64, validate=True)
        public_key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


def build_authorization(mchid: str, serial_no: str, private_key: rsa.RSAPrivateKey, method: str,
                        canonical_url: str, body: bytes, *, timestamp: str | None = None,
                        nonce: str | None = None) -> str:
    timestamp = timestamp if timestamp is not None else str(int(time.time()))
    nonce = nonce if nonce is not None else new_nonce()
    signature = rsa_sign(private_key, request_message(method, canonical_url, timestamp, nonce, body))
    return (f'{AUTH_SCHEME} mchid="{mchid}",nonce_str="{nonce}",signature="{signature}",'
            f'timestamp="{timestamp}",serial_no="{serial_no}"')


def parse_authorization(header: str) -> dict[str, str] | None:
    """The parameters of a v3 Authorization header, or None when the scheme is not the v3 one."""
    scheme, _, params = header.strip().partition(" ")
    if scheme != AUTH_SCHEME:
        return None
    return dict(_AUTH_PARAM.findall(params))


def encrypt_resource(apiv3_key: str, plaintext: bytes, associated_data: str, nonce: str) -> str:
    aead = AESGCM(apiv3_key.encode("ascii"))
    return base64.b64encode(aead.encrypt(nonce.encode("utf-8"), plaintext,
                                         associated_data.encode("utf-8"))).decode("ascii")


def decrypt_resource(apiv3_key: str, resource: Mapping[str, Any]) -> bytes:
    """Decrypt a notification resource; a failed tag means it was not made with our APIv3 key."""
    try:
        aead = AESGCM(apiv3_key.encode("ascii"))
        ciphertext = base64.b64decode(str(resource["ciphertext"]), validate=True)
        associated = resource.get("associated_data") or ""
        return aead.decrypt(str(resource["nonce"]).encode("utf-8"), ciphertext, str(associated).encode("utf-8"))
    except (InvalidTag, KeyError, ValueError) as exc:
        raise SignatureError(f"notification resource does not decrypt: {type(exc).__name__}") from None


def rfc3339(moment: datetime) -> str:
    """Time in the API's format (China time, seconds, explicit offset); naive datetimes are refused as ambiguous."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("time_expire must be timezone-aware")
    return moment.astimezone(CHINA_TZ).isoformat(timespec="seconds")


class PlatformKeyring:
    """The platform keys a merchant trusts, by the serial the platform puts in ``Wechatpay-Serial``.

    Public-key mode entries are keyed by their ``PUB_KEY_ID_…``; certificate mode entries by the certificate's
    serial, which must match the certificate itself so a misconfigured map cannot vouch for the wrong key.
    """

    def __init__(self, entries: Mapping[str, bytes | str]):
        self._keys: dict[str, tuple[rsa.RSAPublicKey, datetime | None, datetime | None]] = {}
        for serial, pem in entries.items():
            data = pem.encode("ascii") if isinstance(pem, str) else pem
            if b"-----BEGIN CERTIFICATE-----" in data:
                cert = x509.load_pem_x509_certificate(data)
                if serial_hex(cert).upper() != serial.upper():
                    raise ValueError(f"platform certificate serial {serial_hex(cert)} does not match key {serial}")
                key = cert.public_key()
                validity = (cert.not_valid_before_utc, cert.not_valid_after_utc)
                serial = serial.upper()
            else:
                key = serialization.load_pem_public_key(data)
                validity = (None, None)
            if not isinstance(key, rsa.RSAPublicKey):
                raise ValueError(f"platform key {serial} is not an RSA key")
            self._keys[serial] = (key, *validity)
        if not self._keys:
            raise ValueError("at least one platform public key or certificate is required")

    def verify(self, headers: Mapping[str, str], body: bytes, *, now: float | None = None) -> None:
        """Raise SignatureError unless ``headers`` prove that the platform sent ``body`` within the time window."""
        lowered = {k.lower(): v for k, v in headers.items()}
        missing = [name for name in SIGNATURE_HEADERS if not lowered.get(name)]
        if missing:
            raise SignatureError(f"missing signature headers: {', '.join(missing)}")
        serial = lowered["wechatpay-serial"].strip()
        entry = self._keys.get(serial) or self._keys.get(serial.upper())
        if entry is None:
            raise SignatureError(f"unknown platform serial {serial!r}")
        key, not_before, not_after = entry
        now = time.time() if now is None else now
        try:
            timestamp = int(lowered["wechatpay-timestamp"])
        except ValueError:
            raise SignatureError("malformed Wechatpay-Timestamp") from None
        if abs(now - timestamp) > MAX_CLOCK_SKEW_SECONDS:
            raise SignatureError(f"timestamp {timestamp} is more than {MAX_CLOCK_SKEW_SECONDS}s from now")
        if not_after is not None and not (not_before.timestamp() <= now <= not_after.timestamp()):  # type: ignore[union-attr]
            raise SignatureError(f"platform certificate {serial} is not valid now")
        message = response_message(lowered["wechatpay-timestamp"], lowered["wechatpay-nonce"], body)
        if not rsa_verify(key, message, lowered["wechatpay-signature"]):
            raise SignatureError(f"signature does not verify with platform key {serial}")


# --- the channel ----------------------------------------------------------------------------------------------

class WeChatPayChannel(PaymentChannel):
    """A WeChat Pay v3 merchant client. Pure: it holds no trade state, so any number of instances may run."""

    def __init__(self, base_url: str, mchid: str, appid: str, merchant_private_key_pem: bytes,
                 merchant_serial_no: str, apiv3_key: str, platform_public_keys: dict[str, bytes],
                 timeout: float = 5.0, logger: logging.Logger | None = None, *,
                 refund_notify_url: str | None = None):
        if len(apiv3_key.encode("ascii")) != 32:
            raise ValueError("the APIv3 key must be 32 ASCII characters")
        self.base_url = base_url.rstrip("/")
        self.mchid = mchid
        self.appid = appid
        self.refund_notify_url = refund_notify_url
        self._merchant_key = load_private_key(merchant_private_key_pem)
        self._serial_no = merchant_serial_no
        self._apiv3_key = apiv3_key
        self._platform = PlatformKeyring(platform_public_keys)
        self._log = logger or logging.getLogger(__name__)
        # The base URL may carry a mount prefix (a sandbox under /sandbox/wechatpay, a forward proxy path);
        # the signature covers only the /v3/... part, as the service sees it.
        self._prefix = httpx.URL(self.base_url + "/").raw_path.rstrip(b"/")
        self._http = httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, 3.0)),
                                  headers={"Accept": "application/json",
                                           "User-Agent": "hospital-kiosk-central wechatpay-v3"})

    @classmethod
    def from_keys(cls, base_url: str, keys: WeChatPayKeys, **options: Any) -> WeChatPayChannel:
        """A channel trusting the key set's platform public key; ``options`` go to ``__init__``."""
        return cls(base_url, keys.mchid, keys.appid, keys.merchant_private_key, keys.merchant_serial_no,
                   keys.apiv3_key, {keys.platform_public_key_id: keys.platform_public_key}, **options)

    def __repr__(self) -> str:
        return f"WeChatPayChannel(base_url={self.base_url!r}, mchid={self.mchid!r})"

    def shutdown(self) -> None:
        """Release the connection pool (named so it cannot be confused with closing a trade)."""
        self._http.close()

    def __enter__(self) -> WeChatPayChannel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # -- PaymentChannel ----------------------------------------------------------------------------------------

    def create_native(self, out_trade_no: str, description: str, amount_fen: int, notify_url: str,
                      time_expire: datetime) -> str:
        _check_out_trade_no(out_trade_no)
        _check_fen("amount_fen", amount_fen)
        if not description or len(description) > 127:
            raise ValueError("description must be 1..127 characters")
        payload = {"appid": self.appid, "mchid": self.mchid, "description": description,
                   "out_trade_no": out_trade_no, "time_expire": rfc3339(time_expire), "notify_url": notify_url,
                   "amount": {"total": amount_fen, "currency": "CNY"}}
        answer = self._request("POST", "/v3/pay/transactions/native", payload=payload)
        code_url = answer.get("code_url") if answer else None
        if not isinstance(code_url, str) or not code_url:
            raise ChannelError("INVALID_RESPONSE", "native order answer has no code_url")
        return code_url

    def query(self, out_trade_no: str) -> TradeState:
        _check_out_trade_no(out_trade_no)
        answer = self._request("GET", f"/v3/pay/transactions/out-trade-no/{quote(out_trade_no, safe='')}",
                               query={"mchid": self.mchid})
        if not answer:
            raise ChannelError("INVALID_RESPONSE", "empty query answer")
        state = self._trade_state(answer)
        if state.out_trade_no != out_trade_no:
            raise ChannelError("INVALID_RESPONSE", "query answered for another trade")
        return state

    def close(self, out_trade_no: str) -> None:
        _check_out_trade_no(out_trade_no)
        self._request("POST", f"/v3/pay/transactions/out-trade-no/{quote(out_trade_no, safe='')}/close",
                      payload={"mchid": self.mchid})

    def refund(self, out_trade_no: str, out_refund_no: str, refund_fen: int, total_fen: int,
               reason: str) -> str:
        _check_out_trade_no(out_trade_no)
        if not _OUT_REFUND_NO.match(out_refund_no):
            raise ValueError("out_refund_no must be 1..64 characters of [A-Za-z0-9_-|*@]")
        _check_fen("refund_fen", refund_fen)
        _check_fen("total_fen", total_fen)
        if refund_fen > total_fen:
            raise ValueError("refund_fen exceeds total_fen")
        payload: dict[str, Any] = {"out_trade_no": out_trade_no, "out_refund_no": out_refund_no}
        if reason:
            payload["reason"] = reason[:80]
        if self.refund_notify_url:
            payload["notify_url"] = self.refund_notify_url
        payload["amount"] = {"refund": refund_fen, "total": total_fen, "currency": "CNY"}
        answer = self._request("POST", "/v3/refund/domestic/refunds", payload=payload)
        status = answer.get("status") if answer else None
        if not isinstance(status, str) or not status:
            raise ChannelError("INVALID_RESPONSE", "refund answer has no status")
        return status

    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> TradeState:
        """Verify, decrypt and decode a payment or refund notification.

        A ``REFUND.SUCCESS`` event yields state ``REFUND`` with the trade's total amount and no success_time
        (the refund's own time is not the payment's).
        """
        try:
            self._platform.verify(headers, body)
        except SignatureError as exc:
            self._log.warning("WeChat Pay notification refused: %s", exc)
            raise
        try:
            document = json.loads(body)
            event_type = str(document["event_type"])
            resource = document["resource"]
            algorithm = resource.get("algorithm")
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ChannelError("INVALID_NOTIFICATION", "notification is not a v3 event") from None
        if algorithm != AEAD_ALGORITHM:
            raise ChannelError("INVALID_NOTIFICATION", f"unsupported resource algorithm {algorithm!r}")
        try:
            plaintext = decrypt_resource(self._apiv3_key, resource)
        except SignatureError as exc:
            self._log.warning("WeChat Pay notification %s refused: %s", document.get("id"), exc)
            raise
        try:
            content = json.loads(plaintext)
            if not isinstance(content, dict):
                raise ValueError("not an object")
        except ValueError:
            raise ChannelError("INVALID_NOTIFICATION", "decrypted resource is not a JSON object") from None
        if event_type == "TRANSACTION.SUCCESS":
            if content.get("appid") not in (None, self.appid):
                raise ChannelError("APPID_MISMATCH", "notification is for another appid")
            return self._trade_state(content)
        if event_type == "REFUND.SUCCESS":
            if content.get("mchid") not in (None, self.mchid):
                raise ChannelError("MCHID_MISMATCH", "notification is for another merchant")
            out_trade_no = content.get("out_trade_no")
            if not isinstance(out_trade_no, str):
                raise ChannelError("INVALID_NOTIFICATION", "refund notification without out_trade_no")
            total = (content.get("amount") or {}).get("total")
            return TradeState(out_trade_no=out_trade_no, state="REFUND",
                              transaction_id=content.get("transaction_id") or None,
                              amount_fen=total if _is_fen(total) else None, success_time=None)
        raise ChannelError("UNSUPPORTED_EVENT", f"event type {event_type!r} is not handled")

    # -- plumbing ----------------------------------------------------------------------------------------------

    def _trade_state(self, trade: Mapping[str, Any]) -> TradeState:
        if trade.get("mchid") not in (None, self.mchid):
            raise ChannelError("MCHID_MISMATCH", "trade belongs to another merchant")
        out_trade_no = trade.get("out_trade_no")
        state = _STATE_ALIASES.get(str(trade.get("trade_state")), trade.get("trade_state"))
        if not isinstance(out_trade_no, str) or state not in _KNOWN_STATES:
            raise ChannelError("INVALID_RESPONSE", f"unrecognised trade (state {state!r})")
        amount = trade.get("amount") or {}
        if amount.get("currency", "CNY") != "CNY":
            raise ChannelError("INVALID_RESPONSE", f"unexpected currency {amount.get('currency')!r}")
        total = amount.get("total")
        transaction_id = trade.get("transaction_id") or None
        if state in ("SUCCESS", "REFUND") and (not _is_fen(total) or not transaction_id):
            # A payment that cannot be matched to an amount and a transaction cannot be acted on.
            raise ChannelError("INVALID_RESPONSE", "paid trade without amount or transaction_id")
        return TradeState(out_trade_no=out_trade_no, state=state, transaction_id=transaction_id,
                          amount_fen=total if _is_fen(total) else None,
                          success_time=trade.get("success_time") or None)

    def _request(self, method: str, path: str, *, query: Mapping[str, str] | None = None,
                 payload: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
        body = b"" if payload is None else json.dumps(payload, ensure_ascii=False,
                                                       separators=(",", ":")).encode("utf-8")
        url = self.base_url + path + ("?" + urlencode(query) if query else "")
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        request = self._http.build_request(method, url, content=body or None, headers=headers)
        # Sign exactly what goes on the wire: the encoded path and query after httpx normalised them.
        raw = request.url.raw_path
        canonical = (raw[len(self._prefix):] if self._prefix and raw.startswith(self._prefix) else raw)
        request.headers["Authorization"] = build_authorization(
            self.mchid, self._serial_no, self._merchant_key, method, canonical.decode("ascii"), body)
        what = f"{method} {path}"
        try:
            response = self._http.send(request)
        except httpx.HTTPError as exc:
            self._log.warning("WeChat Pay %s: no answer (%s)", what, type(exc).__name__)
            raise ChannelUnavailable(f"{what}: {type(exc).__name__}") from None
        status = response.status_code
        request_id = response.headers.get("Request-ID", "-")
        if status >= 500 or status < 200 or 300 <= status < 400:
            self._log.warning("WeChat Pay %s: HTTP %d (request id %s)", what, status, request_id)
            raise ChannelUnavailable(f"{what}: HTTP {status}")
        content = response.content
        signed = any(name in response.headers for name in SIGNATURE_HEADERS)
        if signed or (status < 300 and content):
            # Unsigned error answers are accepted as errors (the service does not sign every gateway error),
            # but a success or anything that claims a signature must prove it.
            try:
                self._platform.verify(response.headers, content)
            except SignatureError as exc:
                self._log.warning("WeChat Pay %s: response refused (HTTP %d, request id %s): %s",
                                  what, status, request_id, exc)
                raise
        if status >= 400:
            code, message = f"HTTP_{status}", response.reason_phrase or "error"
            try:
                error = json.loads(content)
                code = str(error.get("code") or code)
                message = str(error.get("message") or message)
            except (ValueError, AttributeError):
                pass
            self._log.info("WeChat Pay %s: %s %s (request id %s)", what, status, code, request_id)
            raise ChannelError(code, message)
        if not content:
            return None
        try:
            answer = json.loads(content)
        except ValueError:
            raise ChannelError("INVALID_RESPONSE", f"{what}: answer is not JSON") from None
        if not isinstance(answer, dict):
            raise ChannelError("INVALID_RESPONSE", f"{what}: answer is not a JSON object")
        return answer


def _is_fen(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_fen(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive integer number of fen")


def _check_out_trade_no(out_trade_no: str) -> None:
    if not isinstance(out_trade_no, str) or not _OUT_TRADE_NO.match(out_trade_no):
        raise ValueError("out_trade_no must be 6..32 characters of [A-Za-z0-9_-|*]")
