"""The sandbox's fault controls, each driving the real channel over HTTP into the exception the money-safety
rules require: every unknown outcome is ChannelUnavailable (query later), never ChannelError (a definite no);
every notification, however often or in whatever order it arrives, still verifies."""
from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from central.payments.channel import ChannelUnavailable
from central.payments.keys import WeChatPayKeys, ensure_sandbox_keys
from central.payments.wechatpay import WeChatPayChannel
from central.payments.wechatpay_sandbox import create_sandbox_app
from tests.central.test_wechatpay import (PREFIX, LiveServer, Receiver, auth_code, in_minutes, sandbox_trade, serve,
                                         simulate_pay, today_in_china, trade_no)

TIMEOUT = 0.5  # the channel's timeout here: long enough for loopback, short enough for hangs to be quick


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> WeChatPayKeys:
    return ensure_sandbox_keys(tmp_path_factory.mktemp("wechatpay-faults") / "keys")


@pytest.fixture(scope="module")
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture(scope="module")
def server(keys: WeChatPayKeys, receiver: Receiver) -> Iterator[LiveServer]:
    live = serve(create_sandbox_app(keys, notify_retry_delays=(0.05, 0.1, 0.2)), ("/merchant", receiver.app()))
    yield live
    httpx.post(f"{live.url}{PREFIX}/simulate/reset", timeout=5)
    live.stop()


@pytest.fixture
def channel(server: LiveServer, keys: WeChatPayKeys) -> Iterator[WeChatPayChannel]:
    with WeChatPayChannel.from_keys(server.url + PREFIX, keys, timeout=TIMEOUT,
                                    refund_notify_url=f"{server.url}/merchant/notify/refunds") as ch:
        yield ch
    assert control(server, "reset").status_code == 200  # no control outlives its test


def control(server: LiveServer, route: str, **body: Any) -> httpx.Response:
    return httpx.post(f"{server.url}{PREFIX}/simulate/{route}", json=body, timeout=5)


def fault(server: LiveServer, kind: str, **options: Any) -> None:
    answer = control(server, "fault", kind=kind, **options)
    assert answer.status_code == 200, answer.text


def every_call(ch: WeChatPayChannel, server: LiveServer) -> dict[str, Callable[[], object]]:
    """One call of each kind; the faults apply to whichever the test points them at."""
    paid = trade_no()
    ch.pay_by_code(paid, "检验费", 100, auth_code())
    return {
        "native": lambda: ch.create_native(trade_no(), "挂号费", 100, "http://127.0.0.1:9/n", in_minutes(5)),
        "codepay": lambda: ch.pay_by_code(trade_no(), "检验费", 100, auth_code()),
        "query": lambda: ch.query(paid),
        "close": lambda: ch.close(trade_no()),
        "reverse": lambda: ch.reverse(paid),
        "refund": lambda: ch.refund(paid, "R" + trade_no(), 1, 100, ""),
        "query_refund": lambda: ch.query_refund("R" + paid),
        "bill": lambda: ch.download_bill(today_in_china()),
    }


@pytest.mark.parametrize("kind, options", [("error500", {}), ("drop", {}), ("hang", {"seconds": 5}),
                                           ("delay", {"seconds": TIMEOUT + 1})])
def test_each_fault_is_unavailable_for_every_call(channel: WeChatPayChannel, server: LiveServer, kind: str,
                                                  options: dict[str, Any]) -> None:
    for name, call in every_call(channel, server).items():
        fault(server, kind, **options)
        started = time.monotonic()
        with pytest.raises(ChannelUnavailable):
            call()
        assert time.monotonic() - started < TIMEOUT + 1.5, name
        control(server, "reset")  # releases a hung or delayed request at once


def test_short_delay_is_only_slow(channel: WeChatPayChannel, server: LiveServer) -> None:
    fault(server, "delay", seconds=0.4, path="/codepay")
    started = time.monotonic()
    assert channel.pay_by_code(trade_no(), "检验费", 100, auth_code()).state == "SUCCESS"
    assert time.monotonic() - started >= 0.4


def test_fault_counts_and_path_filters(channel: WeChatPayChannel, server: LiveServer) -> None:
    out_trade_no = trade_no()
    channel.pay_by_code(out_trade_no, "检验费", 100, auth_code())
    fault(server, "error500", times=2, path="/out-trade-no/", method="GET")
    channel.refund(out_trade_no, "R" + out_trade_no, 1, 100, "")  # other path: untouched
    for _ in range(2):
        with pytest.raises(ChannelUnavailable):
            channel.query(out_trade_no)
    assert channel.query(out_trade_no).state == "REFUND"
    assert httpx.get(f"{server.url}{PREFIX}/simulate/faults", timeout=5).json() == {"pending": []}


def test_answer_lost_after_the_money_moved(channel: WeChatPayChannel, server: LiveServer) -> None:
    """The nastiest case: the code was charged, then the answer failed. Unavailable, and query tells the truth."""
    for kind in ("error500", "drop", "hang"):
        out_trade_no = trade_no()
        fault(server, kind, path="/codepay", after=True, seconds=5)
        with pytest.raises(ChannelUnavailable):
            channel.pay_by_code(out_trade_no, "检验费", 700, auth_code())
        control(server, "reset")
        assert channel.query(out_trade_no).state == "SUCCESS", kind
        channel.reverse(out_trade_no)  # the kiosk gave up on it: reverse refunds it
        assert channel.query(out_trade_no).state == "REFUND"


def test_reset_releases_a_hang_at_once(channel: WeChatPayChannel, server: LiveServer, keys: WeChatPayKeys) -> None:
    fault(server, "hang", seconds=60)
    with WeChatPayChannel.from_keys(server.url + PREFIX, keys, timeout=10.0) as patient:
        outcome: list[BaseException | None] = []

        def call() -> None:
            try:
                patient.query(trade_no())
                outcome.append(None)
            except BaseException as exc:  # noqa: BLE001 - recorded for the assertion below
                outcome.append(exc)

        worker = threading.Thread(target=call)
        worker.start()
        time.sleep(0.3)
        started = time.monotonic()
        control(server, "reset")
        worker.join(timeout=5)
    assert time.monotonic() - started < 2
    assert len(outcome) == 1 and isinstance(outcome[0], ChannelUnavailable)  # released hangs still drop


def test_bad_controls_are_refused(server: LiveServer) -> None:
    assert control(server, "fault", kind="explode").status_code == 400
    assert control(server, "fault").status_code == 400
    assert control(server, "notifications", mode="shuffle").status_code == 400
    assert control(server, "notifications", repeat=0).status_code == 400
    assert control(server, "notifications/release", order="random").status_code == 400
    assert control(server, "codepay", result="MAYBE").status_code == 400
    assert control(server, "confirm", out_trade_no="nosuchtrade").status_code == 404
    assert control(server, "bill", bill_date="yesterday").status_code == 400


# --- notifications --------------------------------------------------------------------------------------------

def drain(receiver: Receiver, name: str, count: int, timeout: float = 10) -> list[tuple[dict[str, str], bytes]]:
    box = receiver.box(name)
    return [box.get(timeout=timeout) for _ in range(count)]


def test_repeated_notifications_each_verify(channel: WeChatPayChannel, server: LiveServer,
                                            receiver: Receiver) -> None:
    assert control(server, "notifications", repeat=3).json() == {"mode": "deliver", "repeat": 3}
    out_trade_no = trade_no()
    code_url = channel.create_native(out_trade_no, "挂号费", 1500, f"{server.url}/merchant/notify/repeat",
                                     in_minutes(5))
    simulate_pay(server, code_url)
    arrivals = drain(receiver, "repeat", 3)
    assert len({json.loads(body)["id"] for _, body in arrivals}) == 1  # the same notification, three times
    states = [channel.parse_notification(headers, body) for headers, body in arrivals]
    assert states[0] == states[1] == states[2] and states[0].state == "SUCCESS"
    record = sandbox_trade(server, out_trade_no)["notifications"][0]
    assert record["deliveries"] == 3 and record["delivered"]


def test_refund_notification_before_the_payment_one(server: LiveServer, keys: WeChatPayKeys,
                                                    receiver: Receiver) -> None:
    name = "out-of-order"
    with WeChatPayChannel.from_keys(server.url + PREFIX, keys, timeout=TIMEOUT,
                                    refund_notify_url=f"{server.url}/merchant/notify/{name}") as ch:
        control(server, "notifications", mode="hold")
        out_trade_no = trade_no()
        code_url = ch.create_native(out_trade_no, "挂号费", 2000, f"{server.url}/merchant/notify/{name}",
                                    in_minutes(5))
        simulate_pay(server, code_url)
        ch.refund(out_trade_no, "R" + out_trade_no, 2000, 2000, "退号")
        assert receiver.box(name).empty()
        assert control(server, "notifications/release", order="lifo").json() == {"released": 2}
        first, second = (ch.parse_notification(h, b) for h, b in drain(receiver, name, 2))
        assert (first.state, second.state) == ("REFUND", "SUCCESS")
        assert first.out_trade_no == second.out_trade_no == out_trade_no
    control(server, "reset")


def test_held_notifications_are_signed_when_sent(channel: WeChatPayChannel, server: LiveServer,
                                                 receiver: Receiver) -> None:
    control(server, "notifications", mode="hold")
    code_url = channel.create_native(trade_no(), "挂号费", 100, f"{server.url}/merchant/notify/held", in_minutes(5))
    simulate_pay(server, code_url)
    time.sleep(1.1)
    released_at = int(time.time())
    control(server, "notifications/release")
    headers, body = drain(receiver, "held", 1)[0]
    assert int(headers["wechatpay-timestamp"]) >= released_at
    assert channel.parse_notification(headers, body).state == "SUCCESS"


def test_dropped_notifications_never_arrive_and_polling_recovers(channel: WeChatPayChannel, server: LiveServer,
                                                                 receiver: Receiver) -> None:
    control(server, "notifications", mode="drop")
    out_trade_no = trade_no()
    code_url = channel.create_native(out_trade_no, "挂号费", 100, f"{server.url}/merchant/notify/dropped",
                                     in_minutes(5))
    simulate_pay(server, code_url)
    time.sleep(0.5)
    assert receiver.box("dropped").empty()
    record = sandbox_trade(server, out_trade_no)["notifications"][0]
    assert (record["attempts"], record["delivered"]) == (0, False)
    assert channel.query(out_trade_no).state == "SUCCESS"


def test_bill_served_for_a_day(channel: WeChatPayChannel, server: LiveServer) -> None:
    out_trade_no = trade_no()
    channel.pay_by_code(out_trade_no, "检验费", 4321, auth_code())
    day = today_in_china()
    shown = httpx.get(f"{server.url}{PREFIX}/simulate/bill", params={"bill_date": day.isoformat()}, timeout=5)
    assert shown.status_code == 200 and f"`{out_trade_no}" in shown.text and "`43.21" in shown.text
    assert any(line.out_trade_no == out_trade_no and line.amount_fen == 4321
               for line in channel.download_bill(day))
    empty = httpx.get(f"{server.url}{PREFIX}/simulate/bill",
                      params={"bill_date": (day - timedelta(days=30)).isoformat()}, timeout=5)
    assert empty.status_code == 404
