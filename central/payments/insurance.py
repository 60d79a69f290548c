"""Medical-insurance (医保) settlement of outpatient bills, as a channel the order logic can use.

**The protocol here is the project's own stand-in.** The national medical-insurance platform's interfaces
(医疗保障信息平台 定点医药机构接口规范) are deployed per province, with provincial extensions, signing schemes and
front-end processors that a site receives when it is connected; a site replaces this module's transport with
that. "KIOSK-MI/1" keeps the national flow and its transaction numbers (``infno``) so that the order logic
written against it carries over:

* ``1101`` identify the insured person (人员信息获取) by medical-insurance e-voucher code (``cert_type`` "01",
  医保电子凭证, the token the kiosk scanned) or social-security card number ("03", 社保卡);
* ``2206`` pre-settle (预结算) a bill's items: the platform computes the split without moving money;
* ``2207`` settle (结算) a pre-settlement: the fund and the personal account pay their parts; the answer is the
  settlement id (``setl_id``);
* ``2208`` reverse (冲正/结算撤销) a settlement — the one whose answer never came, or whose self-pay part failed;
* ``2209`` refund (退费) items not yet executed. The national flow does this as 2208 followed by a new 2207 for
  the remaining items; this protocol folds both into one message with the same effect (the settlement is
  recomputed over the remaining items, and the differences go back to the fund and the account);
* ``5203`` query a settlement (结算信息查询).

Envelope: one POST to ``{base_url}/mi/v1/{infno}`` with a JSON body ``{infno, msgid, fixmedins_code, inf_time,
input}``; ``msgid`` is the hospital's own serial for the call and ``inf_time`` ``YYYY-MM-DD HH:MM:SS`` China time
(refused more than five minutes off). Headers ``X-MI-App-Id`` and ``X-MI-Signature: <ALG>:<hex>``, ALG being
``HMAC-SM3`` or ``HMAC-SHA256`` over the exact body with the app secret; answers ``{infcode, err_code,
err_msg, inf_refmsgid, output}`` are signed the same way. ``infcode`` "0" is success; otherwise ``err_code``
says why (see ``ERROR_CODES``).

Idempotency rests on the hospital's serial numbers: pre-settle on ``bill_no`` + items, settle on
``settle_serial`` (our ``out_trade_no``), refund on ``refund_serial``; repeating a call with the same serial
returns the first answer. A reversal for a settle serial the platform never saw is remembered, and a late
settle under that serial is refused — so "reverse when in doubt" is always safe.

The split (``split_bill``) follows simple demo rules documented on the function; the platform's real rules
(catalogue classes, ceilings, accumulations, special diseases) are province-specific and not reproduced.
"""
from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from central.payments.channel import ChannelError, ChannelUnavailable, PaymentChannel, SignatureError, TradeState
from central.payments.unionpay import CHINA_TZ, MAC_ALGORITHMS, compute_mac, mac_header, verify_mac_header

PROTOCOL = "KIOSK-MI/1"
APP_ID_HEADER = "X-MI-App-Id"
SIGNATURE_HEADER = "X-MI-Signature"
MAX_CLOCK_SKEW_SECONDS = 300
INF_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

CERT_E_VOUCHER = "01"  # 医保电子凭证
CERT_SOCIAL_SECURITY_CARD = "03"  # 社会保障卡

#: Insurance types (险种) the demo knows, with the share of the eligible amount above the deductible that the
#: pooled fund (统筹基金) pays, in per mille.
INSUTYPE_NAMES = {"310": "职工基本医疗保险", "390": "城乡居民基本医疗保险"}
FUND_PERMILLE = {"310": 700, "390": 500}
#: Catalogue classes (甲/乙/丙类) and the share of an item's amount that is eligible for the fund, per mille:
#: 乙类 items carry 10 % 先行自付 (paid by the patient first); 丙类 items are outside the catalogue.
CATEGORY_ELIGIBLE_PERMILLE = {"A": 1000, "B": 900, "C": 0}

ERROR_CODES = {
    "1001": "人员信息不存在或凭证无效 / no insured person for this code or card",
    "1002": "电子凭证已过期 / the e-voucher code has expired",
    "2001": "参保状态异常 / the insurance is suspended",
    "3001": "预结算不存在或已失效 / no such pre-settlement",
    "3002": "流水号重复且内容不一致 / serial number reused for different content",
    "3003": "结算已冲正 / the settlement was reversed",
    "3004": "待遇已变化，请重新预结算 / the split changed since pre-settlement; pre-settle again",
    "3005": "结算不存在 / no such settlement",
    "4001": "退费明细无效 / refund items unknown or already refunded",
    "9001": "签名错误 / signature does not verify",
    "9002": "请求参数错误 / invalid request",
    "9999": "平台拒绝 / refused by the platform",
}

_SERIAL = re.compile(r"^[A-Za-z0-9_\-]{6,48}$")

log = logging.getLogger(__name__)


# --- the split ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BillItem:
    """One line of a bill (费用明细): ``item_id`` is the hospital's detail serial (feedetl_sn)."""

    item_id: str
    name: str
    category: str  # "A" 甲类 | "B" 乙类 | "C" 丙类
    amount_fen: int

    def to_dict(self) -> dict[str, Any]:
        return {"item_id": self.item_id, "name": self.name, "category": self.category, "amount_fen": self.amount_fen}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BillItem:
        item = cls(str(data["item_id"]), str(data.get("name", "")), str(data["category"]), data["amount_fen"])
        item.check()
        return item

    def check(self) -> None:
        if self.category not in CATEGORY_ELIGIBLE_PERMILLE:
            raise ValueError(f"item category must be one of {sorted(CATEGORY_ELIGIBLE_PERMILLE)}")
        if not isinstance(self.amount_fen, int) or isinstance(self.amount_fen, bool) or self.amount_fen < 0:
            raise ValueError("an item's amount is a non-negative integer number of fen")
        if not self.item_id:
            raise ValueError("every item needs its item_id")


@dataclass(frozen=True)
class Split:
    """How a bill is paid: ``fund_fen + account_fen + self_pay_fen == total_fen``, always, to the fen."""

    total_fen: int
    fund_fen: int  # 统筹基金支付
    account_fen: int  # 个人账户支付
    self_pay_fen: int  # 个人现金支付 (自付): what the patient pays through another channel
    eligible_fen: int  # 符合政策范围金额
    deductible_fen: int  # 起付线 consumed by this bill
    excluded_fen: int  # 丙类 (outside the catalogue)

    @property
    def insurance_fen(self) -> int:
        """What the insurance side pays (fund + account): the amount this channel "collects"."""
        return self.fund_fen + self.account_fen

    def to_dict(self) -> dict[str, int]:
        return {"total_fen": self.total_fen, "fund_fen": self.fund_fen, "account_fen": self.account_fen,
                "self_pay_fen": self.self_pay_fen, "eligible_fen": self.eligible_fen,
                "deductible_fen": self.deductible_fen, "excluded_fen": self.excluded_fen}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Split:
        values = {name: data[name] for name in ("total_fen", "fund_fen", "account_fen", "self_pay_fen",
                                                 "eligible_fen", "deductible_fen", "excluded_fen")}
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values.values()):
            raise ValueError("split amounts are non-negative integers")
        split = cls(**values)
        if split.fund_fen + split.account_fen + split.self_pay_fen != split.total_fen:
            raise ValueError("split parts do not add up to the total")
        return split


def split_bill(items: Iterable[BillItem], *, insutype: str, deductible_remaining_fen: int,
               account_balance_fen: int, account_allowed: bool = True) -> Split:
    """The demo split rules, in integer fen so that the parts add up exactly:

    1. eligible amount = Σ floor(item × class share) — 甲类 100 %, 乙类 90 % (10 % 先行自付), 丙类 0 %;
    2. the deductible (起付线) still open this year is taken from the eligible amount first;
    3. the fund pays floor(rest × fund share) — 70 % for employees (310), 50 % for residents (390);
    4. the personal account (employees only) pays what remains for the patient, except 丙类 items,
       up to its balance;
    5. self-pay is the remainder: total − fund − account, so nothing is lost to rounding.
    """
    items = list(items)
    for item in items:
        item.check()
    if insutype not in FUND_PERMILLE:
        raise ValueError(f"unknown insurance type {insutype!r}")
    total = sum(item.amount_fen for item in items)
    eligible = sum(item.amount_fen * CATEGORY_ELIGIBLE_PERMILLE[item.category] // 1000 for item in items)
    excluded = sum(item.amount_fen for item in items if item.category == "C")
    deductible = min(eligible, max(0, deductible_remaining_fen))
    fund = (eligible - deductible) * FUND_PERMILLE[insutype] // 1000
    account_payable = max(0, total - fund - excluded)
    account = min(account_payable, max(0, account_balance_fen)) if account_allowed else 0
    return Split(total, fund, account, total - fund - account, eligible, deductible, excluded)


# --- what the channel hands back ------------------------------------------------------------------------------

@dataclass(frozen=True)
class InsuredPerson:
    """The platform's answer to 1101. The name and ID number are personal data: never logged, masked in repr."""

    psn_no: str
    name: str = field(repr=False)
    id_number: str = field(repr=False)
    insutype: str
    insutype_name: str
    account_balance_fen: int
    deductible_remaining_fen: int

    @property
    def masked_name(self) -> str:
        return self.name[:1] + "*" * max(1, len(self.name) - 1) if self.name else ""


@dataclass(frozen=True)
class PreSettlement:
    presettle_id: str
    bill_no: str
    psn_no: str
    split: Split


@dataclass(frozen=True)
class Settlement:
    setl_id: str  # the platform's settlement id
    settle_serial: str  # ours (out_trade_no)
    psn_no: str
    state: str  # "SETTLED" | "REVERSED" | "REFUNDED"
    split: Split  # as it stands now (after any refunds)
    settle_time: str | None = None


@dataclass(frozen=True)
class InsuranceRefund:
    """What a refund gave back: fund and account parts by the platform itself; ``self_pay_fen`` is what the
    hospital must give back through the channel that took the self-pay part."""

    refund_serial: str
    setl_id: str
    fund_fen: int
    account_fen: int
    self_pay_fen: int
    item_ids: tuple[str, ...]

    @property
    def insurance_fen(self) -> int:
        return self.fund_fen + self.account_fen


def mask_code(code: str) -> str:
    """An e-voucher token or card number fit for a log line: a few characters at each end."""
    if len(code) <= 8:
        return "*" * len(code)
    return code[:3] + "*" * (len(code) - 6) + code[-3:]


# --- the channel ----------------------------------------------------------------------------------------------

class InsuranceChannel(PaymentChannel):
    """A hospital-side client of the platform (KIOSK-MI/1, see the module docstring). Holds no state.

    As a ``PaymentChannel`` the insurance part of a bill is a trade whose ``out_trade_no`` is the settle serial:
    ``query`` reports the settlement, ``close`` reverses an unsettled one, ``refund`` gives back the whole
    insurance part (partial refunds go by items: ``refund_items``). The flow a kiosk runs: ``identify`` →
    ``presettle`` (show the split) → ``settle`` → charge the self-pay part elsewhere → on failure ``reverse``.
    """

    def __init__(self, base_url: str, hospital_code: str, app_id: str, app_secret: bytes, *,
                 sign_algorithm: str = "HMAC-SM3", timeout: float = 10.0,
                 transport: httpx.BaseTransport | None = None, logger: logging.Logger | None = None):
        if sign_algorithm not in MAC_ALGORITHMS:
            raise ValueError(f"unknown signing algorithm {sign_algorithm!r}; use one of {sorted(MAC_ALGORITHMS)}")
        if len(app_secret) < 16:
            raise ValueError("the app secret must be at least 16 bytes")
        self.base_url = base_url.rstrip("/")
        self.hospital_code = hospital_code
        self.app_id = app_id
        self.sign_algorithm = sign_algorithm
        self._secret = app_secret
        self._log = logger or log
        self._http = httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, 3.0)), transport=transport)

    def __repr__(self) -> str:
        return f"InsuranceChannel({self.base_url!r}, hospital={self.hospital_code!r}, app_id={self.app_id!r})"

    def shutdown(self) -> None:
        self._http.close()

    def __enter__(self) -> InsuranceChannel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # --- the insurance flow -------------------------------------------------------------------------------

    def identify(self, cert_type: str, cert_no: str, msgid: str) -> InsuredPerson:
        """1101: who holds this e-voucher code (``CERT_E_VOUCHER``) or social-security card
        (``CERT_SOCIAL_SECURITY_CARD``)."""
        if cert_type not in (CERT_E_VOUCHER, CERT_SOCIAL_SECURITY_CARD) or not cert_no:
            raise ValueError("cert_type is '01' (e-voucher) or '03' (social-security card), with its number")
        out = self._call("1101", msgid, {"mdtrt_cert_type": cert_type, "mdtrt_cert_no": cert_no})
        try:
            person = InsuredPerson(str(out["psn_no"]), str(out["psn_name"]), str(out["certno"]),
                                   str(out["insutype"]), str(out.get("insutype_name") or ""),
                                   int(out["balc_fen"]), int(out["deductible_remaining_fen"]))
        except (KeyError, TypeError, ValueError):
            raise ChannelError("INVALID_RESPONSE", "1101 answer lacks the person's fields") from None
        self._log.info("insurance: %s %s identified as person %s (%s)", "e-voucher" if cert_type == "01" else "card",
                       mask_code(cert_no), person.psn_no, person.insutype)
        return person

    def presettle(self, msgid: str, psn_no: str, bill_no: str, items: Sequence[BillItem]) -> PreSettlement:
        """2206: the split of this bill for this person, without moving money."""
        _check_serial(bill_no)
        if not items:
            raise ValueError("a bill has at least one item")
        for item in items:
            item.check()
        if len({item.item_id for item in items}) != len(items):
            raise ValueError("item ids must be unique within a bill")
        out = self._call("2206", msgid, {"psn_no": psn_no, "bill_no": bill_no,
                                         "items": [item.to_dict() for item in items]})
        split = self._split(out, "2206")
        if split.total_fen != sum(item.amount_fen for item in items):
            raise ChannelError("INVALID_RESPONSE", "pre-settlement total differs from the bill")
        presettle_id = str(out.get("presettle_id") or "")
        if not presettle_id:
            raise ChannelError("INVALID_RESPONSE", "2206 answer has no presettle_id")
        self._log.info("insurance: bill %s pre-settled: total %d = fund %d + account %d + self-pay %d fen",
                       bill_no, split.total_fen, split.fund_fen, split.account_fen, split.self_pay_fen)
        return PreSettlement(presettle_id, bill_no, psn_no, split)

    def settle(self, settle_serial: str, presettle_id: str) -> Settlement:
        """2207: settle a pre-settlement. Repeating it with the same serial returns the same settlement, so a
        timeout is answered by calling it again (or by ``reverse`` if the patient has gone)."""
        _check_serial(settle_serial)
        out = self._call("2207", settle_serial, {"settle_serial": settle_serial, "presettle_id": presettle_id})
        settlement = self._settlement(out, settle_serial)
        self._log.info("insurance: %s settled as %s: fund %d + account %d fen", settle_serial,
                       settlement.setl_id, settlement.split.fund_fen, settlement.split.account_fen)
        return settlement

    def reverse(self, out_trade_no: str) -> None:
        """2208: undo a settlement whatever became of it (never arrived, settled, unknown). Idempotent."""
        _check_serial(out_trade_no)
        self._call("2208", f"{out_trade_no}-R", {"settle_serial": out_trade_no})
        self._log.info("insurance: settlement %s reversed", out_trade_no)

    def refund_items(self, refund_serial: str, settle_serial: str, item_ids: Sequence[str],
                     reason: str = "") -> InsuranceRefund:
        """2209: give back the insurance part of items not yet executed; idempotent on ``refund_serial``.
        The answer's ``self_pay_fen`` is the hospital's to return through the self-pay channel."""
        _check_serial(refund_serial)
        _check_serial(settle_serial)
        if not item_ids or len(set(item_ids)) != len(item_ids):
            raise ValueError("name each item to refund once")
        out = self._call("2209", refund_serial, {"refund_serial": refund_serial, "settle_serial": settle_serial,
                                                 "item_ids": list(item_ids), "reason": reason[:80]})
        try:
            refund = InsuranceRefund(refund_serial, str(out["setl_id"]), _fen(out["fund_fen"]),
                                     _fen(out["account_fen"]), _fen(out["self_pay_fen"]),
                                     tuple(str(i) for i in out["item_ids"]))
        except (KeyError, TypeError, ValueError):
            raise ChannelError("INVALID_RESPONSE", "2209 answer lacks the refunded amounts") from None
        self._log.info("insurance: refund %s of %s: fund %d + account %d fen back, self-pay %d fen to return",
                       refund_serial, settle_serial, refund.fund_fen, refund.account_fen, refund.self_pay_fen)
        return refund

    def settlement(self, settle_serial: str) -> Settlement:
        """5203: the platform's record of a settlement; ``ChannelError("ORDER_NOT_EXIST")`` if it has none."""
        _check_serial(settle_serial)
        try:
            out = self._call("5203", f"{settle_serial}-Q", {"settle_serial": settle_serial})
        except ChannelError as exc:
            if exc.code == "3005":
                raise ChannelError("ORDER_NOT_EXIST", exc.message) from None
            raise
        return self._settlement(out, settle_serial)

    # --- PaymentChannel -----------------------------------------------------------------------------------

    def query(self, out_trade_no: str) -> TradeState:
        """The insurance part as a trade: SUCCESS when settled, CLOSED when reversed, REFUND after refunds."""
        found = self.settlement(out_trade_no)
        state = {"SETTLED": "SUCCESS", "REVERSED": "CLOSED", "REFUNDED": "REFUND"}.get(found.state)
        if state is None:
            raise ChannelError("INVALID_RESPONSE", f"unknown settlement state {found.state!r}")
        paid = state != "CLOSED"
        return TradeState(out_trade_no, state, found.setl_id if paid and found.setl_id else None,
                          found.split.insurance_fen if paid else None, found.settle_time if paid else None)

    def close(self, out_trade_no: str) -> None:
        """Make sure no settlement happens under this serial: reverse unless settled ("ORDERPAID" then)."""
        try:
            state: TradeState | None = self.query(out_trade_no)
        except ChannelError as exc:
            if exc.code != "ORDER_NOT_EXIST":
                raise
            state = None
        if state is not None and state.paid:
            raise ChannelError("ORDERPAID", "the settlement went through; reverse or refund it instead")
        if state is None:
            self.reverse(out_trade_no)

    def refund(self, out_trade_no: str, out_refund_no: str, refund_fen: int, total_fen: int,
               reason: str) -> str:
        """Give back the whole insurance part (all items still settled). Partial refunds go by item
        (``refund_items``), because the split of what remains is the platform's to recompute."""
        current = self.settlement(out_trade_no)
        if refund_fen != current.split.insurance_fen:
            raise ChannelError("PARTIAL_BY_ITEMS", "partial insurance refunds name their items (refund_items)")
        out = self._call("2209", out_refund_no, {"refund_serial": out_refund_no, "settle_serial": out_trade_no,
                                                 "item_ids": "ALL", "reason": reason[:80]})
        return "SUCCESS" if out.get("setl_id") else "PROCESSING"

    def create_native(self, out_trade_no: str, description: str, amount_fen: int, notify_url: str,
                      time_expire: datetime) -> str:
        raise NotImplementedError("insurance settles at the kiosk (identify, presettle, settle), not by QR code")

    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> TradeState:
        raise NotImplementedError("the insurance platform answers synchronously; it sends no notifications")

    # --- transport ----------------------------------------------------------------------------------------

    def _split(self, out: Mapping[str, Any], infno: str) -> Split:
        try:
            return Split.from_dict(out["split"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ChannelError("INVALID_RESPONSE", f"{infno} answer has no consistent split ({exc})") from None

    def _settlement(self, out: Mapping[str, Any], settle_serial: str) -> Settlement:
        if out.get("settle_serial") != settle_serial or not out.get("setl_id"):
            raise ChannelError("INVALID_RESPONSE", "settlement answer is for another serial")
        return Settlement(str(out["setl_id"]), settle_serial, str(out.get("psn_no") or ""),
                          str(out.get("state") or ""), self._split(out, str(out.get("infno", "2207"))),
                          out.get("settle_time"))

    def _call(self, infno: str, msgid: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        """One signed call; returns ``output`` of a successful answer, raises for anything else."""
        _check_serial(msgid)
        document = {"infno": infno, "msgid": msgid, "fixmedins_code": self.hospital_code,
                    "inf_time": datetime.now(CHINA_TZ).strftime(INF_TIME_FORMAT), "protocol": PROTOCOL,
                    "input": dict(payload)}
        body = json.dumps(document, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")
        try:
            response = self._http.post(f"{self.base_url}/mi/v1/{infno}", content=body, headers={
                "Content-Type": "application/json", APP_ID_HEADER: self.app_id,
                SIGNATURE_HEADER: mac_header(self.sign_algorithm, self._secret, body)})
        except httpx.HTTPError as exc:
            self._log.warning("insurance: no answer to %s %s (%s)", infno, msgid, type(exc).__name__)
            raise ChannelUnavailable(f"{infno} {msgid}: no answer from the platform ({type(exc).__name__})") from None
        if response.status_code >= 500:
            self._log.warning("insurance: platform unavailable for %s %s (HTTP %d)", infno, msgid,
                              response.status_code)
            raise ChannelUnavailable(f"{infno} {msgid}: platform HTTP {response.status_code}")
        if not verify_mac_header(self.sign_algorithm, self._secret, response.content,
                                 response.headers.get(SIGNATURE_HEADER)):
            raise SignatureError(f"{infno} {msgid}: the platform's answer is not signed with our app secret")
        try:
            answer = json.loads(response.content)
        except ValueError:
            raise SignatureError(f"{infno} {msgid}: signed answer is not JSON") from None
        if not isinstance(answer, dict):
            raise SignatureError(f"{infno} {msgid}: signed answer is not an object")
        if answer.get("err_code") != "9001" and answer.get("inf_refmsgid") != msgid:
            raise SignatureError(f"{infno} {msgid}: the answer refers to another message")
        if str(answer.get("infcode")) != "0":
            code = str(answer.get("err_code") or "9999")
            self._log.info("insurance: %s %s refused (%s)", infno, msgid, code)
            raise ChannelError(code, str(answer.get("err_msg") or ERROR_CODES.get(code, "refused")))
        output = answer.get("output")
        if not isinstance(output, dict):
            raise ChannelError("INVALID_RESPONSE", f"{infno} answer has no output")
        return output


def compute_signature(algorithm: str, secret: bytes, body: bytes) -> str:
    """The signature as the platform computes it (exposed for tools that sign by hand)."""
    return compute_mac(algorithm, secret, body)


def _fen(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError("amounts are non-negative integers")
    return value


def _check_serial(value: str) -> None:
    if not isinstance(value, str) or not _SERIAL.match(value):
        raise ValueError("serial numbers are 6-48 letters, digits, '_' or '-'")
