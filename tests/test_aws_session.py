"""The AWS adapters' clients come from one botocore session per process (chalicelib/aws/session.py):
a fresh process on the prod composition answers a chat through DynamoDB, S3 + KMS, Comprehend, STS
and Bedrock (moto and the loopback fakes) without importing boto3, and the adapters that ask for the
same client share it. A figure for what this saves is bench/prod_cold_start.py's, not a test's."""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import boto3
import pytest
from fakes.bedrock_server import FakeBedrock
from fakes.comprehend_server import FakeComprehend
from support import ACCOUNT, ROOT, TEST_CATALOG, make_home

from chalicelib.aws import session

CALLER = f"arn:aws:sts::{ACCOUNT}:assumed-role/test-app-role/bu-session"

# The child: the Lambda handler serves one chat, then says what it imported and how many botocore
# clients and sessions it made (session.py's own bookkeeping).
CHILD = f"""
import json, sys
sys.path[:0] = [{str(ROOT)!r}, {str(ROOT / "tests")!r}]
from lambda_events import LambdaContext, proxy_event
from app import app
body = {{"model": "claude", "messages": [{{"role": "user", "content": "hello jane.doe@example.com"}}]}}
result = app(proxy_event("POST", "/v1/chat/completions", body, caller_arn={CALLER!r}), LambdaContext())
from chalicelib.aws import session
print(json.dumps({{"status": result["statusCode"], "modules": sorted(m for m in sys.modules
                  if m.split(".")[0] in ("boto3", "s3transfer", "multiprocessing")),
                  "clients": sorted(key[0] for key in session._shared), "sessions": len(session._sessions)}}))
"""


def test_prod_composition_answers_without_boto3_on_one_session(tmp_path: Path, moto_url: str) -> None:
    suffix = uuid.uuid4().hex[:8]
    table, bucket = f"garden-ledger-{suffix}", f"garden-audit-{suffix}"
    boto3.client("dynamodb", endpoint_url=moto_url, region_name="us-east-1").create_table(
        TableName=table, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}])
    boto3.client("s3", endpoint_url=moto_url, region_name="us-east-1").create_bucket(
        Bucket=bucket, ObjectLockEnabledForBucket=True)
    kms = boto3.client("kms", endpoint_url=moto_url, region_name="us-east-1")
    keys = {bu: kms.create_key()["KeyMetadata"]["Arn"] for bu in ("retail-banking", "_unidentified")}
    raw = copy.deepcopy(TEST_CATALOG)
    raw["models"]["claude"] = {"max_output_tokens": 256, "price": {"input_per_1k": 0.001, "output_per_1k": 0.002},
                               "deployments": [{"provider": "bedrock", "model_id": "anthropic.claude-3-haiku"}]}
    raw["apps"][0]["allowed_models"].append("claude")
    _, env = make_home(tmp_path, raw)
    with FakeComprehend() as comprehend, FakeBedrock() as bedrock:
        env.update(GARDEN_IDENTITY="iam", GARDEN_STORE="dynamodb", GARDEN_LEDGER_TABLE=table, GARDEN_AUDIT="s3",
                   GARDEN_AUDIT_BUCKET=bucket, GARDEN_BU_KEYS=json.dumps(keys), GARDEN_PII="comprehend",
                   GARDEN_OPS_ROLE_ARN="arn:aws:iam::444455556666:role/garden-operations-bedrock",
                   AWS_REGION="us-east-1", GARDEN_BEDROCK_REGION="us-east-1",
                   AWS_ENDPOINT_URL_DYNAMODB=moto_url, AWS_ENDPOINT_URL_S3=moto_url, AWS_ENDPOINT_URL_STS=moto_url,
                   AWS_ENDPOINT_URL_COMPREHEND=comprehend.endpoint_url,
                   AWS_ENDPOINT_URL_BEDROCK_RUNTIME=bedrock.endpoint_url)
        child_env = {k: v for k, v in os.environ.items() if not k.startswith(("GARDEN_", "AWS_ENDPOINT_URL"))}
        done = subprocess.run([sys.executable, "-c", CHILD], env={**child_env, **env}, cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        assert bedrock.calls == {"anthropic.claude-3-haiku": 1} and comprehend.requests  # the AWS path ran
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["status"] == 200
    assert report["modules"] == []  # no boto3, hence no s3transfer nor multiprocessing
    assert report["sessions"] == 1
    # The ledger, the registry, the usage store and the audit chains share one DynamoDB client.
    assert sorted(report["clients"]) == ["comprehend", "dynamodb", "s3", "sts"]


def test_a_shared_client_follows_the_endpoint_and_credential_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    def make() -> object:
        return session.new_client("dynamodb", "us-east-1", connect_timeout=0.5, read_timeout=2, max_attempts=1)

    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:9")
    first = session.shared_client("dynamodb", ("bench-test", 1), make)
    assert session.shared_client("dynamodb", ("bench-test", 1), make) is first
    assert first.meta.endpoint_url == "http://127.0.0.1:9"
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:10")
    moved = session.shared_client("dynamodb", ("bench-test", 1), make)
    assert moved is not first and moved.meta.endpoint_url == "http://127.0.0.1:10"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "another-key")
    other = session.shared_client("dynamodb", ("bench-test", 1), make)
    assert other is not moved
    assert other._request_signer._credentials.access_key == "another-key"  # resolved anew, not cached
