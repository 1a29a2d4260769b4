"""AWS adapter of the store port: the `garden-ledger` DynamoDB table (pk/sk, TTL on `expires_at`).

Items, all under the app's day partition `APP#<app>#DAY#<day>` except the pointer:
- `USAGE`: tokens, requests, cost_usd (a Number, exact decimal dollars: micro-dollars would round
  a cheap request to 0), `held` (tokens of reservations not yet settled, released or swept) and
  `committed` = tokens + held. Condition expressions cannot add, so `committed` is what `reserve`
  compares with `limit - n`. TTL: end of the day + 35 days (a month of cost reports).
- `RES#<id>`: one reservation (tokens, lease_until), listed by `sweep`.
- pk `RESID#<id>`, sk `RES`: a pointer to the above, because `release(reservation_id)` is given
  no app or day and GetItem needs the whole key.
A reservation's logical expiry is `lease_until`; its TTL `expires_at` is the end of its day + 1
day, so TTL can never delete a hold before `sweep` frees it (its day is over by then). Expired
holds keep counting until swept (see the port). Stores only ids, numbers and dates.
"""
from __future__ import annotations

import calendar
import random
import time
from decimal import Decimal
from typing import Any, Callable

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.errors import ServiceUnavailable
from chalicelib.lazy import OnFirstUse
from chalicelib.store import DailyUsage

_USAGE_TTL_S = 35 * 86400
_RES_TTL_S = 86400
_CONFLICT_ATTEMPTS = 5  # TransactionConflict: another transaction on the same usage item


class _Cancelled(Exception):
    def __init__(self, codes: list[str]) -> None:
        super().__init__(",".join(codes))
        self.codes = codes


class DynamoDbLedger:
    def __init__(self, client_factory: Callable[[], Any], table: str) -> None:
        self._client = OnFirstUse(client_factory)
        self._table = table

    # -- port ---------------------------------------------------------------------------------
    def reserve(
        self, *, reservation_id: str, app_id: str, day: str, tokens: int, limit: int,
        now: float, expires_at: float,
    ) -> bool:
        # `now` is not used: expired holds count until `sweep` (a condition cannot sum items).
        if tokens > limit:
            return False
        pk, end = _pk(app_id, day), _end_of_day(day)
        res_item = {"pk": _s(pk), "sk": _s(f"RES#{reservation_id}"), "tokens": _n(tokens),
                    "lease_until": _n(expires_at), "expires_at": _n(end + _RES_TTL_S)}
        pointer = {"pk": _s(f"RESID#{reservation_id}"), "sk": _s("RES"), "app_id": _s(app_id),
                   "day": _s(day), "tokens": _n(tokens), "expires_at": _n(end + _RES_TTL_S)}
        items = [
            self._hold(pk, day, tokens, limit),
            {"Put": {"TableName": self._table, "Item": res_item,
                     "ConditionExpression": "attribute_not_exists(pk)"}},
            {"Put": {"TableName": self._table, "Item": pointer,
                     "ConditionExpression": "attribute_not_exists(pk)"}},
        ]
        try:
            self._transact(items)
        except _Cancelled as exc:
            if exc.codes[0] == "ConditionalCheckFailed":
                return False  # would overshoot the limit
            if "ConditionalCheckFailed" in exc.codes[1:]:
                # Same as SQLite's primary key: an id is reserved once (ids are request ids).
                raise ValueError("reservation id already in use") from None
            raise _unavailable() from None
        return True

    def top_up(
        self, *, reservation_id: str, app_id: str, day: str, tokens: int, limit: int, now: float,
    ) -> bool:
        # Same condition as reserve, on the same counter; the hold and its pointer grow with it, so
        # settle, release and sweep free exactly what is held.
        if tokens > limit:
            return False
        pk = _pk(app_id, day)
        grow = {"UpdateExpression": "ADD tokens :n", "ConditionExpression": "attribute_exists(pk)",
                "ExpressionAttributeValues": {":n": _n(tokens)}}
        items = [
            self._hold(pk, day, tokens, limit),
            {"Update": {"TableName": self._table, "Key": {"pk": _s(pk), "sk": _s(f"RES#{reservation_id}")},
                        **grow, "ConditionExpression": "attribute_exists(pk) AND lease_until > :now",
                        "ExpressionAttributeValues": {":n": _n(tokens), ":now": _n(now)}}},
            {"Update": {"TableName": self._table, "Key": {"pk": _s(f"RESID#{reservation_id}"), "sk": _s("RES")},
                        **grow}},
        ]
        try:
            self._transact(items)
        except _Cancelled as exc:
            if "ConditionalCheckFailed" in exc.codes:
                return False  # over the limit, or the reservation was settled, released or swept
            raise _unavailable() from None
        return True

    def settle(
        self, *, reservation_id: str, app_id: str, day: str, tokens: int, cost_usd: float, now: float
    ) -> None:
        pk = _pk(app_id, day)
        held = self._get({"pk": _s(pk), "sk": _s(f"RES#{reservation_id}")})
        if held is not None:
            reserved = int(held["tokens"]["N"])
            try:
                self._transact([
                    self._delete_res(pk, reservation_id),
                    self._delete_pointer(reservation_id),
                    self._usage_update(pk, day, "SET expires_at = :ttl ADD #c :delta, held :minus, "
                                       "tokens :t, requests :one, cost_usd :cost",
                                       {":delta": _n(tokens - reserved), ":minus": _n(-reserved),
                                        ":t": _n(tokens), ":one": _n(1), ":cost": _cost(cost_usd)}),
                ])
                return
            except _Cancelled as exc:
                if exc.codes[0] != "ConditionalCheckFailed":
                    raise _unavailable() from None
                # Swept or released meanwhile: its hold is already gone, record the usage only.
        # The hold was swept (the request outlived its lease): usage still counts, held does not.
        update = self._usage_update(pk, day, "SET expires_at = :ttl ADD #c :t, tokens :t, "
                                    "requests :one, cost_usd :cost",
                                    {":t": _n(tokens), ":one": _n(1), ":cost": _cost(cost_usd)})
        self._call("update_item", **update["Update"])

    def release(self, reservation_id: str) -> None:
        pointer = self._get({"pk": _s(f"RESID#{reservation_id}"), "sk": _s("RES")})
        if pointer is not None:  # else already settled, released or swept: nothing to free
            self._drop(_pk(pointer["app_id"]["S"], pointer["day"]["S"]), pointer["day"]["S"],
                       reservation_id, int(pointer["tokens"]["N"]))

    def usage(self, app_id: str, day: str, now: float) -> DailyUsage:
        item = self._get(_usage_key(_pk(app_id, day))) or {}

        def num(name: str) -> Decimal:
            return Decimal(item[name]["N"]) if name in item else Decimal(0)

        # `held` includes expired holds not yet swept: the same figure `reserve` compares against.
        return DailyUsage(tokens=int(num("tokens")), reserved=int(num("held")),
                          requests=int(num("requests")), cost_usd=float(num("cost_usd")))

    def sweep(self, app_id: str, day: str, now: float) -> int:
        pk, freed = _pk(app_id, day), 0
        query: dict[str, Any] = {
            "TableName": self._table, "ConsistentRead": True,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :res)",
            "FilterExpression": "lease_until <= :now",
            "ExpressionAttributeValues": {":pk": _s(pk), ":res": _s("RES#"), ":now": _n(now)},
        }
        while True:
            page = self._call("query", **query)
            for item in page.get("Items", []):
                rid = item["sk"]["S"][len("RES#"):]
                freed += self._drop(pk, day, rid, int(item["tokens"]["N"]))
            if "LastEvaluatedKey" not in page:
                return freed
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # -- helpers ------------------------------------------------------------------------------
    def _drop(self, pk: str, day: str, reservation_id: str, tokens: int) -> bool:
        """Delete a reservation and free its hold, once: False if someone else got there first."""
        try:
            self._transact([
                self._delete_res(pk, reservation_id),
                self._delete_pointer(reservation_id),
                self._usage_update(pk, day, "SET expires_at = :ttl ADD #c :minus, held :minus",
                                   {":minus": _n(-tokens)}),
            ])
        except _Cancelled as exc:
            if exc.codes[0] == "ConditionalCheckFailed":
                return False
            raise _unavailable() from None
        return True

    def _hold(self, pk: str, day: str, tokens: int, limit: int) -> dict[str, Any]:
        """Add `tokens` to the day's held and committed counters if committed stays within `limit`:
        the one condition that keeps every reservation and top-up from overshooting."""
        update = self._usage_update(pk, day, "SET expires_at = :ttl ADD #c :n, held :n",
                                    {":n": _n(tokens), ":max": _n(limit - tokens)})
        update["Update"]["ConditionExpression"] = "attribute_not_exists(#c) OR #c <= :max"
        return update

    def _delete_res(self, pk: str, reservation_id: str) -> dict[str, Any]:
        return {"Delete": {"TableName": self._table,
                           "Key": {"pk": _s(pk), "sk": _s(f"RES#{reservation_id}")},
                           "ConditionExpression": "attribute_exists(pk)"}}

    def _delete_pointer(self, reservation_id: str) -> dict[str, Any]:
        return {"Delete": {"TableName": self._table,
                           "Key": {"pk": _s(f"RESID#{reservation_id}"), "sk": _s("RES")}}}

    def _usage_update(self, pk: str, day: str, expression: str, values: dict[str, Any]) -> dict[str, Any]:
        return {"Update": {
            "TableName": self._table, "Key": _usage_key(pk), "UpdateExpression": expression,
            "ExpressionAttributeNames": {"#c": "committed"},
            "ExpressionAttributeValues": {**values, ":ttl": _n(_end_of_day(day) + _USAGE_TTL_S)},
        }}

    def _get(self, key: dict[str, Any]) -> dict[str, Any] | None:
        return self._call("get_item", TableName=self._table, Key=key, ConsistentRead=True).get("Item")

    def _transact(self, items: list[dict[str, Any]]) -> None:
        """TransactWriteItems; raises _Cancelled with one code per item when a condition fails."""
        for attempt in range(_CONFLICT_ATTEMPTS):
            try:
                self._client().transact_write_items(TransactItems=items)
                return
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                    raise _unavailable() from None
                reasons = exc.response.get("CancellationReasons") or []
                codes = [r.get("Code", "None") for r in reasons] + ["None"] * len(items)
                codes = codes[:len(items)]
                if "TransactionConflict" in codes and "ConditionalCheckFailed" not in codes:
                    # Contention on the usage item is expected under load: retry with jitter.
                    time.sleep(random.uniform(0, 0.01 * 2 ** attempt))
                    continue
                raise _Cancelled(codes) from None
            except BotoCoreError:
                raise _unavailable() from None
        raise _unavailable()

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        try:
            return getattr(self._client(), operation)(**kwargs)
        except (ClientError, BotoCoreError):
            raise _unavailable() from None


def _pk(app_id: str, day: str) -> str:
    return f"APP#{app_id}#DAY#{day}"


def _usage_key(pk: str) -> dict[str, Any]:
    return {"pk": _s(pk), "sk": _s("USAGE")}


def _end_of_day(day: str) -> int:
    return calendar.timegm(time.strptime(day, "%Y-%m-%d")) + 86400


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: float | int) -> dict[str, str]:
    # repr(float) is the shortest string that round-trips (0.1, not 0.1000000000000000055...);
    # format "f" spells it without an exponent.
    return {"N": format(Decimal(value if isinstance(value, int) else repr(float(value))), "f")}


def _cost(cost_usd: float) -> dict[str, str]:
    return _n(float(cost_usd))


def _unavailable() -> ServiceUnavailable:
    return ServiceUnavailable("quota store unavailable", code="store_unavailable")
