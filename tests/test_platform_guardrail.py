"""GARDEN_BEDROCK_GUARDRAIL_ID / _VERSION (written by `make configure` from
infra/bedrock-guardrail.yaml's outputs): Bedrock judges an app that names no guardrail of its own
with the platform's, at its published version; an app's own guardrail still wins."""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Iterator

import pytest
from fakes.comprehend_server import FakeComprehend
from fakes.guardrail_server import FakeGuardrail, Rules
from support import TEST_CATALOG, running_garden

from chalicelib.catalog import parse_catalog
from chalicelib.errors import ConfigError
from chalicelib.settings import Settings

AWS_MODE = {"GARDEN_PII": "comprehend", "GARDEN_GUARDRAIL": "bedrock", "AWS_REGION": "us-east-1"}
PLATFORM = {"GARDEN_BEDROCK_GUARDRAIL_ID": "platform1", "GARDEN_BEDROCK_GUARDRAIL_VERSION": "4"}


@pytest.fixture
def guardrail(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGuardrail]:
    rules = Rules(denied_words=("forbidden-plan",))
    with FakeComprehend() as comprehend, FakeGuardrail({"platform1": rules, "own1": Rules()}) as fake:
        monkeypatch.setenv("AWS_ENDPOINT_URL_COMPREHEND", comprehend.endpoint_url)
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", fake.endpoint_url)
        yield fake


def _catalog(**guardrail: Any) -> Any:
    raw = copy.deepcopy(TEST_CATALOG)
    raw["apps"][0]["guardrail"].pop("bedrock_guardrail_id", None)
    raw["apps"][0]["guardrail"].update(guardrail)
    return parse_catalog(raw)


def _ask(g: Any) -> Any:
    return g.chat({"model": "local-echo", "messages": [{"role": "user", "content": "the forbidden-plan please"}]})


def test_an_app_without_a_guardrail_is_judged_by_the_platforms(tmp_path: Path, guardrail: FakeGuardrail) -> None:
    with running_garden(tmp_path, env={**AWS_MODE, **PLATFORM}, catalog=_catalog()) as g:
        response = _ask(g)
    assert response.status_code == 400 and json.loads(response.body)["error"]["code"] == "content_filter"
    assert {(gid, version) for gid, version, *_ in guardrail.requests} == {("platform1", "4")}


def test_without_the_setting_such_an_app_gets_no_bedrock_call(tmp_path: Path, guardrail: FakeGuardrail) -> None:
    with running_garden(tmp_path, env=AWS_MODE, catalog=_catalog()) as g:
        assert _ask(g).status_code == 200
    assert guardrail.requests == []


def test_an_apps_own_guardrail_wins(tmp_path: Path, guardrail: FakeGuardrail) -> None:
    catalog = _catalog(bedrock_guardrail_id="own1", bedrock_guardrail_version="2")
    with running_garden(tmp_path, env={**AWS_MODE, **PLATFORM}, catalog=catalog) as g:
        assert _ask(g).status_code == 200
    assert {(gid, version) for gid, version, *_ in guardrail.requests} == {("own1", "2")}


@pytest.mark.parametrize("env", [{"GARDEN_BEDROCK_GUARDRAIL_ID": "Not An Id"},
                                 {"GARDEN_BEDROCK_GUARDRAIL_ID": "gr1", "GARDEN_BEDROCK_GUARDRAIL_VERSION": "v1"}])
def test_a_malformed_platform_guardrail_is_refused_at_start(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        Settings.from_env(env)
