"""The request deadline covers the whole request (ledger, PII, guardrail, provider, audit): every
AWS call the gateway makes is held to it, so no request outlives API Gateway's 29 s. Stalled
dependencies are loopback servers that never answer, reached by the real boto3 clients."""
from __future__ import annotations

import copy
import io
import json
import logging
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import boto3
import pytest
from botocore.config import Config
from fakes.comprehend_server import Detect, FakeComprehend, Hang, Throttle
from fakes.guardrail_server import FakeGuardrail
from fakes.guardrail_server import Hang as GuardrailHang
from fakes.stall_server import Stall
from openai_schema import validate
from support import TEST_CATALOG, Garden, running_garden

from chalicelib import deadline, gateway
from chalicelib.catalog import parse_catalog
from chalicelib.errors import DeadlineExceeded, RetryVetoed
from chalicelib.quota import utc_day
from chalicelib.settings import Settings
from chalicelib.telemetry import LogTelemetry

CHAT = {"model": "local-echo", "messages": [{"role": "user", "content": "hello there"}]}
TIMEOUT_S = 4  # GARDEN_REQUEST_TIMEOUT_S in these tests; the PII and guardrail clients' worst case is 3.5 s


def audit_lines(g: Garden) -> list[dict[str, Any]]:
    return [json.loads(line) for p in (g.home / "audit").rglob("*.jsonl") for line in p.read_text().splitlines()]


def held(g: Garden) -> int:
    return g.ledger.usage("test-app", utc_day(time.time()), time.time()).reserved


def assert_504_in_time(g: Garden, response: Any, elapsed: float) -> None:
    assert response.status_code == 504, response.body
    validate(json.loads(response.body), "ErrorResponse")
    assert response.headers["x-request-id"]
    assert elapsed < TIMEOUT_S + 1.0  # within the deadline, with slack for a loaded machine
    assert held(g) == 0  # the reservation was released
    (record,) = audit_lines(g)
    assert (record["status"], record["error_code"]) == (504, "timeout")


@pytest.fixture
def stalled_comprehend(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeComprehend]:
    with FakeComprehend(Hang(60)) as fake:
        monkeypatch.setenv("AWS_ENDPOINT_URL_COMPREHEND", fake.endpoint_url)
        yield fake


def test_a_stalled_pii_detector_answers_504_within_the_deadline(tmp_path: Path,
                                                                stalled_comprehend: FakeComprehend) -> None:
    env = {"GARDEN_PII": "comprehend", "AWS_REGION": "us-east-1", "GARDEN_REQUEST_TIMEOUT_S": str(TIMEOUT_S)}
    with running_garden(tmp_path, env=env) as g:
        started = time.monotonic()
        response = g.chat(CHAT)
        assert_504_in_time(g, response, time.monotonic() - started)
    # One call, timed out after its 3 s read timeout; a retry could not have ended by the deadline.
    assert len(stalled_comprehend.requests) == 1


def test_a_stalled_guardrail_answers_504_within_the_deadline(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    raw = copy.deepcopy(TEST_CATALOG)
    raw["apps"][0]["guardrail"]["bedrock_guardrail_id"] = "gr1"
    env = {"GARDEN_GUARDRAIL": "bedrock", "AWS_REGION": "us-east-1", "GARDEN_REQUEST_TIMEOUT_S": str(TIMEOUT_S)}
    with FakeGuardrail({"gr1": GuardrailHang(60)}) as fake:
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", fake.endpoint_url)
        with running_garden(tmp_path, env=env, catalog=parse_catalog(raw)) as g:
            started = time.monotonic()
            response = g.chat(CHAT)
            assert_504_in_time(g, response, time.monotonic() - started)
    assert len(fake.requests) == 1


def test_a_call_that_could_not_end_in_time_is_not_made(tmp_path: Path,
                                                       stalled_comprehend: FakeComprehend) -> None:
    # 3 s of deadline, 3.5 s of worst case for the detector: refused before any network work.
    env = {"GARDEN_PII": "comprehend", "AWS_REGION": "us-east-1", "GARDEN_REQUEST_TIMEOUT_S": "3"}
    with running_garden(tmp_path, env=env) as g:
        started = time.monotonic()
        response = g.chat(CHAT)
        assert response.status_code == 504 and time.monotonic() - started < 2.0
        assert held(g) == 0 and audit_lines(g)[0]["error_code"] == "timeout"
    assert stalled_comprehend.requests == []


def test_a_stalled_ledger_answers_504_within_deadline_and_tail(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # The ledger is bookkeeping: its calls may use the short tail after the 2 s deadline (a paid
    # answer is still settled), never more. Its worst case is 2.5 s: one attempt fits, a retry not.
    env = {"GARDEN_STORE": "dynamodb", "GARDEN_LEDGER_TABLE": "t", "AWS_REGION": "us-east-1",
           "GARDEN_REQUEST_TIMEOUT_S": "2"}
    with Stall() as stall:
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", stall.endpoint_url)
        quota = gateway._quota(Settings.from_env(env))  # the composition root's DynamoDB ledger
        with running_garden(tmp_path, env=env, quota=quota) as g:
            started = time.monotonic()
            response = g.chat(CHAT)
            elapsed = time.monotonic() - started
            (record,) = audit_lines(g)
    assert response.status_code == 504, response.body
    assert elapsed < 2 + deadline.TAIL_S
    assert (record["status"], record["error_code"]) == (504, "timeout")
    assert stall.requests == 1


def test_an_audit_sink_that_stalls_cannot_hold_the_answer_past_deadline_and_tail(
    tmp_path: Path, moto_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    kms = boto3.client("kms", endpoint_url=moto_url, region_name="us-east-1")
    key = kms.create_key()["KeyMetadata"]["Arn"]
    env = {"GARDEN_AUDIT": "s3", "GARDEN_AUDIT_BUCKET": "audit", "AWS_REGION": "us-east-1",
           "GARDEN_BU_KEYS": json.dumps({"_unidentified": key}), "GARDEN_REQUEST_TIMEOUT_S": str(TIMEOUT_S)}
    with Stall() as stall:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", stall.endpoint_url)
        log = io.StringIO()
        logger = logging.getLogger(f"test-deadline-{uuid.uuid4().hex}")
        logger.handlers[:], logger.propagate = [logging.StreamHandler(log)], False
        logger.setLevel(logging.INFO)
        with running_garden(tmp_path, env=env, telemetry=LogTelemetry(logger)) as g:
            started = time.monotonic()
            response = g.chat(CHAT)
            elapsed = time.monotonic() - started
    assert response.status_code == 200, response.body  # the answer survives its audit trail
    assert elapsed < TIMEOUT_S + deadline.TAIL_S + 1.0
    assert stall.requests in (1, 2)
    kept = [json.loads(line) for line in log.getvalue().splitlines()]
    assert [line["event"] for line in kept] == ["audit_fallback", "request"]  # and the record is kept


# --- the hooks on one client ---------------------------------------------------------------------

def comprehend(url: str) -> Any:
    client = boto3.client("comprehend", endpoint_url=url, region_name="us-east-1",
                          config=Config(connect_timeout=0.5, read_timeout=1,
                                        retries={"mode": "standard", "total_max_attempts": 2}))
    return deadline.guard(client, connect_timeout=0.5, read_timeout=1, max_attempts=2)


def test_a_retry_that_fits_is_made_and_one_that_does_not_is_vetoed() -> None:
    with FakeComprehend([Throttle(), Detect()]) as fake:
        client = comprehend(fake.endpoint_url)
        with deadline.bound(deadline.Deadline(time.monotonic() + 10)):
            client.detect_pii_entities(Text="hello", LanguageCode="en")  # throttled, retried, answered
        assert len(fake.requests) == 2
    with FakeComprehend(Throttle()) as fake:
        client = comprehend(fake.endpoint_url)
        with deadline.bound(deadline.Deadline(time.monotonic() + 2.0)), pytest.raises(RetryVetoed) as vetoed:
            client.detect_pii_entities(Text="hello", LanguageCode="en")
        assert len(fake.requests) == 1  # up to 1 s of backoff + 1.5 s of worst case > what was left
        assert vetoed.value.status == 504
        assert vetoed.value.last.response["Error"]["Code"] == "ThrottlingException"


def test_without_a_bound_deadline_the_hooks_stand_aside() -> None:
    with FakeComprehend([Throttle(), Detect()]) as fake:
        comprehend(fake.endpoint_url).detect_pii_entities(Text="hello", LanguageCode="en")
        assert len(fake.requests) == 2
    with pytest.raises(DeadlineExceeded):
        with deadline.bound(deadline.Deadline(time.monotonic() + 1.0)):
            comprehend(f"http://127.0.0.1:9/{uuid.uuid4().hex}").detect_pii_entities(Text="x", LanguageCode="en")
