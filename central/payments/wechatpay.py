"""WeChat Pay API v3 as a ``PaymentChannel``: native (QR code) and code payments, query, close, reverse, refund,
refund query, notifications and the daily trade bill.

The protocol is implemented directly on ``cryptography`` rather than through an SDK so that the exact bytes
that are signed and verified are visible here, and the sandbox can share the same primitives:

* requests carry ``Authorization: WECHATPAY2-SHA256-RSA2048 mchid=…,nonce_str=…,signature=…,timestamp=…,
  serial_no=…`` where the signature is RSA-SHA256 (PKCS#1 v1.5) with the merchant key over
  ``METHOD\\nURL\\nTIMESTAMP\\nNONCE\\nBODY\\n`` and URL is the ``/v3/…`` path and query as sent;
* responses and notifications are signed by the platform over ``TIMESTAMP\\nNONCE\\nBODY\\n`` and identified by
  ``Wechatpay-Serial``: either a platform public key id (``PUB_KEY_ID_…``) or a platform certificate serial;
* notification payloads are AEAD_AES_256_GCM encrypted with the merchant's APIv3 key;
* the bill file (``/v3/billdownload/file``) is the one answer that is not signed: its integrity comes from the
  SHA1 ``hash_value`` in the signed ``/v3/bill/tradebill`` answer, which is checked before anything is parsed.
"""
from __future__ import annotations

import base64
import functools
import csv
import hashlib
import json
import logging
import re
import secrets
import string
import time
from collections.abc import Mapping
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote, urlencode

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from central.payments.channel import (BillLine, ChannelError, ChannelUnavailable, PaymentChannel, SignatureError,
                                      TradeState)
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
_REFUND_STATES = frozenset({"SUCCESS", "CLOSED", "PROCESSING", "ABNORMAL"})
#: A WeChat payment code (付款码) is 18 digits starting with 10..15; anything else is not worth a round trip.
AUTH_CODE_PATTERN = re.compile(r"^1[0-5][0-9]{16}$")
#: Error codes after which a code payment or reverse may or may not have happened: the answer is "ask again".
_UNKNOWN_OUTCOME_CODES = frozenset({"SYSTEM_ERROR", "SYSTEMERROR", "BANK_ERROR", "BANKERROR"})

#: The trade bill's columns (bill_type=ALL), in WeChat's order; the parser finds columns by name, not position.
BILL_COLUMNS = ("交易时间", "公众账号ID", "商户号", "特约商户号", "设备号", "微信订单号", "商户订单号", "用户标识",
                "交易类型", "交易状态", "付款银行", "货币种类", "应结订单金额", "代金券金额", "微信退款单号",
                "商户退款单号", "退款金额", "充值券退款金额", "退款类型", "退款状态", "商品名称", "商户数据包",
                "手续费", "费率", "订单金额", "申请退款金额", "费率备注")
BILL_SUMMARY_COLUMNS = ("总交易单数", "应结订单总金额", "退款总金额", "充值券退款总金额", "手续费总金额",
                        "订单总金额", "申请退款总金额")
#: Bills of a busy hospital are a few MB; anything far larger is not a bill and must not exhaust memory.
MAX_BILL_BYTES = 64 * 1024 * 1024


# --- protocol primitives (shared with the sandbox) ------------------------------------------------------------

def new_nonce(length: int = 32) -> str:
    return "".join(secrets.choice(_NONCE_ALPHABET) for _ in range(length))


def request_message(method: str, canonical_url: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    return f"{method.upper()}\n{canonical_url}\n{timestamp}\n{nonce}\n".encode("utf-8") + body + b"\n"


def response_message(timestamp: str, nonce: str, body: bytes) -> bytes:
    return f"{timestamp}\n{nonce}\n".encode("utf-8") + body + b"\n"


def load_private_key(pem: bytes | str) -> rsa.RSAPrivateKey:
    return _load_private_key(pem.encode("ascii") if isinstance(pem, str) else pem)


@functools.lru_cache(maxsize=16)
def _load_private_key(pem: bytes) -> rsa.RSAPrivateKey:
    """Parsing and checking an RSA key costs tens of milliseconds of CPU; a key is parsed once per process."""
    key = serialization.load_pem_private_key(pem, password=None)
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


def yuan_to_fen(text: str) -> int:
    """Bill amounts are yuan with two decimals ("23.50"); exact decimal arithmetic keeps every fen."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"not an amount: {text!r}") from None
    fen = value * 100
    if not value.is_finite() or value < 0 or fen != fen.to_integral_value():
        raise ValueError(f"not an amount in fen: {text!r}")
    return int(fen)


def _bill_fields(line: str) -> list[str]:
    """One bill line's fields: WeChat prefixes each with a backtick so spreadsheets keep long numbers as text."""
    row = next(csv.reader([line]), [])
    return [field.strip().removeprefix("`").strip() for field in row]


def parse_trade_bill(text: str) -> list[BillLine]:
    """The lines of a ``bill_type=ALL`` trade bill, checked against the summary block at its end.

    Payments (交易状态 SUCCESS) and refunds (REFUND) become lines; REVOKED rows moved no money and are skipped.
    Amounts are the order amount and the requested refund amount, which is what our own records hold. Raises
    ValueError for anything that is not such a bill, including a summary that disagrees with the lines.
    """
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise ValueError("empty bill")
    header = _bill_fields(lines[0])
    missing = [name for name in ("交易时间", "微信订单号", "商户订单号", "交易状态", "应结订单金额", "商户退款单号",
                                 "退款金额") if name not in header]
    if missing:
        raise ValueError(f"bill header lacks {', '.join(missing)}")
    try:
        end = next(i for i, line in enumerate(lines) if _bill_fields(line)[:1] == [BILL_SUMMARY_COLUMNS[0]])
    except StopIteration:
        raise ValueError("bill has no summary block") from None
    if end + 1 >= len(lines):
        raise ValueError("bill summary has no values")
    column = {name: i for i, name in enumerate(header)}
    result: list[BillLine] = []
    settled = refunded = 0
    for line in lines[1:end]:
        fields = _bill_fields(line)
        if len(fields) != len(header):
            raise ValueError(f"bill line has {len(fields)} fields, header has {len(header)}")
        line_out, settled_fen, refund_fen = _bill_line(fields, column)
        settled += settled_fen
        refunded += refund_fen
        if line_out is not None:
            result.append(line_out)
    _check_bill_summary(_bill_fields(lines[end]), _bill_fields(lines[end + 1]), end - 1, settled, refunded)
    return result


def _bill_line(fields: list[str], column: Mapping[str, int]) -> tuple[BillLine | None, int, int]:
    """One row as a BillLine (None for rows that moved no money), plus its settled and refunded fen."""
    def get(name: str, fallback: str | None = None) -> str:
        if name in column:
            return fields[column[name]]
        if fallback is not None:
            return fields[column[fallback]]
        return ""

    state = get("交易状态")
    settled = yuan_to_fen(get("应结订单金额") or "0")
    refund = yuan_to_fen(get("退款金额") or "0")
    if state == "SUCCESS":
        amount = yuan_to_fen(get("订单金额", "应结订单金额"))
        return BillLine(out_trade_no=get("商户订单号"), transaction_id=get("微信订单号"), kind="PAY",
                        amount_fen=amount, time=get("交易时间")), settled, refund
    if state == "REFUND":
        amount = yuan_to_fen(get("申请退款金额", "退款金额"))
        return BillLine(out_trade_no=get("商户订单号"), transaction_id=get("微信订单号"), kind="REFUND",
                        amount_fen=amount, time=get("交易时间"), out_refund_no=get("商户退款单号") or None), \
            settled, refund
    if state == "REVOKED":
        return None, settled, refund
    raise ValueError(f"unknown bill trade state {state!r}")


def _check_bill_summary(names: list[str], values: list[str], count: int, settled: int, refunded: int) -> None:
    summary = dict(zip(names, values))
    try:
        stated = (int(summary["总交易单数"]), yuan_to_fen(summary["应结订单总金额"]), yuan_to_fen(summary["退款总金额"]))
    except (KeyError, ValueError):
        raise ValueError("bill summary is malformed") from None
    if stated != (count, settled, refunded):
        raise ValueError(f"bill summary {stated} disagrees with its lines {(count, settled, refunded)}")


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
                 refund_notify_url: str | None = None, store_id: str = "HOSPITAL-KIOSK",
                 device_id: str | None = None):
        if len(apiv3_key.encode("ascii")) != 32:
            raise ValueError("the APIv3 key must be 32 ASCII characters")
        self.base_url = base_url.rstrip("/")
        self.mchid = mchid
        self.appid = appid
        self.refund_notify_url = refund_notify_url
        # Code payments must say where the code was scanned (scene_info.store_info.id is required there).
        self.store_id = store_id
        self.device_id = device_id
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
            amount = content.get("amount") or {}
            total = amount.get("total") if isinstance(amount, Mapping) else None
            return TradeState(out_trade_no=out_trade_no, state="REFUND",
                              transaction_id=_optional_text(content.get("transaction_id")),
                              amount_fen=total if _is_fen(total) else None, success_time=None)
        raise ChannelError("UNSUPPORTED_EVENT", f"event type {event_type!r} is not handled")

    # -- optional capabilities ---------------------------------------------------------------------------------

    def pay_by_code(self, out_trade_no: str, description: str, amount_fen: int, auth_code: str) -> TradeState:
        """Charge the payment code shown on the patient's phone (``POST /v3/pay/transactions/codepay``).

        This is the direct-merchant v3 API (普通商户, documented since 2024; service providers use
        ``/v3/pay/partner/transactions/codepay``). It has no notify_url: code payments are not notified, so the
        answer, then ``query``, are the only sources of truth. "USERPAYING" (the patient must confirm or enter a
        password) is recognised in every shape it may take: HTTP 202, a 200 with ``trade_state`` USERPAYING, or
        an error answer with code USERPAYING. Because money may move the moment the code is charged, every
        answer that does not prove an outcome raises ChannelUnavailable (never ChannelError): the caller queries,
        and reverses at its deadline.
        """
        _check_out_trade_no(out_trade_no)
        _check_fen("amount_fen", amount_fen)
        _check_description(description)
        if not isinstance(auth_code, str) or not AUTH_CODE_PATTERN.match(auth_code):
            raise ValueError("a WeChat payment code is 18 digits starting with 10..15")
        scene: dict[str, Any] = {"store_info": {"id": self.store_id}}
        if self.device_id:
            scene["device_id"] = self.device_id
        payload = {"appid": self.appid, "mchid": self.mchid, "description": description,
                   "out_trade_no": out_trade_no, "payer": {"auth_code": auth_code},
                   "amount": {"total": amount_fen, "currency": "CNY"}, "scene_info": scene}
        userpaying = TradeState(out_trade_no, "USERPAYING", None, amount_fen, None)
        try:
            status, answer = self._exchange("POST", "/v3/pay/transactions/codepay", payload=payload)
        except ChannelError as exc:
            if exc.code == "USERPAYING":
                return userpaying
            raise _unknown_outcome(exc) from None
        if status == 202 or (answer or {}).get("trade_state") == "USERPAYING":
            return userpaying
        try:
            state = self._trade_state(answer or {})
        except ChannelError as exc:
            self._log.warning("WeChat Pay code payment %s: uninterpretable answer (%s)", out_trade_no, exc.code)
            raise ChannelUnavailable(f"code payment answer cannot be interpreted: {exc.code}") from None
        if state.out_trade_no != out_trade_no:
            raise ChannelUnavailable("code payment answered for another trade")
        return state

    def reverse(self, out_trade_no: str) -> None:
        """Undo a code payment (``POST /v3/pay/transactions/out-trade-no/{out_trade_no}/reverse``).

        The service closes the trade if unpaid and refunds it if paid, so the caller need not know which one
        happened. Repeating it is harmless. An unknown trade is ChannelError ORDER_NOT_EXIST: a definite answer
        that there is nothing to undo (the code payment never reached the service).
        """
        _check_out_trade_no(out_trade_no)
        try:
            answer = self._request("POST", f"/v3/pay/transactions/out-trade-no/{quote(out_trade_no, safe='')}"
                                           "/reverse", payload={"appid": self.appid, "mchid": self.mchid})
        except ChannelError as exc:
            raise _unknown_outcome(exc) from None
        if answer and answer.get("out_trade_no") not in (None, out_trade_no):
            raise ChannelUnavailable("reverse answered for another trade")

    def query_refund(self, out_refund_no: str) -> str:
        """A refund's status (``GET /v3/refund/domestic/refunds/{out_refund_no}``)."""
        _check_out_refund_no(out_refund_no)
        answer = self._request("GET", f"/v3/refund/domestic/refunds/{quote(out_refund_no, safe='')}")
        if not answer:
            raise ChannelError("INVALID_RESPONSE", "empty refund query answer")
        if answer.get("out_refund_no") not in (None, out_refund_no):
            raise ChannelError("INVALID_RESPONSE", "refund query answered for another refund")
        status = answer.get("status")
        if status not in _REFUND_STATES:
            raise ChannelError("INVALID_RESPONSE", f"unrecognised refund status {status!r}")
        return str(status)

    def download_bill(self, bill_date: date) -> list[BillLine]:
        """The trade bill (bill_type=ALL) of one day, China time: payments and refunds.

        ``GET /v3/bill/tradebill`` names a download URL and the file's SHA1; the file is fetched with a signed
        request and its hash checked before parsing. A hash mismatch raises ChannelUnavailable: the statement
        is not trustworthy *now* (corrupted or tampered in transit) but the provider has not said anything
        definite, so reconciliation must retry later rather than record a failure. NO_STATEMENT_EXIST (no
        trade that day) yields an empty list; STATEMENT_CREATING (not generated yet) is ChannelUnavailable.
        """
        if not isinstance(bill_date, date) or isinstance(bill_date, datetime):
            raise ValueError("bill_date must be a date")
        try:
            answer = self._request("GET", "/v3/bill/tradebill",
                                   query={"bill_date": bill_date.isoformat(), "bill_type": "ALL"})
        except ChannelError as exc:
            if exc.code == "NO_STATEMENT_EXIST":
                return []
            if exc.code == "STATEMENT_CREATING":
                raise ChannelUnavailable(f"bill of {bill_date} is still being generated") from None
            raise
        answer = answer or {}
        url, hash_type, hash_value = answer.get("download_url"), answer.get("hash_type"), answer.get("hash_value")
        if not isinstance(url, str) or not isinstance(hash_value, str) or hash_type != "SHA1":
            raise ChannelError("INVALID_RESPONSE", "bill answer lacks download_url or a SHA1 hash")
        content = self._download(url)
        if hashlib.sha1(content).hexdigest() != hash_value.lower():
            self._log.warning("WeChat Pay bill of %s: hash mismatch, file refused", bill_date)
            raise ChannelUnavailable(f"bill of {bill_date} does not match its hash")
        try:
            return parse_trade_bill(content.decode("utf-8-sig"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise ChannelError("INVALID_BILL", f"bill of {bill_date}: {exc}") from None

    # -- plumbing ----------------------------------------------------------------------------------------------

    def _trade_state(self, trade: Mapping[str, Any]) -> TradeState:
        """Reduce a transaction object to a TradeState; any field of the wrong type is a ChannelError, because
        the same code reads decrypted notifications, whose content only the platform's word vouches for."""
        if trade.get("mchid") not in (None, self.mchid):
            raise ChannelError("MCHID_MISMATCH", "trade belongs to another merchant")
        out_trade_no = trade.get("out_trade_no")
        raw_state = trade.get("trade_state")
        state = _STATE_ALIASES.get(raw_state, raw_state) if isinstance(raw_state, str) else None
        if not isinstance(out_trade_no, str) or state not in _KNOWN_STATES:
            raise ChannelError("INVALID_RESPONSE", f"unrecognised trade (state {state!r})")
        amount = trade.get("amount") or {}
        if not isinstance(amount, Mapping):
            raise ChannelError("INVALID_RESPONSE", "trade amount is not an object")
        if amount.get("currency", "CNY") != "CNY":
            raise ChannelError("INVALID_RESPONSE", "unexpected currency")
        total = amount.get("total")
        transaction_id = _optional_text(trade.get("transaction_id"))
        if state in ("SUCCESS", "REFUND") and (not _is_fen(total) or not transaction_id):
            # A payment that cannot be matched to an amount and a transaction cannot be acted on.
            raise ChannelError("INVALID_RESPONSE", "paid trade without amount or transaction_id")
        return TradeState(out_trade_no=out_trade_no, state=state, transaction_id=transaction_id,
                          amount_fen=total if _is_fen(total) else None,
                          success_time=_optional_text(trade.get("success_time")))

    def _request(self, method: str, path: str, *, query: Mapping[str, str] | None = None,
                 payload: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
        """A signed call whose answer must be signed; returns the JSON object answered, if any."""
        return self._exchange(method, path, query=query, payload=payload)[1]

    def _exchange(self, method: str, path: str, *, query: Mapping[str, str] | None = None,
                  payload: Mapping[str, Any] | None = None) -> tuple[int, dict[str, Any] | None]:
        """Like ``_request``, but also returns the HTTP status (code payment tells USERPAYING apart by 202)."""
        body = b"" if payload is None else json.dumps(payload, ensure_ascii=False,
                                                       separators=(",", ":")).encode("utf-8")
        url = self.base_url + path + ("?" + urlencode(query) if query else "")
        what = f"{method} {path}"
        response = self._send(method, url, body, what)
        return response.status_code, self._interpret(response, what)

    def _send(self, method: str, url: str, body: bytes, what: str) -> httpx.Response:
        """Sign and send one request; no answer at all (network, timeout, dropped connection) is unavailability."""
        headers = {"Content-Type": "application/json"} if body else {}
        request = self._http.build_request(method, url, content=body or None, headers=headers)
        # Sign exactly what goes on the wire: the encoded path and query after httpx normalised them.
        raw = request.url.raw_path
        canonical = (raw[len(self._prefix):] if self._prefix and raw.startswith(self._prefix) else raw)
        request.headers["Authorization"] = build_authorization(
            self.mchid, self._serial_no, self._merchant_key, method, canonical.decode("ascii"), body)
        try:
            return self._http.send(request)
        except httpx.HTTPError as exc:
            self._log.warning("WeChat Pay %s: no answer (%s)", what, type(exc).__name__)
            raise ChannelUnavailable(f"{what}: {type(exc).__name__}") from None

    def _interpret(self, response: httpx.Response, what: str, *, signed_success: bool = True
                   ) -> dict[str, Any] | None:
        """Turn an answer into a JSON object or the exception its status and signature call for."""
        status = response.status_code
        request_id = response.headers.get("Request-ID", "-")
        if status >= 500 or status < 200 or 300 <= status < 400:
            self._log.warning("WeChat Pay %s: HTTP %d (request id %s)", what, status, request_id)
            raise ChannelUnavailable(f"{what}: HTTP {status}")
        content = response.content
        signed = any(name in response.headers for name in SIGNATURE_HEADERS)
        if signed or (signed_success and status < 300 and content):
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
        if not content or not signed_success:
            return None
        try:
            answer = json.loads(content)
        except ValueError:
            raise ChannelError("INVALID_RESPONSE", f"{what}: answer is not JSON") from None
        if not isinstance(answer, dict):
            raise ChannelError("INVALID_RESPONSE", f"{what}: answer is not a JSON object")
        return answer

    def _download(self, url: str) -> bytes:
        """Fetch a bill file: a signed GET whose (unsigned) answer is raw bytes, from our own service only."""
        target, own = httpx.URL(url), httpx.URL(self.base_url)
        if (target.scheme, target.host, target.port) != (own.scheme, own.host, own.port):
            # The merchant's signature and the bill must not travel to a host we were not configured for.
            raise ChannelError("INVALID_RESPONSE", "bill download_url points to another host")
        what = "GET /v3/billdownload/file"
        response = self._send("GET", url, b"", what)
        self._interpret(response, what, signed_success=False)
        if len(response.content) > MAX_BILL_BYTES:
            raise ChannelError("INVALID_BILL", "bill file is implausibly large")
        return response.content


def _is_fen(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _optional_text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _check_fen(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive integer number of fen")


def _unknown_outcome(exc: ChannelError) -> Exception:
    """Errors like SYSTEM_ERROR do not say whether money moved; they must not pass for a definite no."""
    if exc.code in _UNKNOWN_OUTCOME_CODES:
        return ChannelUnavailable(f"outcome unknown: {exc.code}")
    return exc


def _check_description(description: str) -> None:
    if not isinstance(description, str) or not description or len(description) > 127:
        raise ValueError("description must be 1..127 characters")


def _check_out_refund_no(out_refund_no: str) -> None:
    if not isinstance(out_refund_no, str) or not _OUT_REFUND_NO.match(out_refund_no):
        raise ValueError("out_refund_no must be 1..64 characters of [A-Za-z0-9_-|*@]")


def _check_out_trade_no(out_trade_no: str) -> None:
    if not isinstance(out_trade_no, str) or not _OUT_TRADE_NO.match(out_trade_no):
        raise ValueError("out_trade_no must be 6..32 characters of [A-Za-z0-9_-|*]")
