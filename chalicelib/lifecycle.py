"""Model lifecycle: what a legacy or retired model tells its callers, and where a retired one leads.

Headers: `Deprecation: @<unix seconds>` (RFC 9745), `Sunset: <HTTP-date>` (RFC 8594), and a
`Link: </v1/models/<successor>>; rel="successor-version"`. The catalog's status decides, not the
dates: a legacy model keeps serving past its sunset until the catalog marks it retired.
"""
from __future__ import annotations

import calendar
from datetime import date
from email.utils import formatdate

from chalicelib.catalog import Catalog, Model

# A successor chain longer than this is a catalog mistake; it is not followed further.
MAX_UPGRADE_STEPS = 8


def lifecycle_headers(model: Model) -> dict[str, str]:
    """Deprecation, Sunset and successor Link headers for a legacy or retired model; none if active."""
    life = model.lifecycle
    if life is None or life.status == "active" or not (life.deprecated and life.sunset):
        return {}  # catalog.py requires both dates, and real ones, unless active
    headers = {
        # RFC 9745: an sf-date, "@" and Unix seconds; RFC 8594: an HTTP-date (IMF-fixdate).
        "Deprecation": f"@{midnight_utc(life.deprecated)}",
        "Sunset": formatdate(midnight_utc(life.sunset), usegmt=True),
    }
    if life.successor is not None:
        headers["Link"] = f'</v1/models/{life.successor}>; rel="successor-version"'
    return headers


def midnight_utc(day: str) -> int:
    """Unix seconds of 00:00 UTC on `day` (YYYY-MM-DD); ValueError if the calendar has no such day."""
    return calendar.timegm(date.fromisoformat(day).timetuple())


def live_successor(catalog: Catalog, retired: Model) -> Model | None:
    """The first model down `retired`'s successor chain that is not retired itself (the one a caller
    should move to), or None: no successor, a loop, or a chain over MAX_UPGRADE_STEPS."""
    seen = {retired.id}
    model = retired
    for _ in range(MAX_UPGRADE_STEPS):
        successor_id = model.lifecycle.successor if model.lifecycle is not None else None
        if successor_id is None or successor_id in seen:
            return None
        seen.add(successor_id)
        model = catalog.models[successor_id]  # catalog.py checks every successor exists
        if model.status != "retired":
            return model
    return None
