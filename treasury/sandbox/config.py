"""The sandbox's configuration: accounts, coins and their networks, timings, rate limits.

Frozen dataclasses, because the configuration is the *base* the exchange state starts
from: everything that changes at run time (balances, rule changes, whitelist edits) lives
in :mod:`treasury.sandbox.state` and in the journal, never here. The JSON keys follow
Binance's own field names where Binance has one (``withdrawFee``, ``addressRegex``,
``canWithdraw``, ``ipRestrict``…) so a config reads like ``config/getall``; keys only the
sandbox knows are snake_case. A top-level section missing from a file is taken from the
built-in default (``default_config.json``), so a test can write ``{"timings": {...}}``.
Every problem is reported as :class:`ConfigError` naming the field's path.

``history_amount`` (``"net"``, the default, or ``"gross"``) says which amount
``withdraw/history`` reports: Binance most likely reports the amount the recipient gets
(requested minus ``transactionFee``), so ``"net"`` is the default a client must cope
with; ``"gross"`` keeps the requested amount, for a client that wants the other reading
tested too. It is only the starting value: the ``history_amount`` fault changes it at run
time, and a fault reset returns to it.

Each account has two wallets, as on Binance: ``balances`` is the spot wallet (what
``/api/v3/account`` shows) and ``funding_balances`` the funding wallet (what
``get-funding-asset`` shows). ``default_wallet`` (``"spot"`` or ``"funding"``) is the wallet
the account selected in its settings, which ``withdraw/apply`` debits when the request
names no ``walletType``. An account signs with an HMAC secret, an Ed25519 public key or an
RSA public key (``rsa_public_key``, PEM, at least 2048 bits as Binance requires), any of
which it may carry. ``account_status`` is the text ``GET /sapi/v1/account/status`` answers.
Its ``whitelist`` is the whole address book (at most 200 entries, Binance's cap); an entry
with ``"whitelisted": false`` is in the book but not on the withdrawal whitelist.

Internal transfers: an account's ``deposit_addresses`` (``{"network", "address",
"addressTag"?}``) are its Binance deposit addresses, and the top-level
``internal_addresses`` (same shape) are deposit addresses of Binance accounts the sandbox
does not model. A withdrawal to either is an internal transfer (``transferType`` 1); to
an account's address it credits that account. A network's ``internal_fee`` (sandbox-only,
default: its ``withdrawFee``) is what such a transfer is charged.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from importlib import resources
from pathlib import Path

from treasury.sandbox.configreader import ConfigError, Reader
from treasury.sandbox.questionnaire import LOCAL_ENTITIES

__all__ = [
    "ADDRESS_BOOK_MAX",
    "API_RESTRICTION_FLAGS",
    "DEFAULT_API_KEY",
    "DEFAULT_API_SECRET",
    "DEMO_ED25519_PRIVATE_KEY_PEM",
    "EVM_NETWORKS",
    "HISTORY_AMOUNTS",
    "SUB_API_KEY",
    "SUB_API_SECRET",
    "WALLETS",
    "AccountConfig",
    "CoinConfig",
    "ConfigError",
    "DepositAddress",
    "NetworkConfig",
    "RateLimits",
    "SandboxConfig",
    "Timings",
    "WhitelistEntry",
    "default_config",
    "deposit_key",
    "load_config",
    "parse_config",
    "read_history_amount",
]

# Public demo credentials of the built-in config; they only open this local sandbox.
DEFAULT_API_KEY = "sandbox-api-key"
DEFAULT_API_SECRET = "sandbox-api-secret"  # noqa: S105 - documented demo value
SUB_API_KEY = "treasury-sub-api-key"
SUB_API_SECRET = "treasury-sub-api-secret"  # noqa: S105 - documented demo value
# The Ed25519 key Binance publishes in its FIX API docs (test vector E1); account
# `default` accepts signatures made with it, so a demo can show Ed25519 signing.
DEMO_ED25519_PRIVATE_KEY_PEM = (
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEIIJEYWtGBrhACmb9Dvy+qa8WEf0lQOl1s4CLIAB9m89u\n"
    "-----END PRIVATE KEY-----\n"
)

API_RESTRICTION_FLAGS = (
    "ipRestrict",
    "enableReading",
    "enableWithdrawals",
    "enableInternalTransfer",
    "enableMargin",
    "enableFutures",
    "permitsUniversalTransfer",
    "enableVanillaOptions",
    "enableFixApiTrade",
    "enableFixReadOnly",
    "enableSpotAndMarginTrading",
    "enablePortfolioMarginTrading",
)
_DEFAULT_RESTRICTIONS = {
    "ipRestrict": True,
    "enableReading": True,
    "enableWithdrawals": True,
    "enableSpotAndMarginTrading": True,
}

# What withdraw/history's `amount` is: net of the fee (Binance's likely reading) or gross.
HISTORY_AMOUNTS = ("net", "gross")

# An account's wallets by name, with the `walletType` Binance gives each (0 spot, 1 funding).
WALLETS: Mapping[str, int] = {"spot": 0, "funding": 1}

# Networks whose addresses are case-insensitive hex (EIP-55 checksum casing varies).
EVM_NETWORKS = frozenset({"ETH", "BSC", "ARBITRUM", "OPTIMISM", "MATIC", "AVAXC", "BASE"})

# Binance's address book holds at most 200 entries (wallet docs, withdraw/apply `name`).
ADDRESS_BOOK_MAX = 200
DEFAULT_ACCOUNT_STATUS = "Normal"

# Weights per endpoint, as Binance documents them (reference §2, §4 and §10).
DEFAULT_WEIGHTS: Mapping[str, int] = {
    "time": 1,
    "exchange_info": 20,
    "account": 20,
    "system_status": 1,
    "account_status": 1,
    "api_restrictions": 1,
    "funding_asset": 1,
    "config_getall": 10,
    "address_list": 10,
    "quota": 10,
    "withdraw_apply": 900,
    "withdraw_history": 18000,
    # travel rule (reference §11): apply UID 600; history v2 a UID weight since 2025-01-15
    "questionnaire_requirements": 1,
    "localentity_apply": 600,
    "localentity_history_v1": 1,
    "localentity_history_v2": 1,
    "localentity_vasp": 1,
    "localentity_countries": 1,
    "localentity_regions": 1,
}


@dataclass(frozen=True, kw_only=True)
class WhitelistEntry:
    coin: str
    network: str
    address: str
    address_tag: str | None
    name: str
    origin: str = ""
    origin_type: str = "others"
    whitelisted: bool = True  # False: in the address book, not on the withdrawal whitelist


@dataclass(frozen=True, kw_only=True)
class DepositAddress:
    """A Binance deposit address: a withdrawal to it is an internal transfer."""

    network: str
    address: str
    address_tag: str | None = None


@dataclass(frozen=True, kw_only=True)
class AccountConfig:
    name: str
    api_key: str
    hmac_secret: str | None
    ed25519_public_key: str | None  # PEM (SubjectPublicKeyInfo)
    rsa_public_key: str | None = None  # PEM (SubjectPublicKeyInfo), >= 2048 bits
    uid: int
    can_withdraw: bool
    can_trade: bool
    can_deposit: bool
    api_restrictions: Mapping[str, bool]
    balances: Mapping[str, Decimal]  # the spot wallet
    funding_balances: Mapping[str, Decimal] = field(default_factory=dict)
    default_wallet: str = "spot"  # a key of WALLETS: debited when apply names no walletType
    account_status: str = DEFAULT_ACCOUNT_STATUS
    whitelist_enabled: bool
    whitelist: tuple[WhitelistEntry, ...]  # the whole address book
    quota_usd: Decimal
    # its Binance deposit addresses: a withdrawal to one is an internal transfer to it
    deposit_addresses: tuple[DepositAddress, ...] = ()
    # the travel-rule local entity the account is held under (a questionnaire country
    # code, questionnaire.LOCAL_ENTITIES); None: capital/withdraw/apply as usual
    local_entity: str | None = None

    def whitelisted(self, coin: str, network: str) -> tuple[WhitelistEntry, ...]:
        """The whitelisted entries of one (coin, network), for demos and tests."""
        return tuple(
            e for e in self.whitelist if e.coin == coin and e.network == network and e.whitelisted
        )


@dataclass(frozen=True, kw_only=True)
class NetworkConfig:
    coin: str
    network: str
    name: str
    is_default: bool
    withdraw_enable: bool
    withdraw_fee: Decimal
    withdraw_min: Decimal
    withdraw_max: Decimal
    withdraw_integer_multiple: Decimal
    address_regex: str
    memo_regex: str
    withdraw_tag: bool
    withdraw_desc: str
    min_confirm: int
    unlock_confirm: int
    estimated_arrival_time: int
    contract_address: str
    withdraw_internal_min: Decimal
    deposit_dust: Decimal
    # what an internal transfer is charged (sandbox-only; None: the network's withdrawFee)
    internal_fee: Decimal | None = None

    @property
    def internal_transfer_fee(self) -> Decimal:
        return self.withdraw_fee if self.internal_fee is None else self.internal_fee


@dataclass(frozen=True, kw_only=True)
class CoinConfig:
    coin: str
    name: str
    usd_price: Decimal
    precision: int  # most decimal places an amount may carry (-1111 beyond)
    networks: tuple[NetworkConfig, ...]

    def network(self, name: str) -> NetworkConfig | None:
        return next((n for n in self.networks if n.network == name), None)

    @property
    def default_network(self) -> NetworkConfig:
        return next(n for n in self.networks if n.is_default)


@dataclass(frozen=True, kw_only=True)
class Timings:
    processing_s: float = 5.0  # from acceptance to the final status
    processing_jitter_s: float = 0.0  # +/- uniform spread around processing_s
    failure_share: float = 0.0  # share ending in status 5 (failure), refunded
    rejection_share: float = 0.0  # share ending in status 3 (rejected), refunded
    seed: int | None = None  # fixes ids, fates and txIds; None = random


@dataclass(frozen=True, kw_only=True)
class RateLimits:
    enabled: bool = True
    multiplier: Decimal = Decimal(1)
    api_ip_weight_per_min: int = 6000
    sapi_ip_weight_per_min: int = 12000  # per IP-limited endpoint
    uid_weight_per_min: int = 180000
    uid_weight_per_s: int = 180000  # the per-second UID limit withdraw/history counts in
    history_per_s: int = 10
    # "endpoint": each UID-limited endpoint has its own per-minute pool, as Binance's
    # limits table reads; "account": apply and history share one (a stricter reading).
    uid_pool: str = "endpoint"
    # "second": history counts in the per-second UID limit (180,000/s, 10 requests/s), as
    # its page says; "minute": it also books its 18,000 into the per-minute pool (the
    # reading this project planned on before: 10 history calls a minute).
    history_pool: str = "second"
    ban_s: int = 120  # length of the /api 418 ban
    ban_after_429s: int = 2  # 429 answers tolerated per window before the ban
    weights: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))

    def scaled(self, limit: int) -> int:
        return max(1, int(Decimal(limit) * self.multiplier))


@dataclass(frozen=True, kw_only=True)
class SandboxConfig:
    accounts: Mapping[str, AccountConfig]
    coins: Mapping[str, CoinConfig]
    timings: Timings
    rate_limits: RateLimits
    journal_fsync: bool = True
    history_amount: str = "net"  # one of HISTORY_AMOUNTS
    # deposit addresses of Binance accounts outside the sandbox: internal, nobody credited
    internal_addresses: tuple[DepositAddress, ...] = ()

    def account_by_key(self, api_key: str) -> AccountConfig | None:
        return next((a for a in self.accounts.values() if a.api_key == api_key), None)


def load_config(path: str | Path) -> SandboxConfig:
    """Read a JSON config file; sections it leaves out come from the default.

    Raises:
        ConfigError: the file is unreadable, not JSON, or a field is invalid.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read: {exc.strerror}") from None
    try:
        data = json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise ConfigError(str(path), f"not valid JSON: {exc}") from None
    return parse_config(data)


def parse_config(data: object) -> SandboxConfig:
    """Build a config from already parsed JSON (numbers parsed as ``Decimal``)."""
    root = Reader(data, "")
    root.check_keys(
        {"accounts", "coins", "timings", "rate_limits", "rate_limit_multiplier", "journal_fsync",
         "history_amount", "internal_addresses"}
    )  # fmt: skip
    base = _default_data()
    coins_data = root.get("coins", base["coins"])
    accounts_data = root.get("accounts", base["accounts"])
    coins = _coins(Reader(coins_data, "coins"))
    accounts = _accounts(Reader(accounts_data, "accounts"), coins)
    limits = _rate_limits(Reader(root.get("rate_limits", {}), "rate_limits"))
    if root.has("rate_limit_multiplier"):
        multiplier = root.decimal("rate_limit_multiplier", positive=True)
        limits = RateLimits(**{**limits.__dict__, "multiplier": multiplier})
    internal = _deposit_addresses(
        Reader(root.get("internal_addresses", base.get("internal_addresses", [])),
               "internal_addresses"),
        coins,
    )  # fmt: skip
    _check_deposit_addresses_unique(accounts, internal)
    return SandboxConfig(
        accounts=accounts,
        coins=coins,
        timings=_timings(Reader(root.get("timings", base.get("timings", {})), "timings")),
        rate_limits=limits,
        journal_fsync=root.flag("journal_fsync", default=True),
        history_amount=read_history_amount(root, "history_amount", default="net"),
        internal_addresses=internal,
    )


@functools.cache
def default_config() -> SandboxConfig:
    """The built-in config (``default_config.json``): accounts ``default`` and ``treasury-sub``."""
    return parse_config(_default_data())


def _default_data() -> dict[str, object]:
    text = resources.files("treasury.sandbox").joinpath("default_config.json").read_text("utf-8")
    data: dict[str, object] = json.loads(text, parse_float=Decimal)
    return data


def _coins(r: Reader) -> dict[str, CoinConfig]:
    coins: dict[str, CoinConfig] = {}
    for c in r.items():
        c.check_keys({"coin", "name", "usd_price", "precision", "networks"})
        symbol = c.text("coin")
        if symbol in coins:
            raise ConfigError(c.path_of("coin"), f"duplicate coin {symbol!r}")
        networks = tuple(
            _network(n, symbol) for n in Reader(c.get("networks"), c.path_of("networks")).items()
        )
        if not networks:
            raise ConfigError(c.path_of("networks"), "needs at least one network")
        names = [n.network for n in networks]
        if len(set(names)) != len(names):
            raise ConfigError(c.path_of("networks"), "duplicate network")
        if sum(n.is_default for n in networks) != 1:
            raise ConfigError(c.path_of("networks"), "exactly one network must have isDefault true")
        coins[symbol] = CoinConfig(
            coin=symbol,
            name=c.text("name", default=symbol),
            usd_price=c.decimal("usd_price", default=Decimal(1)),
            precision=c.integer("precision", default=8, minimum=0),
            networks=networks,
        )
    return coins


_NETWORK_KEYS = {
    "network", "name", "isDefault", "withdrawEnable", "withdrawFee", "withdrawMin", "withdrawMax",
    "withdrawIntegerMultiple", "addressRegex", "memoRegex", "withdrawTag", "withdrawDesc",
    "minConfirm", "unLockConfirm", "estimatedArrivalTime", "contractAddress",
    "withdrawInternalMin", "depositDust", "internal_fee",
}  # fmt: skip


def _network(n: Reader, coin: str) -> NetworkConfig:
    n.check_keys(_NETWORK_KEYS)
    net = NetworkConfig(
        coin=coin,
        network=n.text("network"),
        name=n.text("name", default=""),
        is_default=n.flag("isDefault", default=False),
        withdraw_enable=n.flag("withdrawEnable", default=True),
        withdraw_fee=n.decimal("withdrawFee"),
        withdraw_min=n.decimal("withdrawMin"),
        withdraw_max=n.decimal("withdrawMax", default=Decimal("9999999999")),
        withdraw_integer_multiple=n.decimal("withdrawIntegerMultiple", default=Decimal(0)),
        address_regex=n.regex("addressRegex"),
        memo_regex=n.regex("memoRegex", default=""),
        withdraw_tag=n.flag("withdrawTag", default=False),
        withdraw_desc=n.text("withdrawDesc", default=""),
        min_confirm=n.integer("minConfirm", default=1, minimum=0),
        unlock_confirm=n.integer("unLockConfirm", default=1, minimum=0),
        estimated_arrival_time=n.integer("estimatedArrivalTime", default=5, minimum=0),
        contract_address=n.text("contractAddress", default=""),
        withdraw_internal_min=n.decimal("withdrawInternalMin", default=Decimal("0.00000001")),
        deposit_dust=n.decimal("depositDust", default=Decimal("0.00000001")),
        internal_fee=n.decimal("internal_fee") if n.has("internal_fee") else None,
    )
    if net.withdraw_tag and not net.memo_regex:
        raise ConfigError(n.path_of("memoRegex"), "required when withdrawTag is true")
    if net.withdraw_max < net.withdraw_min:
        raise ConfigError(n.path_of("withdrawMax"), "is below withdrawMin")
    return net


_ACCOUNT_KEYS = {
    "name", "api_key", "hmac_secret", "ed25519_public_key", "rsa_public_key", "uid",
    "canWithdraw", "canTrade", "canDeposit", "apiRestrictions", "balances", "funding_balances",
    "default_wallet", "account_status", "whitelist_enabled", "whitelist", "quota_usd",
    "deposit_addresses", "local_entity",
}  # fmt: skip


def _accounts(r: Reader, coins: Mapping[str, CoinConfig]) -> dict[str, AccountConfig]:
    accounts: dict[str, AccountConfig] = {}
    keys: set[str] = set()
    for i, a in enumerate(r.items()):
        a.check_keys(_ACCOUNT_KEYS)
        name, api_key = a.text("name"), a.text("api_key")
        if name in accounts:
            raise ConfigError(a.path_of("name"), f"duplicate account {name!r}")
        if api_key in keys:
            raise ConfigError(a.path_of("api_key"), "used by two accounts")
        keys.add(api_key)
        secret, ed25519_pem, rsa_pem = _signing_keys(a)
        accounts[name] = AccountConfig(
            name=name,
            api_key=api_key,
            hmac_secret=secret,
            ed25519_public_key=ed25519_pem,
            rsa_public_key=rsa_pem,
            uid=a.integer("uid", default=100000000 + i, minimum=1),
            can_withdraw=a.flag("canWithdraw", default=True),
            can_trade=a.flag("canTrade", default=True),
            can_deposit=a.flag("canDeposit", default=True),
            api_restrictions=_restrictions(a),
            balances=read_balances(a, "balances"),
            funding_balances=read_balances(a, "funding_balances"),
            default_wallet=read_wallet(a, "default_wallet"),
            account_status=read_account_status(a, "account_status"),
            whitelist_enabled=a.flag("whitelist_enabled", default=True),
            whitelist=_address_book(a, coins),
            quota_usd=a.decimal("quota_usd", default=Decimal(8000000)),
            deposit_addresses=_deposit_addresses(
                Reader(a.get("deposit_addresses", []), a.path_of("deposit_addresses")), coins
            ),
            local_entity=_local_entity(a),
        )
    if not accounts:
        raise ConfigError(r.path, "needs at least one account")
    return accounts


def _local_entity(a: Reader) -> str | None:
    """``"JP"``, ``"PL"`` or ``"FR"`` (PL and FR share the EU questionnaire), or absent."""
    value = a.opt_text("local_entity")
    if value is not None and value not in LOCAL_ENTITIES:
        raise ConfigError(
            a.path_of("local_entity"), f"must be one of {', '.join(LOCAL_ENTITIES)}, got {value!r}"
        )
    return value


def _signing_keys(a: Reader) -> tuple[str | None, str | None, str | None]:
    """The account's HMAC secret, Ed25519 and RSA public keys (PEM); at least one is set."""
    secret = a.opt_text("hmac_secret")
    ed25519_pem = a.opt_text("ed25519_public_key")
    if ed25519_pem is not None:
        a.ed25519_key("ed25519_public_key")
    rsa_pem = a.opt_text("rsa_public_key")
    if rsa_pem is not None:
        a.rsa_key("rsa_public_key")
    if secret is None and ed25519_pem is None and rsa_pem is None:
        raise ConfigError(a.path, "needs hmac_secret, ed25519_public_key or rsa_public_key")
    return secret, ed25519_pem, rsa_pem


def _restrictions(a: Reader) -> dict[str, bool]:
    restrictions = dict.fromkeys(API_RESTRICTION_FLAGS, False) | _DEFAULT_RESTRICTIONS
    flags = Reader(a.get("apiRestrictions", {}), a.path_of("apiRestrictions"))
    flags.check_keys(set(API_RESTRICTION_FLAGS))
    for flag in API_RESTRICTION_FLAGS:
        restrictions[flag] = flags.flag(flag, default=restrictions[flag])
    return restrictions


def read_balances(r: Reader, key: str) -> dict[str, Decimal]:
    """``{coin: amount}`` of one wallet, amounts as exact decimals (shared with the admin API)."""
    balances = Reader(r.get(key, {}), r.path_of(key))
    return {coin: balances.decimal(coin) for coin in balances.fields()}


def read_wallet(r: Reader, key: str, default: str = "spot") -> str:
    """A wallet name, ``"spot"`` or ``"funding"`` (shared with the admin API)."""
    value = r.text(key, default=default)
    if value not in WALLETS:
        raise ConfigError(r.path_of(key), f"must be 'spot' or 'funding', got {value!r}")
    return value


def read_account_status(r: Reader, key: str) -> str:
    """The non-empty text of ``account/status`` (shared with the admin API)."""
    value = r.text(key, default=DEFAULT_ACCOUNT_STATUS)
    if not value:
        raise ConfigError(r.path_of(key), "must not be empty (the usual text is 'Normal')")
    return value


def _address_book(a: Reader, coins: Mapping[str, CoinConfig]) -> tuple[WhitelistEntry, ...]:
    book = Reader(a.get("whitelist", []), a.path_of("whitelist"))
    entries = tuple(_whitelist_entry(e, coins) for e in book.items())
    if len(entries) > ADDRESS_BOOK_MAX:
        raise ConfigError(
            book.path,
            f"has {len(entries)} entries; Binance's address book holds at most {ADDRESS_BOOK_MAX}",
        )
    return entries


def _whitelist_entry(e: Reader, coins: Mapping[str, CoinConfig]) -> WhitelistEntry:
    e.check_keys(
        {"coin", "network", "address", "addressTag", "name", "origin", "originType", "whitelisted"}
    )
    entry = WhitelistEntry(
        coin=e.text("coin"),
        network=e.text("network"),
        address=e.text("address"),
        address_tag=e.opt_text("addressTag") or None,
        name=e.text("name", default=""),
        origin=e.text("origin", default=""),
        origin_type=e.text("originType", default="others"),
        whitelisted=e.flag("whitelisted", default=True),
    )
    coin = coins.get(entry.coin)
    if coin is None:
        raise ConfigError(e.path_of("coin"), f"unknown coin {entry.coin!r}")
    network = coin.network(entry.network)
    if network is None:
        raise ConfigError(e.path_of("network"), f"{entry.coin} has no network {entry.network!r}")
    if not re.fullmatch(network.address_regex, entry.address):
        raise ConfigError(e.path_of("address"), f"does not match {network.address_regex}")
    return entry


def _deposit_addresses(r: Reader, coins: Mapping[str, CoinConfig]) -> tuple[DepositAddress, ...]:
    """``[{"network", "address", "addressTag"?}]``: the network must exist (for some coin)
    and the address match its ``addressRegex``."""
    found = []
    for e in r.items():
        e.check_keys({"network", "address", "addressTag"})
        entry = DepositAddress(
            network=e.text("network"),
            address=e.text("address"),
            address_tag=e.opt_text("addressTag") or None,
        )
        patterns = {
            n.address_regex
            for c in coins.values()
            for n in c.networks
            if n.network == entry.network
        }
        if not patterns:
            raise ConfigError(e.path_of("network"), f"no coin has a network {entry.network!r}")
        if not any(re.fullmatch(p, entry.address) for p in patterns):
            raise ConfigError(e.path_of("address"), f"does not match {sorted(patterns)[0]}")
        found.append(entry)
    return tuple(found)


def deposit_key(network: str, address: str, tag: str | None) -> tuple[str, str, str | None]:
    """How a destination is recognised as a deposit address: EVM addresses whatever their
    (checksum) casing, others exactly; the tag exactly (none and empty alike)."""
    return network, address.lower() if network in EVM_NETWORKS else address, tag or None


def _check_deposit_addresses_unique(
    accounts: Mapping[str, AccountConfig], internal: tuple[DepositAddress, ...]
) -> None:
    """One owner per deposit address, or a transfer to it could credit either."""
    owners: dict[tuple[str, str, str | None], str] = {}
    places = [
        (f"accounts[{i}].deposit_addresses", a.deposit_addresses)
        for i, a in enumerate(accounts.values())
    ]
    places.append(("internal_addresses", internal))
    for where, entries in places:
        for i, d in enumerate(entries):
            key = deposit_key(d.network, d.address, d.address_tag)
            if key in owners:
                raise ConfigError(f"{where}[{i}].address", f"also at {owners[key]}")
            owners[key] = f"{where}[{i}]"


def read_history_amount(r: Reader, key: str, default: str) -> str:
    """``"net"`` or ``"gross"`` (shared with the fault of the same name)."""
    value = r.text(key, default=default)
    if value not in HISTORY_AMOUNTS:
        raise ConfigError(r.path_of(key), f"must be 'net' or 'gross', got {value!r}")
    return value


def _timings(r: Reader) -> Timings:
    r.check_keys(
        {"processing_s", "processing_jitter_s", "failure_share", "rejection_share", "seed"}
    )
    timings = Timings(
        processing_s=r.seconds("processing_s", default=Timings.processing_s),
        processing_jitter_s=r.seconds("processing_jitter_s", default=0.0),
        failure_share=r.share("failure_share"),
        rejection_share=r.share("rejection_share"),
        seed=r.opt_integer("seed"),
    )
    if timings.failure_share + timings.rejection_share > 1:
        raise ConfigError(r.path_of("rejection_share"), "failure_share + rejection_share > 1")
    return timings


def _rate_limits(r: Reader) -> RateLimits:
    r.check_keys(set(RateLimits.__dataclass_fields__))
    weights = Reader(r.get("weights", {}), r.path_of("weights"))
    weights.check_keys(set(DEFAULT_WEIGHTS))
    uid_pool = r.text("uid_pool", default="endpoint")
    if uid_pool not in ("account", "endpoint"):
        raise ConfigError(r.path_of("uid_pool"), "must be 'account' or 'endpoint'")
    history_pool = r.text("history_pool", default="second")
    if history_pool not in ("second", "minute"):
        raise ConfigError(r.path_of("history_pool"), "must be 'second' or 'minute'")
    return RateLimits(
        enabled=r.flag("enabled", default=True),
        multiplier=r.decimal("multiplier", default=Decimal(1), positive=True),
        api_ip_weight_per_min=r.integer("api_ip_weight_per_min", default=6000, minimum=1),
        sapi_ip_weight_per_min=r.integer("sapi_ip_weight_per_min", default=12000, minimum=1),
        uid_weight_per_min=r.integer("uid_weight_per_min", default=180000, minimum=1),
        uid_weight_per_s=r.integer("uid_weight_per_s", default=180000, minimum=1),
        history_per_s=r.integer("history_per_s", default=10, minimum=1),
        uid_pool=uid_pool,
        history_pool=history_pool,
        ban_s=r.integer("ban_s", default=120, minimum=0),
        ban_after_429s=r.integer("ban_after_429s", default=2, minimum=0),
        weights={k: weights.integer(k, default=v, minimum=0) for k, v in DEFAULT_WEIGHTS.items()},
    )
