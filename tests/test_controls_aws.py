"""`x-garden-controls` in AWS mode: a Lambda proxy event after API Gateway's IAM authorizer, the
DynamoDB ledger (moto), Comprehend and Bedrock (loopback fakes): `identity=iam`."""
from __future__ import annotations

import json

from lambda_events import LambdaContext, proxy_event
from support import ACCOUNT
from test_aws_mode_e2e import CALLER, aws_gateway  # noqa: F401 - the fixture

CANARY = "CANARY-ctl-aws-41c0"


def call(method: str, body: object = None, caller: str = CALLER) -> dict:
    from app import app

    return app(proxy_event(method, "/v1/chat/completions", body, caller_arn=caller), LambdaContext())


def header(result: dict) -> str:
    value = {k.lower(): v for k, v in result["headers"].items()}["x-garden-controls"]
    assert CANARY not in value
    return value


def test_iam_identity_in_aws_mode(aws_gateway: dict) -> None:  # noqa: F811
    result = call("POST", {"model": "claude", "messages": [
        {"role": "user", "content": f"{CANARY} card 4111111111111111 and jane.doe@example.com"}]})
    assert result["statusCode"] == 200, result["body"]
    assert header(result) == ("identity=iam; quota=reserved; pii-in=redact:2; guardrail-in=pass; pii-out=none; "
                              "guardrail-out=pass")


def test_an_unregistered_principal_is_denied(aws_gateway: dict) -> None:  # noqa: F811
    stranger = f"arn:aws:sts::{ACCOUNT}:assumed-role/nobody/s"
    result = call("POST", {"model": "claude", "messages": [{"role": "user", "content": CANARY}]}, stranger)
    assert result["statusCode"] == 403 and json.loads(result["body"])["error"]["code"] == "unknown_principal"
    assert header(result).startswith("identity=denied; quota=not-run")


def test_a_method_chalice_refuses_under_the_stage_path_says_nothing_ran(aws_gateway: dict) -> None:  # noqa: F811
    result = call("DELETE")  # Chalice's own 405; the event's path is /api/v1/... (the stage)
    assert result["statusCode"] == 405
    assert set(part.split("=")[1] for part in header(result).split("; ")) == {"not-run"}
