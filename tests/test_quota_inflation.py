"""Quota cannot be overshot by text that grows on the way to the model.

Short entities redacted to long placeholders (`::1` -> `[IP_ADDRESS]`) and long tool schemas made
the text the provider bills larger than the text the reservation was estimated on. The gateway now
tops the reservation up after redaction, before the provider call, so 64 concurrent requests
settle no more than the daily limit.
"""
from __future__ import annotations

import copy
import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import pytest
from store.dynamodb_tables import create_table, make_client
from signing import signed_headers
from support import QUOTA_KEY_ID, SECRET, TEST_CATALOG, Garden, running_garden

from chalicelib.catalog import parse_catalog
from chalicelib.chat import Completion, Usage
from chalicelib.incoming import IncomingRequest
from chalicelib.providers import ProviderCall
from chalicelib.providers.local_echo import LocalEchoProvider
from chalicelib.quota import QuotaKeeper, utc_day
from chalicelib.store import Ledger, Limit, day_keys
from chalicelib.store.dynamodb import DynamoDbLedger
from chalicelib.store.sqlite import SqliteLedger

LIMIT = 5_000
CONCURRENCY = 64
REQUESTS = 128


def inflating_catalog() -> Any:
    raw = copy.deepcopy(TEST_CATALOG)
    for app in raw["apps"]:
        if app["id"] == "small-quota-app":
            app["quotas"] = {"tokens_per_day": LIMIT}
    return parse_catalog(raw)


def inflating_body(i: int) -> dict[str, Any]:
    # 60 loopback addresses: 4 bytes each on the wire, 13 once redacted to "[IP_ADDRESS] ".
    text = " ".join(["::1"] * 60)
    return {"model": "local-echo", "max_tokens": 40, "user": f"u{i}",
            "messages": [{"role": "user", "content": text}]}


@pytest.fixture(params=["sqlite", "dynamodb-local"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledger]:
    if request.param == "sqlite":
        sqlite = SqliteLedger(tmp_path / "ledger.db")
        yield sqlite
        sqlite.close()
        return
    client = make_client(request.getfixturevalue("dynamodb_local_url"))
    table = create_table(client)
    yield DynamoDbLedger(lambda: client, table)
    client.delete_table(TableName=table)


def settle_storm(garden: Garden, ledger: Ledger) -> tuple[int, int, int]:
    """Send REQUESTS inflating requests, CONCURRENCY at a time; returns (settled tokens, 200s, 429s)."""
    statuses: list[int] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        # Straight into the pipeline: Chalice keeps one current_request per app object, so
        # concurrent calls through its in-process test client would mix requests up.
        raw = json.dumps(inflating_body(i)).encode()
        headers = signed_headers("POST", "http://testserver/v1/chat/completions", raw, QUOTA_KEY_ID, SECRET,
                                 headers={"host": "testserver", "content-type": "application/json"})
        request = IncomingRequest("POST", "/v1/chat/completions", None, {k.lower(): v for k, v in headers.items()},
                                  raw, None, str(uuid.uuid4()))
        response = garden.pipeline.chat_completions(request)
        with lock:
            statuses.append(response.status)

    with ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(one, range(REQUESTS)))
    now = time.time()
    ledger.flush(now)  # DynamoDB: give back unused leases, book what they served
    (day,) = ledger.counters([Limit(day_keys("small-quota-app", utc_day(now))[0], LIMIT, now + 86400)], now)
    assert day.held == 0  # nothing left held
    return day.used, statuses.count(200), statuses.count(429)


def test_concurrent_inflating_requests_cannot_overshoot_the_daily_limit(tmp_path: Path, ledger: Ledger) -> None:
    with running_garden(tmp_path, catalog=inflating_catalog(), quota=QuotaKeeper(ledger, 25)) as garden:
        settled, ok, refused = settle_storm(garden, ledger)
    assert ok > 0 and refused > 0 and ok + refused == REQUESTS
    print(f"settled {settled} of a {LIMIT}-token limit ({settled / LIMIT:.2f}x) with {ok} answered")
    assert settled <= LIMIT


class OverBilling:
    """A provider that bills twice the prompt tokens local-echo would: more than any estimate."""

    def complete(self, call: ProviderCall) -> Completion:
        completion = LocalEchoProvider().complete(call)
        usage = completion.usage
        return Completion(completion.content, completion.finish_reason,
                          Usage(usage.prompt_tokens * 2, usage.completion_tokens))


def test_usage_beyond_the_reservation_counts_and_the_next_reservation_sees_it(tmp_path: Path) -> None:
    with running_garden(tmp_path, catalog=inflating_catalog(), providers={"local-echo": OverBilling()}) as garden:
        body = {"model": "local-echo", "max_tokens": 10, "messages": [{"role": "user", "content": "a" * 8000}]}
        first = garden.chat(body, key_id=QUOTA_KEY_ID)
        assert first.status_code == 200, first.body
        billed = json.loads(first.body)["usage"]["total_tokens"]
        now = time.time()
        assert garden.ledger.usage("small-quota-app", utc_day(now), now).tokens == billed > LIMIT // 2
        # The second reservation (~2,000) would fit beside the estimate; beside what was billed it does not.
        second = garden.chat(body, key_id=QUOTA_KEY_ID)
        assert second.status_code == 429, second.body
        assert json.loads(second.body)["error"]["type"] == "rate_limit_error"


def test_no_max_tokens_is_clamped_to_the_budget_left(tmp_path: Path) -> None:
    with running_garden(tmp_path, catalog=inflating_catalog()) as garden:
        filler = {"model": "local-echo", "max_tokens": 10, "messages": [{"role": "user", "content": "a" * 16_000}]}
        assert garden.chat(filler, key_id=QUOTA_KEY_ID).status_code == 200  # 4,017 of 5,000 used
        open_ended = garden.chat({"model": "local-echo", "messages": [{"role": "user", "content": "b" * 2000}]},
                                 key_id=QUOTA_KEY_ID)
        assert open_ended.status_code == 200, open_ended.body  # 4,096 max would not fit; what is left does
        record = _last_audit_record(garden.home)
        now = time.time()
        assert garden.ledger.usage("small-quota-app", utc_day(now), now).tokens <= LIMIT
        assert record["reserved_tokens"] <= LIMIT - 4_017
        assert json.loads(open_ended.body)["choices"][0]["finish_reason"] == "length"
        capped = garden.chat({"model": "local-echo", "max_tokens": 4096,
                              "messages": [{"role": "user", "content": "b"}]}, key_id=QUOTA_KEY_ID)
        assert capped.status_code == 429  # the caller asked for this much: refused, not clamped


def test_redaction_growth_is_reserved_before_the_provider_call(tmp_path: Path) -> None:
    """One request: what it settles never exceeds what it had reserved when the model was called."""
    with running_garden(tmp_path, catalog=inflating_catalog()) as garden:
        response = garden.chat(inflating_body(0), key_id=QUOTA_KEY_ID)
        assert response.status_code == 200, response.body
        usage = json.loads(response.body)["usage"]
        record = _last_audit_record(garden.home)
    assert usage["total_tokens"] <= record["reserved_tokens"]


def _last_audit_record(home: Path) -> dict[str, Any]:
    lines = [line for path in sorted((home / "audit").rglob("*.jsonl")) for line in path.read_text().splitlines()]
    return json.loads(lines[-1])
