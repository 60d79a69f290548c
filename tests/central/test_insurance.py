"""The medical-insurance channel against its platform sandbox over real HTTP on loopback: identify, pre-settle
(the split adds up to the fen), settle idempotently, reverse exactly once (also after a real timeout), refund
items, platform down, signatures — and the split rules under hypothesis."""
from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from central.payments.channel import ChannelError, ChannelUnavailable, SignatureError
from central.payments.insurance import (APP_ID_HEADER, CERT_E_VOUCHER, CERT_SOCIAL_SECURITY_CARD,
                                        SIGNATURE_HEADER, BillItem, InsuranceChannel, split_bill)
from central.payments.insurance_sandbox import DEMO_APP_ID, DEMO_HOSPITAL_CODE, Platform, create_sandbox_app
from central.payments.unionpay import mac_header
from drivers.scanner.classify import ScanKind, classify

pytestmark = pytest.mark.timeout(90)

SECRET = b"demo-insurance-app-secret-0001"
EMPLOYEE_VOUCHER = "ecXk3v9Q2mWJ7TzL0pRb5NfY8uHsAe1D"  # 张三, employee, account 500 yuan, deductible 200 yuan
EMPLOYEE_CARD = "A12345678"
RESIDENT_CARD = "B87654321"  # 李四, resident: no personal account
DEDUCTIBLE_MET_VOUCHER = "emP2wX7nB4vC9zL1kJ6hG3fD8sA5qR0t"  # 王五: deductible used up, account 10 yuan
SUSPENDED_CARD = "D55667788"
EXPIRED_VOUCHER = "exP1rEdV0uChEr5c0dE9xY2zW4vU6tS8"

BILL = [BillItem("D001", "阿莫西林胶囊", "A", 3650), BillItem("D002", "布洛芬缓释胶囊", "B", 2890),
        BillItem("E001", "血常规", "A", 2500), BillItem("E002", "保健品", "C", 1999)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Sandbox:
    """The insurance platform sandbox served by uvicorn on a loopback port, in a thread of this process."""

    def __init__(self, sign_algorithm: str = "HMAC-SM3") -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = create_sandbox_app(SECRET, sign_algorithm=sign_algorithm)
        self.platform: Platform = self.app.state.platform
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port,
                                                    log_level="warning", timeout_graceful_shutdown=2))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> Sandbox:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("sandbox did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)

    def control(self, **params: Any) -> dict[str, Any]:
        response = httpx.post(f"{self.url}/simulate/control", json=params, timeout=5)
        assert response.status_code == 200, response.text
        return response.json()

    def person(self, psn_no: str) -> dict[str, Any]:
        return httpx.get(f"{self.url}/simulate/persons/{psn_no}", timeout=5).json()

    def settlement(self, serial: str) -> dict[str, Any]:
        return httpx.get(f"{self.url}/simulate/settlements/{serial}", timeout=5).json()

    def channel(self, *, timeout: float = 5.0, secret: bytes = SECRET, sign_algorithm: str = "HMAC-SM3"
                ) -> InsuranceChannel:
        return InsuranceChannel(self.url, DEMO_HOSPITAL_CODE, DEMO_APP_ID, secret, sign_algorithm=sign_algorithm,
                                timeout=timeout)


@pytest.fixture(scope="module")
def shared_sandbox() -> Iterator[Sandbox]:
    """One server for the hypothesis test, whose many examples must not each start one."""
    server = Sandbox().start()
    yield server
    server.stop()


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    server = Sandbox().start()
    yield server
    server.stop()


@pytest.fixture
def channel(sandbox: Sandbox) -> Iterator[InsuranceChannel]:
    with sandbox.channel() as ch:
        yield ch


# --- the split rules -------------------------------------------------------------------------------------------

def test_split_worked_example() -> None:
    # Total 11039 fen; eligible 3650 + 2601 (90 % of 2890) + 2500 = 8751; deductible 2000 left -> base 6751;
    # fund 70 % = 4725 (floor); account pays the rest except the 丙类 item: 11039 - 4725 - 1999 = 4315.
    split = split_bill(BILL, insutype="310", deductible_remaining_fen=2000, account_balance_fen=100_000)
    assert (split.total_fen, split.eligible_fen, split.deductible_fen) == (11039, 8751, 2000)
    assert (split.fund_fen, split.account_fen, split.self_pay_fen) == (4725, 4315, 1999)
    resident = split_bill(BILL, insutype="390", deductible_remaining_fen=0, account_balance_fen=100_000,
                          account_allowed=False)
    assert resident.fund_fen == 8751 // 2 and resident.account_fen == 0
    assert resident.self_pay_fen == 11039 - 8751 // 2


items_strategy = st.lists(
    st.builds(BillItem, st.text("0123456789", min_size=1, max_size=6), st.just("item"),
              st.sampled_from(["A", "B", "C"]), st.integers(0, 5_000_000)),
    min_size=1, max_size=30, unique_by=lambda item: item.item_id)


@settings(max_examples=400, deadline=None)
@given(items=items_strategy, insutype=st.sampled_from(["310", "390"]), deductible=st.integers(0, 500_000),
       balance=st.integers(0, 2_000_000), account_allowed=st.booleans())
def test_split_parts_always_add_up_and_are_non_negative(items: list[BillItem], insutype: str, deductible: int,
                                                        balance: int, account_allowed: bool) -> None:
    split = split_bill(items, insutype=insutype, deductible_remaining_fen=deductible, account_balance_fen=balance,
                       account_allowed=account_allowed)
    assert split.fund_fen + split.account_fen + split.self_pay_fen == split.total_fen == sum(
        i.amount_fen for i in items)
    assert min(split.fund_fen, split.account_fen, split.self_pay_fen, split.deductible_fen) >= 0
    assert split.account_fen <= balance and split.fund_fen <= split.eligible_fen <= split.total_fen
    assert split.self_pay_fen >= split.excluded_fen  # 丙类 is never paid by the fund or the account


@settings(max_examples=200, deadline=None)
@given(items=items_strategy, insutype=st.sampled_from(["310", "390"]), deductible=st.integers(0, 500_000),
       balance=st.integers(0, 2_000_000), data=st.data())
def test_refund_differences_are_never_negative(items: list[BillItem], insutype: str, deductible: int,
                                               balance: int, data: st.DataObject) -> None:
    # What a refund gives back is the split of the bill minus the split of the remaining items: each part must
    # shrink (or stay), or a refund would take money from the patient.
    kept = data.draw(st.lists(st.sampled_from(items), unique_by=lambda i: i.item_id))
    before = split_bill(items, insutype=insutype, deductible_remaining_fen=deductible, account_balance_fen=balance)
    after = split_bill(kept, insutype=insutype, deductible_remaining_fen=deductible, account_balance_fen=balance)
    assert after.fund_fen <= before.fund_fen and after.account_fen <= before.account_fen
    assert after.self_pay_fen <= before.self_pay_fen and after.deductible_fen <= before.deductible_fen


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=items_strategy)
def test_presettle_over_http_adds_up(shared_sandbox: Sandbox, items: list[BillItem]) -> None:
    with shared_sandbox.channel() as ch:
        person = ch.identify(CERT_SOCIAL_SECURITY_CARD, EMPLOYEE_CARD, "MSG-HYP-1101")
        pre = ch.presettle("MSG-HYP-2206", person.psn_no, "BILL-HYP", items)
    split = pre.split
    assert split.fund_fen + split.account_fen + split.self_pay_fen == split.total_fen == sum(
        i.amount_fen for i in items)
    assert min(split.fund_fen, split.account_fen, split.self_pay_fen) >= 0


# --- identify ---------------------------------------------------------------------------------------------------

def test_identify_by_voucher_and_by_card(channel: InsuranceChannel, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    assert classify(EMPLOYEE_VOUCHER).kind is ScanKind.INSURANCE_VOUCHER  # what the scanner would report
    by_voucher = channel.identify(CERT_E_VOUCHER, EMPLOYEE_VOUCHER, "MSG-0000001")
    by_card = channel.identify(CERT_SOCIAL_SECURITY_CARD, EMPLOYEE_CARD, "MSG-0000002")
    assert by_voucher == by_card and by_voucher.insutype == "310"
    assert by_voucher.account_balance_fen == 50_000 and by_voucher.deductible_remaining_fen == 20_000
    assert by_voucher.masked_name == "张*" and "张三" not in repr(by_voucher)
    resident = channel.identify(CERT_SOCIAL_SECURITY_CARD, RESIDENT_CARD, "MSG-0000003")
    assert resident.insutype == "390" and resident.account_balance_fen == 0
    for cert_type, number, code in [(CERT_SOCIAL_SECURITY_CARD, SUSPENDED_CARD, "2001"),
                                    (CERT_E_VOUCHER, EXPIRED_VOUCHER, "1002"),
                                    (CERT_E_VOUCHER, "nO5uChV0uChEr0000000000000000000", "1001")]:
        with pytest.raises(ChannelError) as caught:
            channel.identify(cert_type, number, "MSG-0000004")
        assert caught.value.code == code
    for secret in (EMPLOYEE_VOUCHER, "张三", "11010519491231002X", SECRET.decode()):
        assert secret not in caplog.text


# --- pre-settle, settle, reverse, refund ------------------------------------------------------------------------

def test_presettle_then_settle_idempotent(sandbox: Sandbox, channel: InsuranceChannel) -> None:
    person = channel.identify(CERT_E_VOUCHER, EMPLOYEE_VOUCHER, "MSG-0000010")
    pre = channel.presettle("MSG-0000011", person.psn_no, "BILL000001", BILL)
    assert pre.split.total_fen == sum(i.amount_fen for i in BILL) == 11039
    assert pre.split.fund_fen + pre.split.account_fen + pre.split.self_pay_fen == 11039
    # Pre-settling moves nothing, and the same bill pre-settles to the same answer.
    assert sandbox.person(person.psn_no)["account_balance_fen"] == 50_000
    assert channel.presettle("MSG-0000012", person.psn_no, "BILL000001", BILL) == pre
    settled = channel.settle("ORD0000001", pre.presettle_id)
    assert settled.state == "SETTLED" and settled.setl_id.startswith("SE") and settled.split == pre.split
    again = channel.settle("ORD0000001", pre.presettle_id)  # the answer was lost, say: ask again
    assert again == settled
    after = sandbox.person(person.psn_no)
    assert after["account_balance_fen"] == 50_000 - pre.split.account_fen
    assert after["deductible_used_fen"] == pre.split.deductible_fen
    state = channel.query("ORD0000001")
    assert state.state == "SUCCESS" and state.paid and state.amount_fen == pre.split.insurance_fen
    assert state.transaction_id == settled.setl_id
    with pytest.raises(ChannelError) as caught:
        channel.settle("ORD0000001", "PS-SOMETHING-ELSE")
    assert caught.value.code == "3002"  # one serial, one settlement


def test_dropped_settle_answer_then_reverse_exactly_once(sandbox: Sandbox) -> None:
    with sandbox.channel(timeout=0.5) as impatient:
        person = impatient.identify(CERT_SOCIAL_SECURITY_CARD, EMPLOYEE_CARD, "MSG-0000020")
        pre = impatient.presettle("MSG-0000021", person.psn_no, "BILL000002", BILL)
        sandbox.control(drop_next={"2207": 1})
        started = time.monotonic()
        with pytest.raises(ChannelUnavailable):
            impatient.settle("ORD0000002", pre.presettle_id)
        assert time.monotonic() - started < 3  # the client's own timeout
        assert sandbox.settlement("ORD0000002")["state"] == "SETTLED"  # it did go through
        # Self-pay then failed (or the patient left): undo the settlement, as often as it takes.
        impatient.reverse("ORD0000002")
        impatient.reverse("ORD0000002")
        sandbox.control(drop_next={"2208": 1})
        with pytest.raises(ChannelUnavailable):
            impatient.reverse("ORD0000002")
        impatient.reverse("ORD0000002")
        assert impatient.query("ORD0000002").state == "CLOSED"
    record = sandbox.settlement("ORD0000002")
    assert record["reversals_applied"] == 1 and record["reversal_messages"] == 4
    restored = sandbox.person(person.psn_no)
    assert restored["account_balance_fen"] == 50_000 and restored["deductible_used_fen"] == 0


def test_reverse_before_settle_refuses_the_late_settle(channel: InsuranceChannel) -> None:
    person = channel.identify(CERT_SOCIAL_SECURITY_CARD, EMPLOYEE_CARD, "MSG-0000030")
    pre = channel.presettle("MSG-0000031", person.psn_no, "BILL000003", BILL)
    channel.close("ORD0000003")  # never settled: reversed in advance
    with pytest.raises(ChannelError) as caught:
        channel.settle("ORD0000003", pre.presettle_id)
    assert caught.value.code == "3003"
    with pytest.raises(ChannelError) as caught:
        channel.query("ORD0000003")
    assert caught.value.code == "ORDER_NOT_EXIST"
    channel.settle("ORD0000004", pre.presettle_id)
    with pytest.raises(ChannelError) as caught:
        channel.close("ORD0000004")
    assert caught.value.code == "ORDERPAID"


def test_stale_presettlement_must_be_redone(channel: InsuranceChannel) -> None:
    person = channel.identify(CERT_SOCIAL_SECURITY_CARD, EMPLOYEE_CARD, "MSG-0000040")
    first = channel.presettle("MSG-0000041", person.psn_no, "BILL000005",
                              [*BILL, BillItem("E003", "CT平扫", "A", 30_000)])
    second = channel.presettle("MSG-0000042", person.psn_no, "BILL000006", BILL[:2])
    channel.settle("ORD0000005", first.presettle_id)  # uses up the deductible the second one counted on
    with pytest.raises(ChannelError) as caught:
        channel.settle("ORD0000006", second.presettle_id)
    assert caught.value.code == "3004"
    redone = channel.presettle("MSG-0000043", person.psn_no, "BILL000006", BILL[:2])
    assert redone.split.deductible_fen == 0 and channel.settle("ORD0000006", redone.presettle_id).state == "SETTLED"


def test_refund_of_items_not_yet_executed(sandbox: Sandbox, channel: InsuranceChannel) -> None:
    person = channel.identify(CERT_E_VOUCHER, EMPLOYEE_VOUCHER, "MSG-0000050")
    pre = channel.presettle("MSG-0000051", person.psn_no, "BILL000007", BILL)
    channel.settle("ORD0000007", pre.presettle_id)
    refund = channel.refund_items("RF00000071", "ORD0000007", ["E001", "E002"], "检查未做")
    assert channel.refund_items("RF00000071", "ORD0000007", ["E002", "E001"]) == refund  # idempotent
    remaining = split_bill(BILL[:2], insutype="310", deductible_remaining_fen=20_000, account_balance_fen=50_000)
    assert refund.fund_fen == pre.split.fund_fen - remaining.fund_fen
    assert refund.account_fen == pre.split.account_fen - remaining.account_fen
    assert refund.self_pay_fen == pre.split.self_pay_fen - remaining.self_pay_fen
    assert refund.fund_fen + refund.account_fen + refund.self_pay_fen == 2500 + 1999  # exactly the items
    assert min(refund.fund_fen, refund.account_fen, refund.self_pay_fen) >= 0
    now = channel.settlement("ORD0000007")
    assert now.state == "REFUNDED" and now.split == remaining
    assert sandbox.person(person.psn_no)["account_balance_fen"] == 50_000 - remaining.account_fen
    with pytest.raises(ChannelError) as caught:
        channel.refund_items("RF00000072", "ORD0000007", ["E001"])  # already refunded
    assert caught.value.code == "4001"
    with pytest.raises(ChannelError) as caught:
        channel.refund_items("RF00000071", "ORD0000007", ["D001"])  # serial reused for other items
    assert caught.value.code == "3002"
    assert channel.query("ORD0000007").state == "REFUND"
    # The rest, through the generic interface (whole insurance part).
    assert channel.refund("ORD0000007", "RF00000073", remaining.insurance_fen, 11039, "全部退费") == "SUCCESS"
    restored = sandbox.person(person.psn_no)
    assert restored["account_balance_fen"] == 50_000 and restored["deductible_used_fen"] == 0


def test_refuse_control_and_platform_down(sandbox: Sandbox, channel: InsuranceChannel) -> None:
    sandbox.control(refuse_next={"1101": ["2001"]})
    with pytest.raises(ChannelError) as caught:
        channel.identify(CERT_SOCIAL_SECURITY_CARD, EMPLOYEE_CARD, "MSG-0000060")
    assert caught.value.code == "2001"
    person = channel.identify(CERT_SOCIAL_SECURITY_CARD, EMPLOYEE_CARD, "MSG-0000061")
    sandbox.control(platform_down=True)
    with pytest.raises(ChannelUnavailable):
        channel.presettle("MSG-0000062", person.psn_no, "BILL000008", BILL)
    with pytest.raises(ChannelUnavailable):
        channel.reverse("ORD0000008")
    sandbox.control(platform_down=False)
    assert channel.presettle("MSG-0000063", person.psn_no, "BILL000008", BILL).split.total_fen == 11039


def test_delay_beyond_the_timeout_is_unavailable(sandbox: Sandbox) -> None:
    sandbox.control(delay_seconds=1.2)
    with sandbox.channel(timeout=0.4) as impatient, pytest.raises(ChannelUnavailable):
        impatient.identify(CERT_SOCIAL_SECURITY_CARD, EMPLOYEE_CARD, "MSG-0000070")


# --- signatures -------------------------------------------------------------------------------------------------

def test_bad_signature_is_refused_and_nothing_happens(sandbox: Sandbox, channel: InsuranceChannel) -> None:
    person = channel.identify(CERT_SOCIAL_SECURITY_CARD, EMPLOYEE_CARD, "MSG-0000080")
    pre = channel.presettle("MSG-0000081", person.psn_no, "BILL000009", BILL)
    body = json.dumps({"infno": "2207", "msgid": "ORD0000009", "fixmedins_code": DEMO_HOSPITAL_CODE,
                       "inf_time": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(time.time() + 8 * 3600)),
                       "protocol": "KIOSK-MI/1",
                       "input": {"settle_serial": "ORD0000009", "presettle_id": pre.presettle_id}}).encode()
    for headers in ({APP_ID_HEADER: DEMO_APP_ID, SIGNATURE_HEADER: mac_header("HMAC-SM3", b"x" * 16, body)},
                    {APP_ID_HEADER: DEMO_APP_ID, SIGNATURE_HEADER: mac_header("HMAC-SHA256", SECRET, body)},
                    {APP_ID_HEADER: "someone-else", SIGNATURE_HEADER: mac_header("HMAC-SM3", SECRET, body)},
                    {APP_ID_HEADER: DEMO_APP_ID}):
        answer = httpx.post(f"{sandbox.url}/mi/v1/2207", content=body, headers=headers, timeout=5).json()
        assert answer["infcode"] == "-1" and answer["err_code"] == "9001"
    assert "ORD0000009" not in sandbox.platform.settlements
    good = httpx.post(f"{sandbox.url}/mi/v1/2207", content=body, timeout=5, headers={
        APP_ID_HEADER: DEMO_APP_ID, SIGNATURE_HEADER: mac_header("HMAC-SM3", SECRET, body)}).json()
    assert good["infcode"] == "0" and good["output"]["state"] == "SETTLED"
    with sandbox.channel(secret=b"not-the-app-secret-at-all") as forged, pytest.raises(SignatureError):
        forged.identify(CERT_SOCIAL_SECURITY_CARD, EMPLOYEE_CARD, "MSG-0000082")


def test_answer_with_a_bad_signature_is_not_believed(sandbox: Sandbox, channel: InsuranceChannel) -> None:
    person = channel.identify(CERT_SOCIAL_SECURITY_CARD, EMPLOYEE_CARD, "MSG-0000090")
    pre = channel.presettle("MSG-0000091", person.psn_no, "BILL000010", BILL)
    sandbox.control(corrupt_signature_next=1)
    with pytest.raises(SignatureError):
        channel.settle("ORD0000010", pre.presettle_id)
    channel.reverse("ORD0000010")  # unproven = unknown: undo
    assert sandbox.settlement("ORD0000010")["reversals_applied"] == 1
    assert sandbox.person(person.psn_no)["account_balance_fen"] == 50_000


def test_sha256_signing_works_end_to_end() -> None:
    server = Sandbox(sign_algorithm="HMAC-SHA256").start()
    try:
        with server.channel(sign_algorithm="HMAC-SHA256") as ch:
            person = ch.identify(CERT_E_VOUCHER, DEDUCTIBLE_MET_VOUCHER, "MSG-0000100")
            pre = ch.presettle("MSG-0000101", person.psn_no, "BILL000011", BILL)
            # Deductible already met: the fund pays 70 % of all eligible; the account is only 10 yuan.
            assert pre.split.deductible_fen == 0 and pre.split.fund_fen == 8751 * 7 // 10
            assert pre.split.account_fen == 1_000
            assert ch.settle("ORD0000011", pre.presettle_id).split == pre.split
    finally:
        server.stop()


def test_insurance_has_no_qr_codes_or_notifications(channel: InsuranceChannel) -> None:
    from datetime import datetime, timezone
    with pytest.raises(NotImplementedError):
        channel.create_native("ORD0000012", "x", 1, "http://127.0.0.1/n", datetime.now(timezone.utc))
    with pytest.raises(NotImplementedError):
        channel.parse_notification({}, b"{}")
