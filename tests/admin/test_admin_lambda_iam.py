"""AWS mode: the admin API as Lambda runs it, with API Gateway's IAM identity in the event. Admins
and readers come from GARDEN_ADMIN_PRINCIPALS / GARDEN_ADMIN_READERS; an assumed-role session of a
listed role is that role; nobody is an admin by default."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import pytest
from lambda_events import LambdaContext, proxy_event

from chalicelib import gateway
from chalicelib.settings import LOCAL_ADMIN_PRINCIPAL, Settings
from support import ACCOUNT, make_home

PLATFORM = f"arn:aws:sts::{ACCOUNT}:assumed-role/garden-platform/alice"
AUDITOR = "arn:aws:sts::444455556666:assumed-role/garden-auditor/bob"
APP_ROLE = f"arn:aws:sts::{ACCOUNT}:assumed-role/test-app-role/bu-app-session"


@pytest.fixture
def handler(tmp_path: Path) -> Iterator[Any]:
    from app import app

    _, env = make_home(tmp_path)
    settings = Settings.from_env({**env, "GARDEN_IDENTITY": "iam",
                                  "GARDEN_ADMIN_PRINCIPALS": f"arn:aws:iam::{ACCOUNT}:role/garden-platform",
                                  "GARDEN_ADMIN_READERS": "arn:aws:iam::444455556666:role/garden-auditor"})
    gateway.use_admin(gateway.build_admin(settings))
    yield lambda event: app(event, LambdaContext())
    gateway.use_admin(None)


def put_app(caller: str | None, quotas: dict[str, int]) -> dict[str, Any]:
    app = {"business_unit": "retail-banking", "principal_arns": [f"arn:aws:iam::{ACCOUNT}:role/test-app-role"],
           "allowed_models": ["local-echo"], "quotas": quotas}
    return proxy_event("PUT", "/admin/v1/apps/test-app", app, caller_arn=caller,
                       resource="/admin/v1/apps/{app_id}", path_parameters={"app_id": "test-app"})


def test_an_admin_role_session_steers_and_a_reader_only_reads(handler: Any) -> None:
    listed = handler(proxy_event("GET", "/admin/v1/apps", caller_arn=PLATFORM))
    assert listed["statusCode"] == 200, listed["body"]
    assert "test-app" in [a["id"] for a in json.loads(listed["body"])["data"]]
    put = handler(put_app(PLATFORM, {"tokens_per_day": 777}))
    assert put["statusCode"] == 200 and json.loads(put["body"])["quotas"] == {"tokens_per_day": 777}
    change = json.loads(handler(proxy_event("GET", "/admin/v1/changes", caller_arn=AUDITOR))["body"])["data"][0]
    assert change["principal"] == f"arn:aws:iam::{ACCOUNT}:role/garden-platform"  # the role, not the session
    refused = handler(put_app(AUDITOR, {"tokens_per_day": 1}))
    assert refused["statusCode"] == 403 and json.loads(refused["body"])["error"]["code"] == "admin_read_only"
    assert refused["headers"]["x-request-id"]


@pytest.mark.parametrize("caller", [None, APP_ROLE, "arn:aws:sts::000000000000:assumed-role/garden-platform-admin/s"])
def test_anyone_else_gets_403(handler: Any, caller: str | None) -> None:
    for event in (proxy_event("GET", "/admin/v1/apps", caller_arn=caller), put_app(caller, {"tokens_per_day": 1})):
        result = handler(event)
        assert result["statusCode"] == 403
        assert json.loads(result["body"])["error"]["type"] == "permission_error"


def test_nobody_is_an_admin_by_default_in_aws_mode() -> None:
    assert Settings.from_env({"GARDEN_IDENTITY": "iam", "GARDEN_STAGE": "prod"}).admin_principals == frozenset()
    assert LOCAL_ADMIN_PRINCIPAL not in Settings.from_env({"GARDEN_IDENTITY": "iam"}).admin_principals
