"""The pure part of webhooks: URLs, topics, the derived secret, the signature (and the
README's verification recipe), the retry schedule and who gets an outbox row."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
from datetime import UTC, datetime, timedelta

import pytest

from treasury.domain import webhooks as hooks
from treasury.domain.errors import InvalidField

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/treasury",
        "http://127.0.0.1:8080/h",
        "http://localhost/h",
        "http://[::1]:9/h",
        "https://example.com:8443/a?b=c",
    ],
)
def test_usable_urls(url: str) -> None:
    assert hooks.validate_url(url) == url


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://example.com/h", "loopback"),
        ("http://10.0.0.1/h", "loopback"),
        ("ftp://example.com/h", "https://"),
        ("https://user:pw@example.com/h", "password"),
        ("https:///nohost", "https://"),
        ("", "URL"),
        ("https://example.com/a b", "URL"),
        ("https://example.com:99999/", "not a URL"),
    ],
)
def test_unusable_urls_are_refused_without_echoing_them(url: str, problem: str) -> None:
    with pytest.raises(InvalidField, match=problem) as refused:
        hooks.validate_url(url)
    assert "pw@" not in str(refused.value)


def test_events() -> None:
    assert hooks.parse_events("alert, intent.status,alert") == ("intent.status", "alert")
    with pytest.raises(InvalidField, match="unknown topic 'intent'"):
        hooks.parse_events("intent")
    with pytest.raises(InvalidField, match="--events"):
        hooks.parse_events(" , ")


def test_the_secret_is_derived_per_subscription() -> None:
    key = "k" * 32
    one = hooks.derive_secret(key, 1)
    expected = hmac.new(key.encode(), b"treasury-webhook:1", hashlib.sha256).hexdigest()
    assert one == "whsec_" + expected
    assert one == hooks.derive_secret(key, 1)
    assert one != hooks.derive_secret(key, 2)
    assert one != hooks.derive_secret("j" * 32, 1)


def test_signature_and_verification() -> None:
    body = hooks.body(delivery="7.2", topic="alert", created_at=T0, data={"kind": "failed"})
    assert json.loads(body) == {
        "delivery_id": "7.2",
        "topic": "alert",
        "created_at": "2026-01-01T00:00:00Z",
        "data": {"kind": "failed"},
    }
    header = hooks.signature("whsec_x", 1_700_000_000, body)
    mac = hmac.new(b"whsec_x", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={mac}"
    assert hooks.verify("whsec_x", header, body, now=1_700_000_100)
    assert not hooks.verify("whsec_x", header, body + b" ", now=1_700_000_100)
    assert not hooks.verify("whsec_y", header, body, now=1_700_000_100)
    assert not hooks.verify("whsec_x", header, body, now=1_700_000_000 + 301)  # too old
    assert not hooks.verify("whsec_x", "garbage", body, now=1_700_000_000)


def test_the_readme_openssl_one_liner_agrees() -> None:
    body = b'{"delivery_id":"1.1"}'
    header = hooks.signature("whsec_x", 1_700_000_000, body)
    try:
        made = subprocess.run(
            ["openssl", "dgst", "-sha256", "-hmac", "whsec_x"],
            input=b"1700000000." + body,
            capture_output=True,
            check=True,
        )
    except FileNotFoundError:
        pytest.skip("no openssl")
    assert made.stdout.decode().split()[-1] == header.split("v1=")[1]


def test_backoff_grows_with_jitter_and_a_cap() -> None:
    low = [hooks.backoff_s(n, rand=lambda: 0.0) for n in range(1, 6)]
    high = [hooks.backoff_s(n, rand=lambda: 1.0) for n in range(1, 6)]
    assert high == [5.0, 10.0, 20.0, 40.0, 80.0]
    assert low == [h / 2 for h in high]
    assert hooks.backoff_s(50, rand=lambda: 1.0) == hooks.BACKOFF_MAX_S


def test_after_an_attempt() -> None:
    ok = hooks.after_attempt(ok=True, attempts=3, first_attempt_at=T0, now=T0, max_retry_s=60)
    assert ok == hooks.Outcome("delivered", None)
    again = hooks.after_attempt(
        ok=False, attempts=1, first_attempt_at=T0, now=T0, max_retry_s=60, rand=lambda: 1.0
    )
    assert again == hooks.Outcome("pending", T0 + timedelta(seconds=5))
    # the next wait would overshoot the bound: one last try at the bound itself
    late = T0 + timedelta(seconds=50)
    last = hooks.after_attempt(
        ok=False, attempts=4, first_attempt_at=T0, now=late, max_retry_s=60, rand=lambda: 1.0
    )
    assert last == hooks.Outcome("pending", T0 + timedelta(seconds=60))
    over = hooks.after_attempt(
        ok=False,
        attempts=5,
        first_attempt_at=T0,
        now=T0 + timedelta(seconds=60),
        max_retry_s=60,
        rand=lambda: 1.0,
    )
    assert over == hooks.Outcome("failed", None)


def test_a_day_of_retries_is_bounded() -> None:
    now, attempts = T0, 0
    while True:
        attempts += 1
        out = hooks.after_attempt(
            ok=False, attempts=attempts, first_attempt_at=T0, now=now, max_retry_s=86400
        )
        if out.status == "failed":
            break
        assert out.next_attempt_at is not None and out.next_attempt_at > now
        now = out.next_attempt_at
    assert now <= T0 + timedelta(seconds=86400)
    assert 20 <= attempts <= 60


def test_recipients() -> None:
    subs = [
        hooks.Subscriber(1, ("intent.status",), 0),
        hooks.Subscriber(2, ("intent.status", "alert"), 10),
        hooks.Subscriber(3, ("alert",), 0),
        hooks.Subscriber(4, ("intent.status",), 0, disabled=True),
    ]
    assert hooks.recipients(5, "intent.status", subs) == [1]  # 2 came after row 5
    assert hooks.recipients(11, "intent.status", subs) == [1, 2]
    assert hooks.recipients(11, "alert", subs) == [2, 3]
    assert hooks.recipients(10, "alert", subs) == [3]


def test_delivery_ids_are_stable() -> None:
    assert hooks.delivery_id(12, 3) == "12.3" == hooks.delivery_id(12, 3)
    assert hooks.delivery_id(1, 23) != hooks.delivery_id(12, 3)


def test_retry_after_is_honoured_up_to_the_cap() -> None:
    slow = hooks.after_attempt(
        ok=False, attempts=1, first_attempt_at=T0, now=T0, max_retry_s=86400,
        at_least_s=120, rand=lambda: 1.0,
    )  # fmt: skip
    assert slow.next_attempt_at == T0 + timedelta(seconds=120)
    capped = hooks.after_attempt(
        ok=False, attempts=1, first_attempt_at=T0, now=T0, max_retry_s=86400,
        at_least_s=10**9, rand=lambda: 1.0,
    )  # fmt: skip
    assert capped.next_attempt_at == T0 + timedelta(seconds=hooks.BACKOFF_MAX_S)
