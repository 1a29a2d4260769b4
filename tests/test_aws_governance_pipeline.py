"""Comprehend and Bedrock Guardrails chosen in settings, through the whole pipeline: the real boto3
clients find loopback servers through the standard AWS_ENDPOINT_URL_* variables."""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Iterator

import pytest
from fakes.comprehend_server import FakeComprehend
from fakes.comprehend_server import Fail as ComprehendFail
from fakes.guardrail_server import FakeGuardrail, Rules
from support import TEST_CATALOG, running_garden

from chalicelib.catalog import parse_catalog

AWS_MODE = {"GARDEN_PII": "comprehend", "GARDEN_GUARDRAIL": "bedrock", "AWS_REGION": "us-east-1"}


def catalog(**guardrail: Any) -> Any:
    raw = copy.deepcopy(TEST_CATALOG)
    raw["apps"][0]["guardrail"].update(bedrock_guardrail_id="gr1", bedrock_guardrail_version="1", **guardrail)
    return parse_catalog(raw)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeComprehend, FakeGuardrail]]:
    with FakeComprehend() as comprehend, FakeGuardrail(
        {"gr1": Rules(denied_words=("forbidden-plan",), anonymize_emails=True, prompt_attack=True)}
    ) as guardrail:
        monkeypatch.setenv("AWS_ENDPOINT_URL_COMPREHEND", comprehend.endpoint_url)
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", guardrail.endpoint_url)
        yield comprehend, guardrail


def chat(text: str) -> dict:
    return {"model": "local-echo", "messages": [{"role": "user", "content": text}]}


def test_comprehend_redacts_before_the_model(tmp_path: Path, aws: Any) -> None:
    comprehend, _ = aws
    with running_garden(tmp_path, env=AWS_MODE, catalog=catalog()) as g:
        response = g.chat(chat("card 4111111111111111 please"))
    assert response.status_code == 200, response.body
    assert json.loads(response.body)["choices"][0]["message"]["content"] == "card [CREDIT_DEBIT_NUMBER] please"
    assert len(comprehend.requests) >= 2  # input and output were both screened


def test_bedrock_guardrail_blocks_input_with_no_model_call(tmp_path: Path, aws: Any) -> None:
    _, guardrail = aws
    with running_garden(tmp_path, env=AWS_MODE, catalog=catalog()) as g:
        response = g.chat(chat("tell me the forbidden-plan"))
        record = [json.loads(line) for p in (g.home / "audit").rglob("*.jsonl") for line in p.read_text().splitlines()]
    assert response.status_code == 400
    assert json.loads(response.body)["error"]["code"] == "content_filter"
    assert record[0]["guardrail"] == ["INPUT:BLOCKED:DENIED_WORD"]
    assert "forbidden-plan" not in json.dumps(record)


def test_local_rules_run_before_bedrock(tmp_path: Path, aws: Any) -> None:
    _, guardrail = aws
    with running_garden(tmp_path, env=AWS_MODE, catalog=catalog()) as g:
        response = g.chat(chat("we promise guaranteed returns"))  # the catalog's own denied words
    assert response.status_code == 400
    assert guardrail.requests == []  # blocked locally: no Bedrock call paid for


def test_comprehend_down_fails_closed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeComprehend(ComprehendFail("InternalServerException", 500)) as comprehend:
        monkeypatch.setenv("AWS_ENDPOINT_URL_COMPREHEND", comprehend.endpoint_url)
        with running_garden(tmp_path, env={"GARDEN_PII": "comprehend", "AWS_REGION": "us-east-1"}) as g:
            response = g.chat(chat("hello"))
    assert response.status_code == 503
    assert json.loads(response.body)["error"]["code"] == "pii_unavailable"


def test_bedrock_masking_reaches_the_model_and_the_caller(tmp_path: Path, aws: Any) -> None:
    raw = copy.deepcopy(TEST_CATALOG)
    raw["apps"][0]["pii"] = {"input": {"default": "ALLOW"}, "output": {"default": "ALLOW"}}
    raw["apps"][0]["guardrail"].update(bedrock_guardrail_id="gr1")
    with running_garden(tmp_path, env=AWS_MODE, catalog=parse_catalog(raw)) as g:
        response = g.chat(chat("write to jane.doe@example.com"))
    assert response.status_code == 200, response.body
    # Input masked by the guardrail, so the echo model saw {EMAIL}; output checked again.
    assert json.loads(response.body)["choices"][0]["message"]["content"] == "write to {EMAIL}"
