"""The prod stage as `make configure` writes it never serves the embedded demo catalog: without the
platform's catalog file every /v1 request is refused (catalog_not_configured), and with it nothing
is served until the platform's catalog has been imported into the registry, here the DynamoDB
registry of the prod stage (moto), which prod never seeds from a file (registry_not_seeded)."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import boto3
import pytest
from support import TEST_CATALOG, running_garden

from chalicelib.registry.dynamodb import DynamoDbRegistry
from chalicelib.settings import DEFAULT_CATALOG

ROOT = Path(__file__).resolve().parents[1]
ADMIN = "arn:aws:iam::210987654321:role/garden-platform-admin"
ASK = {"model": "local-echo", "messages": [{"role": "user", "content": "hello"}]}
# The prod stage's own variables, with the ports a test cannot reach (IAM identity behind API Gateway,
# S3 audit, Comprehend, Bedrock) on their local adapters: the catalog and registry are prod's.
LOCAL_PORTS = {"GARDEN_IDENTITY": "local", "GARDEN_AUDIT": "file", "GARDEN_PII": "local", "GARDEN_GUARDRAIL": "local",
               "GARDEN_ADMIN_PRINCIPALS": ADMIN}


def _prod_env(tmp_path: Path, moto_url: str, monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, str], str]:
    client = boto3.client("dynamodb", endpoint_url=moto_url, region_name="us-east-1")
    table = f"garden-ledger-prod-{tmp_path.name[-12:].lower()}".replace("_", "-")
    client.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                              {"AttributeName": "sk", "AttributeType": "S"}],
                        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                   {"AttributeName": "sk", "KeyType": "RANGE"}])
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", moto_url)
    prod = json.loads((ROOT / ".chalice" / "config.json").read_text())["stages"]["prod"]["environment_variables"]
    env = {**prod, **LOCAL_PORTS, "GARDEN_LEDGER_TABLE": table, "GARDEN_REGISTRY_REFRESH_S": "1"}
    env.pop("GARDEN_HOME")  # running_garden's own state folder (its local credentials)
    assert env["GARDEN_STAGE"] == "prod" and env["GARDEN_STORE"] == "dynamodb"
    return env, table


def test_the_shipped_prod_stage_refuses_every_request_without_the_platforms_catalog(
        tmp_path: Path, moto_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    env, _ = _prod_env(tmp_path, moto_url, monkeypatch)
    assert "GARDEN_CATALOG" not in env  # the example ships none: make package refuses a real one without
    env["GARDEN_CATALOG"] = str(DEFAULT_CATALOG)  # what the gateway reads when it is unset
    with running_garden(tmp_path, env=env) as g:
        response = g.chat(ASK)
    assert response.status_code == 503
    assert json.loads(response.body)["error"]["code"] == "catalog_not_configured"


def test_prod_on_dynamodb_serves_only_once_the_catalog_was_imported(
        tmp_path: Path, moto_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    env, table = _prod_env(tmp_path, moto_url, monkeypatch)
    platform = tmp_path / "catalog.json"
    platform.write_text(json.dumps(TEST_CATALOG))
    env["GARDEN_CATALOG"] = str(platform)
    registry = DynamoDbRegistry(lambda: boto3.client("dynamodb", endpoint_url=moto_url, region_name="us-east-1"),
                                table)
    with running_garden(tmp_path, env=env) as g:
        refused = g.chat(ASK)
        assert refused.status_code == 503
        assert json.loads(refused.body)["error"]["code"] == "registry_not_seeded"
        assert registry.version() == 0  # prod never seeded the table from its file
        registry.import_catalog(copy.deepcopy(TEST_CATALOG["apps"]), {}, ADMIN)  # garden-admin catalog import
        assert g.chat(ASK).status_code == 200  # an empty registry is never cached
    assert [c.action for c in registry.changes()] == ["catalog.import"]
