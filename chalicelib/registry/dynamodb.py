"""AWS adapter of the registry port: its own key space in the ledger's `garden-ledger` table.

Items (entries are the catalog's JSON, stored as a string so numbers round-trip exactly):
- pk `REGISTRY`, sk `VERSION`: `version` (Number). Containers read only this item to check
  whether their cached catalog is stale (one strongly consistent GetItem, 0.5 read units).
- pk `REGISTRY`, sk `APP#<id>` / `BU#<business unit>` / `DEP#<deployment>`: `body` (the app, with
  `"disabled": true` once deleted; the budget) or `enabled` (Boolean).
- pk `REGISTRY#CHANGES`, sk the version zero-padded to 12 digits: at, principal, action, target,
  before, after (JSON). The sort key orders changes; a Query with ScanIndexForward=false lists them
  newest first. Kept apart from `REGISTRY` so reading the registry never reads its history.
No TTL on any of them: the registry and its history are kept.

Every write is one TransactWriteItems: the entries it changes, the change item (condition: not
there yet) and the VERSION item, conditioned on still holding the version the write was planned
on (`attribute_not_exists` for the first write). Two concurrent writers therefore cannot both
commit over the same state: the loser's condition fails, it re-reads and plans again (bounded
retries), so a principal is checked against the state the write commits over (PrincipalInUse), and
no update is lost. A transaction holds at most 100 items: a write may change at most 98 entries
(a seed or an import of a bigger catalog is refused whole with TooManyChanges; import it in parts).

`snapshot` reads VERSION, queries the partition, and reads VERSION again: if it moved meanwhile the
query may mix two versions, so it reads again (bounded), else what it read is that version's state.
"""
from __future__ import annotations

import json
import random
import time
from typing import Any, Callable

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.errors import ServiceUnavailable
from chalicelib.lazy import OnFirstUse
from chalicelib.registry import Change, RegistrySnapshot, TooManyChanges
from chalicelib.registry._plan import EMPTY, Plan, PlannedWrites, dumps, iso_utc

PK = "REGISTRY"
CHANGES_PK = "REGISTRY#CHANGES"
MAX_ENTRIES_PER_WRITE = 98  # TransactWriteItems takes 100 items: + VERSION + the change
_ATTEMPTS = 8  # a write that lost a race re-plans; a snapshot that straddled a write re-reads


class DynamoDbRegistry(PlannedWrites):
    def __init__(self, client_factory: Callable[[], Any], table: str,
                 clock: Callable[[], float] = time.time) -> None:
        self._client = OnFirstUse(client_factory)
        self._table = table
        self._clock = clock

    # -- reads --------------------------------------------------------------------------------
    def version(self) -> int:
        item = self._call("get_item", TableName=self._table, Key=_key(PK, "VERSION"),
                          ConsistentRead=True, ProjectionExpression="version").get("Item")
        return int(item["version"]["N"]) if item else 0

    def snapshot(self) -> RegistrySnapshot | None:
        for _ in range(_ATTEMPTS):
            before = self.version()
            if before == 0:
                return None
            state = self._state()
            if state.version == before == self.version():
                return state
        raise _unavailable()  # written to without pause for the whole time: try the next request

    def changes(self, limit: int = 100) -> list[Change]:
        out: list[Change] = []
        query: dict[str, Any] = {
            "TableName": self._table, "ConsistentRead": True, "ScanIndexForward": False,
            "KeyConditionExpression": "pk = :pk", "ExpressionAttributeValues": {":pk": {"S": CHANGES_PK}},
        }
        while len(out) < limit:
            page = self._call("query", Limit=limit - len(out), **query)
            for item in page.get("Items", []):
                out.append(Change(at=item["at"]["S"], principal=item["principal"]["S"],
                                  action=item["action"]["S"], target=item["target"]["S"],
                                  before=json.loads(item["before"]["S"]), after=json.loads(item["after"]["S"])))
            if "LastEvaluatedKey" not in page:
                break
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return out

    # -- writes -------------------------------------------------------------------------------

    # -- helpers ------------------------------------------------------------------------------
    def _write(self, make_plan: Callable[[RegistrySnapshot], Plan | None], principal: str) -> Any:
        for attempt in range(_ATTEMPTS):
            version = self.version()
            # Read after `version`: if anything commits meanwhile, the condition below fails.
            state = self._state() if version > 0 else EMPTY
            state = RegistrySnapshot(version, state.apps, state.business_units, state.deployments)
            plan = make_plan(state)
            if plan is None or plan.writes_nothing:
                return None if plan is None else plan.result
            items = self._items(plan, principal, version)
            try:
                self._call("transact_write_items", TransactItems=items)
                return plan.result
            except _Lost:
                time.sleep(random.uniform(0, 0.01 * 2 ** attempt))
        raise _unavailable()

    def _items(self, plan: Plan, principal: str, version: int) -> list[dict[str, Any]]:
        table = self._table
        items: list[dict[str, Any]] = []
        for prefix, entries in (("APP#", plan.apps), ("BU#", plan.business_units)):
            for name, body in entries.items():
                key = _key(PK, prefix + name)
                items.append({"Delete": {"TableName": table, "Key": key}} if body is None else
                             {"Put": {"TableName": table, "Item": {**key, "body": {"S": dumps(body)}}}})
        for name, enabled in plan.deployments.items():
            items.append({"Put": {"TableName": table,
                                  "Item": {**_key(PK, "DEP#" + name), "enabled": {"BOOL": enabled}}}})
        if len(items) > MAX_ENTRIES_PER_WRITE:
            raise TooManyChanges(f"one registry write changes at most {MAX_ENTRIES_PER_WRITE} entries "
                             f"(apps and business units); this one changes {len(items)}: import in parts")
        change = plan.change(iso_utc(self._clock()), principal)
        new = version + 1
        items.append({"Put": {"TableName": table, "ConditionExpression": "attribute_not_exists(pk)", "Item": {
            **_key(CHANGES_PK, f"{new:012d}"), "version": {"N": str(new)}, "at": {"S": change.at},
            "principal": {"S": change.principal}, "action": {"S": change.action},
            "target": {"S": change.target}, "before": {"S": dumps(change.before)},
            "after": {"S": dumps(change.after)}}}})
        if version == 0:
            items.append({"Put": {"TableName": table, "Item": {**_key(PK, "VERSION"), "version": {"N": str(new)}},
                                  "ConditionExpression": "attribute_not_exists(pk)"}})
        else:
            items.append({"Update": {"TableName": table, "Key": _key(PK, "VERSION"),
                                     "UpdateExpression": "SET version = :new",
                                     "ConditionExpression": "version = :old",
                                     "ExpressionAttributeValues": {":new": {"N": str(new)},
                                                                   ":old": {"N": str(version)}}}})
        return items

    def _state(self) -> RegistrySnapshot:
        apps: dict[str, Any] = {}
        units: dict[str, Any] = {}
        deployments: dict[str, bool] = {}
        version = 0
        query: dict[str, Any] = {"TableName": self._table, "ConsistentRead": True,
                                 "KeyConditionExpression": "pk = :pk",
                                 "ExpressionAttributeValues": {":pk": {"S": PK}}}
        while True:
            page = self._call("query", **query)
            for item in page.get("Items", []):
                sk = item["sk"]["S"]
                if sk == "VERSION":
                    version = int(item["version"]["N"])
                elif sk.startswith("APP#"):
                    apps[sk[4:]] = json.loads(item["body"]["S"])
                elif sk.startswith("BU#"):
                    units[sk[3:]] = json.loads(item["body"]["S"])
                elif sk.startswith("DEP#"):
                    deployments[sk[4:]] = item["enabled"]["BOOL"]
            if "LastEvaluatedKey" not in page:
                break
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return RegistrySnapshot(version=version, apps=apps, business_units=units, deployments=deployments)

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        try:
            return getattr(self._client(), operation)(**kwargs)
        except ClientError as exc:
            error = exc.response.get("Error", {}).get("Code")
            if operation == "transact_write_items" and error == "TransactionCanceledException":
                codes = [r.get("Code") for r in exc.response.get("CancellationReasons") or []]
                if set(codes) & {"ConditionalCheckFailed", "TransactionConflict"}:
                    raise _Lost() from None  # another write committed first: re-plan
            raise _unavailable() from None
        except BotoCoreError:
            raise _unavailable() from None


class _Lost(Exception):
    """This write's version condition failed (or it collided with another transaction)."""


def _key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def _unavailable() -> ServiceUnavailable:
    return ServiceUnavailable("registry store unavailable", code="store_unavailable")
