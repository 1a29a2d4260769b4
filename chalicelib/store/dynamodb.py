"""AWS adapter of the ledger port: leases on counters in the `garden-ledger` table.

Why leases. DynamoDB takes about 1,000 write units a second on one partition key, and a
transactional write costs double: a per-app counter written twice per request (reserve, settle)
throttles near 250 requests a second. Here a container (one ledger instance) leases a block of a
counter with one conditional UpdateItem and serves reservations from its leases in memory; it
writes to the counter again only when a block runs out, when it trims (every `SERVE_S`, or when a
window ends) or when a call used more than was held. At 500 requests a second on one app the hottest
counter sees a few dozen writes a second (README: "Limits at scale").

No overshoot. A lease is granted only if the counter's `committed` (used + leased) stays within the
cap (the condition), and a container never holds more in memory than it leased: every admitted
request is covered by a lease that the counter already counts. Usage beyond a request's hold (the
provider billed more than the estimate) is written through at once, unconditionally, so the next
lease anywhere sees it. What leases cost: a request may be refused a little early, while other
containers sit on unused blocks (each at most `BLOCK_MULTIPLE` times a request's need and at most
1/`BLOCK_FRACTION` of the cap), until they trim.

Dead containers. A container that dies (or is frozen) keeps its lease committed: nobody knows how
much of it was used. `sweep` (scheduled) finds leases whose expiry (`SERVE_S` + `LEASE_GRACE_S` after
the container's last write) has passed and books them as used: bounded over-refusal (one block per
dead container and counter, until the window ends), never overshoot. A frozen container that wakes
finds its lease swept (its conditional write fails) and starts a new one.

Items:
- pk `LIMIT#<limit key>`, sk `C`: `used`, `leased`, `committed` (= used + leased: conditions cannot
  add), and per container `L_<id>` (its lease) and `X_<id>` (its lease's expiry). TTL: the window's
  end + 2 days.
- pk `LEASES#<shard 0..7>`, sk `<container id>`: `keys`, the counters the container may hold a lease
  on, written before its first lease on a key; what `sweep` reads.
Reservations live in the container's memory only (ids = request ids): a settle is idempotent in the
container that reserved (the only one that settles). Stores only ids, numbers and dates.
"""
from __future__ import annotations

import threading
import uuid
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable, Sequence

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.errors import ServiceUnavailable
from chalicelib.lazy import OnFirstUse
from chalicelib.store import Counter, Hold, Limit, Refused

SERVE_S = 10.0  # a lease serves this long before it is trimmed (unused part given back, usage booked)
LEASE_GRACE_S = 90.0  # past SERVE_S, what a request in flight may still take (deadline + margin)
BLOCK_MULTIPLE = 32  # a block is at most this many times what the request needs ...
BLOCK_FRACTION = 16  # ... and at most this fraction of the cap
LEASE_SHARDS = 8
_COUNTER_TTL_S = 2 * 86400
_INDEX_TTL_S = 35 * 86400
_REMEMBERED = 10_000  # settled or released ids this container remembers (replays)
_ATTEMPTS = 4


@dataclass(eq=False)
class _Lease:
    limit: Limit
    granted: int = 0  # what the counter counts for this lease (L_<id>)
    consumed: int = 0  # settled usage within it, not yet booked as `used`
    held: int = 0  # reservations in flight
    serve_until: float = 0.0
    backed: bool = True  # False once swept: the store counted it all as used
    seen_committed: int | None = None  # the counter's committed, as last written

    @property
    def available(self) -> int:
        return self.granted - self.consumed - self.held


@dataclass
class _Reservation:
    parts: list[tuple[_Lease, int]] = field(default_factory=list)
    expires_at: float = 0.0


class DynamoDbLedger:
    def __init__(self, client_factory: Callable[[], Any], table: str, container_id: str | None = None) -> None:
        self._client = OnFirstUse(client_factory)
        self._table = table
        self._id = container_id or uuid.uuid4().hex[:16]
        self._shard = zlib.crc32(self._id.encode()) % LEASE_SHARDS
        self._lock = threading.Lock()
        self._leases: dict[str, _Lease] = {}
        self._reservations: dict[str, _Reservation] = {}
        self._done: OrderedDict[str, None] = OrderedDict()

    # -- port ---------------------------------------------------------------------------------
    def reserve(
        self, *, reservation_id: str, holds: Sequence[Hold], now: float, expires_at: float,
    ) -> Refused | None:
        for hold in holds:
            if hold.limit.cap is not None and hold.amount > hold.limit.cap:
                return Refused(hold.limit)  # cannot fit even in an empty window: no call at all
        with self._lock:
            if reservation_id in self._reservations:
                raise ValueError("reservation id already in use")
            self._done.pop(reservation_id, None)  # a finished id may serve again (a replayed event)
            self._maintain(now)
            refused = self._cover(holds, now)
            if refused is not None:
                return refused
            self._reservations[reservation_id] = _Reservation(self._take(holds), expires_at)
        return None

    def top_up(self, *, reservation_id: str, holds: Sequence[Hold], now: float) -> Refused | None:
        with self._lock:
            reservation = self._reservations.get(reservation_id)
            if reservation is None or reservation.expires_at <= now:
                return Refused(None)
            refused = self._cover(holds, now)
            if refused is not None:
                return refused
            reservation.parts += self._take(holds)
        return None

    def settle(self, *, reservation_id: str, used: Sequence[Hold], now: float) -> None:
        with self._lock:
            if reservation_id in self._done:
                return  # a replay: booked once already
            reservation = self._reservations.pop(reservation_id, None)
            self._remember(reservation_id)
            by_key: dict[str, _Lease] = {}
            for lease, amount in reservation.parts if reservation else ():
                lease.held -= amount
                by_key[lease.limit.key] = lease
            for hold in used:
                lease = by_key.get(hold.limit.key)
                if lease is None:  # swept, expired or never seen here: the call happened, book it
                    self._book_direct(hold.limit, hold.amount)
                    continue
                lease.consumed += hold.amount
                if lease.available < 0:  # billed past the hold: every container must see it now
                    self._trim(lease, now)

    def release(self, reservation_id: str) -> None:
        with self._lock:
            reservation = self._reservations.pop(reservation_id, None)
            if reservation is not None:  # (a settle after it books its usage, as on SQLite)
                for lease, amount in reservation.parts:
                    lease.held -= amount

    def counters(self, limits: Sequence[Limit], now: float) -> list[Counter]:
        out = []
        for limit in limits:
            item = self._get(_counter_key(limit.key)) or {}
            out.append(Counter(_num(item, "used"), _num(item, "leased")))
        return out

    def remaining(self, limits: Sequence[Limit], now: float) -> list[int | None]:
        """From what this container last wrote (no call): cap - committed then + what its lease
        has left since. Unknown counters are read."""
        out: list[int | None] = []
        with self._lock:
            for limit in limits:
                lease = self._leases.get(limit.key)
                if limit.cap is None:
                    out.append(None)
                elif lease is not None and lease.seen_committed is not None:
                    # committed counts our whole lease: what it has left is still to be had
                    out.append(limit.cap - lease.seen_committed + lease.available)
                else:
                    out.append(-1)
        unknown = [i for i, n in enumerate(out) if n == -1]
        if unknown:
            read = self.counters([limits[i] for i in unknown], now)
            for i, c in zip(unknown, read, strict=True):
                out[i] = (limits[i].cap or 0) - c.used - c.held
        return out

    def flush(self, now: float) -> None:
        with self._lock:
            for lease in list(self._leases.values()):
                self._trim(lease, now)

    def sweep(self, now: float) -> int:
        """Free this container's expired reservations, then book every expired lease of any
        container (dead or frozen) as used and drop it from the lease index."""
        with self._lock:
            freed = self._expire(now)
        for shard in range(LEASE_SHARDS):
            query: dict[str, Any] = {"TableName": self._table, "ConsistentRead": True,
                                     "KeyConditionExpression": "pk = :pk",
                                     "ExpressionAttributeValues": {":pk": _s(f"LEASES#{shard}")}}
            while True:
                page = self._call("query", **query)
                for item in page.get("Items", []):
                    freed += self._sweep_container(item, now)
                if "LastEvaluatedKey" not in page:
                    break
                query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return freed

    # -- in memory ----------------------------------------------------------------------------
    def _cover(self, holds: Sequence[Hold], now: float) -> Refused | None:
        """Lease what the holds need beyond what this container's leases have left."""
        for hold in holds:
            lease = self._current(hold.limit, now)
            short = hold.amount - lease.available
            if short > 0:
                limit = self._extend(lease, short, now)
                if limit is not None:
                    if not lease.granted:
                        self._leases.pop(limit.key, None)
                    return Refused(limit)
        return None

    def _take(self, holds: Sequence[Hold]) -> list[tuple[_Lease, int]]:
        parts = []
        for hold in holds:
            lease = self._leases[hold.limit.key]
            lease.held += hold.amount
            parts.append((lease, hold.amount))
        return parts

    def _current(self, limit: Limit, now: float) -> _Lease:
        lease = self._leases.get(limit.key)
        if lease is None or not lease.backed:
            lease = self._leases[limit.key] = _Lease(limit)
        return lease

    def _maintain(self, now: float) -> None:
        self._expire(now)
        for lease in list(self._leases.values()):
            if lease.serve_until <= now:  # (never past its window's end: see _extend)
                self._trim(lease, now)

    def _expire(self, now: float) -> int:
        """Reservations of requests that died in this container: their holds go back to the lease
        (a late settle still books its usage)."""
        dead = [rid for rid, r in self._reservations.items() if r.expires_at <= now]
        for rid in dead:
            for lease, amount in self._reservations.pop(rid).parts:
                lease.held -= amount
        return len(dead)

    def _remember(self, reservation_id: str) -> None:
        self._done[reservation_id] = None
        while len(self._done) > _REMEMBERED:
            self._done.popitem(last=False)

    # -- store --------------------------------------------------------------------------------
    def _extend(self, lease: _Lease, short: int, now: float) -> Limit | None:
        """Grow `lease` by at least `short`, conditional on the cap; the limit if it cannot."""
        limit = lease.limit
        block = short * BLOCK_MULTIPLE
        if limit.cap is not None:
            block = max(short, min(block, limit.cap // BLOCK_FRACTION))
        if not lease.granted:  # indexed before the lease exists: sweep can always find it
            self._call("update_item", TableName=self._table, Key={"pk": _s(f"LEASES#{self._shard}"),
                                                                  "sk": _s(self._id)},
                       UpdateExpression="ADD #k :k SET expires_at = :ttl",
                       ExpressionAttributeNames={"#k": "keys"},
                       ExpressionAttributeValues={":k": {"SS": [limit.key]}, ":ttl": _n(int(now) + _INDEX_TTL_S)})
        for _ in range(_ATTEMPTS):
            names = {"#l": f"L_{self._id}", "#x": f"X_{self._id}", "#c": "committed"}
            values = {":b": _n(block), ":x": _n(now + SERVE_S + LEASE_GRACE_S),
                      ":ttl": _n(int(limit.resets_at) + _COUNTER_TTL_S)}
            conditions = []
            if lease.granted:
                conditions.append("#l = :g")
                values[":g"] = _n(lease.granted)
            else:
                conditions.append("attribute_not_exists(#l)")
            if limit.cap is not None:
                conditions.append("(attribute_not_exists(#c) OR #c <= :max)")
                values[":max"] = _n(limit.cap - block)
            try:
                item = self._client().update_item(
                    TableName=self._table, Key=_counter_key(limit.key),
                    UpdateExpression="ADD #c :b, leased :b, #l :b SET #x = :x, expires_at = :ttl",
                    ConditionExpression=" AND ".join(conditions), ExpressionAttributeNames=names,
                    ExpressionAttributeValues=values, ReturnValues="ALL_NEW",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD")["Attributes"]
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                    raise _unavailable() from None
                old = exc.response.get("Item") or {}
                if lease.granted and names["#l"] not in old:
                    # Swept while this container was away: the store booked it all as used.
                    self._orphan(lease)
                    lease = self._current(limit, now)
                    continue
                if names["#l"] in old and _num(old, names["#l"]) != lease.granted:
                    # A write of ours that timed out did land: the store's figure is this lease's.
                    lease.granted = _num(old, names["#l"])
                    continue
                left = (limit.cap or 0) - _num(old, "committed")
                if left < short:
                    return limit
                block = left  # what the cap still has is enough for this request: take just that
                continue
            except BotoCoreError:
                raise _unavailable() from None
            lease.granted += block
            if lease.serve_until <= now:  # trimmed every SERVE_S, and once its window is over
                lease.serve_until = min(now + SERVE_S, limit.resets_at)
            lease.seen_committed = _num(item, "committed")
            return None
        raise _unavailable()

    def _trim(self, lease: _Lease, now: float) -> None:
        """Book what the lease used and give back what it did not; keep what is in flight."""
        if lease.backed and not lease.granted and not lease.consumed:
            self._orphan(lease)  # never leased anything: nothing to write
            return
        if not lease.backed:
            excess = -lease.available
            if excess > 0:
                self._book_direct(lease.limit, excess)
                lease.consumed -= excess
            return
        keep = lease.held
        names = {"#l": f"L_{self._id}", "#x": f"X_{self._id}", "#c": "committed"}
        values = {":g": _n(lease.granted), ":used": _n(lease.consumed), ":back": _n(-(lease.granted - keep)),
                  ":delta": _n(lease.consumed - (lease.granted - keep))}
        if keep:
            expression = "SET #l = :keep, #x = :x ADD used :used, leased :back, #c :delta"
            values.update({":keep": _n(keep), ":x": _n(now + SERVE_S + LEASE_GRACE_S)})
        else:
            expression = "REMOVE #l, #x ADD used :used, leased :back, #c :delta"
        try:
            item = self._client().update_item(
                TableName=self._table, Key=_counter_key(lease.limit.key), UpdateExpression=expression,
                ConditionExpression="#l = :g", ExpressionAttributeNames=names, ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW", ReturnValuesOnConditionCheckFailure="ALL_OLD")["Attributes"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise _unavailable() from None
            old = exc.response.get("Item") or {}
            if names["#l"] in old and _num(old, names["#l"]) != lease.granted:
                # A write of ours that timed out did land (conservative: its usage may book twice).
                lease.granted = _num(old, names["#l"])
                self._trim(lease, now)
                return
            self._orphan(lease)  # swept: it was booked as used whole
            self._trim(lease, now)
            return
        except BotoCoreError:
            raise _unavailable() from None
        lease.granted, lease.consumed = keep, 0
        lease.serve_until = now + SERVE_S if lease.limit.resets_at <= now else min(now + SERVE_S, lease.limit.resets_at)
        lease.seen_committed = _num(item, "committed")
        if not keep and self._leases.get(lease.limit.key) is lease:
            del self._leases[lease.limit.key]

    def _orphan(self, lease: _Lease) -> None:
        """The store booked this lease whole as used: what it covers needs no more writes; only
        usage past it (available < 0) is booked, directly."""
        lease.backed = False
        if self._leases.get(lease.limit.key) is lease:
            del self._leases[lease.limit.key]

    def _book_direct(self, limit: Limit, amount: int) -> None:
        if amount:
            self._call("update_item", TableName=self._table, Key=_counter_key(limit.key),
                       UpdateExpression="ADD used :a, committed :a SET expires_at = :ttl",
                       ExpressionAttributeValues={":a": _n(amount),
                                                  ":ttl": _n(int(limit.resets_at) + _COUNTER_TTL_S)})

    def _sweep_container(self, index: dict[str, Any], now: float) -> int:
        container = index["sk"]["S"]
        key = {"pk": index["pk"], "sk": index["sk"]}
        swept = 0
        for limit_key in index.get("keys", {}).get("SS", []):
            # A Query, not a GetItem: the sweep's role may Query, UpdateItem and DeleteItem only.
            found = self._call("query", TableName=self._table, ConsistentRead=True,
                               KeyConditionExpression="pk = :pk AND sk = :sk",
                               ExpressionAttributeValues={":pk": _s(f"LIMIT#{limit_key}"),
                                                          ":sk": _s("C")}).get("Items", [])
            counter = found[0] if found else None
            lease_name, expiry_name = f"L_{container}", f"X_{container}"
            if counter is not None and lease_name in counter:
                if _num(counter, expiry_name) > now:
                    continue  # alive
                granted = _num(counter, lease_name)
                try:
                    self._client().update_item(
                        TableName=self._table, Key=_counter_key(limit_key),
                        UpdateExpression="REMOVE #l, #x ADD used :g, leased :minus",
                        ConditionExpression="#l = :g AND #x = :x",
                        ExpressionAttributeNames={"#l": lease_name, "#x": expiry_name},
                        ExpressionAttributeValues={":g": _n(granted), ":minus": _n(-granted),
                                                   ":x": counter[expiry_name]})
                    swept += 1
                except ClientError as exc:
                    if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                        raise _unavailable() from None
                    continue  # its container wrote meanwhile: alive after all
                except BotoCoreError:
                    raise _unavailable() from None
            self._call("update_item", TableName=self._table, Key=key, UpdateExpression="DELETE #k :k",
                       ExpressionAttributeNames={"#k": "keys"}, ExpressionAttributeValues={":k": {"SS": [limit_key]}})
        return swept

    def _get(self, key: dict[str, Any]) -> dict[str, Any] | None:
        return self._call("get_item", TableName=self._table, Key=key, ConsistentRead=True).get("Item")

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        try:
            return getattr(self._client(), operation)(**kwargs)
        except (ClientError, BotoCoreError):
            raise _unavailable() from None


def _counter_key(limit_key: str) -> dict[str, Any]:
    return {"pk": _s(f"LIMIT#{limit_key}"), "sk": _s("C")}


def _num(item: dict[str, Any], name: str) -> int:
    return int(Decimal(item[name]["N"])) if name in item else 0


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: float | int) -> dict[str, str]:
    # repr(float) is the shortest string that round-trips; format "f" spells it without an exponent.
    return {"N": format(Decimal(value if isinstance(value, int) else repr(float(value))), "f")}


def _unavailable() -> ServiceUnavailable:
    return ServiceUnavailable("quota store unavailable", code="store_unavailable")

