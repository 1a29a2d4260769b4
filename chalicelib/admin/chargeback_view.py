"""Chargeback, read only (GET /admin/v1/chargeback...): the months there are, a month's summary and
a business unit's CSV, computed by the monthly chargeback's own code (chargeback.run_chargeback)
into memory, so the figures and the CSV bytes are the ones a run writes. Nothing is written; the
current month is to date.
"""
from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Callable, Mapping, cast

from chalicelib.chargeback import month_range, run_chargeback
from chalicelib.settings import Settings
from chalicelib.usage import COST_UNIT, UsageStore

MONTHS_KEPT = 13  # the aggregates' retention: the current month and the 12 before it


class _MemorySink:
    """A ChargebackSink that keeps the files: name -> bytes."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    def can_write(self, business_unit: str) -> bool:
        return True

    def put(self, month: str, name: str, business_unit: str, body: bytes, content_type: str) -> str:
        self.files[name] = body
        return name


def month_report(month: str, today: date, usage: UsageStore, budgets: Mapping[str, Mapping[str, Any]],
                 clock: Callable[[], float]) -> tuple[dict[str, Any], dict[str, bytes]]:
    """(the month's summary as the console shows it, business unit -> its CSV)."""
    sink = _MemorySink()
    # settings only supply defaults for usage, sink and budgets, all given here.
    summary = run_chargeback(month, cast(Settings, None), usage=usage, sink=sink, budgets=budgets, clock=clock)
    closed = month < today.isoformat()[:7]
    units = []
    csvs: dict[str, bytes] = {}
    for unit in summary["business_units"]:
        bu = unit["business_unit"]
        body = sink.files.get(f"{bu}.csv")
        if body is not None:
            csvs[bu] = body
        units.append({**{k: v for k, v in unit.items() if k != "file"},
                      "csv": f"/admin/v1/chargeback/{month}/{bu}" if body is not None else None})
    view = {"object": "chargeback.summary", "month": month, "from": summary["from"],
            "to": summary["to"] if closed else today.isoformat(), "closed": closed, "currency": "USD",
            "generated_at": summary["generated_at"], "business_units": units, "total": summary["total"]}
    return view, csvs


def months(today: date, usage: UsageStore) -> list[dict[str, Any]]:
    """The current month (to date) and each closed month of the retention that has usage, newest first."""
    year, mon = today.year, today.month
    labels = []
    for _ in range(MONTHS_KEPT):
        labels.append(f"{year:04d}-{mon:02d}")
        year, mon = (year - 1, 12) if mon == 1 else (year, mon - 1)
    sums: dict[str, list[int]] = {}
    for t in usage.totals(f"{labels[-1]}-01", today.isoformat()):
        row = sums.setdefault(t.day[:7], [0, 0])
        row[0] += t.requests
        row[1] += t.cost_units
    current = labels[0]
    out = []
    for label in labels:
        if label != current and label not in sums:
            continue
        first, last = month_range(label)
        requests, units = sums.get(label, [0, 0])
        usd = Decimal(units) * COST_UNIT
        out.append({"month": label, "from": first, "to": today.isoformat() if label == current else last,
                    "closed": label != current, "requests": requests, "cost_usd": format(usd, ".8f"),
                    "cost_usd_cents": format(usd.quantize(Decimal("0.01"), ROUND_HALF_UP), "f")})
    return out
