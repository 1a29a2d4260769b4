"""Every Bedrock Converse call carries who it is for as `requestMetadata` (app, business unit, the
gateway's request id), so a business unit's chargeback can be matched to Bedrock's own records:
exactly what reaches the wire (the Bedrock fake, real boto3), what botocore's validator accepts
(Stubber), and that odd characters are never sent."""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Iterator

import boto3
import pytest
from botocore.stub import Stubber
from fakes.bedrock_server import FakeBedrock
from fakes.provider_calls import make_app, make_call
from support import TEST_CATALOG, running_garden

from chalicelib.catalog import parse_catalog
from chalicelib.chat import Message
from chalicelib.providers.bedrock.translate import request_metadata, to_converse

PRIMARY = "anthropic.claude-3-haiku-20240307-v1:0"


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBedrock]:
    with FakeBedrock() as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", server.endpoint_url)
        yield server


def test_the_wire_carries_app_business_unit_and_request_id(tmp_path: Path, fake: FakeBedrock) -> None:
    raw = copy.deepcopy(TEST_CATALOG)
    raw["models"]["claude"] = {"max_output_tokens": 64, "price": {"input_per_1k": 0.00025, "output_per_1k": 0.00125},
                               "deployments": [{"provider": "bedrock", "model_id": PRIMARY, "name": "haiku"}]}
    raw["apps"][0]["allowed_models"].append("claude")
    with running_garden(tmp_path, env={"GARDEN_BEDROCK_REGION": "us-east-1"}, catalog=parse_catalog(raw)) as g:
        plain = g.chat({"model": "claude", "messages": [{"role": "user", "content": "hello"}]})
        streamed = g.chat({"model": "claude", "stream": True, "messages": [{"role": "user", "content": "hi"}]})
    assert (plain.status_code, streamed.status_code) == (200, 200)
    sent = [body for _, body, _ in fake.requests]
    assert [s["requestMetadata"] for s in sent] == [
        {"garden:app": "test-app", "garden:business_unit": "retail-banking",
         "garden:request_id": response.headers["x-request-id"]} for response in (plain, streamed)]
    # The same id names the audit record: the join key between Bedrock's records and ours.
    audited = [json.loads(line) for f in (g.home / "audit").rglob("*.jsonl") for line in f.read_text().splitlines()]
    assert sorted(a["request_id"] for a in audited) == sorted(s["requestMetadata"]["garden:request_id"] for s in sent)


def test_botocore_accepts_it_as_sent() -> None:
    client = boto3.client("bedrock-runtime", region_name="us-east-1")
    call = make_call(Message("user", "hello"), app=make_app("teller-app", "retail-banking"))
    call = type(call)(call.app, call.deployment, call.request, call.max_tokens, call.deadline,
                      "5f0c1a2e-3b4d-4e5f-8a9b-0c1d2e3f4a5b")
    kwargs = to_converse(call)
    with Stubber(client) as stub:
        stub.add_response("converse", {
            "output": {"message": {"role": "assistant", "content": [{"text": "hi"}]}}, "stopReason": "end_turn",
            "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2}, "metrics": {"latencyMs": 1}},
            expected_params=kwargs)
        client.converse(**kwargs)  # the Stubber validates the params against the service model
    assert kwargs["requestMetadata"] == {"garden:app": "teller-app", "garden:business_unit": "retail-banking",
                                         "garden:request_id": "5f0c1a2e-3b4d-4e5f-8a9b-0c1d2e3f4a5b"}


def test_characters_outside_the_pattern_are_never_sent() -> None:
    call = make_call(app=make_app("a", "retail"))
    call = type(call)(call.app, call.deployment, call.request, call.max_tokens, call.deadline,
                      "id with spaces;and\u00e9" + "x" * 300)
    metadata = request_metadata(call)
    assert metadata["garden:request_id"].startswith("id_with_spaces_and_x")
    assert len(metadata["garden:request_id"]) == 256
    assert request_metadata(make_call(app=make_app("a", "retail"))) == {"garden:app": "a",
                                                                        "garden:business_unit": "retail"}
