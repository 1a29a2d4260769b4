"""OpenAI's rate-limit headers, and the cost header, as every `/v1` answer carries them.

`x-ratelimit-{limit,remaining,reset}-{requests,tokens}`: for requests and for tokens separately,
the window with the least remaining (the tightest that applies); a trio is omitted when no window of
its kind applies. `reset` is the time to that window's end in OpenAI's duration form (`1s`,
`6m0s`, `20ms`). `x-garden-cost-usd` is a plain decimal, never exponent form (`0.000375`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Iterable


@dataclass(frozen=True, slots=True)
class Window:
    kind: str  # requests | tokens
    limit: int
    remaining: int
    reset_s: float  # seconds until the window resets


def ratelimit_headers(windows: Iterable[Window]) -> dict[str, str]:
    tightest: dict[str, Window] = {}
    for window in windows:
        best = tightest.get(window.kind)
        if best is None or (window.remaining, -window.reset_s) < (best.remaining, -best.reset_s):
            tightest[window.kind] = window
    headers: dict[str, str] = {}
    for kind in ("requests", "tokens"):
        window = tightest.get(kind)
        if window is not None:
            headers[f"x-ratelimit-limit-{kind}"] = str(window.limit)
            headers[f"x-ratelimit-remaining-{kind}"] = str(max(0, window.remaining))
            headers[f"x-ratelimit-reset-{kind}"] = duration(window.reset_s)
    return headers


def duration(seconds: float) -> str:
    """OpenAI's (Go's) duration form: `20ms` under a second, else `1h2m3s`, `6m0s`, `1.5s`."""
    ms = max(0, math.ceil(seconds * 1000))
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = format(Decimal(rest) / 1000, "f").rstrip("0").rstrip(".") if rest % 1000 else str(rest // 1000)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def cost_header(cost_usd: float) -> dict[str, str]:
    """`x-garden-cost-usd`: what the request cost, as a plain decimal (`0.000375`, `0`)."""
    return {"x-garden-cost-usd": format(Decimal(repr(float(cost_usd))).normalize(), "f")}
