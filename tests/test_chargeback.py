"""Monthly chargeback (chalicelib/chargeback.py): files per business unit from the usage aggregates,
locally and on S3 (moto) under each business unit's KMS key, month boundaries in UTC, exact sums,
and nothing of any request's content."""
from __future__ import annotations

import base64
import calendar
import csv
import io
import json
import uuid
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

import boto3
import pytest

from chalicelib.chargeback import CSV_COLUMNS, chargeback_sink, month_range, previous_month, run_chargeback
from chalicelib.errors import ConfigError, ServiceUnavailable
from chalicelib.settings import Settings
from chalicelib.usage import UsageEvent
from chalicelib.usage_store.sqlite import SqliteUsageStore

REGION = "eu-west-1"


def settings_for(home: Path, **env: str) -> Settings:
    return Settings.from_env({"GARDEN_HOME": str(home), **env})


@pytest.fixture
def usage(tmp_path: Path) -> Iterator[SqliteUsageStore]:
    store = SqliteUsageStore(tmp_path / "garden.sqlite3")
    yield store
    store.close()


def ev(day: str, outcome: str = "ok", app: str = "teller", bu: str = "retail", model: str = "nova-lite",
       p: int = 100, c: int = 50, cost: int = 375) -> UsageEvent:
    return UsageEvent(app, bu, model, day, outcome, p, c, 0, cost)


def fill_october(usage: SqliteUsageStore) -> None:
    usage.record(ev("2026-09-30", p=9999, cost=99_999_999))  # the day before: not October
    usage.record(ev("2026-10-01"))
    usage.record(ev("2026-10-31", p=1, c=2, cost=12_345_678))
    usage.record(ev("2026-10-15", model="claude", p=1000, c=10, cost=1))
    usage.record(ev("2026-10-15", outcome="rejected", p=0, c=0, cost=0))
    usage.record(ev("2026-10-15", outcome="error", p=7, c=0, cost=5))  # paid for, then failed
    usage.record(ev("2026-10-02", app="desk", bu="markets", p=3, c=4, cost=200_000_000))
    usage.record(ev("2026-10-02", app="quiet", bu="markets", outcome="rejected", p=0, c=0, cost=0))
    usage.record(ev("2026-11-01", p=8888, cost=88_888_888))  # the day after: not October


def read_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_month_boundaries_are_utc_days() -> None:
    assert month_range("2026-10") == ("2026-10-01", "2026-10-31")
    assert month_range("2028-02") == ("2028-02-01", "2028-02-29")
    assert month_range("2026-02") == ("2026-02-01", "2026-02-28")
    for bad in ("2026-13", "2026-1", "26-10", "2026-10-01", ""):
        with pytest.raises(ValueError, match="YYYY-MM"):
            month_range(bad)
    # 1 Nov 02:00 UTC (the schedule) is still 31 Oct in New York: the previous month is October.
    assert previous_month(calendar.timegm((2026, 11, 1, 2, 0, 0))) == "2026-10"
    assert previous_month(calendar.timegm((2027, 1, 1, 0, 0, 0))) == "2026-12"
    assert previous_month(calendar.timegm((2026, 12, 31, 23, 59, 59))) == "2026-11"


def test_local_files_per_business_unit_and_summary(tmp_path: Path, usage: SqliteUsageStore) -> None:
    fill_october(usage)
    settings = settings_for(tmp_path)
    result = run_chargeback("2026-10", settings, usage=usage,
                            budgets={"retail": {"usd_per_month": 500, "tokens_per_month": None},
                                     "wealth": {"usd_per_month": 10}}, clock=lambda: 1.8e9)
    folder = tmp_path / "chargeback" / "2026-10"
    assert sorted(p.name for p in folder.iterdir()) == ["markets.csv", "retail.csv", "summary.json", "wealth.csv"]
    retail = (folder / "retail.csv").read_text()
    assert retail.splitlines()[0] == ",".join(CSV_COLUMNS)
    assert read_csv(retail) == [
        {"app": "teller", "model": "claude", "requests": "1", "prompt_tokens": "1000", "completion_tokens": "10",
         "tokens": "1010", "cost_usd": "0.00000001"},
        {"app": "teller", "model": "nova-lite", "requests": "2", "prompt_tokens": "108", "completion_tokens": "52",
         "tokens": "160", "cost_usd": "0.12346058"},
    ]
    # The rejected-only app has nothing to charge: no row.
    assert read_csv((folder / "markets.csv").read_text()) == [
        {"app": "desk", "model": "nova-lite", "requests": "1", "prompt_tokens": "3", "completion_tokens": "4",
         "tokens": "7", "cost_usd": "2.00000000"}]
    assert read_csv((folder / "wealth.csv").read_text()) == []  # a budget, no usage: an empty file
    summary = json.loads((folder / "summary.json").read_text())
    assert {k: v for k, v in result.items() if k != "summary_file"} == summary
    assert result["summary_file"] == str(folder / "summary.json")
    assert (summary["month"], summary["from"], summary["to"]) == ("2026-10", "2026-10-01", "2026-10-31")
    by_bu = {u["business_unit"]: u for u in summary["business_units"]}
    assert by_bu["retail"] == {
        "business_unit": "retail", "requests": 3, "prompt_tokens": 1108, "completion_tokens": 62, "tokens": 1170,
        "cost_usd": "0.12346059", "cost_usd_cents": "0.12", "errors": 1, "rejected": 1,
        "budget": {"usd_per_month": 500, "tokens_per_month": None}, "file": str(folder / "retail.csv")}
    assert by_bu["markets"]["budget"] is None and by_bu["markets"]["rejected"] == 1
    assert by_bu["wealth"]["cost_usd"] == "0.00000000"
    assert summary["total"]["cost_usd"] == "2.12346059" and summary["missing_keys"] == []
    # Exact: the rows of every CSV add up to the summary's totals, in units.
    rows = [r for bu in ("retail", "markets") for r in read_csv((folder / f"{bu}.csv").read_text())]
    assert sum(Decimal(r["cost_usd"]) for r in rows) == Decimal(summary["total"]["cost_usd"])
    assert sum(int(r["tokens"]) for r in rows) == summary["total"]["tokens"]


def test_rerun_rewrites_the_same_figures(tmp_path: Path, usage: SqliteUsageStore) -> None:
    fill_october(usage)
    settings = settings_for(tmp_path)
    run_chargeback("2026-10", settings, usage=usage, budgets={}, clock=lambda: 1.8e9)
    first = (tmp_path / "chargeback" / "2026-10" / "retail.csv").read_bytes()
    run_chargeback("2026-10", settings, usage=usage, budgets={}, clock=lambda: 1.8e9)
    assert (tmp_path / "chargeback" / "2026-10" / "retail.csv").read_bytes() == first
    assert not [p for p in (tmp_path / "chargeback" / "2026-10").iterdir() if p.name.startswith(".")]


def test_a_month_without_usage(tmp_path: Path, usage: SqliteUsageStore) -> None:
    result = run_chargeback("2025-01", settings_for(tmp_path), usage=usage, budgets={})
    assert result["business_units"] == [] and result["total"]["cost_usd"] == "0.00000000"


def test_bad_month_is_refused_before_anything_is_written(tmp_path: Path, usage: SqliteUsageStore) -> None:
    with pytest.raises(ValueError, match="month must be YYYY-MM"):
        run_chargeback("2026/10", settings_for(tmp_path), usage=usage, budgets={})
    assert not (tmp_path / "chargeback").exists()


def test_memoryless(tmp_path: Path) -> None:
    """Through the whole gateway: a request's text never reaches a chargeback file."""
    from support import running_garden

    secret = f"canary-{uuid.uuid4().hex}"
    with running_garden(tmp_path) as garden:
        r = garden.chat({"model": "local-echo", "messages": [{"role": "user", "content": secret}]})
        assert r.status_code == 200, r.body
        assert secret in r.body.decode()  # the echo answered with it: the text was there to leak
        month = datetime.now(timezone.utc).strftime("%Y-%m")
        result = run_chargeback(month, garden.settings, budgets={})
    assert result["total"]["requests"] == 1
    files = list((garden.home / "chargeback" / month).iterdir())
    assert len(files) == 2 and all("canary" not in f.read_text() for f in files)


# -- S3 (moto) with each business unit's KMS key --------------------------------------------------

@pytest.fixture
def aws(moto_url: str) -> dict[str, Any]:
    kw = {"endpoint_url": moto_url, "region_name": REGION, "aws_access_key_id": "testing",
          "aws_secret_access_key": "testing"}
    kms, s3 = boto3.client("kms", **kw), boto3.client("s3", **kw)
    bucket = f"garden-chargeback-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    keys = {bu: kms.create_key(Description=f"bu {bu}")["KeyMetadata"]["Arn"]
            for bu in ("retail", "markets", "_unidentified")}
    return {"s3": s3, "bucket": bucket, "keys": keys}


def test_s3_each_file_under_its_business_units_key(tmp_path: Path, usage: SqliteUsageStore,
                                                   aws: dict[str, Any]) -> None:
    fill_october(usage)
    s3, bucket, keys = aws["s3"], aws["bucket"], aws["keys"]
    sent: dict[str, dict[str, str]] = {}

    def capture(request: Any, **_: Any) -> None:  # what went over the wire, per object key
        if request.method == "PUT":
            sent[request.url.split(f"/{bucket}/", 1)[1]] = dict(request.headers)

    s3.meta.events.register("before-send.s3.PutObject", capture)
    settings = settings_for(tmp_path, GARDEN_CHARGEBACK_BUCKET=bucket, GARDEN_BU_KEYS=json.dumps(keys))
    result = run_chargeback("2026-10", settings, usage=usage, budgets={"wealth": {"usd_per_month": 5}},
                            sink=chargeback_sink(settings, client_factory=lambda: s3))
    listed = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"])
    assert listed == ["chargeback/2026-10/markets.csv", "chargeback/2026-10/retail.csv",
                      "chargeback/2026-10/summary.json"]
    for bu, key in (("retail", "chargeback/2026-10/retail.csv"), ("markets", "chargeback/2026-10/markets.csv"),
                    ("_unidentified", "chargeback/2026-10/summary.json")):
        head = s3.head_object(Bucket=bucket, Key=key)
        assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", keys[bu])
        context = json.loads(base64.b64decode(sent[key]["x-amz-server-side-encryption-context"]))
        assert context == {"garden:business_unit": bu}
    body = s3.get_object(Bucket=bucket, Key="chargeback/2026-10/retail.csv")["Body"].read().decode()
    assert [r["app"] for r in read_csv(body)] == ["teller", "teller"]
    # A business unit without a key of its own gets no file (never another BU's key), and is named.
    assert result["missing_keys"] == ["wealth"]
    assert {u["business_unit"]: u["file"] for u in result["business_units"]}["wealth"] is None
    assert result["summary_file"] == "chargeback/2026-10/summary.json"


def test_s3_needs_the_platform_key_for_the_summary(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, GARDEN_CHARGEBACK_BUCKET="b", GARDEN_BU_KEYS='{"retail": "arn:k"}')
    with pytest.raises(ConfigError, match="_unidentified"):
        chargeback_sink(settings)


def test_readme_shows_the_csv_as_written() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## Usage and chargeback", 1)[1].split("\n## ", 1)[0]
    header, row = section.split("```\n", 2)[1].splitlines()[:2]
    assert header == ",".join(CSV_COLUMNS)
    app, model, requests, prompt, completion, tokens, cost = row.split(",")
    assert int(tokens) == int(prompt) + int(completion) and len(cost.split(".")[1]) == 8


def test_s3_refusal_is_a_service_unavailable_naming_aws_code_only(tmp_path: Path, usage: SqliteUsageStore,
                                                                  aws: dict[str, Any]) -> None:
    fill_october(usage)
    keys = aws["keys"]
    settings = settings_for(tmp_path, GARDEN_CHARGEBACK_BUCKET="garden-chargeback-missing",
                            GARDEN_BU_KEYS=json.dumps(keys))
    with pytest.raises(ServiceUnavailable, match=r"\(NoSuchBucket\)") as refused:
        run_chargeback("2026-10", settings, usage=usage, budgets={},
                       sink=chargeback_sink(settings, client_factory=lambda: aws["s3"]))
    assert refused.value.code == "chargeback_unavailable" and "garden-chargeback-missing" not in str(refused.value)
