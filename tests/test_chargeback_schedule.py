"""The monthly chargeback task as Lambda runs it (`monthly_chargeback`, invoked through Chalice's
test client): the month before the schedule's own time, in UTC, budgets as the registry holds them,
locally and on S3 (moto) under each business unit's key."""
from __future__ import annotations

import copy
import csv
import io
import json
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
from support import ROOT, TEST_CATALOG

from chalicelib.usage import UsageEvent
from chalicelib.usage_store.sqlite import SqliteUsageStore

REGION = "eu-west-1"


def prepare(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    raw = copy.deepcopy(TEST_CATALOG)
    raw["business_units"] = {"retail-banking": {"usd_per_month": 250, "tokens_per_month": 5_000_000}}
    (tmp_path / "catalog.json").write_text(json.dumps(raw))
    monkeypatch.setenv("GARDEN_HOME", str(home))
    monkeypatch.setenv("GARDEN_CATALOG", str(tmp_path / "catalog.json"))
    store = SqliteUsageStore(home / "garden.sqlite3")
    for day, cost in (("2026-11-30", 7), ("2026-12-01", 100), ("2026-12-31", 23), ("2027-01-01", 9)):
        store.record(UsageEvent("test-app", "retail-banking", "local-echo", day, "ok", 10, 5, 0, cost))
    store.close()
    return home


def invoke(time: str) -> None:
    from chalice.test import Client

    from app import app

    with Client(app, stage_name="local", project_dir=str(ROOT)) as client:
        event = client.events.generate_cw_event(source="aws.events", detail_type="Scheduled Event",
                                                detail={}, resources=[])
        client.lambda_.invoke("monthly_chargeback", {**event, "time": time})


def test_the_1st_writes_the_previous_utc_month(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = prepare(tmp_path, monkeypatch)
    invoke("2027-01-01T02:00:00Z")
    folder = home / "chargeback" / "2026-12"
    assert sorted(p.name for p in folder.iterdir()) == ["retail-banking.csv", "summary.json"]
    rows = list(csv.DictReader(io.StringIO((folder / "retail-banking.csv").read_text())))
    assert rows == [{"app": "test-app", "model": "local-echo", "requests": "2", "prompt_tokens": "20",
                     "completion_tokens": "10", "tokens": "30", "cost_usd": "0.00000123"}]
    summary = json.loads((folder / "summary.json").read_text())
    assert (summary["from"], summary["to"]) == ("2026-12-01", "2026-12-31")
    [bu] = summary["business_units"]
    assert bu["budget"] == {"usd_per_month": 250, "tokens_per_month": 5_000_000}
    assert not (home / "chargeback" / "2027-01").exists() and not (home / "chargeback" / "2026-11").exists()


def test_on_s3_under_each_business_units_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, moto_url: str) -> None:
    prepare(tmp_path, monkeypatch)
    kw = {"endpoint_url": moto_url, "region_name": REGION}
    kms, s3 = boto3.client("kms", **kw), boto3.client("s3", **kw)
    bucket = f"garden-chargeback-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    keys = {bu: kms.create_key()["KeyMetadata"]["Arn"] for bu in ("retail-banking", "_unidentified")}
    for name, value in {"GARDEN_CHARGEBACK_BUCKET": bucket, "GARDEN_BU_KEYS": json.dumps(keys),
                        "AWS_REGION": REGION, "AWS_ENDPOINT_URL_S3": moto_url}.items():
        monkeypatch.setenv(name, value)
    invoke("2026-12-01T02:00:07Z")
    heads: dict[str, Any] = {o["Key"]: s3.head_object(Bucket=bucket, Key=o["Key"])
                             for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert sorted(heads) == ["chargeback/2026-11/retail-banking.csv", "chargeback/2026-11/summary.json"]
    assert heads["chargeback/2026-11/retail-banking.csv"]["SSEKMSKeyId"] == keys["retail-banking"]
    assert heads["chargeback/2026-11/summary.json"]["SSEKMSKeyId"] == keys["_unidentified"]
    body = s3.get_object(Bucket=bucket, Key="chargeback/2026-11/retail-banking.csv")["Body"].read().decode()
    assert body.splitlines()[1] == "test-app,local-echo,1,10,5,15,0.00000007"


def test_budgets_are_the_registrys_once_it_holds_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib.registry.sqlite import SqliteRegistry

    home = prepare(tmp_path, monkeypatch)
    registry = SqliteRegistry(home / "garden.sqlite3")
    registry.seed(copy.deepcopy(TEST_CATALOG["apps"]), {"retail-banking": {"usd_per_month": 250}}, "seed")
    registry.put_business_unit("retail-banking", {"usd_per_month": 900}, "arn:aws:iam::000000000000:role/admin")
    invoke("2027-01-01T02:00:00Z")
    summary = json.loads((home / "chargeback" / "2026-12" / "summary.json").read_text())
    assert summary["business_units"][0]["budget"] == {"usd_per_month": 900, "tokens_per_month": None}
