"""Orders settled by more than one payment, over real HTTP against the sandboxes mounted in the server: the
insurance part and the self-pay part of one registration, bank cards with the PIN pad's encrypted block and
reversal of a sale whose answer was lost, and the aggregate code either app can pay.

After each: what the channels hold adds up to what the order says, and nothing is paid twice."""
from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx

from central import orders
from central.his.seed import DEMO_PATIENT_ID
from central.payments.insurance_sandbox import demo_persons
from central.payments.unionpay import WorkingKey
from drivers.pinpad.crypto import Algorithm, clear_pin_block, decrypt, encrypt
from drivers.pinpad.simulator import DEMO_MASTER_KEYS
from tests.central.conftest import Kiosk, LiveCentral, provision, wait_until

PERSONS = {p.name: p for p in demo_persons()}
CARD_PAN, CARD_PIN, CARD_EXPIRY = "6230606601007726888", "924613", "2912"


def new_order(live: LiveCentral, kiosk: Kiosk, *, min_fee_fen: int = 0) -> dict[str, Any]:
    """A registration awaiting payment; `min_fee_fen` picks a doctor whose fee is at least that (tomorrow, so
    that the test does not depend on the hour it runs at)."""
    day = (live.svc.today() + timedelta(days=1)).isoformat() if min_fee_fen else live.svc.today().isoformat()
    for dept in live.api(kiosk, "GET", "/departments", params={"date": day}).json()["departments"]:
        doctors = live.api(kiosk, "GET", f"/departments/{dept['code']}/doctors", params={"date": day}).json()
        doctor = next((d for d in doctors["doctors"] if d["remaining"] > 0 and d["fee_fen"] >= min_fee_fen), None)
        if doctor is not None:
            break
    assert doctor is not None
    slot = live.api(kiosk, "GET", f"/departments/{dept['code']}/doctors/{doctor['code']}/slots",
                    params={"date": day}).json()["slots"][0]
    created = live.api(kiosk, "POST", "/registrations", json={
        "patient_id": DEMO_PATIENT_ID, "slot_id": slot["slot_id"], "idempotency_key": uuid.uuid4().hex})
    assert created.status_code == 201, created.text
    return created.json()


def pay(live: LiveCentral, kiosk: Kiosk, order_no: str, channel: str, key: str | None = None,
        **extra: Any) -> httpx.Response:
    return live.api(kiosk, "POST", f"/orders/{order_no}/pay",
                    json={"channel": channel, "idempotency_key": key or uuid.uuid4().hex, **extra})


def sandbox(live: LiveCentral, path: str, method: str = "GET", **kwargs: Any) -> dict[str, Any]:
    return httpx.request(method, f"{live.url}/sandbox/{path}", timeout=15, **kwargs).json()


def order_status(live: LiveCentral, kiosk: Kiosk, order_no: str) -> str:
    return live.api(kiosk, "GET", f"/orders/{order_no}").json()["status"]


# --- insurance + self-pay -----------------------------------------------------------------------------------

def test_insurance_part_and_self_pay_part_settle_one_registration(live: LiveCentral) -> None:
    kiosk = provision(live.svc, "KIOSK-001")
    order = new_order(live, kiosk, min_fee_fen=5_000)
    person = PERSONS["王五"]  # employee, deductible used up, 10 yuan left in the personal account
    split = live.api(kiosk, "POST", f"/orders/{order['order_no']}/insurance",
                     json={"credential": "e_voucher", "number": person.e_voucher})
    assert split.status_code == 200, split.text
    view = split.json()
    parts = view["insurance"]["split"]
    assert parts["fund_fen"] > 0 and parts["account_fen"] == 1_000 and parts["self_pay_fen"] > 0
    assert parts["fund_fen"] + parts["account_fen"] + parts["self_pay_fen"] == order["amount_fen"]
    assert view["self_pay_fen"] == parts["self_pay_fen"] and view["insurance"]["name_masked"] == "王*"
    assert view["insurance"]["state"] == "PRESETTLED"

    paying = pay(live, kiosk, order["order_no"], "wechat_native")
    assert paying.status_code == 200, paying.text
    trade = paying.json()["payment"]
    assert paying.json()["insurance"]["state"] == "SUCCESS"  # settled before the patient is asked to pay
    assert live.sandbox_trade(trade["out_trade_no"])["amount"]["total"] == parts["self_pay_fen"]
    assert live.pay_as_phone(trade["code_url"]).status_code == 200
    wait_until(lambda: order_status(live, kiosk, order["order_no"]) == "FULFILLED")

    settlement = sandbox(live, f"insurance/simulate/settlements/{order['order_no']}I")
    assert settlement["state"] == "SETTLED"
    assert settlement["split"]["fund_fen"] + settlement["split"]["account_fen"] == view["insurance"]["amount_fen"]
    assert sandbox(live, f"insurance/simulate/persons/{person.psn_no}")["account_balance_fen"] == 0


def test_insurance_covering_everything_needs_no_trade(live: LiveCentral) -> None:
    kiosk = provision(live.svc, "KIOSK-001")
    order = new_order(live, kiosk)
    person = PERSONS["张三"]  # the personal account covers a registration fee whole
    view = live.api(kiosk, "POST", f"/orders/{order['order_no']}/insurance",
                    json={"credential": "social_security_card", "number": person.card_number}).json()
    assert view["self_pay_fen"] == 0
    done = pay(live, kiosk, order["order_no"], "wechat_native")
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "FULFILLED" and done.json()["payment"] is None
    assert done.json()["registration"]["queue_no"] > 0


def test_walking_away_after_the_insurance_settled_reverses_it(live: LiveCentral) -> None:
    kiosk = provision(live.svc, "KIOSK-001")
    order = new_order(live, kiosk, min_fee_fen=5_000)
    live.api(kiosk, "POST", f"/orders/{order['order_no']}/insurance",
             json={"credential": "e_voucher", "number": PERSONS["王五"].e_voucher})
    assert pay(live, kiosk, order["order_no"], "wechat_native").json()["insurance"]["state"] == "SUCCESS"
    cancelled = live.api(kiosk, "POST", f"/orders/{order['order_no']}/cancel").json()
    assert cancelled["status"] == "CLOSED" and cancelled["insurance"]["state"] == "CLOSED"
    assert sandbox(live, f"insurance/simulate/settlements/{order['order_no']}I")["state"] == "REVERSED"
    assert sandbox(live, f"insurance/simulate/persons/{PERSONS['王五'].psn_no}")["account_balance_fen"] == 1_000


def test_insurance_platform_down_at_settlement_then_the_same_request_again(live: LiveCentral) -> None:
    kiosk = provision(live.svc, "KIOSK-001")
    order = new_order(live, kiosk, min_fee_fen=5_000)
    live.api(kiosk, "POST", f"/orders/{order['order_no']}/insurance",
             json={"credential": "e_voucher", "number": PERSONS["王五"].e_voucher})
    sandbox(live, "insurance/simulate/control", "POST", json={"platform_down": True})
    key = uuid.uuid4().hex
    down = pay(live, kiosk, order["order_no"], "wechat_native", key)
    assert down.status_code == 503 and down.json()["code"] == "PAYMENT_CHANNEL_UNAVAILABLE"
    sandbox(live, "insurance/simulate/control", "POST", json={"platform_down": False})
    again = pay(live, kiosk, order["order_no"], "wechat_native", key)
    assert again.status_code == 200, again.text
    assert again.json()["insurance"]["state"] == "SUCCESS" and again.json()["payment"]["code_url"]


def test_refund_gives_back_both_parts_along_their_routes(live: LiveCentral) -> None:
    kiosk = provision(live.svc, "KIOSK-001")
    order = new_order(live, kiosk, min_fee_fen=5_000)
    live.api(kiosk, "POST", f"/orders/{order['order_no']}/insurance",
             json={"credential": "e_voucher", "number": PERSONS["王五"].e_voucher})
    trade = pay(live, kiosk, order["order_no"], "wechat_native").json()["payment"]
    live.pay_as_phone(trade["code_url"])
    wait_until(lambda: order_status(live, kiosk, order["order_no"]) == "FULFILLED")
    refunded = live.api(kiosk, "POST", f"/orders/{order['order_no']}/refund")
    assert refunded.status_code == 200, refunded.text
    assert refunded.json()["status"] == "REFUNDED" and refunded.json()["insurance"]["state"] == "REFUND"
    assert live.sandbox_trade(trade["out_trade_no"])["trade_state"] == "REFUND"
    assert sandbox(live, f"insurance/simulate/settlements/{order['order_no']}I")["state"] == "REFUNDED"
    assert sandbox(live, f"insurance/simulate/persons/{PERSONS['王五'].psn_no}")["account_balance_fen"] == 1_000


def test_insurance_credentials_from_the_street_are_refused_clearly(live: LiveCentral) -> None:
    kiosk = provision(live.svc, "KIOSK-001")
    order = new_order(live, kiosk)
    unknown = live.api(kiosk, "POST", f"/orders/{order['order_no']}/insurance",
                       json={"credential": "e_voucher", "number": "not-a-voucher-000"})
    assert unknown.status_code == 409 and unknown.json()["code"] == "INSURANCE_REFUSED"
    assert "自费" in unknown.json()["message"]
    junk = live.api(kiosk, "POST", f"/orders/{order['order_no']}/insurance",
                    json={"credential": "e_voucher", "number": "<script>"})
    assert junk.status_code == 422
    assert order_status(live, kiosk, order["order_no"]) == "AWAITING_PAYMENT"


# --- bank cards ---------------------------------------------------------------------------------------------

def pin_block(key: dict[str, Any], pin: str, pan: str = CARD_PAN) -> str:
    """What the kiosk's PIN pad does with the signed-on key: open it under its master key, encrypt the block."""
    working = WorkingKey(key["terminal_id"], key["algorithm"], bytes.fromhex(key["encrypted_key"]),
                         bytes.fromhex(key["check_value"]))
    alg = Algorithm(working.algorithm)
    clear_key = decrypt(alg, DEMO_MASTER_KEYS[alg], working.encrypted_key)
    return encrypt(alg, clear_key, clear_pin_block(alg, pin, pan)).hex().upper()


def card(key: dict[str, Any], pin: str = CARD_PIN) -> dict[str, Any]:
    return {"pan": CARD_PAN, "expiry": CARD_EXPIRY, "pin_block": pin_block(key, pin), "pin_algorithm": "sm4"}


def balance(live: LiveCentral, pan: str = CARD_PAN) -> int:
    return sandbox(live, f"unionpay/simulate/cards/{pan}")["balance_fen"]


def test_bank_card_wrong_pin_then_right_pin(live: LiveCentral) -> None:
    kiosk = provision(live.svc, "KIOSK-001")
    key = live.api(kiosk, "POST", "/card/sign-on").json()
    assert key["terminal_id"] == "KIOSK-001" and len(key["check_value"]) >= 6
    order = new_order(live, kiosk)
    before = balance(live)
    wrong = pay(live, kiosk, order["order_no"], "unionpay_card", card=card(key, "000000"))
    assert wrong.status_code == 409 and wrong.json()["code"] == "CARD_DECLINED"
    assert wrong.json()["response_code"] == "55" and "密码错误" in wrong.json()["message"]
    assert balance(live) == before
    paid = pay(live, kiosk, order["order_no"], "unionpay_card", card=card(key))
    assert paid.status_code == 200, paid.text
    view = paid.json()
    assert view["status"] == "FULFILLED" and view["payment"]["card"] == "623060*********6888"
    assert view["payment"]["out_trade_no"] == order["order_no"] + "K2"
    assert balance(live) == before - order["amount_fen"]
    assert CARD_PAN not in str(orders.order_events(live.svc, order["order_no"]))


def test_card_sale_whose_answer_is_lost_is_reversed_and_not_charged(live: LiveCentral) -> None:
    kiosk = provision(live.svc, "KIOSK-001")
    key = live.api(kiosk, "POST", "/card/sign-on").json()
    order = new_order(live, kiosk)
    before = balance(live)
    sandbox(live, "unionpay/simulate/control", "POST", json={"drop_next": {"sale": 1}, "drop_hold_seconds": 0.2})
    lost = pay(live, kiosk, order["order_no"], "unionpay_card", card=card(key))
    assert lost.status_code == 503 and lost.json()["code"] == "PAYMENT_CHANNEL_UNAVAILABLE"
    first = sandbox(live, f"unionpay/simulate/trades/{order['order_no']}K1")
    assert first["trade_state"] == "REVERSED"
    assert balance(live) == before  # the sale went through at the bank, and the reversal gave it back
    assert order_status(live, kiosk, order["order_no"]) == "AWAITING_PAYMENT"
    again = pay(live, kiosk, order["order_no"], "unionpay_card", card=card(key))
    assert again.status_code == 200 and again.json()["status"] == "FULFILLED"
    assert balance(live) == before - order["amount_fen"]


def test_unanswered_reversal_is_sent_again_by_the_sweeper(live: LiveCentral) -> None:
    kiosk = provision(live.svc, "KIOSK-001")
    key = live.api(kiosk, "POST", "/card/sign-on").json()
    order = new_order(live, kiosk)
    before = balance(live)
    sandbox(live, "unionpay/simulate/control", "POST",
            json={"drop_next": {"sale": 1, "reversal": 1}, "drop_hold_seconds": 0.2})
    assert pay(live, kiosk, order["order_no"], "unionpay_card", card=card(key)).status_code == 503
    # Both answers lost: as far as the server knows, the sale may stand until a reversal is answered.
    assert orders.get_order(live.svc, order["order_no"]).payment.state == "REVERSING"  # type: ignore[union-attr]
    busy = pay(live, kiosk, order["order_no"], "unionpay_card", card=card(key))
    assert busy.status_code == 503  # no second card attempt while the first is unresolved
    orders.sweep(live.svc)
    assert orders.get_order(live.svc, order["order_no"]).payment.state == "CLOSED"  # type: ignore[union-attr]
    trade = sandbox(live, f"unionpay/simulate/trades/{order['order_no']}K1")
    assert trade["trade_state"] == "REVERSED" and trade["reversal_messages"] == 2
    assert balance(live) == before
    assert order_status(live, kiosk, order["order_no"]) == "AWAITING_PAYMENT"


def test_malformed_card_data_is_a_clear_error(live: LiveCentral) -> None:
    kiosk = provision(live.svc, "KIOSK-001")
    order = new_order(live, kiosk)
    bad = pay(live, kiosk, order["order_no"], "unionpay_card",
              card={"pan": "4111", "expiry": "2913", "pin_block": "XYZ"})
    assert bad.status_code == 422
    assert "4111" not in bad.text or "pan" in bad.text
    missing = pay(live, kiosk, order["order_no"], "unionpay_card")
    assert missing.status_code == 409 and missing.json()["code"] == "CARD_MISSING"


# --- the aggregate code -------------------------------------------------------------------------------------

WECHAT_UA = "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 MicroMessenger/8.0.50"
ALIPAY_UA = "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 AlipayClient/10.6.0"


def scan(url: str, user_agent: str) -> httpx.Response:
    return httpx.get(url, headers={"User-Agent": user_agent}, follow_redirects=False, timeout=15)


def test_aggregate_code_opens_the_trade_of_the_app_that_scanned_it(live: LiveCentral) -> None:
    kiosk = provision(live.svc, "KIOSK-001")
    order = new_order(live, kiosk)
    shown = pay(live, kiosk, order["order_no"], "aggregate").json()
    url = shown["code_url"]
    assert url.startswith(live.url + "/pay/q/" + order["order_no"] + "/") and shown["payment"] is None

    browser = scan(url, "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0")
    assert browser.status_code == 200 and "微信或支付宝" in browser.text
    wechat = scan(url, WECHAT_UA)
    assert wechat.status_code == 302 and wechat.headers["location"].startswith("weixin://")
    assert scan(url, WECHAT_UA).headers["location"] == wechat.headers["location"]  # scanned twice: one trade

    alipay = scan(url, ALIPAY_UA)  # the patient changed their mind: the WeChat trade is closed first
    assert alipay.status_code == 302
    assert live.sandbox_trade(order["order_no"] + "W")["trade_state"] == "CLOSED"
    paid = httpx.post(f"{live.url}/sandbox/alipay/simulate/pay", json={"qr_code": alipay.headers["location"]},
                      timeout=15)
    assert paid.status_code == 200, paid.text
    wait_until(lambda: order_status(live, kiosk, order["order_no"]) == "FULFILLED")

    late = scan(url, WECHAT_UA)
    assert late.status_code == 409 and "已支付" in late.text
    assert scan(url.rsplit("/", 1)[0] + "/forged-token-000000", WECHAT_UA).status_code == 404
    paid_trades = [p for p in orders.get_order(live.svc, order["order_no"]).self_payments if p.state == "SUCCESS"]
    assert [p.channel for p in paid_trades] == ["alipay_native"]


def test_switching_from_the_qr_to_a_payment_code_closes_the_qr_trade_first(live: LiveCentral) -> None:
    kiosk = provision(live.svc, "KIOSK-001")
    order = new_order(live, kiosk)
    qr = pay(live, kiosk, order["order_no"], "wechat_native").json()["payment"]
    code = f"13{uuid.uuid4().int % 10**16:016d}"
    by_code = pay(live, kiosk, order["order_no"], "wechat_code", auth_code=code)
    assert by_code.status_code == 200, by_code.text
    assert by_code.json()["status"] == "FULFILLED" and by_code.json()["payment_method"] == "wechat_code"
    assert live.sandbox_trade(qr["out_trade_no"])["trade_state"] == "CLOSED"
    assert live.pay_as_phone(qr["code_url"]).status_code != 200  # the QR on a photo can no longer be paid
    back = pay(live, kiosk, order["order_no"], "wechat_native")
    assert back.status_code == 409  # paid: no other way to pay it now
    assert order_status(live, kiosk, order["order_no"]) == "FULFILLED"
    events = [e.event for e in orders.order_events(live.svc, order["order_no"])]
    assert events.count("METHOD_CHANGED") == 1 and events.count("PAID") == 1


def test_a_qr_paid_before_the_switch_is_honoured_and_the_code_is_not_charged(live: LiveCentral) -> None:
    kiosk = provision(live.svc, "KIOSK-001")
    order = new_order(live, kiosk)
    qr = pay(live, kiosk, order["order_no"], "aggregate").json()
    wechat = scan(qr["code_url"], WECHAT_UA).headers["location"]
    httpx.post(f"{live.url}/sandbox/wechatpay/simulate/notifications", json={"mode": "hold"}, timeout=15)
    assert live.pay_as_phone(wechat).status_code == 200  # paid, and the server has not heard yet
    code = pay(live, kiosk, order["order_no"], "alipay_code", auth_code=f"28{uuid.uuid4().int % 10**16:016d}")
    assert code.status_code == 200 and code.json()["status"] == "FULFILLED"
    assert code.json()["payment"]["channel"] == "wechat_native"
    assert [p.channel for p in orders.get_order(live.svc, order["order_no"]).self_payments] == ["wechat_native"]


def test_a_method_left_is_not_taken_up_again(live: LiveCentral) -> None:
    kiosk = provision(live.svc, "KIOSK-001")
    order = new_order(live, kiosk)
    assert pay(live, kiosk, order["order_no"], "wechat_native").status_code == 200
    assert pay(live, kiosk, order["order_no"], "alipay_native").status_code == 200
    refused = pay(live, kiosk, order["order_no"], "wechat_native")
    assert refused.status_code == 409 and refused.json()["code"] == "CHANNEL_MISMATCH"


# --- what the sweeper finishes after a crash ----------------------------------------------------------------

def test_sweeper_reverses_an_insurance_settlement_whose_kiosk_never_came_back(live: LiveCentral) -> None:
    kiosk = provision(live.svc, "KIOSK-001")
    order = new_order(live, kiosk, min_fee_fen=5_000)
    live.api(kiosk, "POST", f"/orders/{order['order_no']}/insurance",
             json={"credential": "e_voucher", "number": PERSONS["王五"].e_voucher})
    assert pay(live, kiosk, order["order_no"], "wechat_native").json()["insurance"]["state"] == "SUCCESS"
    # The kiosk dies here; nobody pays the QR. After the order's hold on the slot lapses the sweeper finds it.
    expires = orders.get_order(live.svc, order["order_no"]).expires_at
    report = orders.sweep(live.svc, now=expires + timedelta(seconds=1))
    assert report.closed == 1
    assert orders.get_order(live.svc, order["order_no"]).status == "CLOSED"
    assert sandbox(live, f"insurance/simulate/settlements/{order['order_no']}I")["state"] == "REVERSED"
    assert sandbox(live, f"insurance/simulate/persons/{PERSONS['王五'].psn_no}")["account_balance_fen"] == 1_000


def test_sweeper_reverses_a_card_sale_the_server_died_in(live: LiveCentral) -> None:
    kiosk = provision(live.svc, "KIOSK-001")
    key = live.api(kiosk, "POST", "/card/sign-on").json()
    order = new_order(live, kiosk)
    before = balance(live)
    # What a server killed right after sending the sale leaves behind: a card trade row, no answer recorded.
    row = orders._add_trade(live.svc, orders.get_order(live.svc, order["order_no"]), "unionpay_card", "k-crash",
                            live.svc.now())
    channel = live.svc.channels["unionpay"].for_terminal("KIOSK-001")  # type: ignore[attr-defined]
    channel.charge_card(row.out_trade_no, order["amount_fen"], CARD_PAN, CARD_EXPIRY,
                        pin_block(key, CARD_PIN), "sm4")
    assert balance(live) == before - order["amount_fen"]
    report = orders.sweep(live.svc, now=live.svc.now() + orders.CODE_PAY_DEADLINE + timedelta(seconds=1))
    assert report.fulfilled == 1  # the sale had gone through: the query finds it and the patient is registered
    assert orders.get_order(live.svc, order["order_no"]).status == "FULFILLED"
    assert balance(live) == before - order["amount_fen"]
