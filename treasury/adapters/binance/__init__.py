"""Binance adapter: an async client on httpx for the spot and wallet (capital) endpoints.

Build it in the composition root::

    signer = load_signer(api_secret=..., private_key_pem=..., passphrase=...)
    client = BinanceClient(http, base_url="https://api.binance.com", api_key=..., signer=signer)

See ``errors`` for what each failure asks of the caller.
"""

from __future__ import annotations

from treasury.adapters.binance.client import BinanceClient, mask_api_key
from treasury.adapters.binance.codes import RULES, CodeRule, Outcome, Reason, rule_for
from treasury.adapters.binance.errors import (
    ExchangeError,
    IpBanned,
    NotSent,
    OutcomeUnknown,
    Rejected,
    ResponseInvalid,
)
from treasury.adapters.binance.limits import RateLimiter, RateLimits
from treasury.adapters.binance.pacing import ApplyLimiter
from treasury.adapters.binance.retry import RetryPolicy
from treasury.adapters.binance.signing import (
    Ed25519Signer,
    HmacSigner,
    RsaSigner,
    Signer,
    SigningKeyError,
    load_signer,
)

__all__ = [
    "RULES",
    "ApplyLimiter",
    "BinanceClient",
    "CodeRule",
    "Ed25519Signer",
    "ExchangeError",
    "HmacSigner",
    "IpBanned",
    "NotSent",
    "Outcome",
    "OutcomeUnknown",
    "RateLimiter",
    "RateLimits",
    "Reason",
    "Rejected",
    "ResponseInvalid",
    "RetryPolicy",
    "RsaSigner",
    "Signer",
    "SigningKeyError",
    "load_signer",
    "mask_api_key",
    "rule_for",
]
