"""The trail in AWS, on moto: records as S3 objects under their BU's prefix and key (Object Lock),
checkpoints signed with KMS Sign (ECC_NIST_P256) and registered in the ledger table, the body HMAC
secret from Secrets Manager. `garden-admin audit verify --bucket` runs as a subprocess with the
standard credential chain (fake keys) and AWS_ENDPOINT_URL pointing at moto."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from typing import Any, Iterator

import boto3
import pytest
from audit_support import CANARY, DAY, T0, T1, Clock, chained_garden, chat
from support import ROOT, TEST_CATALOG

from chalicelib.catalog import parse_catalog

BU = "retail-banking"


@pytest.fixture
def aws(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    clients = {name: boto3.client(name, region_name="us-east-1")
               for name in ("s3", "kms", "dynamodb", "secretsmanager")}
    suffix = uuid.uuid4().hex[:10]  # moto's state is shared by the whole run
    bucket, table = f"garden-audit-{suffix}", f"garden-ledger-{suffix}"
    clients["s3"].create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    clients["s3"].put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}}})
    clients["dynamodb"].create_table(
        TableName=table, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}])
    kms = clients["kms"]
    keys = {bu: kms.create_key(Description=f"garden {bu}")["KeyMetadata"]["Arn"] for bu in (BU, "_unidentified")}
    signing = kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec="ECC_NIST_P256")["KeyMetadata"]["Arn"]
    secret = clients["secretsmanager"].create_secret(Name=f"garden-audit-body-{suffix}",
                                                     SecretString=uuid.uuid4().hex * 2)["ARN"]
    monkeypatch.setenv("GARDEN_AUDIT_SIGNING_KEY", signing)
    monkeypatch.setenv("GARDEN_AUDIT_BODY_SECRET", secret)
    env = {"GARDEN_AUDIT": "s3", "GARDEN_AUDIT_BUCKET": bucket, "GARDEN_BU_KEYS": json.dumps(keys),
           "GARDEN_STORE": "dynamodb", "GARDEN_LEDGER_TABLE": table, "AWS_REGION": "us-east-1"}
    yield {**clients, "bucket": bucket, "table": table, "env": env, "signing": signing, "keys": keys}


def serve_day(aws: dict[str, Any], root: Any, monkeypatch: pytest.MonkeyPatch, n: int, *, every: int = 2,
              close: bool = False) -> list[str]:
    """`n` chats on DAY through a gateway on the AWS adapters; `close`: then one on the next day."""
    clock = Clock(T0)
    root.mkdir()
    with chained_garden(root, monkeypatch, every=every, clock=clock, env=aws["env"],
                        catalog=parse_catalog(TEST_CATALOG)) as g:
        ids = [chat(g, f"{CANARY} {i}") for i in range(n)]
        if close:
            clock.now = T1
            chat(g)
    return ids


def key(request_id: str, day: str = DAY) -> str:
    return f"audit/{BU}/{day.replace('-', '/')}/{request_id}.json"


def body(aws: dict[str, Any], request_id: str) -> dict[str, Any]:
    return json.loads(aws["s3"].get_object(Bucket=aws["bucket"], Key=key(request_id))["Body"].read())


def put(aws: dict[str, Any], request_id: str, record: dict[str, Any]) -> None:
    """A new version over a locked object: Object Lock keeps the old one, GET answers the new."""
    aws["s3"].put_object(Bucket=aws["bucket"], Key=key(request_id), ChecksumAlgorithm="SHA256",
                         Body=json.dumps(record, separators=(",", ":"), sort_keys=True).encode(),
                         ServerSideEncryption="aws:kms", SSEKMSKeyId=aws["keys"][BU])


def verify(aws: dict[str, Any], *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "admin_cli", "audit", "verify", "--date", DAY, "--bucket", aws["bucket"],
                           "--table", aws["table"], "--region", "us-east-1", *extra],
                          cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=120)


def named(result: subprocess.CompletedProcess[str], problem: str, request_id: str) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if line.strip().startswith(f"{problem}: record {request_id}")]
    assert lines, result.stdout
    return lines[0]


def test_a_clean_day_in_s3_verifies_with_kms_signed_heads(aws: dict[str, Any], tmp_path: Any,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    ids = serve_day(aws, tmp_path / "g", monkeypatch, 5, every=3)  # checkpoints at seq 1 and 4
    result = verify(aws, "--signing-key", aws["signing"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK: 5 records in 1 chains" in result.stdout and "1 records after the last checkpoint" in result.stdout
    records = [body(aws, rid) for rid in ids]
    assert [r["seq"] for r in records] == [1, 2, 3, 4, 5] and records[0]["body_hmac"] != records[1]["body_hmac"]
    head = aws["s3"].head_object(Bucket=aws["bucket"], Key=key(ids[0]))
    assert head["SSEKMSKeyId"] == aws["keys"][BU] and head.get("ObjectLockMode") == "COMPLIANCE"
    items = aws["dynamodb"].scan(TableName=aws["table"])["Items"]
    chains = [i for i in items if i["pk"]["S"] == f"AUDIT#{DAY}"]
    assert len(chains) == 1 and int(chains[0]["last_seq"]["N"]) == 4
    last = json.loads(chains[0]["last"]["S"])
    assert last["alg"] == "ECDSA_SHA_256" and last["key"] == aws["signing"] and last["request_id"] == ids[3]
    # Memoryless: no prompt text in a record or a checkpoint.
    everything = json.dumps(records) + json.dumps(items)
    assert CANARY not in everything
    # A checkpoint signed by another key proves nothing: with the expected key named, it is refused.
    other = aws["kms"].create_key(KeyUsage="SIGN_VERIFY", KeySpec="ECC_NIST_P256")["KeyMetadata"]["Arn"]
    named(verify(aws, "--signing-key", other), "signature", ids[0])


def test_tampered_deleted_and_swapped_objects_are_named(aws: dict[str, Any], tmp_path: Any,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    ids = serve_day(aws, tmp_path / "g", monkeypatch, 6)
    original = body(aws, ids[1])
    put(aws, ids[1], {**original, "cost_usd": 0.0})
    assert ids[2] in named(verify(aws), "altered", ids[1])
    put(aws, ids[1], original)  # the same bytes again: clean
    assert verify(aws).returncode == 0
    aws["s3"].delete_object(Bucket=aws["bucket"], Key=key(ids[2]))  # a delete marker: the version stays locked
    assert "seq 3" in named(verify(aws), "missing", ids[2])


def test_swapped_objects_are_named(aws: dict[str, Any], tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = serve_day(aws, tmp_path / "g", monkeypatch, 4)
    second, third = body(aws, ids[1]), body(aws, ids[2])
    put(aws, ids[1], third)
    put(aws, ids[2], second)
    result = verify(aws)
    named(result, "misfiled", ids[1])
    named(result, "misfiled", ids[2])


def test_a_closed_chains_dropped_tail_and_a_missing_chain_are_caught(
        aws: dict[str, Any], tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    first = serve_day(aws, tmp_path / "a", monkeypatch, 5, every=100, close=True)  # heads: seq 1, closed at 5
    second = serve_day(aws, tmp_path / "b", monkeypatch, 3, every=100)  # another container's chain
    assert "OK: 8 records in 2 chains" in verify(aws).stdout
    for rid in first[3:]:
        aws["s3"].delete_object(Bucket=aws["bucket"], Key=key(rid))
    assert first[2] in named(verify(aws), "tail missing", first[4])
    for rid in second:
        aws["s3"].delete_object(Bucket=aws["bucket"], Key=key(rid))
    result = verify(aws)
    named(result, "tail missing", first[4])
    named(result, "chain missing", second[0])  # its head (the first checkpoint) names its first record


def test_a_trail_in_s3_with_local_keys_and_ledger_verifies_with_the_home(
        aws: dict[str, Any], tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # The S3 sink without the AWS anchors (no signing key, no secret, GARDEN_STORE=sqlite): checkpoints
    # HMAC'd under the home's key and registered in its SQLite file, which verify then reads.
    monkeypatch.delenv("GARDEN_AUDIT_SIGNING_KEY")
    monkeypatch.delenv("GARDEN_AUDIT_BODY_SECRET")
    aws["env"]["GARDEN_STORE"] = "sqlite"
    ids = serve_day(aws, tmp_path / "g", monkeypatch, 3, every=1)
    home = tmp_path / "g" / "garden-home"
    env = {**os.environ, "GARDEN_LEDGER_TABLE": f"no-such-table-{uuid.uuid4().hex[:8]}"}
    result = subprocess.run([sys.executable, "-m", "admin_cli", "audit", "verify", "--date", DAY, "--bucket",
                             aws["bucket"], "--region", "us-east-1", "--home", str(home)],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK: 3 records in 1 chains" in result.stdout and "chains from" in result.stderr
    aws["s3"].delete_object(Bucket=aws["bucket"], Key=key(ids[2]))
    assert "tail missing: record " + ids[2] in subprocess.run(
        [sys.executable, "-m", "admin_cli", "audit", "verify", "--date", DAY, "--bucket", aws["bucket"],
         "--region", "us-east-1", "--home", str(home)], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=120).stdout
