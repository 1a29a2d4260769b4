"""Policy activity in the usage aggregates (the console's rejections by code, PII entities by type,
guardrail interventions): named counts, from fixed vocabularies, on every UsageStore adapter (the
`usage_store` fixture), summed exactly under concurrency, and still one write unit per request on
DynamoDB."""
from __future__ import annotations

import random
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from chalicelib.record import RequestRecord
from chalicelib.usage import KINDS, UsageEvent, UsageStore, event_counts, group_counts, group_usage
from chalicelib.usage_store import usage_event
from chalicelib.usage_store.dynamodb import DynamoDbUsageStore

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "store"))
from dynamodb_tables import create_table, make_client  # noqa: E402

DAY = "2026-11-27"


def event(outcome: str = "ok", *, app: str = "app", model: str = "m", day: str = DAY, code: str | None = None,
          pii: dict[str, int] | None = None, guardrail: list[str] | None = None) -> UsageEvent:
    return UsageEvent(app_id=app, business_unit="retail", model=model, day=day, outcome=outcome, prompt_tokens=3,
                      counts=event_counts(outcome, code, pii or {}, guardrail or []))


class TestVocabulary:
    def test_a_request_becomes_named_counts(self) -> None:
        assert event_counts("rejected", "insufficient_quota", {"EMAIL:REDACT": 2, "EMAIL:MASK": 1, "SSN:BLOCK": 1},
                            ["INPUT:BLOCKED:DENIED_WORD", "INPUT:BLOCKED:TOPIC:investment-advice"]) == (
            ("guardrail:INPUT:BLOCKED:DENIED_WORD", 1), ("guardrail:INPUT:BLOCKED:TOPIC", 1),
            ("pii:EMAIL", 3), ("pii:SSN", 1), ("rejected:insufficient_quota", 1))
        assert event_counts("ok", None, {}, []) == ()
        assert event_counts("error", None, {}, []) == (("error:other", 1),)

    @pytest.mark.parametrize(("entry", "code"), [
        ("OUTPUT:MASKED:PII:EMAIL", "OUTPUT:MASKED:PII:EMAIL"),
        ("INPUT:BLOCKED:CONTENT:HATE", "INPUT:BLOCKED:CONTENT:HATE"),
        ("INPUT:BLOCKED:CONTENT:SOMETHING-NEW", "INPUT:BLOCKED:CONTENT:OTHER"),
        ("INPUT:BLOCKED:REGEX:account-number-pattern", "INPUT:BLOCKED:REGEX"),
        ("INPUT:BLOCKED:PROMPT_ATTACK", "INPUT:BLOCKED:PROMPT_ATTACK"),
        ("OUTPUT:UNAVAILABLE:FAIL_OPEN", "OUTPUT:UNAVAILABLE:FAIL_OPEN"),
        ("INPUT:BLOCKED:GROUNDING:RELEVANCE", "INPUT:BLOCKED:GROUNDING:RELEVANCE"),
        ("INPUT:BLOCKED:whatever a caller wrote", "INPUT:BLOCKED:OTHER"),
        ("SIDEWAYS:EATEN:PROMPT_ATTACK", "OTHER:OTHER:PROMPT_ATTACK"),
    ])
    def test_guardrail_categories_are_a_fixed_vocabulary(self, entry: str, code: str) -> None:
        assert event_counts("ok", None, {}, [entry]) == ((f"guardrail:{code}", 1),)

    def test_unknown_pii_types_and_odd_codes_collapse(self) -> None:
        counts = dict(event_counts("error", "Not A Code: with text", {"FAVOURITE_COLOUR:REDACT": 4,
                                                                      "DETECTOR_UNAVAILABLE:FAIL_OPEN": 1}, []))
        assert counts == {"error:other": 1, "pii:OTHER": 4, "pii:DETECTOR_UNAVAILABLE": 1}

    def test_the_recorder_reads_the_request_record(self) -> None:
        record = RequestRecord(request_id="r", timestamp=f"{DAY}T10:00:00.000+00:00", route="chat.completions",
                               status=400, error_code="pii_blocked", app_id="app", business_unit="retail",
                               pii={"CREDIT_DEBIT_NUMBER:BLOCK": 1}, guardrail=[])
        built = usage_event(record)
        assert built is not None and built.outcome == "error"
        assert built.counts == (("error:pii_blocked", 1), ("pii:CREDIT_DEBIT_NUMBER", 1))


class TestCountsContract:
    def test_counts_add_up_per_aggregate(self, usage_store: UsageStore) -> None:
        usage_store.record(event("rejected", code="rate_limit_exceeded"))
        usage_store.record(event("rejected", code="rate_limit_exceeded"))
        usage_store.record(event("rejected", code="insufficient_quota"))
        usage_store.record(event("ok", pii={"EMAIL:REDACT": 2}, guardrail=["OUTPUT:MASKED:PII:EMAIL"]))
        usage_store.record(event("error", code="content_filter", guardrail=["INPUT:BLOCKED:DENIED_WORD"]))
        usage_store.record(event("ok", model="n", pii={"SSN:REDACT": 1}))
        usage_store.record(event("ok"))  # nothing to count
        [m, n] = usage_store.totals(DAY, DAY)
        assert (m.model, dict(m.counts)) == ("m", {
            "rejected:rate_limit_exceeded": 2, "rejected:insufficient_quota": 1, "pii:EMAIL": 2,
            "guardrail:OUTPUT:MASKED:PII:EMAIL": 1, "error:content_filter": 1, "guardrail:INPUT:BLOCKED:DENIED_WORD": 1})
        assert (m.requests, m.rejected, m.errors) == (2, 3, 1)
        assert (n.model, dict(n.counts), n.requests) == ("n", {"pii:SSN": 1}, 1)
        rows = group_counts(usage_store.totals(DAY, DAY), ["app"])
        assert rows == [
            {"app_id": "app", "kind": "rejected", "code": "insufficient_quota", "count": 1},
            {"app_id": "app", "kind": "rejected", "code": "rate_limit_exceeded", "count": 2},
            {"app_id": "app", "kind": "error", "code": "content_filter", "count": 1},
            {"app_id": "app", "kind": "pii", "code": "EMAIL", "count": 2},
            {"app_id": "app", "kind": "pii", "code": "SSN", "count": 1},
            {"app_id": "app", "kind": "guardrail", "code": "INPUT:BLOCKED:DENIED_WORD", "count": 1},
            {"app_id": "app", "kind": "guardrail", "code": "OUTPUT:MASKED:PII:EMAIL", "count": 1}]
        assert group_counts(usage_store.totals(DAY, DAY), ["model"], ["pii"]) == [
            {"model": "m", "kind": "pii", "code": "EMAIL", "count": 2},
            {"model": "n", "kind": "pii", "code": "SSN", "count": 1}]

    def test_counts_follow_the_day_range(self, usage_store: UsageStore) -> None:
        for day in ("2026-10-31", "2026-11-01", "2026-11-30", "2026-12-01"):
            usage_store.record(event("rejected", day=day, code="insufficient_quota"))
        rows = group_counts(usage_store.totals("2026-11-01", "2026-11-30"), ["day"])
        assert [(r["day"], r["count"]) for r in rows] == [("2026-11-01", 1), ("2026-11-30", 1)]

    @pytest.mark.concurrency
    def test_concurrent_counts_sum_exactly(self, usage_store: UsageStore) -> None:
        rng = random.Random(12)
        codes = ["rate_limit_exceeded", "insufficient_quota"]
        plan = [[event(rng.choice(("ok", "rejected", "error")), code=rng.choice(codes),
                       pii={rng.choice(["EMAIL", "SSN", "PHONE"]) + ":REDACT": rng.randrange(1, 4)},
                       guardrail=rng.sample(["INPUT:BLOCKED:DENIED_WORD", "OUTPUT:MASKED:PII:EMAIL"], rng.randrange(3)))
                 for _ in range(20)] for _ in range(12)]
        barrier = threading.Barrier(len(plan))
        failures: list[BaseException] = []

        def worker(events: list[UsageEvent]) -> None:
            barrier.wait(timeout=30)
            try:
                for e in events:
                    usage_store.record(e)
            except BaseException as exc:  # noqa: BLE001 - reported below
                failures.append(exc)

        threads = [threading.Thread(target=worker, args=(events,)) for events in plan]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not failures
        expected: dict[str, int] = {}
        for e in (e for events in plan for e in events):
            for name, n in e.counts:
                expected[name] = expected.get(name, 0) + n
        [t] = usage_store.totals(DAY, DAY)
        assert dict(t.counts) == expected
        # The rejections by code add up to the aggregate's rejected, the errors to its errors.
        [row] = group_usage([t], ["app"])
        by_kind = {k: sum(n for name, n in expected.items() if name.startswith(f"{k}:")) for k in KINDS}
        assert (by_kind["rejected"], by_kind["error"]) == (row["rejected"], row["errors"])


def test_one_write_unit_per_request_with_counts(dynamodb_local_url: str) -> None:
    """ReturnConsumedCapacity on record()'s UpdateItem: a day's aggregate of a long app id and model
    gathering a realistic spread of named counts (two 429 codes, three error codes, five PII types,
    four guardrail categories) still costs 1 write unit per request."""
    client = make_client(dynamodb_local_url)
    name = create_table(client)
    seen: list[float] = []

    def count(params: dict[str, Any], **_: Any) -> None:
        params["ReturnConsumedCapacity"] = "TOTAL"

    def note(parsed: dict[str, Any], **_: Any) -> None:
        seen.append(parsed["ConsumedCapacity"]["CapacityUnits"])

    client.meta.events.register("provide-client-params.dynamodb.UpdateItem", count)
    client.meta.events.register("after-call.dynamodb.UpdateItem", note)
    store = DynamoDbUsageStore(lambda: client, name, shard=lambda: 0)
    activity = [("rejected", "rate_limit_exceeded", {}, []), ("rejected", "insufficient_quota", {}, []),
                ("error", "pii_blocked", {"CREDIT_DEBIT_NUMBER:BLOCK": 1}, []),
                ("error", "content_filter", {}, ["INPUT:BLOCKED:DENIED_WORD", "INPUT:BLOCKED:PROMPT_ATTACK"]),
                ("error", "upstream_timeout", {}, []),
                ("ok", None, {"EMAIL:REDACT": 2, "PHONE:REDACT": 1, "SSN:REDACT": 1, "INTERNATIONAL_BANK_ACCOUNT_NUMBER:MASK": 1},
                 ["OUTPUT:MASKED:PII:EMAIL", "INPUT:BLOCKED:TOPIC:investment-advice"])]
    for outcome, code, pii, guardrail in activity * 2:
        store.record(UsageEvent("a-long-application-id-of-fifty-six-characters-x", "retail-banking",
                                "anthropic.claude-3-5-sonnet-20240620-v1:0", "2026-11-30", outcome,
                                123456, 654321, 1000, 12345678901, counts=event_counts(outcome, code, pii, guardrail)))
    [t] = store.totals("2026-11-30", "2026-11-30")
    client.delete_table(TableName=name)
    assert len(t.counts) == 14
    assert seen == [1.0] * len(seen) and len(seen) == 12
