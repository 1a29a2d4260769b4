"""AWS mode: the app as Lambda runs it, with API Gateway's IAM identity in the event."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest
from lambda_events import LambdaContext, proxy_event
from support import ACCOUNT, make_home

from chalicelib import gateway
from chalicelib.settings import Settings

ROLE_SESSION = f"arn:aws:sts::{ACCOUNT}:assumed-role/test-app-role/bu-app-session"
BODY = {"model": "local-echo", "messages": [{"role": "user", "content": "hello from lambda"}]}


@pytest.fixture
def handler(tmp_path: Path) -> Iterator[object]:
    from app import app

    _, env = make_home(tmp_path)
    gateway.use(gateway.build_pipeline(Settings.from_env({**env, "GARDEN_IDENTITY": "iam"})))
    yield app
    gateway.use(None)


def test_assumed_role_caller_maps_to_its_app(handler) -> None:
    result = handler(proxy_event("POST", "/v1/chat/completions", BODY, caller_arn=ROLE_SESSION), LambdaContext())
    assert result["statusCode"] == 200, result["body"]
    body = json.loads(result["body"])
    assert body["choices"][0]["message"]["content"] == "hello from lambda"
    assert result["headers"]["x-request-id"] and body["id"].startswith("chatcmpl-")


@pytest.mark.parametrize("caller", [None, f"arn:aws:sts::{ACCOUNT}:assumed-role/stranger/s"])
def test_missing_or_unregistered_identity_is_403(handler, caller: str | None) -> None:
    result = handler(proxy_event("GET", "/v1/models", caller_arn=caller), LambdaContext())
    assert result["statusCode"] == 403
    assert json.loads(result["body"])["error"]["type"] == "permission_error"


def test_models_path_parameter(handler) -> None:
    event = proxy_event("GET", "/v1/models/local-echo", caller_arn=ROLE_SESSION,
                        resource="/v1/models/{model_id}", path_parameters={"model_id": "local-echo"})
    result = handler(event, LambdaContext())
    assert result["statusCode"] == 200 and json.loads(result["body"])["id"] == "local-echo"
