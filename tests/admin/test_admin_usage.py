"""GET /admin/v1/usage sums equal what the /v1 answers reported (`usage`, `x-garden-cost-usd`), to
the cent and beyond; CSV is the same rows; and nothing an app sent ever shows in an admin answer
(a canary in /v1 requests, memoryless)."""
from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

from admin_support import APP, SMALL_QUOTA_APP, AdminGarden, admin_garden
from botocore.credentials import Credentials

from support import BLOCK_KEY_ID, SECRET

CANARY = "zq-canary-5e1f9b-admin"
STRICT_APP = Credentials(BLOCK_KEY_ID, SECRET)
METRICS = ["requests", "prompt_tokens", "completion_tokens", "cached_tokens", "cost_usd", "errors", "rejected"]


def days() -> dict[str, str]:
    today = datetime.now(timezone.utc).date()  # a run across midnight still falls in the range
    return {"from": (today - timedelta(days=1)).isoformat(), "to": (today + timedelta(days=1)).isoformat()}


def usage(served: AdminGarden, group_by: str, fmt: str = "json") -> Any:
    response = served.call("GET", "/admin/v1/usage", params={**days(), "group_by": group_by, "format": fmt})
    assert response.status_code == 200, response.text
    return response.json()["data"] if fmt == "json" else response.text


def traffic(served: AdminGarden) -> dict[tuple[str, str], dict[str, Any]]:
    """/v1 calls of three apps: answered, rejected (429) and refused (400); what the answers reported
    per (app, model)."""
    reported: dict[tuple[str, str], dict[str, Any]] = defaultdict(
        lambda: {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost": Decimal(0)})

    def note(app_id: str, model: str, response: Any) -> None:
        assert response.status_code == 200, response.text
        row, body = reported[(app_id, model)], response.json()
        row["requests"] += 1
        row["prompt_tokens"] += body["usage"]["prompt_tokens"]
        row["completion_tokens"] += body["usage"].get("completion_tokens", 0)
        row["cost"] += Decimal(response.headers["x-garden-cost-usd"])

    for i, words in enumerate([1, 7, 40, 3, 120, 18]):
        note("test-app", "local-echo", served.chat(APP, f"{CANARY} " + "ledger " * words, max_tokens=500 + i))
    for words in (5, 60, 11):
        note("test-app", "echo-routed", served.chat(APP, f"{CANARY} " + "balance " * words, model="echo-routed"))
    for text in (f"{CANARY} embed me", f"{CANARY} " + "vector " * 90):
        note("test-app", "local-embed", served.embed(APP, text))
    note("small-quota-app", "local-echo", served.chat(SMALL_QUOTA_APP, f"{CANARY} hi", max_tokens=20))
    rejected = served.chat(SMALL_QUOTA_APP, f"{CANARY} " + "x" * 2000, max_tokens=20)
    assert rejected.status_code == 429
    refused = served.chat(STRICT_APP, f"{CANARY} card 4111 1111 1111 1111")
    assert refused.status_code == 400
    assert served.call("GET", "/v1/models", APP).status_code == 200  # not chat or embeddings: not counted
    return reported


def test_usage_sums_equal_the_v1_answers_and_no_canary_reaches_an_admin_answer(tmp_path: Path) -> None:
    with admin_garden(tmp_path) as served:
        reported = traffic(served)
        rows = {(r["app_id"], r["model"]): r for r in usage(served, "model,app")}
        for key, seen in reported.items():
            row = rows[key]
            assert list(row) == ["app_id", "model", *METRICS]
            assert (row["requests"], row["prompt_tokens"], row["completion_tokens"]) == (
                seen["requests"], seen["prompt_tokens"], seen["completion_tokens"]), key
            # Exactly, hence to the cent: the answers' decimals summed are the aggregate's cost.
            assert Decimal(repr(row["cost_usd"])) == seen["cost"], key
            assert round(Decimal(repr(row["cost_usd"])), 2) == round(seen["cost"], 2)
        total_cost = sum((s["cost"] for s in reported.values()), Decimal(0))
        assert total_cost > 0

        by_app = {r["app_id"]: r for r in usage(served, "app")}
        assert set(by_app["test-app"]) == {"app_id", *METRICS}
        assert (by_app["test-app"]["requests"], by_app["test-app"]["errors"], by_app["test-app"]["rejected"]) == (11, 0, 0)
        assert (by_app["small-quota-app"]["requests"], by_app["small-quota-app"]["rejected"]) == (1, 1)
        assert (by_app["strict-app"]["requests"], by_app["strict-app"]["errors"]) == (0, 1)

        (bu,) = usage(served, "business_unit,month")
        today = datetime.now(timezone.utc)
        assert (bu["business_unit"], bu["month"][:4]) == ("retail-banking", str(today.year))
        assert bu["requests"] == sum(s["requests"] for s in reported.values()) == 12
        assert Decimal(repr(bu["cost_usd"])) == total_cost
        (everything,) = served.call("GET", "/admin/v1/usage", params=days()).json()["data"]
        assert list(everything) == METRICS and everything["requests"] == 12

        # The audit records' costs, summed, are the same figure.
        records = [json.loads(line) for f in (served.server.home / "audit").rglob("*.jsonl")
                   for line in f.read_text().splitlines()]
        audited = sum((Decimal(repr(r["cost_usd"])) for r in records
                       if r["route"] in ("chat.completions", "embeddings") and r["status"] == 200), Decimal(0))
        assert audited == total_cost

        # CSV: the same rows, the same columns in the same order.
        table = list(csv.reader(io.StringIO(usage(served, "app,model,day", "csv"))))
        json_rows = usage(served, "app,model,day")
        assert table[0] == ["app_id", "model", "day", *METRICS]
        assert [dict(zip(table[0], r, strict=True)) for r in table[1:]] == [
            {k: (format(Decimal(repr(v)).normalize(), "f") if k == "cost_usd" else str(v)) for k, v in row.items()}
            for row in json_rows]

        # Memoryless: the canary the apps sent is in no admin answer, and no admin record.
        answers = [served.call("GET", path) for path in (
            "/admin/v1/apps", "/admin/v1/apps/test-app", "/admin/v1/changes?limit=1000", "/admin/v1/deployments",
            "/admin/v1/business-units")]
        answers += [served.call("GET", "/admin/v1/usage", params={**days(), "group_by": g, "format": f})
                    for g in ("app,business_unit,model,day,month", "model") for f in ("json", "csv")]
        month = datetime.now(timezone.utc).strftime("%Y-%m")
        answers.append(served.call("POST", "/admin/v1/chargeback", json={"month": month}))
        assert all(a.status_code == 200 for a in answers), [a.text for a in answers if a.status_code != 200]
        for answer in answers:
            assert CANARY not in answer.text
        chargeback = answers[-1].json()
        assert Decimal(chargeback["total"]["cost_usd"]) == total_cost
        for written in (served.server.home / "chargeback").rglob("*"):
            if written.is_file():
                assert CANARY not in written.read_text()
        admin_records = [r for r in records if r["route"].startswith("admin.")]
        assert admin_records and CANARY not in json.dumps(admin_records)
