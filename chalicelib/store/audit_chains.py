"""The audit chains' registry, in the ledger: every chain of a day with its first and last checkpoint.

What verify needs to see that a chain is missing (registered, no record found) or has lost its
tail (its last checkpoint names a record that is not there). Checkpoints are signed JSON
(audit_chain.py); they hold ids, sequence numbers and hashes, never request content.

- SQLite (`$GARDEN_HOME/garden.sqlite3`, table `audit_chains`): one row per (day, chain).
- DynamoDB (the ledger table): pk `AUDIT#<yyyy-mm-dd>`, sk `CHAIN#<chain id>`; `first` and `last`
  (the checkpoints' JSON), `last_seq` (Number). One UpdateItem per checkpoint (about 1 WCU: a
  container writes one per 100 records or per minute), conditioned on not going back
  (`last_seq <= :seq`); a day's chains are one Query. No TTL: the trail's anchors are kept as long
  as the trail (the bucket's Object Lock retention); a few hundred small items a day.
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from chalicelib.lazy import OnFirstUse


@dataclass(frozen=True, slots=True)
class RegisteredChain:
    chain_id: str
    first: Mapping[str, Any]  # its first checkpoint
    last: Mapping[str, Any]  # its last checkpoint (the head)


def _dumps(checkpoint: Mapping[str, Any]) -> str:
    return json.dumps(checkpoint, separators=(",", ":"), sort_keys=True)


class SqliteChainRegistry:
    def __init__(self, path: Path) -> None:
        from chalicelib.sqlite_file import connect

        self._db = connect(path)
        self._lock = threading.Lock()
        self._db.execute("CREATE TABLE IF NOT EXISTS audit_chains (day TEXT NOT NULL, chain TEXT NOT NULL, "
                         "first TEXT NOT NULL, last TEXT NOT NULL, last_seq INTEGER NOT NULL, "
                         "PRIMARY KEY (day, chain))")

    def checkpoint(self, day: str, checkpoint: Mapping[str, Any]) -> None:
        text = _dumps(checkpoint)
        with self._lock:
            self._db.execute(
                "INSERT INTO audit_chains (day, chain, first, last, last_seq) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (day, chain) DO UPDATE SET last = excluded.last, last_seq = excluded.last_seq "
                "WHERE excluded.last_seq >= audit_chains.last_seq",
                (day, checkpoint["chain_id"], text, text, checkpoint["seq"]))

    def chains(self, day: str) -> list[RegisteredChain]:
        with self._lock:
            rows = self._db.execute("SELECT chain, first, last FROM audit_chains WHERE day = ? ORDER BY chain",
                                    (day,)).fetchall()
        return [RegisteredChain(chain, json.loads(first), json.loads(last)) for chain, first, last in rows]


class DynamoDbChainRegistry:
    def __init__(self, client_factory: Callable[[], Any], table: str) -> None:
        self._client = OnFirstUse(client_factory)
        self._table = table

    def checkpoint(self, day: str, checkpoint: Mapping[str, Any]) -> None:
        from botocore.exceptions import ClientError

        text = _dumps(checkpoint)
        try:
            self._client().update_item(
                TableName=self._table,
                Key={"pk": {"S": f"AUDIT#{day}"}, "sk": {"S": f"CHAIN#{checkpoint['chain_id']}"}},
                UpdateExpression="SET #first = if_not_exists(#first, :cp), #last = :cp, last_seq = :seq",
                ConditionExpression="attribute_not_exists(last_seq) OR last_seq <= :seq",
                ExpressionAttributeNames={"#first": "first", "#last": "last"},
                ExpressionAttributeValues={":cp": {"S": text}, ":seq": {"N": str(checkpoint["seq"])}},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise  # a newer checkpoint is there already: nothing to do

    def chains(self, day: str) -> list[RegisteredChain]:
        found: list[RegisteredChain] = []
        kwargs: dict[str, Any] = {
            "TableName": self._table, "ConsistentRead": True,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :chain)",
            "ExpressionAttributeValues": {":pk": {"S": f"AUDIT#{day}"}, ":chain": {"S": "CHAIN#"}},
        }
        while True:
            page = self._client().query(**kwargs)
            for item in page.get("Items", []):
                found.append(RegisteredChain(item["sk"]["S"][len("CHAIN#"):], json.loads(item["first"]["S"]),
                                             json.loads(item["last"]["S"])))
            if "LastEvaluatedKey" not in page:
                return found
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
