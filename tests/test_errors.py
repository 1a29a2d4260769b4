"""Every bad input gets an OpenAI-shaped error with the right status, and nothing is left behind."""
from __future__ import annotations

import json
import time
from typing import Any

import pytest
from support import Garden, running_garden
from openai_schema import validate

from chalicelib import errors
from chalicelib.providers import ProviderCall
from chalicelib.quota import utc_day

GOOD = {"model": "local-echo", "messages": [{"role": "user", "content": "hi"}]}


def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.body
    body = json.loads(response.body)
    validate(body, "ErrorResponse")
    assert "Traceback" not in response.body.decode()
    return body["error"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": GOOD["messages"]}, "model"),
        ({"model": "local-echo"}, "messages"),
        ({"model": "local-echo", "messages": []}, "messages"),
        ({"model": "local-echo", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        ({"model": "local-echo", "messages": [{"role": "user"}]}, "messages[0].content"),
        ({"model": "local-echo", "messages": [{"role": "user", "content": 42}]}, "messages[0].content"),
        ({"model": "local-echo", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "http://x"}}]}]}, "messages[0].content[0].type"),
        ({"model": "local-echo", "messages": [{"role": "user", "content": [{"type": "text"}]}]},
         "messages[0].content[0].text"),
        ({**GOOD, "temperature": 3}, "temperature"),
        ({**GOOD, "top_p": -1}, "top_p"),
        ({**GOOD, "max_tokens": 0}, "max_tokens"),
        ({**GOOD, "max_completion_tokens": "many"}, "max_completion_tokens"),
        ({**GOOD, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({**GOOD, "stream": "yes"}, "stream"),
        ({**GOOD, "n": 2}, "n"),
        ({**GOOD, "tools": [{"type": "function", "function": {"description": "no name"}}]},
         "tools[0].function.name"),
        ({**GOOD, "tools": [{"type": "function", "function": {"name": "has space"}}]},
         "tools[0].function.name"),
        ({**GOOD, "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "always"},
         "tool_choice"),
        ({**GOOD, "tools": [{"type": "function", "function": {"name": "f"}}],
          "tool_choice": {"type": "function", "function": {"name": "g"}}}, "tool_choice"),
        ({"model": "local-echo", "messages": [{"role": "tool", "content": "42"}]}, "messages[0].tool_call_id"),
        ({"model": "local-echo", "messages": [{"role": "user", "content": None}]}, "messages[0].content"),
        ({"model": "local-echo", "messages": [{"role": "assistant", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f"}}]}]},
         "messages[0].tool_calls[0].function.arguments"),
        ({**GOOD, "metadata": {"k": 1}}, "metadata.k"),
    ],
)
def test_schema_violations_name_the_field(garden: Garden, body: dict, param: str) -> None:
    error = error_of(garden.chat(body), 400)
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith(param)


@pytest.mark.parametrize("raw", [b"", b"{not json", b"[1, 2]", b"\xff\xfe", b'"text"'])
def test_invalid_json_is_400(garden: Garden, raw: bytes) -> None:
    error = error_of(garden.chat(raw), 400)
    assert error["code"] == "invalid_json"


def test_body_over_cap_is_413(tmp_path: Any) -> None:
    with running_garden(tmp_path, env={"GARDEN_MAX_BODY_BYTES": "2048"}) as g:
        error = error_of(g.chat({**GOOD, "messages": [{"role": "user", "content": "z" * 4096}]}), 413)
        assert error["code"] == "request_too_large"


def test_wrong_method_and_media_type_are_openai_shaped(garden: Garden) -> None:
    error = error_of(garden.request("GET", "/v1/chat/completions"), 405)
    assert error["code"] == "method_not_allowed"
    error = error_of(garden.chat(b"hi", headers={"content-type": "text/plain"}), 415)
    assert error["code"] == "unsupported_media_type"


class RaisingProvider:
    """A provider that fails the way a broken upstream would (a fake at the port boundary)."""

    def __init__(self, error: BaseException) -> None:
        self.error = error
        self.calls = 0

    def complete(self, call: ProviderCall) -> Any:
        self.calls += 1
        raise self.error


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (errors.UpstreamError("model returned garbage"), 502, "upstream_error"),
        (errors.ServiceUnavailable("no capacity"), 503, "service_unavailable"),
        (errors.DeadlineExceeded("too slow"), 504, "timeout"),
        (RuntimeError("CANARY-fault-7f3a card 4111111111111111"), 500, "internal_error"),
    ],
)
def test_upstream_faults_release_the_reservation(tmp_path: Any, error: BaseException, status: int,
                                                 code: str) -> None:
    provider = RaisingProvider(error)
    with running_garden(tmp_path, providers={"local-echo": provider}) as g:
        response = g.chat(GOOD)
        body = error_of(response, status)
        assert body["code"] == code
        assert provider.calls == 1
        if status == 500:
            # Nothing but a request id: no exception text, no class name, no stack.
            assert response.headers["x-request-id"] in body["message"]
            assert "CANARY" not in response.body.decode() and "RuntimeError" not in response.body.decode()
        now = time.time()
        usage = g.ledger.usage("test-app", utc_day(now), now)
        assert usage.reserved == 0 and usage.requests == 0 and usage.tokens == 0
