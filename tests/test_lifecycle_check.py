"""The scheduled lifecycle check: the catalog against Bedrock's `ListFoundationModels`, through the
real boto3 `bedrock` client (AWS_ENDPOINT_URL_BEDROCK) against a loopback control plane, run as
the scheduled Lambda function runs it."""
from __future__ import annotations

import copy
import io
import json
import logging
from pathlib import Path
from typing import Any, Iterator

import pytest
from fakes.bedrock_control_server import Fail, FakeBedrockControl, summary
from support import ROOT, TEST_CATALOG

from chalicelib.lifecycle_check import foundation_model
from chalicelib.telemetry import LOGGER_NAME

SONNET = "anthropic.claude-3-sonnet-20240229-v1:0"
CLAUDE_V2 = "anthropic.claude-v2:1"
HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
INSTANT = "anthropic.claude-instant-v1"
TITAN = "amazon.titan-text-express-v1"


@pytest.mark.parametrize(("model_id", "expected"), [
    (HAIKU, (HAIKU, None)),
    (f"eu.{SONNET}", (SONNET, None)),
    (f"us-gov.{SONNET}", (SONNET, None)),
    (f"global.{SONNET}", (SONNET, None)),
    (f"arn:aws:bedrock:us-east-1::foundation-model/{CLAUDE_V2}", (CLAUDE_V2, "us-east-1")),
    (f"arn:aws:bedrock:eu-west-1:111122223333:inference-profile/eu.{SONNET}", (SONNET, "eu-west-1")),
    ("arn:aws:bedrock:eu-west-1:111122223333:application-inference-profile/a1b2c3", (None, "eu-west-1")),
    ("arn:aws:bedrock:eu-west-1:111122223333:provisioned-model/abc123", (None, "eu-west-1")),
    ("arn:aws:bedrock", (None, None)),
])
def test_deployment_ids_map_to_the_foundation_model_they_run(model_id: str, expected: tuple) -> None:
    assert foundation_model(model_id) == expected


def _bedrock(model_id: str, name: str, **extra: str) -> dict[str, str]:
    return {"provider": "bedrock", "model_id": model_id, "name": name, **extra}


def _model(*deployments: dict[str, str], **lifecycle: str) -> dict[str, Any]:
    model: dict[str, Any] = {"max_output_tokens": 1024, "price": {"input_per_1k": 0.001, "output_per_1k": 0.002},
                             "deployments": list(deployments)}
    if lifecycle:
        model["lifecycle"] = lifecycle
    return model


def check_catalog() -> dict[str, Any]:
    raw = copy.deepcopy(TEST_CATALOG)
    raw["models"].update({
        # Active in the catalog (no lifecycle), LEGACY at Bedrock: three deployments in two regions.
        "claude-old": _model(_bedrock(f"eu.{SONNET}", "sonnet-eu"), _bedrock(SONNET, "sonnet-direct"),
                             _bedrock(f"arn:aws:bedrock:us-east-1::foundation-model/{CLAUDE_V2}", "claude-v2-us")),
        # Active, and active at Bedrock.
        "haiku": _model(_bedrock(HAIKU, "haiku"), status="active"),
        # LEGACY at Bedrock, and the catalog already says so.
        "instant": _model(_bedrock(INSTANT, "instant"), status="legacy", deprecated="2026-01-15",
                          sunset="2026-06-01", successor="haiku"),
        # A deployment naming its own region: LEGACY there, ACTIVE in the gateway's region.
        "titan": _model(_bedrock(TITAN, "titan-frankfurt", region="eu-central-1")),
        # No foundation model in its id: counted as unchecked, never reported.
        "profiled": _model(_bedrock("arn:aws:bedrock:eu-west-1:111122223333:application-inference-profile/a1b2c3",
                                    "app-profile")),
    })
    return raw


BEDROCK = {
    "eu-west-1": [summary(SONNET, "LEGACY", "eu-west-1"), summary(HAIKU, region="eu-west-1"),
                  summary(INSTANT, "LEGACY", "eu-west-1"), summary(TITAN, region="eu-west-1")],
    "us-east-1": [summary(CLAUDE_V2, "LEGACY"), summary(HAIKU)],
    "eu-central-1": [summary(TITAN, "LEGACY", "eu-central-1")],
}


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """What the gateway's logger writes at INFO, as telemetry.py sets it up (its own stderr handler,
    if set up already, stays; this one only listens)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger(LOGGER_NAME)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def run_scheduled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake: FakeBedrockControl,
                  stream: io.StringIO) -> list[dict[str, Any]]:
    from chalice.test import Client

    from app import app

    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps(check_catalog()))
    monkeypatch.setenv("GARDEN_CATALOG", str(catalog))
    monkeypatch.setenv("GARDEN_BEDROCK_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK", fake.endpoint_url)
    with Client(app, stage_name="local", project_dir=str(ROOT)) as client:
        event = client.events.generate_cw_event(source="aws.events", detail_type="Scheduled Event",
                                                detail={}, resources=[])
        client.lambda_.invoke("check_model_lifecycle", event)
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_models_bedrock_marks_legacy_but_the_catalog_does_not_are_logged_and_counted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, log_lines: io.StringIO) -> None:
    with FakeBedrockControl(BEDROCK) as fake:
        lines = run_scheduled(tmp_path, monkeypatch, fake, log_lines)
    # One ListFoundationModels call per region in use, signed for that region, nothing else.
    assert sorted((r["method"], r["path"], r["query"], r["region"], r["service"]) for r in fake.requests) == [
        ("GET", "/foundation-models", "", region, "bedrock") for region in ("eu-central-1", "eu-west-1", "us-east-1")]
    behind = [line for line in lines if line["event"] == "catalog_model_behind_bedrock"]
    assert sorted(tuple(line.items()) for line in behind) == sorted(tuple(d.items()) for d in [
        {"event": "catalog_model_behind_bedrock", "model": "claude-old", "deployment": "sonnet-eu",
         "bedrock_model_id": SONNET, "region": "eu-west-1"},
        {"event": "catalog_model_behind_bedrock", "model": "claude-old", "deployment": "sonnet-direct",
         "bedrock_model_id": SONNET, "region": "eu-west-1"},
        {"event": "catalog_model_behind_bedrock", "model": "claude-old", "deployment": "claude-v2-us",
         "bedrock_model_id": CLAUDE_V2, "region": "us-east-1"},
        {"event": "catalog_model_behind_bedrock", "model": "titan", "deployment": "titan-frankfurt",
         "bedrock_model_id": TITAN, "region": "eu-central-1"},
    ])
    summaries = {line["region"]: line for line in lines if line["event"] == "lifecycle_check"}
    assert len(lines) == len(behind) + len(summaries) == 4 + 3  # nothing else is logged
    for region, (metric, deployments, unchecked) in {
            "eu-west-1": (1, 5, 1), "us-east-1": (1, 1, 0), "eu-central-1": (1, 1, 0)}.items():
        line = summaries[region]
        directive = line["_aws"]["CloudWatchMetrics"][0]
        assert directive["Namespace"] == "ExecutionGarden" and directive["Dimensions"] == [["Region"]]
        assert {m["Name"] for m in directive["Metrics"]} == {"CatalogModelsBehindBedrock", "LifecycleCheckFailures"}
        assert isinstance(line["_aws"]["Timestamp"], int) and line["Region"] == region
        # Models, not deployments: claude-old has two LEGACY deployments in eu-west-1 and counts once.
        assert (line["CatalogModelsBehindBedrock"], line["LifecycleCheckFailures"]) == (metric, 0)
        assert (line["deployments"], line["unchecked"]) == (deployments, unchecked)


def test_a_region_bedrock_refuses_is_logged_by_class_and_counted_and_the_others_still_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, log_lines: io.StringIO) -> None:
    with FakeBedrockControl({**BEDROCK, "us-east-1": Fail()}) as fake:
        lines = run_scheduled(tmp_path, monkeypatch, fake, log_lines)
    assert sorted(r["region"] for r in fake.requests) == ["eu-central-1", "eu-west-1", "us-east-1"]
    failed = [line for line in lines if line["event"] == "lifecycle_check_failed"]
    assert failed == [{"event": "lifecycle_check_failed", "region": "us-east-1", "error_class": "AccessDeniedException"}]
    summaries = {line["region"]: line for line in lines if line["event"] == "lifecycle_check"}
    assert summaries["us-east-1"]["LifecycleCheckFailures"] == 1
    assert summaries["us-east-1"]["CatalogModelsBehindBedrock"] == 0
    assert summaries["eu-west-1"]["CatalogModelsBehindBedrock"] == 1
    assert "not authorized" not in "".join(json.dumps(line) for line in lines)  # no upstream message


def test_nothing_behind_logs_only_the_counts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             log_lines: io.StringIO) -> None:
    active = {region: [{**s, "modelLifecycle": {"status": "ACTIVE"}} for s in models]
              for region, models in BEDROCK.items()}
    with FakeBedrockControl(active) as fake:
        lines = run_scheduled(tmp_path, monkeypatch, fake, log_lines)
    assert [line["event"] for line in lines] == ["lifecycle_check"] * 3
    assert all(line["CatalogModelsBehindBedrock"] == 0 for line in lines)
