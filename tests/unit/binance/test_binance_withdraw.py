"""withdraw/apply on the wire: signed bytes sent as is, validated first, paced."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import pytest
import respx

from treasury.adapters.binance import BinanceClient, RateLimits
from treasury.adapters.binance.pacing import MARGIN
from treasury.domain.exchange import WithdrawRequest
from treasury.domain.fee_payer import FeePayer
from treasury.domain.wallet import Wallet

ACCEPTED = httpx.Response(200, json={"id": "7213fea8e94b4a5593d507237e5a555b"})


async def test_the_signed_query_is_sent_byte_for_byte(
    router: respx.MockRouter,
    client: BinanceClient,
    make_request: Callable[..., WithdrawRequest],
    wire: Any,
) -> None:
    route = router.post(wire.apply_path).mock(return_value=ACCEPTED)
    request = make_request(address_tag="memo 1+2/x", amount=Decimal("1E+1"))
    await client.withdraw(request, timestamp_ms=1_700_000_000_000)
    sent = route.calls.last.request
    payload, signature = wire.split_signature(sent)
    assert signature == wire.hmac_of(payload)
    assert payload == (
        "coin=USDT&network=ETH&address=0x94df8b352de7f46f64b01d3666bf6e936e44ce60"
        "&addressTag=memo%201%2B2%2Fx&amount=10&withdrawOrderId=intent-42_a"
        "&walletType=0&transactionFeeFlag=false&recvWindow=5000&timestamp=1700000000000"
    )
    assert sent.content == b""
    assert sent.method == "POST"
    assert sent.headers["X-MBX-APIKEY"] == wire.api_key


@pytest.mark.parametrize(("wallet", "wire_value"), [(Wallet.SPOT, "0"), (Wallet.FUNDING, "1")])
async def test_wallet_type_is_always_sent(
    router: respx.MockRouter,
    client: BinanceClient,
    make_request: Callable[..., WithdrawRequest],
    wire: Any,
    wallet: Wallet,
    wire_value: str,
) -> None:
    """Without walletType Binance debits the wallet chosen in the account's settings."""
    route = router.post(wire.apply_path).mock(return_value=ACCEPTED)
    await client.withdraw(make_request(wallet=wallet), timestamp_ms=1_700_000_000_000)
    payload, _ = wire.split_signature(route.calls.last.request)
    assert f"&walletType={wire_value}&" in payload


@pytest.mark.parametrize(
    ("payer", "wire_value"), [(FeePayer.SENDER, "false"), (FeePayer.RECIPIENT, "true")]
)
async def test_transaction_fee_flag_is_always_sent_and_signed(
    router: respx.MockRouter,
    client: BinanceClient,
    make_request: Callable[..., WithdrawRequest],
    wire: Any,
    payer: FeePayer,
    wire_value: str,
) -> None:
    """Who pays an internal transfer's fee never rests on Binance's default (false):
    the flag is in every withdraw/apply, lower case, inside the signed bytes."""
    route = router.post(wire.apply_path).mock(return_value=ACCEPTED)
    await client.withdraw(make_request(fee_payer=payer), timestamp_ms=1_700_000_000_000)
    sent = route.calls.last.request
    payload, signature = wire.split_signature(sent)
    assert signature == wire.hmac_of(payload)  # the flag is part of what was signed
    assert f"&transactionFeeFlag={wire_value}&" in payload
    assert wire.params(sent)["transactionFeeFlag"] == wire_value
    assert sent.content == b""  # nothing outside the signed query string


async def test_a_request_without_a_fee_payer_is_refused_before_sending(
    router: respx.MockRouter,
    client: BinanceClient,
    make_request: Callable[..., WithdrawRequest],
    wire: Any,
) -> None:
    route = router.post(wire.apply_path).mock(return_value=ACCEPTED)
    with pytest.raises(ValueError, match="fee_payer"):
        await client.withdraw(make_request(fee_payer=True), timestamp_ms=1_700_000_000_000)
    assert not route.called


async def test_a_request_without_a_wallet_is_refused_before_sending(
    router: respx.MockRouter,
    client: BinanceClient,
    make_request: Callable[..., WithdrawRequest],
    wire: Any,
) -> None:
    route = router.post(wire.apply_path).mock(return_value=ACCEPTED)
    with pytest.raises(ValueError, match="wallet"):
        await client.withdraw(make_request(wallet="spot"), timestamp_ms=1_700_000_000_000)
    assert not route.called


@pytest.mark.parametrize("tag", [None, ""])
async def test_no_tag_no_name(
    router: respx.MockRouter,
    client: BinanceClient,
    make_request: Callable[..., WithdrawRequest],
    wire: Any,
    tag: str | None,
) -> None:
    route = router.post(wire.apply_path).mock(return_value=ACCEPTED)
    await client.withdraw(make_request(address_tag=tag), timestamp_ms=1)
    names = set(wire.params(route.calls.last.request))
    assert names == {
        "coin",
        "network",
        "address",
        "amount",
        "withdrawOrderId",
        "walletType",
        "transactionFeeFlag",
        "recvWindow",
        "timestamp",
        "signature",
    }
    assert "name" not in names and "addressTag" not in names


async def test_amount_digits_are_sent_unchanged(
    router: respx.MockRouter,
    client: BinanceClient,
    make_request: Callable[..., WithdrawRequest],
    wire: Any,
) -> None:
    route = router.post(wire.apply_path).mock(return_value=ACCEPTED)
    await client.withdraw(make_request(amount=Decimal("0.000000000000000001")), timestamp_ms=1)
    assert wire.params(route.calls.last.request)["amount"] == "0.000000000000000001"


@pytest.mark.parametrize(
    "order_id",
    ["", "a b", "x" * 65, "id/1", "id+1", "ü", "abc\n", "a.b", "a,b", None],
)
async def test_bad_withdraw_order_id_sends_nothing(
    router: respx.MockRouter,
    client: BinanceClient,
    make_request: Callable[..., WithdrawRequest],
    order_id: str | None,
) -> None:
    with pytest.raises(ValueError, match="withdraw_order_id"):
        await client.withdraw(make_request(withdraw_order_id=order_id))
    assert router.calls.call_count == 0  # not even a clock sync


async def test_longest_withdraw_order_id_is_accepted(
    router: respx.MockRouter,
    client: BinanceClient,
    make_request: Callable[..., WithdrawRequest],
    wire: Any,
) -> None:
    route = router.post(wire.apply_path).mock(return_value=ACCEPTED)
    await client.withdraw(make_request(withdraw_order_id="A-_9" * 16), timestamp_ms=1)
    assert route.call_count == 1


@pytest.mark.parametrize(
    "change",
    [
        {"amount": Decimal(0)},
        {"amount": Decimal(-1)},
        {"amount": Decimal("NaN")},
        {"amount": 1.5},
        {"coin": ""},
        {"address": " "},
        {"network": ""},
    ],
)
async def test_bad_request_fields_send_nothing(
    router: respx.MockRouter,
    client: BinanceClient,
    make_request: Callable[..., WithdrawRequest],
    change: dict[str, object],
) -> None:
    with pytest.raises(ValueError, match=r"withdraw (amount|coin|address|network)"):
        await client.withdraw(make_request(**change))
    assert router.calls.call_count == 0


@pytest.mark.parametrize("timestamp", [0, -5, True, 1.5])
async def test_bad_fixed_timestamp_sends_nothing(
    router: respx.MockRouter,
    client: BinanceClient,
    make_request: Callable[..., WithdrawRequest],
    timestamp: object,
) -> None:
    with pytest.raises(ValueError, match="timestamp_ms"):
        await client.withdraw(make_request(), timestamp_ms=timestamp)  # type: ignore[arg-type]
    assert router.calls.call_count == 0


@pytest.mark.parametrize("field", ["recv_window_ms", "apply_recv_window_ms"])
@pytest.mark.parametrize("value", [0, 60_001, -1, True])
def test_recv_window_bounds(
    make_client: Callable[..., BinanceClient], field: str, value: int
) -> None:
    with pytest.raises(ValueError, match=field):
        make_client(**{field: value})


def test_recv_window_limits_themselves_are_fine(make_client: Callable[..., BinanceClient]) -> None:
    make_client(recv_window_ms=60_000, apply_recv_window_ms=1)


async def test_apply_uses_its_own_small_recv_window(
    router: respx.MockRouter,
    make_client: Callable[..., BinanceClient],
    make_request: Callable[..., WithdrawRequest],
    wire: Any,
) -> None:
    client = make_client(recv_window_ms=10_000, apply_recv_window_ms=2_000)
    apply_route = router.post(wire.apply_path).mock(return_value=ACCEPTED)
    quota_route = router.get("/sapi/v1/capital/withdraw/quota").mock(
        return_value=httpx.Response(200, json={"wdQuota": "1", "usedWdQuota": "0"})
    )
    accepted = await client.withdraw(make_request())
    await client.withdraw_quota()
    assert wire.params(apply_route.calls.last.request)["recvWindow"] == "2000"
    assert accepted.recv_window_ms == 2000
    assert wire.params(quota_route.calls.last.request)["recvWindow"] == "10000"


async def test_unfixed_timestamp_is_estimated_server_time(
    router: respx.MockRouter,
    make_client: Callable[..., BinanceClient],
    make_request: Callable[..., WithdrawRequest],
    wire: Any,
) -> None:
    router.routes["time"].mock(return_value=httpx.Response(200, json={"serverTime": 2_000_000}))
    client = make_client(wall_clock=lambda: 1_000.0)  # the server is 1,000 s ahead
    route = router.post(wire.apply_path).mock(return_value=ACCEPTED)
    accepted = await client.withdraw(make_request())
    assert wire.params(route.calls.last.request)["timestamp"] == "2000000"
    assert accepted.timestamp_ms == 2_000_000


# -- pacing --------------------------------------------------------------------------------


class FakeMonotonic:
    """A monotonic clock that moves only when the client sleeps."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await anyio.lowlevel.checkpoint()


async def test_concurrent_withdrawals_are_paced(
    router: respx.MockRouter,
    make_client: Callable[..., BinanceClient],
    make_request: Callable[..., WithdrawRequest],
    wire: Any,
) -> None:
    rate = 20.0
    fake = FakeMonotonic()
    client = make_client(withdraw_rate=rate, monotonic=fake, sleep=fake.sleep)
    seen: list[float] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(fake())
        return httpx.Response(200, json={"id": wire.params(request)["withdrawOrderId"]})

    route = router.post(wire.apply_path).mock(side_effect=record)
    async with anyio.create_task_group() as tg:
        for i in range(10):
            tg.start_soon(client.withdraw, make_request(withdraw_order_id=f"wd-{i}"))
    assert route.call_count == 10
    gaps = [b - a for a, b in itertools.pairwise(seen)]
    assert min(gaps) >= 1 / rate - 0.001, gaps
    assert client.apply_limiter.waited_s == pytest.approx(9 / rate * (1 + MARGIN))


async def test_concurrent_withdrawals_are_paced_in_real_time(
    router: respx.MockRouter,
    make_client: Callable[..., BinanceClient],
    make_request: Callable[..., WithdrawRequest],
    wire: Any,
) -> None:
    rate = 20.0
    client = make_client(withdraw_rate=rate)
    seen: list[float] = []
    stamps: list[int] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(time.monotonic())
        stamps.append(int(wire.params(request)["timestamp"]))
        return httpx.Response(200, json={"id": wire.params(request)["withdrawOrderId"]})

    route = router.post(wire.apply_path).mock(side_effect=record)
    await client.sync_clock()
    async with anyio.create_task_group() as tg:
        for i in range(10):
            tg.start_soon(client.withdraw, make_request(withdraw_order_id=f"wd-{i}"))
    assert route.call_count == 10
    # Turns are taken ≥ 1/rate apart: the signed timestamps (whole ms) show it exactly.
    stamp_gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert min(stamp_gaps) >= 1000 / rate - 1, stamp_gaps
    # Arrival at the mock adds the CPU time between hand-off and handler, which a busy
    # machine can stretch by a few ms for one request; so a looser bound here.
    gaps = [b - a for a, b in itertools.pairwise(seen)]
    assert min(gaps) >= 1 / rate - 0.015, gaps
    assert seen[-1] - seen[0] >= 9 / rate - 0.015


async def test_defer_until_holds_the_first_call_back(
    router: respx.MockRouter,
    make_client: Callable[..., BinanceClient],
    make_request: Callable[..., WithdrawRequest],
    wire: Any,
) -> None:
    client = make_client(withdraw_rate=1.0)
    route = router.post(wire.apply_path).mock(return_value=ACCEPTED)
    client.apply_limiter.defer_until(time.time() + 0.3)
    started = time.monotonic()
    await client.withdraw(make_request(), timestamp_ms=1)
    assert time.monotonic() - started >= 0.29
    assert route.call_count == 1


async def test_last_send_from_the_database_keeps_the_pace(
    router: respx.MockRouter,
    make_client: Callable[..., BinanceClient],
    make_request: Callable[..., WithdrawRequest],
    wire: Any,
) -> None:
    client = make_client(withdraw_rate=2.0)  # 0.5 s apart
    router.post(wire.apply_path).mock(return_value=ACCEPTED)
    client.apply_limiter.note_sent_at(time.time() - 0.2)  # sent 0.2 s ago, before a restart
    started = time.monotonic()
    await client.withdraw(make_request(), timestamp_ms=1)
    assert 0.28 <= time.monotonic() - started < 0.5


async def test_apply_waits_for_the_uid_budget(
    router: respx.MockRouter,
    make_client: Callable[..., BinanceClient],
    make_request: Callable[..., WithdrawRequest],
    wire: Any,
) -> None:
    client = make_client(limits=RateLimits(sapi_uid_weight=1000, window_s=0.3))
    seen: list[float] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(time.monotonic())
        return ACCEPTED

    router.post(wire.apply_path).mock(side_effect=record)
    await client.withdraw(make_request(), timestamp_ms=1)
    await client.withdraw(make_request(), timestamp_ms=1)
    assert seen[1] - seen[0] >= 0.28
