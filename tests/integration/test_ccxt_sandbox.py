"""ccxt's own Binance class, unchanged, against the sandbox on loopback.

ccxt is written against real Binance, not against this project, so it checks the sandbox
from outside: its requests (apply as a signed POST body, history with a 90-day window,
config/getall and exchangeInfo for its markets) must be accepted, and its parsers must
read the sandbox's answers as they read Binance's. Only the transport is redirected:
every ``api.binance.com`` URL ccxt knows points at the sandbox, and the others (futures,
options, portfolio margin) are removed so that nothing here can reach the internet.

ccxt hands amounts over as floats. The sandbox's own records are Decimals; each float
from ccxt is compared as ``Decimal(str(x))`` (its shortest repr, the digits ccxt parsed),
and the amounts withdrawn are ones a float holds to the last digit that matters.

ccxt is an optional test dependency (the ``dev`` extra); without it the module skips.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from treasury.sandbox import (
    DEFAULT_API_KEY,
    DEFAULT_API_SECRET,
    ManualClock,
    SandboxThread,
    default_config,
    parse_config,
)

ccxt = pytest.importorskip(
    "ccxt", reason="ccxt is an optional test dependency: pip install -e '.[dev]'"
)

START_MS = 1_767_225_600_000  # 2026-01-01 00:00:00 UTC: history's applyTime has whole seconds
PROCESSING_MS = 2_000
TIMINGS: dict[str, object] = {
    "processing_s": "2",
    "failure_share": "0",
    "rejection_share": "0",
    "seed": 11,
}
ACCOUNT = default_config().accounts["default"]
USDT_TRX = ACCOUNT.whitelisted("USDT", "TRX")[0].address
# Well-formed for TRX (the network's addressRegex) but not in the address book.
UNKNOWN_TRX = "T" + "9" * 33


class SandboxBinance(ccxt.binance):
    """``ccxt.binance`` talking to one sandbox, as the demo account ``default``.

    Three things differ from a production setup, each because of where the sandbox runs,
    none changing what ccxt sends or how it parses:

    * the URLs: each ``api.binance.com`` one at the sandbox, the other hosts' dropped;
    * ``nonce`` reads the sandbox's manual clock instead of the local one, as a client
      synchronised to Binance's server time would (the sandbox checks ``timestamp``
      against its own clock);
    * ccxt picks its table of error codes by the URL's host (``https://api.binance.com``
      is spot; any other host gets only the codes common to all its markets, where e.g.
      -4035 is not mapped and -4026 is a futures code). The sandbox is the spot/SAPI API,
      so its URLs get the spot table, as Binance's own host would.
    """

    def __init__(self, base_url: str, clock: ManualClock) -> None:
        super().__init__(
            {
                "apiKey": DEFAULT_API_KEY,
                "secret": DEFAULT_API_SECRET,
                # the sandbox counts weights and answers 429 itself; ccxt's own throttle
                # would only add sleeps
                "enableRateLimit": False,
            }
        )
        self.sandbox_url = base_url
        self.sandbox_clock = clock
        self.urls["api"] = {
            key: base_url + urlsplit(url).path
            for key, url in self.urls["api"].items()
            if urlsplit(url).netloc == "api.binance.com"
        }
        # spot markets only (the default also loads USDⓈ-M and COIN-M futures), and no
        # margin pairs (two more SAPI endpoints the sandbox does not model)
        self.options["fetchMarkets"] = {"types": ["spot"]}
        self.options["fetchMargins"] = False

    def nonce(self) -> int:
        now: int = self.sandbox_clock.now_ms()
        return now

    def get_exceptions_by_url(self, url: str, exact_or_broad: str) -> dict[str, Any]:
        if url.startswith(self.sandbox_url + "/"):
            table: dict[str, Any] = self.exceptions["spot"].get(exact_or_broad, {})
            return table
        found: dict[str, Any] = super().get_exceptions_by_url(url, exact_or_broad)
        return found


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START_MS)


@pytest.fixture
def sandbox(clock: ManualClock, request: pytest.FixtureRequest) -> Iterator[SandboxThread]:
    """The sandbox on loopback; parametrize indirectly with changes to its ``timings``."""
    timings = {**TIMINGS, **getattr(request, "param", {})}
    config = parse_config({"timings": timings, "journal_fsync": False})
    with SandboxThread(config=config, clock=clock) as running:
        yield running


@pytest.fixture
def binance(sandbox: SandboxThread, clock: ManualClock) -> Iterator[Any]:
    exchange = SandboxBinance(sandbox.url, clock)
    try:
        exchange.load_markets()
        yield exchange
    finally:
        exchange.close()


def as_decimal(value: float) -> Decimal:
    """A float from ccxt as the decimal it was parsed from (its shortest repr)."""
    return Decimal(str(value))


def admin_ledger(sandbox: SandboxThread) -> dict[str, Any]:
    """``GET /_sandbox/ledger``: what the exchange holds, from its admin API."""
    response = httpx.get(f"{sandbox.url}/_sandbox/ledger", timeout=5)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def withdraw_usdt(binance: Any, amount: float, order_id: str, address: str = USDT_TRX) -> Any:
    return binance.withdraw(
        "USDT", amount, address, None, {"network": "TRC20", "withdrawOrderId": order_id}
    )


# -- markets and currencies: what load_markets read ----------------------------------------


def test_load_markets_reads_the_sandbox_exchange_info_and_coins(
    binance: Any, sandbox: SandboxThread
) -> None:
    # every key of the production host points at the sandbox, and nothing else is left
    assert {"public", "private", "sapi", "sapiV2"} <= set(binance.urls["api"])
    assert all(url.startswith(sandbox.url + "/") for url in binance.urls["api"].values())
    assert set(binance.markets) == {"BTC/USDT", "ETH/USDT", "XRP/USDT", "ETH/BTC", "XRP/BTC"}
    market = binance.market("XRP/USDT")
    assert market["spot"] and market["active"] and not market["margin"]
    assert (market["id"], market["base"], market["quote"]) == ("XRPUSDT", "XRP", "USDT")
    # LOT_SIZE from XRP's precision (6), PRICE_FILTER from USDT's (8)
    assert as_decimal(market["precision"]["amount"]) == Decimal("0.000001")
    assert as_decimal(market["precision"]["price"]) == Decimal("0.00000001")
    assert as_decimal(market["limits"]["amount"]["max"]) == Decimal(9_000_000)
    # the currencies came from config/getall: one per configured coin, networks unified
    assert set(binance.currencies) >= set(sandbox.sandbox.config.coins)
    assert set(binance.currencies["USDT"]["networks"]) == {"ERC20", "TRC20", "BEP20"}
    assert binance.currencies["USDT"]["networks"]["TRC20"]["id"] == "TRX"


# -- withdraw ------------------------------------------------------------------------------


def test_withdraw_creates_exactly_one_withdrawal_with_the_exact_amount(
    binance: Any, sandbox: SandboxThread
) -> None:
    before = Decimal(admin_ledger(sandbox)["balances"]["default"]["USDT"])
    result = withdraw_usdt(binance, 1234.567891, "ccxt-w-1")

    ledger = sandbox.ledger()
    [made] = [w for w in ledger.withdrawals if w.withdraw_order_id == "ccxt-w-1"]
    assert result["id"] == made.id
    assert result["info"] == {"id": made.id}  # apply's whole answer
    assert made.amount == Decimal("1234.567891")  # the sandbox's Decimal, not a float
    assert (made.coin, made.network, made.address) == ("USDT", "TRX", USDT_TRX)
    assert made.fee == Decimal(1)  # USDT on TRX in the built-in config
    [call] = ledger.apply_requests
    assert call.withdrawal_id == made.id
    assert call.params["amount"] == "1234.567891"  # ccxt rounded to the network's step
    # the spot wallet was debited the requested amount (the fee comes out of it)
    after = Decimal(admin_ledger(sandbox)["balances"]["default"]["USDT"])
    assert before - after == Decimal("1234.567891")


# -- fetch_withdrawals ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("history_amount", "shown"),
    [("net", Decimal("1233.567891")), ("gross", Decimal("1234.567891"))],
)
def test_fetch_withdrawals_sees_it_pending_then_ok_with_its_txid(
    binance: Any, sandbox: SandboxThread, clock: ManualClock, history_amount: str, shown: Decimal
) -> None:
    sandbox.running.set_faults({"history_amount": history_amount})
    wid = withdraw_usdt(binance, 1234.567891, "ccxt-h-1")["id"]

    [pending] = binance.fetch_withdrawals("USDT", START_MS)
    assert (pending["id"], pending["type"], pending["currency"]) == (wid, "withdrawal", "USDT")
    assert pending["status"] == "pending" and pending["txid"] is None
    assert (pending["network"], pending["address"]) == ("TRC20", USDT_TRX)
    assert pending["timestamp"] == START_MS
    # history's amount: by default net of the fee (requested 1234.567891 - fee 1), as
    # Binance reports it; "gross" shows the requested amount. The fee is the network's.
    assert pending["info"]["amount"] == format(shown, "f")
    assert as_decimal(pending["amount"]) == shown
    assert pending["fee"]["currency"] == "USDT"
    assert as_decimal(pending["fee"]["cost"]) == Decimal(1)

    clock.advance(PROCESSING_MS)
    [settled] = binance.fetch_withdrawals("USDT", START_MS)
    assert settled["id"] == wid and settled["status"] == "ok"
    assert settled["txid"] and settled["txid"] == sandbox.sandbox.exchange.by_id[wid].tx_id
    assert as_decimal(settled["amount"]) == shown


@pytest.mark.parametrize(
    ("sandbox", "binance_status", "ccxt_status"),
    [({"failure_share": "1"}, 5, "failed"), ({"rejection_share": "1"}, 3, "failed")],
    indirect=["sandbox"],
    ids=["failure", "rejected"],
)
def test_a_failed_or_rejected_withdrawal_is_failed_in_ccxt(
    binance: Any, sandbox: SandboxThread, clock: ManualClock, binance_status: int, ccxt_status: str
) -> None:
    wid = withdraw_usdt(binance, 50, "ccxt-f-1")["id"]
    clock.advance(PROCESSING_MS)
    [seen] = binance.fetch_withdrawals("USDT", START_MS)
    assert seen["id"] == wid
    assert seen["info"]["status"] == str(binance_status)  # ccxt keeps integers as text
    assert seen["status"] == ccxt_status
    assert seen["txid"] in (None, "")  # never sent on chain


def test_a_withdrawal_held_for_approval_then_cancelled_is_pending_then_canceled(
    binance: Any, sandbox: SandboxThread, clock: ManualClock
) -> None:
    sandbox.running.set_faults({"review": {"status": 2, "hold_s": 30, "then": "cancel"}})
    wid = withdraw_usdt(binance, 50, "ccxt-c-1")["id"]
    [held] = binance.fetch_withdrawals("USDT", START_MS)
    assert (held["id"], held["info"]["status"], held["status"]) == (wid, "2", "pending")
    clock.advance(30_000)
    [cancelled] = binance.fetch_withdrawals("USDT", START_MS)
    assert (cancelled["info"]["status"], cancelled["status"]) == ("1", "canceled")


# -- fetch_deposit_withdraw_fees -----------------------------------------------------------


def test_fetch_deposit_withdraw_fees_are_the_configured_network_fees(
    binance: Any, sandbox: SandboxThread
) -> None:
    coins = sandbox.sandbox.config.coins
    fees = binance.fetch_deposit_withdraw_fees(["USDT", "XRP"])
    assert set(fees) == {"USDT", "XRP"}
    for code in ("USDT", "XRP"):
        coin = coins[code]
        # ccxt keys networks by its unified codes (TRC20 for TRX...); map back to ids
        ids = {n: binance.currencies[code]["networks"][n]["id"] for n in fees[code]["networks"]}
        assert sorted(ids.values()) == sorted(n.network for n in coin.networks)
        for unified, network_id in ids.items():
            configured = coin.network(network_id)
            assert configured is not None
            withdraw = fees[code]["networks"][unified]["withdraw"]
            assert as_decimal(withdraw["fee"]) == configured.withdraw_fee
            # ccxt's fee structure has no limits; its currency (same config/getall) does
            limits = binance.currencies[code]["networks"][unified]["limits"]["withdraw"]
            assert as_decimal(limits["min"]) == configured.withdraw_min
            assert as_decimal(limits["max"]) == configured.withdraw_max
        # the coin-level fee is its default network's
        assert as_decimal(fees[code]["withdraw"]["fee"]) == coin.default_network.withdraw_fee


# -- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "address", "code", "error"),
    [
        (9.5, USDT_TRX, -4022, "BadRequest"),  # below the network's minimum (10)
        (50, UNKNOWN_TRX, -4035, "PermissionDenied"),  # not on the whitelist
        (3_000_000, USDT_TRX, -4026, "InsufficientFunds"),  # the spot wallet holds 2.5M
    ],
    ids=["below-minimum", "not-whitelisted", "insufficient-balance"],
)
def test_a_refused_withdrawal_raises_ccxts_class_for_the_code_and_creates_nothing(
    binance: Any, sandbox: SandboxThread, amount: float, address: str, code: int, error: str
) -> None:
    before = admin_ledger(sandbox)["balances"]["default"]["USDT"]
    with pytest.raises(getattr(ccxt, error)) as raised:
        withdraw_usdt(binance, amount, "ccxt-e-1", address)
    assert f'"code":{code}' in str(raised.value)
    # the request reached the sandbox and was refused there, and nothing was booked
    ledger = sandbox.ledger()
    [call] = ledger.apply_requests
    assert (call.error_code, call.withdrawal_id) == (code, None)
    assert ledger.withdrawals == []
    assert binance.fetch_withdrawals("USDT", START_MS) == []
    assert admin_ledger(sandbox)["balances"]["default"]["USDT"] == before
