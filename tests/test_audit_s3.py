"""The S3 audit sink on moto (S3 + KMS on 127.0.0.1): one object per request, under its business
unit's prefix, encrypted with that BU's key, holding exactly the record's fields."""
from __future__ import annotations

import base64
import json
import uuid
from dataclasses import fields
from typing import Any, Iterator

import boto3
import pytest
from botocore.exceptions import NoRegionError

from chalicelib.audit_s3 import S3AuditSink
from chalicelib.errors import ServiceUnavailable
from chalicelib.record import RequestRecord

CANARY = "CANARY-7f3a-never-in-a-record"


@pytest.fixture(scope="module")
def aws(moto_url: str) -> Iterator[dict[str, Any]]:
    def client(service: str) -> Any:
        return boto3.client(service, endpoint_url=moto_url, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    s3, kms = client("s3"), client("kms")
    bucket = f"garden-audit-{uuid.uuid4().hex[:12]}"  # moto's state is shared by the whole process
    s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    s3.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled",
        "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}},
    })
    keys = {bu: kms.create_key(Description=f"garden {bu}")["KeyMetadata"]["Arn"]
            for bu in ("retail", "markets", "_unidentified")}
    yield {"s3": s3, "bucket": bucket, "keys": keys}


@pytest.fixture
def sink(aws: dict[str, Any]) -> S3AuditSink:
    keys = aws["keys"]
    return S3AuditSink(lambda: aws["s3"], aws["bucket"],
                       {"retail": keys["retail"], "markets": keys["markets"]}, keys["_unidentified"])


def record(bu: str | None, **overrides: Any) -> RequestRecord:
    base: dict[str, Any] = dict(
        request_id=str(uuid.uuid4()), timestamp="2026-11-27T09:15:02.123Z", route="chat",
        status=200, app_id="app-1", business_unit=bu, principal="arn:aws:iam::1:role/x",
        model="claude", deployment="bedrock-eu", attempts=1, finish_reason="stop",
        reserved_tokens=1200, prompt_tokens=100, completion_tokens=50, cost_usd=0.0012,
        pii={"EMAIL:ANONYMIZED": 1}, guardrail=["INPUT:PROMPT_ATTACK"], latency_ms=812.5,
    )
    return RequestRecord(**{**base, **overrides})


def stored(aws: dict[str, Any], key: str) -> tuple[dict[str, Any], dict[str, Any]]:
    head = aws["s3"].head_object(Bucket=aws["bucket"], Key=key)
    body = json.loads(aws["s3"].get_object(Bucket=aws["bucket"], Key=key)["Body"].read())
    return head, body


def test_each_bu_gets_its_prefix_and_its_key(aws: dict[str, Any], sink: S3AuditSink) -> None:
    written = {bu: record(bu) for bu in ("retail", "markets")}
    for r in written.values():
        sink.write(r)
    for bu, r in written.items():
        head, body = stored(aws, f"audit/{bu}/2026/11/27/{r.request_id}.json")
        assert head["ServerSideEncryption"] == "aws:kms"
        assert head["SSEKMSKeyId"] == aws["keys"][bu]
        assert head["ContentType"] == "application/json"
        assert head.get("ObjectLockMode") == "COMPLIANCE"  # from the bucket default, not the put
        assert body == r.to_dict()


def test_the_body_holds_exactly_the_record_fields(aws: dict[str, Any], sink: S3AuditSink) -> None:
    r = record("retail")
    sink.write(r)
    raw = aws["s3"].get_object(Bucket=aws["bucket"], Key=f"audit/retail/2026/11/27/{r.request_id}.json")
    text = raw["Body"].read().decode("utf-8")
    assert set(json.loads(text)) == {f.name for f in fields(RequestRecord)}
    assert list(json.loads(text)) == sorted(json.loads(text))  # sort_keys: stable, diffable
    assert CANARY not in text  # nothing but the record's values is ever written


@pytest.mark.parametrize("bu", [None, "", "wealth", "retail/../markets", ".."])
def test_unknown_or_odd_bus_go_to_unidentified_with_the_default_key(
    aws: dict[str, Any], sink: S3AuditSink, bu: str | None
) -> None:
    # The default key's policy admits only audit/_unidentified/*: a BU without a key files there.
    r = record(bu)
    sink.write(r)
    head, body = stored(aws, f"audit/_unidentified/2026/11/27/{r.request_id}.json")
    assert head["SSEKMSKeyId"] == aws["keys"]["_unidentified"]
    assert body["business_unit"] == bu  # the body still says whose request it was


def test_the_app_id_is_the_objects_encryption_context(aws: dict[str, Any]) -> None:
    # moto does not echo the context back: read it from the request the real client sends.
    sent: list[str] = []
    s3 = boto3.client("s3", endpoint_url=aws["s3"].meta.endpoint_url, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    s3.meta.events.register("before-send.s3.PutObject",
                            lambda request, **_: sent.append(request.headers["x-amz-server-side-encryption-context"]))
    sink = S3AuditSink(lambda: s3, aws["bucket"], {"retail": aws["keys"]["retail"]}, aws["keys"]["_unidentified"])
    sink.write(record("retail"))
    sink.write(record(None, app_id=None))
    contexts = [json.loads(base64.b64decode(value)) for value in sent]
    assert contexts == [{"garden:app_id": "app-1"}, {"garden:app_id": "_none"}]


def test_unsafe_request_id_is_refused(sink: S3AuditSink) -> None:
    with pytest.raises(ValueError):
        sink.write(record("retail", request_id="../../elsewhere"))


def test_errors_are_audit_unavailable(aws: dict[str, Any]) -> None:
    missing = S3AuditSink(lambda: aws["s3"], "no-such-bucket-" + uuid.uuid4().hex[:8], {},
                          aws["keys"]["_unidentified"])
    with pytest.raises(ServiceUnavailable) as caught:
        missing.write(record("retail"))
    assert (caught.value.code, caught.value.message) == ("audit_unavailable", "audit sink unavailable")

    def no_region() -> Any:
        raise NoRegionError()

    with pytest.raises(ServiceUnavailable):
        S3AuditSink(no_region, aws["bucket"], {}, "k").write(record(None))


def test_client_is_made_lazily_and_once(aws: dict[str, Any]) -> None:
    calls: list[int] = []

    def factory() -> Any:
        calls.append(1)
        return aws["s3"]

    sink = S3AuditSink(factory, aws["bucket"], {}, aws["keys"]["_unidentified"])
    assert calls == []
    sink.write(record(None))
    sink.write(record(None))
    assert calls == [1]
