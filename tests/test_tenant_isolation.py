"""One app must not be able to take a model away from the others (issue 8, class 1), end to end:
the pipeline, the real boto3 client, and a loopback Bedrock that answers by content, so that one
app's requests fail on the very deployments another app's requests succeed on."""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import unquote

import pytest
from fakes.bedrock_server import Behaviour, Fail, FakeBedrock, Reply
from support import BLOCK_KEY_ID, TEST_CATALOG, running_garden

from chalicelib.catalog import parse_catalog

PRIMARY, SECONDARY = "anthropic.claude-3-haiku-20240307-v1:0", "amazon.nova-lite-v1:0"
ATTACKER = {}  # test-app, the default signing key
VICTIM = {"key_id": BLOCK_KEY_ID}  # strict-app
# Breakers as sensitive as they get: two counted failures open a circuit, for five minutes.
SENSITIVE = {"GARDEN_BEDROCK_REGION": "us-east-1", "GARDEN_BREAKER_THRESHOLD": "2",
             "GARDEN_BREAKER_COOLDOWN_S": "300"}


def catalog() -> Any:
    raw = copy.deepcopy(TEST_CATALOG)
    raw["models"]["claude"] = {
        "max_output_tokens": 512,
        "price": {"input_per_1k": 0.00025, "output_per_1k": 0.00125},
        "deployments": [{"provider": "bedrock", "model_id": PRIMARY, "name": "haiku"},
                        {"provider": "bedrock", "model_id": SECONDARY, "name": "nova"}],
    }
    for app in raw["apps"]:
        app["allowed_models"].append("claude")
    return parse_catalog(raw)


def by_content(body: dict[str, Any]) -> Behaviour:
    """Bedrock's answer to what a request says, whichever app sent it."""
    text = json.dumps(body)
    for marker, code in (("MAKES-VALIDATION-FAIL", "ValidationException"),
                         ("MAKES-THE-MODEL-FAIL", "ModelErrorException"),
                         ("MAKES-IT-THROTTLE", "ThrottlingException")):
        if marker in text:
            return Fail(code)
    return Reply()


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBedrock]:
    with FakeBedrock({PRIMARY: by_content, SECONDARY: by_content}) as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", server.endpoint_url)
        yield server


def chat(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "claude", "messages": [{"role": "user", "content": text}], **extra}


# Well-formed by the OpenAI schema, each one failing on the provider side for its own content:
# Bedrock's ValidationException, a model error on one input, and values botocore used to refuse on
# the client side before sending anything (an integer sent as 1.0, an empty stop sequence, an empty
# system text, an empty tool-call id). None says anything about the deployment.
MALFORMED = [
    chat("MAKES-VALIDATION-FAIL"),
    chat("MAKES-THE-MODEL-FAIL"),
    chat("hello", max_tokens=1.0),
    chat("hello", max_tokens=2e1),
    chat("hello", stop=["END", ""]),
    chat("hello", temperature=1.5),
    {"model": "claude", "messages": [{"role": "system", "content": ""}, {"role": "user", "content": "hi"}]},
    {"model": "claude", "tools": [{"type": "function", "function": {"name": "lookup"}}], "messages": [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call with spaces", "content": "r"},
        {"role": "user", "content": "go on"}]},
]


def served_by(response: Any) -> str:
    assert response.status_code == 200, response.body
    return response.headers["x-garden-deployment"]


def test_a_burst_of_malformed_requests_leaves_the_model_to_everyone(tmp_path: Path, fake: FakeBedrock) -> None:
    with running_garden(tmp_path, env=SENSITIVE, catalog=catalog()) as g:
        for body in MALFORMED:
            for _ in range(4):  # back to back: twice the breaker threshold, nothing in between
                response = g.chat(body, **ATTACKER)
                status = response.status_code
                # A 400 for the request's own fault, a 502 for the model failing on this input, a
                # 200 where the value could be carried faithfully: never the deployment's 503.
                assert status in (200, 400, 502), (body, status, response.body)
                assert "SECRET-PROMPT-TEXT" not in response.body.decode()
            assert served_by(g.chat(chat("hello from the other app"), **VICTIM)) == "haiku"
        after = [served_by(g.chat(chat("still there?"), **VICTIM)) for _ in range(3)]
        mine = [served_by(g.chat(chat("and for me?"), **ATTACKER)) for _ in range(2)]
    assert after == ["haiku"] * 3 and mine == ["haiku"] * 2  # both circuits closed, for both apps
    assert SECONDARY not in {unquote(path.split("/")[2]) for path, _, _ in fake.requests}  # no fallback either


def test_an_app_that_floods_a_model_into_throttling_is_the_one_that_waits(tmp_path: Path,
                                                                          fake: FakeBedrock) -> None:
    with running_garden(tmp_path, env=SENSITIVE, catalog=catalog()) as g:
        flood = []
        for _ in range(6):
            flood.append(g.chat(chat("MAKES-IT-THROTTLE"), **ATTACKER))
            assert served_by(g.chat(chat("business as usual"), **VICTIM)) == "haiku"
        statuses = [r.status_code for r in flood]
        # Throttled on both deployments, the flooder's own circuits open after two requests: it then
        # gets 429s with retry-after and no call at all; the victim never leaves the primary.
        assert statuses == [429] * 6
        assert [r.headers["x-garden-attempts"] for r in flood] == ["2", "2", "0", "0", "0", "0"]
        assert json.loads(flood[-1].body)["error"]["code"] == "app_throttled"
        assert 0 < int(flood[-1].headers["retry-after"]) <= 300
        # The cool-down is the flooder's, for all its requests to this model, until a probe succeeds.
        assert g.chat(chat("hello"), **ATTACKER).status_code == 429
    throttled = [p for p, body, _ in fake.requests if "MAKES-IT-THROTTLE" in json.dumps(body)]
    assert 4 <= len(throttled) <= 8  # two requests x two deployments (x botocore's one retry), then none
