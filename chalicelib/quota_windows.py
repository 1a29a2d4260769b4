"""Read only: what is used of each of an app's limits in its current windows (the console's app
page, through GET /admin/v1/apps/{id}/quotas; gateway.build_admin hands it to the admin room, which
never imports the request path).

The windows are the request path's own: `quota.plan_for` names every limit the catalog sets for the
app (per capped model, that model's day cap; and its business unit's budgets), and the ledger's
`counters` reads each counter's used and held amounts, consuming nothing (no reservation, no
lease). On DynamoDB `held` counts the blocks containers have leased, which include their in-flight
reservations (a container books what its lease served when it trims, every SERVE_S): used + held is
what the next lease sees as taken.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from chalicelib.catalog import App, BusinessUnit, Model
from chalicelib.quota import plan_for
from chalicelib.store import Ledger, Limit

# The app's quotas as the catalog lists them, its per-model caps, then its BU's budgets.
_ORDER = ("quotas.tokens_per_day", "quotas.tokens_per_month", "quotas.requests_per_minute",
          "quotas.tokens_per_minute", "quotas.usd_per_month")


@dataclass(frozen=True, slots=True)
class WindowUse:
    name: str  # the catalog field that sets the limit (as a 429's message names it)
    unit: str  # tokens | requests | usd (whole 1e-8 USD)
    model: str | None  # a per-model cap's model
    window: str  # minute | day | month
    period: str  # the window's UTC label
    resets_at: float  # epoch seconds
    cap: int
    used: int
    held: int


def window_use(ledger: Ledger, app: App, unit: BusinessUnit | None, models: Mapping[str, Model],
               now: float) -> list[WindowUse]:
    """One entry per capped limit of `app` in the windows of `now`, in the catalog's order."""
    found: dict[str, tuple[Limit, str, str | None]] = {}
    plans = [(plan_for(app, None, unit, now), None)]
    plans += [(plan_for(app, models[m], unit, now), m) for m in sorted(app.quotas.model_tokens_per_day) if m in models]
    for plan, model in plans:
        for limits, kind in ((plan.tokens, "tokens"), (plan.admitted, "requests"), (plan.usd, "usd")):
            for limit in limits:
                name = plan.names.get(limit.key)
                if limit.cap is not None and name is not None and name not in found:
                    found[name] = (limit, kind, model if name.startswith("quotas.models.") else None)
    names = sorted(found, key=_rank)
    counters = ledger.counters([found[n][0] for n in names], now) if names else []
    out = []
    for name, counter in zip(names, counters, strict=True):
        limit, kind, model = found[name]
        window, period = limit.key.split("/")[-2:]
        out.append(WindowUse(name, kind, model, window, period, limit.resets_at, limit.cap or 0, counter.used,
                             counter.held))
    return out


def _rank(name: str) -> tuple[int, str]:
    if name in _ORDER:
        return _ORDER.index(name), ""
    return (len(_ORDER), name) if name.startswith("quotas.models.") else (len(_ORDER) + 1, name)
