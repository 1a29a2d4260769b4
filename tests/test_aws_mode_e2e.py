"""The prod composition, end to end: the Lambda handler with an API Gateway IAM event, every port on
its AWS adapter (DynamoDB ledger and S3 + KMS audit on moto's server, Comprehend, Bedrock
Guardrails and Bedrock runtime on wire-level fakes), reached through the standard endpoint
variables. Then the scheduled sweep, through Chalice's test client."""
from __future__ import annotations

import copy
import json
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import boto3
import pytest
from fakes.bedrock_server import FakeBedrock
from fakes.comprehend_server import FakeComprehend
from fakes.guardrail_server import FakeGuardrail, Rules
from lambda_events import LambdaContext, proxy_event
from support import ACCOUNT, ROOT, TEST_CATALOG, make_home, running_garden

from chalicelib import gateway
from chalicelib.catalog import parse_catalog
from chalicelib.quota import utc_day
from chalicelib.store import Hold, Limit, day_keys
from chalicelib.settings import Settings

CANARY = "CANARY-aws-mode-5d1e"
CALLER = f"arn:aws:sts::{ACCOUNT}:assumed-role/test-app-role/bu-session"


@pytest.fixture
def aws_gateway(tmp_path: Path, moto_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    suffix = uuid.uuid4().hex[:8]  # moto servers share state within a process
    table, bucket = f"garden-ledger-{suffix}", f"garden-audit-{suffix}"
    dynamodb = boto3.client("dynamodb", endpoint_url=moto_url, region_name="us-east-1")
    dynamodb.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                          AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                                {"AttributeName": "sk", "AttributeType": "S"}],
                          KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                     {"AttributeName": "sk", "KeyType": "RANGE"}])
    s3 = boto3.client("s3", endpoint_url=moto_url, region_name="us-east-1")
    s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    kms = boto3.client("kms", endpoint_url=moto_url, region_name="us-east-1")
    keys = {bu: kms.create_key()["KeyMetadata"]["Arn"] for bu in ("retail-banking", "_unidentified")}

    raw = copy.deepcopy(TEST_CATALOG)
    raw["models"]["claude"] = {"max_output_tokens": 256, "price": {"input_per_1k": 0.001, "output_per_1k": 0.002},
                               "deployments": [{"provider": "bedrock", "model_id": "anthropic.claude-3-haiku"}]}
    raw["apps"][0]["allowed_models"].append("claude")
    raw["apps"][0]["guardrail"]["bedrock_guardrail_id"] = "gr1"
    _, env = make_home(tmp_path, raw)
    env.update(GARDEN_IDENTITY="iam", GARDEN_STORE="dynamodb", GARDEN_LEDGER_TABLE=table, GARDEN_AUDIT="s3",
               GARDEN_AUDIT_BUCKET=bucket, GARDEN_BU_KEYS=json.dumps(keys), GARDEN_PII="comprehend",
               GARDEN_GUARDRAIL="bedrock", AWS_REGION="us-east-1", GARDEN_BEDROCK_REGION="us-east-1")
    with FakeComprehend() as comprehend, FakeBedrock() as bedrock, \
            FakeGuardrail({"gr1": Rules(denied_words=("forbidden-plan",))}) as guardrail:
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", moto_url)
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_url)
        monkeypatch.setenv("AWS_ENDPOINT_URL_COMPREHEND", comprehend.endpoint_url)
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", bedrock.endpoint_url)
        # This first composition calls Bedrock runtime for Converse only: the app's guardrail id is
        # left out here, and the guardrail test below points the same variable at its own fake.
        no_guardrail = copy.deepcopy(raw)
        del no_guardrail["apps"][0]["guardrail"]["bedrock_guardrail_id"]
        gateway.use(gateway.build_pipeline(Settings.from_env(env), catalog=parse_catalog(no_guardrail)))
        try:
            yield {"s3": s3, "bucket": bucket, "keys": keys, "bedrock": bedrock, "guardrail": guardrail,
                   "dynamodb": dynamodb, "table": table, "env": env, "monkeypatch": monkeypatch}
        finally:
            gateway.use(None)


def call(body: dict) -> dict:
    from app import app

    return app(proxy_event("POST", "/v1/chat/completions", body, caller_arn=CALLER), LambdaContext())


def audit_objects(ctx: dict) -> list[dict]:
    listed = ctx["s3"].list_objects_v2(Bucket=ctx["bucket"]).get("Contents", [])
    return [ctx["s3"].get_object(Bucket=ctx["bucket"], Key=o["Key"]) | {"Key": o["Key"]} for o in listed]


def test_chat_in_aws_mode_is_governed_settled_and_audited(aws_gateway: dict) -> None:
    result = call({"model": "claude", "messages": [
        {"role": "user", "content": f"{CANARY} card 4111111111111111 and jane.doe@example.com"}]})
    assert result["statusCode"] == 200, result["body"]
    reply = json.loads(result["body"])["choices"][0]["message"]["content"]
    assert reply == f"{CANARY} card [CREDIT_DEBIT_NUMBER] and [EMAIL]"
    assert "4111" not in json.dumps(aws_gateway["bedrock"].requests[0][1])  # Bedrock saw it redacted

    objects = audit_objects(aws_gateway)
    assert len(objects) == 1
    obj = objects[0]
    assert obj["Key"].startswith("audit/retail-banking/") and obj["Key"].endswith(".json")
    assert obj["SSEKMSKeyId"] == aws_gateway["keys"]["retail-banking"]
    body = obj["Body"].read()
    record = json.loads(body)
    assert record["app_id"] == "test-app" and record["cost_usd"] > 0 and record["status"] == 200

    items = aws_gateway["dynamodb"].scan(TableName=aws_gateway["table"])["Items"]
    # The ledger's counters are leased in blocks (chalicelib/store/dynamodb.py): the request is
    # counted in the committed figure of the app's day, whether its container has trimmed or not.
    requests = [i for i in items if i["pk"]["S"].startswith("LIMIT#app/test-app/requests/day/")]
    assert int(requests[0]["committed"]["N"]) >= 1
    assert not [i for i in items if i["sk"]["S"].startswith("RES")]  # reservations live in memory
    # Memoryless, in AWS mode too: the ledger and the audit trail hold no prompt text.
    assert CANARY.encode() not in body and CANARY not in json.dumps(items)


def test_guardrail_block_in_aws_mode_leaves_no_hold(aws_gateway: dict) -> None:
    aws_gateway["monkeypatch"].setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", aws_gateway["guardrail"].endpoint_url)
    gateway.use(gateway.build_pipeline(Settings.from_env(aws_gateway["env"])))
    result = call({"model": "local-echo", "messages": [{"role": "user", "content": "the forbidden-plan"}]})
    assert result["statusCode"] == 400
    assert json.loads(result["body"])["error"]["code"] == "content_filter"
    items = aws_gateway["dynamodb"].scan(TableName=aws_gateway["table"])["Items"]
    assert not [i for i in items if i["sk"]["S"].startswith("RES")]
    assert audit_objects(aws_gateway)[0]["Key"].startswith("audit/retail-banking/")


def test_scheduled_sweep_frees_dead_holds(tmp_path: Path) -> None:
    from chalice.test import Client

    from app import app

    with running_garden(tmp_path) as g:
        now = time.time()
        tokens = Limit(day_keys("test-app", utc_day(now))[0], 10_000, now + 86400)
        g.ledger.reserve(reservation_id="dead", holds=[Hold(tokens, 500)], now=now - 3600, expires_at=now - 60)
        with Client(app, stage_name="local", project_dir=str(ROOT)) as client:
            event = client.events.generate_cw_event(source="aws.events", detail_type="Scheduled Event",
                                                    detail={}, resources=[])
            client.lambda_.invoke("sweep_reservations", event)
        assert g.ledger.usage("test-app", utc_day(now), now - 3600).reserved == 0  # freed by the schedule
