"""AWS adapter of the usage aggregates port: items of their own in the `garden-ledger` table.

Key space (the ledger's items are `APP#...` and `RESID#...`; nothing here collides with them):
- pk `USAGE#<yyyy-mm>#<shard>`, sk `<day>#<app>#<business unit>#<model>`: one aggregate per
  (day, app, business unit, model) per shard, with `requests`, `prompt_tokens`,
  `completion_tokens`, `cached_tokens`, `cost_units` (whole 1e-8 USD: exact integers), `errors`,
  `rejected`, and the key's parts as plain attributes. App, model and business-unit ids never
  contain `#` (catalog schema), so the sort key is unambiguous.
- Named counts (usage.event_counts: rejections and errors by code, PII types, guardrail
  interventions) are attributes of the same item, `c#<kind>:<code>` (e.g. `c#pii:EMAIL`), ADDed
  by the same UpdateItem: no extra write. Their names come from fixed vocabularies, so an item holds
  a bounded number of them (~10-40 bytes each).
- `record` is ONE unconditional UpdateItem (SET the key's parts and the TTL, ADD the counters):
  ADD is atomic, so concurrent records sum exactly. An UpdateItem costs the larger of the item's
  sizes before and after, per 1 KB: an aggregate of ~250 bytes with the handful of named counts a
  day of one app and model gathers stays under 1 KB, 1 write unit (tests/usage measure it); only an
  item that gathered dozens of distinct codes, PII types and guardrail categories in one day would
  cost 2.
- TTL `expires_at` = end of the day + 400 days: kept at least 13 months (the ledger's own items
  expire after 35 days; these must not).

Hot key. DynamoDB takes about 1,000 write units per second per partition key. Every request writes
one aggregate, so a single key per month would carry the whole gateway's rate (the seed's target:
200-500 rps, one app alone 300-500). Each record picks one of `SHARDS` = 8 partition keys at random
and reads sum them: at 500 rps the hottest key takes ~63 writes/s (binomial: well under 100 in any
second), 16x below the limit, so the gateway could grow to ~8,000 rps before one shard nears it.
Reads cost 8 Query calls per month in the range (the chargeback reads one month; the admin API's
13-month range is 104 Queries), which is why N stays small: 8 buys the headroom at a read cost that
does not matter. Stores only ids, numbers and dates: never request text.
"""
from __future__ import annotations

import calendar
import random
import time
from typing import Any, Callable, Iterator

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.errors import ServiceUnavailable
from chalicelib.lazy import OnFirstUse
from chalicelib.usage import UsageEvent, UsageTotals
from chalicelib.usage_store.sqlite import counts

SHARDS = 8
RETENTION_S = 400 * 86400  # >= 13 months after the aggregate's day
_COUNTERS = ("requests", "prompt_tokens", "completion_tokens", "cached_tokens", "cost_units", "errors",
             "rejected")
_UPDATE = ("SET app_id = :app, business_unit = :bu, model = :model, #day = :day, expires_at = :ttl "
           "ADD " + ", ".join(f"{name} :{name}" for name in _COUNTERS))
COUNT_PREFIX = "c#"  # attribute name of a named count: c#<kind>:<code>


class DynamoDbUsageStore:
    def __init__(self, client_factory: Callable[[], Any], table: str,
                 shard: Callable[[], int] = lambda: random.randrange(SHARDS)) -> None:
        self._client = OnFirstUse(client_factory)
        self._table = table
        self._shard = shard

    def record(self, event: UsageEvent) -> None:
        requests, errors, rejected = counts(event)
        values = {"requests": requests, "prompt_tokens": event.prompt_tokens,
                  "completion_tokens": event.completion_tokens, "cached_tokens": event.cached_tokens,
                  "cost_units": event.cost_units, "errors": errors, "rejected": rejected}
        names = {"#day": "day", **{f"#c{i}": COUNT_PREFIX + name for i, (name, _) in enumerate(event.counts)}}
        added = "".join(f", #c{i} :c{i}" for i in range(len(event.counts)))
        self._call(
            "update_item", TableName=self._table, Key=item_key(event, self._shard() % SHARDS),
            UpdateExpression=_UPDATE + added, ExpressionAttributeNames=names,
            ExpressionAttributeValues={
                ":app": _s(event.app_id), ":bu": _s(event.business_unit), ":model": _s(event.model),
                ":day": _s(event.day), ":ttl": _n(_end_of_day(event.day) + RETENTION_S),
                **{f":{name}": _n(n) for name, n in values.items()},
                **{f":c{i}": _n(n) for i, (_, n) in enumerate(event.counts)},
            },
        )

    def totals(self, from_day: str, to_day: str) -> list[UsageTotals]:
        sums: dict[tuple[str, str, str, str], list[int]] = {}
        named: dict[tuple[str, str, str, str], dict[str, int]] = {}
        for month in _months(from_day, to_day):
            for shard in range(SHARDS):
                for item in self._query(f"USAGE#{month}#{shard}", from_day, to_day):
                    key = (item["day"]["S"], item["app_id"]["S"], item["business_unit"]["S"], item["model"]["S"])
                    row = sums.setdefault(key, [0] * len(_COUNTERS))
                    for i, name in enumerate(_COUNTERS):
                        row[i] += int(item[name]["N"]) if name in item else 0
                    counts = named.setdefault(key, {})
                    for attr, value in item.items():
                        if attr.startswith(COUNT_PREFIX):
                            name = attr[len(COUNT_PREFIX):]
                            counts[name] = counts.get(name, 0) + int(value["N"])
        return [UsageTotals(app_id=app, business_unit=bu, model=model, day=day, **dict(zip(_COUNTERS, row, strict=True)),
                            counts=named.get((day, app, bu, model), {}))
                for (day, app, bu, model), row in sorted(sums.items())]

    def _query(self, pk: str, from_day: str, to_day: str) -> Iterator[dict[str, Any]]:
        query: dict[str, Any] = {
            "TableName": self._table, "ConsistentRead": True,
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :from AND :to",
            # "~" sorts after "#": every sort key of to_day is within the range.
            "ExpressionAttributeValues": {":pk": _s(pk), ":from": _s(from_day), ":to": _s(f"{to_day}~")},
        }
        while True:
            page = self._call("query", **query)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        try:
            return getattr(self._client(), operation)(**kwargs)
        except (ClientError, BotoCoreError):
            raise ServiceUnavailable("usage store unavailable", code="store_unavailable") from None


def item_key(event: UsageEvent, shard: int) -> dict[str, Any]:
    return {"pk": _s(f"USAGE#{event.day[:7]}#{shard}"),
            "sk": _s(f"{event.day}#{event.app_id}#{event.business_unit}#{event.model}")}


def _months(from_day: str, to_day: str) -> list[str]:
    """Every YYYY-MM from from_day's month to to_day's, inclusive (none when from > to)."""
    year, month = int(from_day[:4]), int(from_day[5:7])
    months: list[str] = []
    while f"{year:04d}-{month:02d}" <= to_day[:7]:
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def _end_of_day(day: str) -> int:
    return calendar.timegm(time.strptime(day, "%Y-%m-%d")) + 86400


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: int) -> dict[str, str]:
    return {"N": str(int(value))}
