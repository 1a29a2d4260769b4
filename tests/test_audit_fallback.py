"""An audit write that fails after a paid model call: the caller still gets the answer, the sink is
tried once more, then the record goes to the log stream as an `audit_fallback` line (metadata only)
and counts in the `AuditWriteFailures` metric. Sinks that fail for real: a JSON lines sink whose
folder cannot be created, an S3 sink whose bucket does not exist (moto)."""
from __future__ import annotations

import io
import json
import logging
import uuid
from pathlib import Path
from typing import Any

import boto3
from support import TEST_CATALOG, running_garden

from chalicelib.audit import FallbackAuditSink, JsonLinesAuditSink
from chalicelib.catalog import parse_catalog
from chalicelib.record import RequestRecord
from chalicelib.telemetry import LogTelemetry

CANARY = "CANARY-audit-fallback-9b2c"
CHAT = {"model": "local-echo", "messages": [{"role": "user", "content": f"hello {CANARY}"}]}


def capture() -> tuple[LogTelemetry, io.StringIO]:
    stream = io.StringIO()
    logger = logging.getLogger(f"test-audit-fallback-{uuid.uuid4().hex}")
    logger.handlers[:] = [logging.StreamHandler(stream)]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return LogTelemetry(logger), stream


def lines(stream: io.StringIO, event: str) -> list[dict[str, Any]]:
    parsed = [json.loads(line) for line in stream.getvalue().splitlines()]
    return [line for line in parsed if line.get("event") == event]


def assert_kept_in_the_log(stream: io.StringIO, response: Any) -> dict[str, Any]:
    (fallback,) = lines(stream, "audit_fallback")
    (request,) = lines(stream, "request")
    record_fields = set(RequestRecord.__dataclass_fields__)
    assert {k: fallback[k] for k in record_fields} == {k: request[k] for k in record_fields}  # the whole record
    assert fallback["request_id"] == response.headers["x-request-id"] and fallback["status"] == 200
    directive = fallback["_aws"]["CloudWatchMetrics"][0]
    assert directive["Metrics"] == [{"Name": "AuditWriteFailures", "Unit": "Count"}]
    assert fallback["AuditWriteFailures"] == 1 and fallback["BusinessUnit"] == "retail-banking"
    assert CANARY not in stream.getvalue()  # metadata only, as the record is
    return fallback


def test_a_json_lines_sink_that_cannot_write_keeps_the_answer_and_the_record(tmp_path: Path) -> None:
    telemetry, stream = capture()
    with running_garden(tmp_path, telemetry=telemetry) as g:
        (g.home / "audit").write_text("a file where the audit folder should be")  # fails even for root
        response = g.chat(CHAT)
    assert response.status_code == 200, response.body
    assert CANARY in json.loads(response.body)["choices"][0]["message"]["content"]  # the paid answer
    fallback = assert_kept_in_the_log(stream, response)
    assert fallback["error_class"] in ("NotADirectoryError", "FileExistsError")


def test_an_s3_sink_whose_bucket_is_missing_keeps_the_answer_and_the_record(
    tmp_path: Path, moto_url: str, monkeypatch: Any
) -> None:
    kms = boto3.client("kms", endpoint_url=moto_url, region_name="us-east-1")
    key = kms.create_key()["KeyMetadata"]["Arn"]
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_url)
    env = {"GARDEN_AUDIT": "s3", "GARDEN_AUDIT_BUCKET": f"no-such-bucket-{uuid.uuid4().hex[:8]}",
           "GARDEN_BU_KEYS": json.dumps({"_unidentified": key}), "AWS_REGION": "us-east-1"}
    telemetry, stream = capture()
    with running_garden(tmp_path, env=env, telemetry=telemetry, catalog=parse_catalog(TEST_CATALOG)) as g:
        response = g.chat(CHAT)
    assert response.status_code == 200, response.body
    fallback = assert_kept_in_the_log(stream, response)
    assert fallback["error_class"] == "ServiceUnavailable"


def test_a_write_that_fails_once_is_retried_and_not_logged(tmp_path: Path) -> None:
    audit = tmp_path / "audit"
    audit.write_text("in the way")

    class ClearsTheWay(JsonLinesAuditSink):
        """The first write meets the obstacle, which is then removed: the retry succeeds."""

        writes = 0

        def write(self, record: RequestRecord) -> None:
            self.writes += 1
            try:
                super().write(record)
            finally:
                if audit.is_file():
                    audit.unlink()

    telemetry, stream = capture()
    sink = ClearsTheWay(audit)
    record = RequestRecord(request_id=str(uuid.uuid4()), timestamp="2026-11-29T09:00:00.000+00:00",
                           route="chat.completions", status=200, business_unit="retail-banking")
    FallbackAuditSink(sink, telemetry).write(record)
    assert sink.writes == 2 and lines(stream, "audit_fallback") == []
    (written,) = [json.loads(line) for p in audit.rglob("*.jsonl") for line in p.read_text().splitlines()]
    assert written == record.to_dict()
