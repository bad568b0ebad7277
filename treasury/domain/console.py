"""Pure parts of the operator console (``treasury api``, ``/console``): secrets' hashes,
link lifetimes, the chain explorers' links and the 24 h activity chart (SVG)."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from xml.sax.saxutils import escape

from treasury.domain.errors import InvalidField

LOGIN_TTL_DEFAULT = timedelta(minutes=10)
LOGIN_TTL_MAX = timedelta(hours=24)
SESSION_TTL = timedelta(hours=8)
_DURATION = re.compile(r"^\s*(\d{1,6})\s*([smhd])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}

# Well-known networks (Binance's network codes) -> the transaction page of their explorer.
EXPLORERS: dict[str, str] = {
    "TRX": "https://tronscan.org/#/transaction/{tx}",
    "ETH": "https://etherscan.io/tx/{tx}",
    "BSC": "https://bscscan.com/tx/{tx}",
    "BTC": "https://mempool.space/tx/{tx}",
    "ARBITRUM": "https://arbiscan.io/tx/{tx}",
}
_TX = re.compile(r"^(0x)?[0-9A-Fa-f]{16,128}$")


def sha256_hex(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def csrf_token(session_secret: str) -> str:
    """The CSRF token of a session: derived from its secret (the cookie's value), so it is
    bound to that session and needs no storage."""
    return hmac.new(session_secret.encode(), b"treasury-console-csrf", "sha256").hexdigest()


def csrf_ok(session_secret: str, presented: str | None) -> bool:
    return presented is not None and hmac.compare_digest(csrf_token(session_secret), presented)


def parse_ttl(text: str, *, field: str = "expires") -> timedelta:
    """``10m``, ``90s``, ``2h``: a login link's lifetime, at most a day.

    Raises:
        InvalidField: not a positive number and one of s, m, h, d; or above 24 h.
    """
    match = _DURATION.match(text)
    if match is None or int(match.group(1)) == 0:
        raise InvalidField(field, f"{text!r} is not a duration like 10m, 90s or 2h")
    value = timedelta(seconds=int(match.group(1)) * _UNIT_S[match.group(2)])
    if value > LOGIN_TTL_MAX:
        raise InvalidField(field, f"{text} is longer than a login link may live (24h)")
    return value


def explorer_url(network: str, tx_id: str | None) -> str | None:
    """The explorer's page of ``tx_id`` on a well-known network; None otherwise (or for a
    txId that is not plain hex: Binance's internal transfers say ``Internal transfer``)."""
    template = EXPLORERS.get(network.upper())
    if template is None or tx_id is None or not _TX.match(tx_id):
        return None
    return template.format(tx=tx_id)


@dataclass(frozen=True)
class Activity:
    """Per hour over the last 24 (oldest first): sends and settlements; and how many of
    the settled ones took how long (``SETTLE_BUCKETS``)."""

    start: datetime
    sends: tuple[int, ...]
    settlements: tuple[int, ...]
    settle_histogram: tuple[int, ...]

    @property
    def settled(self) -> int:
        return sum(self.settle_histogram)


def chart_start(now: datetime) -> datetime:
    """The first hour the chart shows: 23 whole hours before the current one."""
    return now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=23)


SETTLE_BUCKETS: tuple[tuple[str, float], ...] = (
    ("<1m", 60),
    ("1-5m", 300),
    ("5-15m", 900),
    ("15-60m", 3600),
    ("1-4h", 4 * 3600),
    (">4h", float("inf")),
)


def hourly(times: Sequence[datetime], start: datetime, hours: int = 24) -> tuple[int, ...]:
    counts = [0] * hours
    for t in times:
        i = int((t - start).total_seconds() // 3600)
        if 0 <= i < hours:
            counts[i] += 1
    return tuple(counts)


def activity(
    *,
    now: datetime,
    sent: Sequence[datetime],
    settled: Sequence[tuple[datetime, datetime]],
) -> Activity:
    """From raw times (the store counts in SQL instead): ``sent``, when intents were
    submitted; ``settled``, (submitted, settled) pairs."""
    start = chart_start(now)
    return Activity(
        start=start,
        sends=hourly(sent, start),
        settlements=hourly([s for _, s in settled], start),
        settle_histogram=settle_histogram(
            [max(0.0, (s - sub).total_seconds()) for sub, s in settled if s >= start]
        ),
    )


def settle_histogram(settle_s: Sequence[float]) -> tuple[int, ...]:
    counts = [0] * len(SETTLE_BUCKETS)
    for value in settle_s:
        for i, (_, upper) in enumerate(SETTLE_BUCKETS):
            if value < upper:
                counts[i] += 1
                break
    return tuple(counts)


def activity_svg(a: Activity) -> str:
    """The chart as a standalone SVG document: presentation attributes only (no style
    element or attribute, no script), every text escaped."""
    width, height = 760, 300
    left, top, plot_w, plot_h = 40, 30, 460, 200
    peak = max([1, *a.sends, *a.settlements])
    bar = plot_w / 24
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-labelledby="t">',
        '<title id="t">Sends and settlements per hour (24 h), and time to settle</title>',
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="{left}" y="18" font-family="sans-serif" font-size="13" fill="#111111">'
        "Per hour, last 24 h (UTC): sends (dark) and settlements (light)</text>",
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" '
        'stroke="#333333" stroke-width="1"/>',
        f'<text x="{left - 6}" y="{top + 10}" font-family="sans-serif" font-size="11" '
        f'text-anchor="end" fill="#111111">{peak}</text>',
        f'<text x="{left - 6}" y="{top + plot_h}" font-family="sans-serif" font-size="11" '
        'text-anchor="end" fill="#111111">0</text>',
    ]
    for i, (sends, settles) in enumerate(zip(a.sends, a.settlements, strict=True)):
        x = left + i * bar
        for j, (value, colour) in enumerate(((sends, "#1f4e79"), (settles, "#7fb3e0"))):
            h = plot_h * value / peak
            parts.append(
                f'<rect x="{x + 1 + j * (bar - 2) / 2:.1f}" y="{top + plot_h - h:.1f}" '
                f'width="{(bar - 2) / 2:.1f}" height="{h:.1f}" fill="{colour}">'
                f"<title>{escape(_hour(a, i))}: {sends} sent, {settles} settled</title></rect>"
            )
        if i % 6 == 0:
            parts.append(
                f'<text x="{x:.1f}" y="{top + plot_h + 16}" font-family="sans-serif" '
                f'font-size="11" fill="#111111">{escape(_hour(a, i))}</text>'
            )
    # time to settle
    hist = a.settle_histogram
    hx, hw = 540, 200
    hpeak = max([1, *hist])
    parts.append(
        f'<text x="{hx}" y="18" font-family="sans-serif" font-size="13" fill="#111111">'
        f"Time to settle ({a.settled} settled)</text>"
    )
    row = plot_h / len(SETTLE_BUCKETS)
    for i, ((label, _), count) in enumerate(zip(SETTLE_BUCKETS, hist, strict=True)):
        y = top + i * row
        w = (hw - 60) * count / hpeak
        parts.append(
            f'<text x="{hx + 44}" y="{y + row / 2 + 4:.1f}" font-family="sans-serif" '
            f'font-size="11" text-anchor="end" fill="#111111">{escape(label)}</text>'
        )
        parts.append(
            f'<rect x="{hx + 50}" y="{y + 3:.1f}" width="{w:.1f}" height="{row - 6:.1f}" '
            f'fill="#1f4e79"><title>{escape(label)}: {count}</title></rect>'
        )
        parts.append(
            f'<text x="{hx + 54 + w:.1f}" y="{y + row / 2 + 4:.1f}" font-family="sans-serif" '
            f'font-size="11" fill="#111111">{count}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts)


def _hour(a: Activity, i: int) -> str:
    return f"{(a.start + timedelta(hours=i)):%H}:00"
