"""An app's quotas beside what is used of each in its current window (GET /admin/v1/apps/{id}/quotas):
the rows. The reading itself (chalicelib/quota_windows.py: the request path's windows, the ledger's
counters, nothing reserved) is handed in by gateway.build_admin: the admin room does not import the
request path.
"""
from __future__ import annotations

import time
from decimal import Decimal
from typing import Any, Mapping, Protocol

from chalicelib.catalog import BusinessUnit
from chalicelib.usage import COST_UNIT


class WindowUse(Protocol):
    """chalicelib/quota_windows.py's WindowUse, as read here."""

    name: str
    unit: str
    model: str | None
    window: str
    period: str
    resets_at: float
    cap: int
    used: int
    held: int


def window_row(use: WindowUse) -> dict[str, Any]:
    """A limit beside its use: USD in dollars as numbers (8 decimals at most), the rest whole units."""
    money = _usd if use.unit == "usd" else int
    return {
        "quota": use.name, "scope": "business_unit" if use.name.startswith("business_units.") else "app",
        "model": use.model, "unit": use.unit, "window": use.window, "period": use.period,
        "resets_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(use.resets_at)),
        "limit": money(use.cap), "used": money(use.used), "held": money(use.held),
        "remaining": money(max(0, use.cap - use.used - use.held)),
    }


def _usd(units: int) -> float:
    return float(Decimal(units) * COST_UNIT)


def business_unit(units: Mapping[str, Mapping[str, Any]], bu: str) -> BusinessUnit | None:
    """The registry's budget of `bu` as the request path builds it (catalog_source)."""
    budget = units.get(bu)
    if budget is None:
        return None
    usd = budget.get("usd_per_month")
    return BusinessUnit(bu, float(usd) if usd is not None else None, budget.get("tokens_per_month"))
