"""What a scanned text is: which of the kiosk's services it opens, or a clear word that it opens none.

The rules are data (`Rules`), because most formats here are not ours to define:

* 医保电子凭证 (national medical-insurance e-voucher): the QR content is issued by the national 医保 platform
  and decoded by the platform through the provincial interface (the kiosk only forwards the token). We do
  not have the issuer's format specification; the default rule is "one of the configured prefixes, or a
  28-120 character base64/base64url token that is not all digits". Confirm it against the province's
  接口规范 and set `insurance_prefixes` / `insurance_pattern` in the site configuration.
* 电子健康卡 (e-health card): likewise issued by the regional health platform. Default rule: an `ehc:`
  prefix (configurable) or exactly 64 hexadecimal characters.
* visit code: the project's own, minted by `central/his/reference.py::_visit_code` as exactly 12 digits.
* visit card (就诊卡): the barcode on the plastic card the hospital hands out, bound to a patient at the kiosk.
  Each hospital numbers its own cards; default exactly 10 digits, set `visit_card` in the site configuration.
* WeChat Pay payment code: 18 digits starting 10-15 (WeChat Pay's published 付款码 rule).
* Alipay payment code: 16-24 digits starting 25-30 (Alipay's published 付款码 rule).
* prescription slip: the project's assumption `CF` + 8-20 digits (处方); the HIS prints it, so configurable.
* inpatient wristband: `ZY` + 6-12 digits (住院号) by default, configurable.

Anything else, and anything that looks like garbage (control characters, over 1024 characters, a street
URL), is `UNKNOWN` with a message the screen can show as is. `classify` never raises: a scanner is a
stranger's input device, anyone can hold any code under it.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from enum import Enum

MAX_TEXT_LENGTH = 1024


class ScanKind(str, Enum):
    INSURANCE_VOUCHER = "insurance_voucher"  # 医保电子凭证
    E_HEALTH_CARD = "e_health_card"  # 电子健康卡
    VISIT_CODE = "visit_code"  # 就诊码 (this project's)
    VISIT_CARD = "visit_card"  # 就诊卡 (the hospital's card numbers)
    WECHAT_PAY = "wechat_pay"  # 微信付款码
    ALIPAY = "alipay"  # 支付宝付款码
    PRESCRIPTION = "prescription"  # 处方单
    WRISTBAND = "wristband"  # 住院腕带
    UNKNOWN = "unknown"


MESSAGES: dict[ScanKind, tuple[str, str]] = {
    ScanKind.INSURANCE_VOUCHER: ("已识别医保电子凭证", "Medical-insurance e-voucher recognised"),
    ScanKind.E_HEALTH_CARD: ("已识别电子健康卡", "E-health card recognised"),
    ScanKind.VISIT_CODE: ("已识别就诊码", "Visit code recognised"),
    ScanKind.VISIT_CARD: ("已识别就诊卡", "Visit card recognised"),
    ScanKind.WECHAT_PAY: ("已识别微信付款码", "WeChat Pay payment code recognised"),
    ScanKind.ALIPAY: ("已识别支付宝付款码", "Alipay payment code recognised"),
    ScanKind.PRESCRIPTION: ("已识别处方单", "Prescription slip recognised"),
    ScanKind.WRISTBAND: ("已识别住院腕带", "Inpatient wristband recognised"),
}

NOT_OURS = ("这个二维码不是本院的就诊码，请出示挂号单上的就诊码、医保电子凭证或电子健康卡",
            "This code is not one of this hospital's codes. Please show the visit code on your registration "
            "slip, your medical-insurance e-voucher or your e-health card.")
EMPTY = ("没有读到内容，请重新扫码", "Nothing was read. Please scan again.")
TOO_LONG = ("二维码内容过长，不是本院的就诊码", "The code is too long to be one of this hospital's codes.")
CONTROL = ("二维码内容无法识别，请重新扫码或到人工窗口办理",
           "The code contains unreadable characters. Please scan again or go to a staffed counter.")
URL = ("这是一个网址二维码，不是本院的就诊码；本机不会打开网址",
       "This code is a web address, not one of this hospital's codes; the kiosk does not open web addresses.")
UNREADABLE = ("扫码内容无法识别，请重新扫码", "The scan could not be read. Please scan again.")


@dataclass(frozen=True)
class Scan:
    kind: ScanKind
    value: str  # normalised content; empty for UNKNOWN so garbage is never echoed back to a screen
    message_zh: str
    message_en: str

    @property
    def recognised(self) -> bool:
        return self.kind is not ScanKind.UNKNOWN

    def __repr__(self) -> str:
        # Payment codes are money: logs show the kind and the last four characters only.
        tail = self.value[-4:] if len(self.value) > 8 else ""
        return f"Scan({self.kind.value}, value=<{len(self.value)} chars …{tail}>)"

    __str__ = __repr__


def unknown(message: tuple[str, str] = NOT_OURS) -> Scan:
    return Scan(ScanKind.UNKNOWN, "", *message)


def unreadable() -> Scan:
    """For the poller: the scanner sent bytes that are not text at all."""
    return unknown(UNREADABLE)


@dataclass(frozen=True)
class Rules:
    """Site-configurable patterns; each is matched against the whole (stripped) text."""

    visit_code: str = r"\d{12}"
    visit_card: str = r"\d{10}"
    wechat_pay: str = r"1[0-5]\d{16}"
    alipay: str = r"(?:2[5-9]|30)\d{14,22}"
    e_health_prefixes: tuple[str, ...] = ("ehc:",)
    e_health_pattern: str = r"[0-9A-Fa-f]{64}"
    insurance_prefixes: tuple[str, ...] = ()
    insurance_pattern: str = r"(?=.*[A-Za-z+/_-])[A-Za-z0-9+/_-]{28,118}={0,2}"
    prescription: str = r"CF\d{8,20}"
    wristband: str = r"ZY\d{6,12}"
    _compiled: dict[str, re.Pattern[str]] = field(default_factory=dict, init=False, repr=False, compare=False)

    def match(self, name: str, text: str) -> bool:
        pattern = self._compiled.get(name)
        if pattern is None:
            pattern = re.compile(getattr(self, name), re.ASCII)
            self._compiled[name] = pattern
        return pattern.fullmatch(text) is not None


DEFAULT_RULES = Rules()

# Cc control, Cf format (zero-width, bidi overrides), Cs surrogates, Co private use, Cn unassigned.
_BAD_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})
_URL = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|www\.)", re.IGNORECASE)


def classify(text: str, rules: Rules = DEFAULT_RULES) -> Scan:
    try:
        return _classify(text, rules)
    except Exception:  # a bad site pattern must not take the scanner down; the patient sees "not ours"
        return unknown()


def _classify(text: str, rules: Rules) -> Scan:
    if not isinstance(text, str):
        return unknown(UNREADABLE)
    if len(text) > MAX_TEXT_LENGTH:
        return unknown(TOO_LONG)
    text = text.strip(" \t\r\n")
    if not text:
        return unknown(EMPTY)
    if any(unicodedata.category(ch) in _BAD_CATEGORIES for ch in text):
        return unknown(CONTROL)
    if _URL.match(text):
        return unknown(URL)
    upper = text.upper()
    if rules.match("visit_code", text):
        return _found(ScanKind.VISIT_CODE, text)
    if rules.match("visit_card", upper):
        return _found(ScanKind.VISIT_CARD, upper)
    if rules.match("wechat_pay", text):
        return _found(ScanKind.WECHAT_PAY, text)
    if rules.match("alipay", text):
        return _found(ScanKind.ALIPAY, text)
    if rules.match("wristband", upper):
        return _found(ScanKind.WRISTBAND, upper)
    if rules.match("prescription", upper):
        return _found(ScanKind.PRESCRIPTION, upper)
    for prefix in rules.e_health_prefixes:
        if prefix and text.lower().startswith(prefix.lower()) and len(text) > len(prefix):
            return _found(ScanKind.E_HEALTH_CARD, text)
    if rules.match("e_health_pattern", text):
        return _found(ScanKind.E_HEALTH_CARD, text.lower())
    for prefix in rules.insurance_prefixes:
        if prefix and text.startswith(prefix) and len(text) > len(prefix):
            return _found(ScanKind.INSURANCE_VOUCHER, text)
    if rules.match("insurance_pattern", text):
        return _found(ScanKind.INSURANCE_VOUCHER, text)
    return unknown()


def _found(kind: ScanKind, value: str) -> Scan:
    zh, en = MESSAGES[kind]
    return Scan(kind, value, zh, en)
