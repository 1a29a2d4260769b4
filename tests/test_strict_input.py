"""Hostile bodies get a 400 in OpenAI's shape, never a 500: odd numbers, deep nesting, lone
surrogates, other encodings. Integer fields leave the parser as ints, whatever JSON spelling."""
from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai_schema import validate
from support import Garden

from chalicelib.errors import InvalidRequest
from chalicelib.openai_api.chat_request import parse_chat_request

USER = [{"role": "user", "content": "hello"}]


def body(**fields: Any) -> bytes:
    return json.dumps({"model": "local-echo", "messages": USER, **fields}).encode()


@pytest.mark.parametrize("spelling, value", [("1.0", 1), ("1e2", 100), ("2E1", 20), ("100.000", 100)])
@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_integral_floats_become_ints(field: str, spelling: str, value: int) -> None:
    raw = b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "%s": %s, "n": 1.0}' % (
        field.encode(), spelling.encode())
    chat = parse_chat_request(raw)
    assert chat.max_tokens == value and type(chat.max_tokens) is int


@given(st.floats(min_value=1, max_value=1e6).filter(lambda f: not f.is_integer()))
@settings(max_examples=50, deadline=None)
def test_non_integral_numbers_are_400_naming_the_field(value: float) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_chat_request(body(max_tokens=value))
    assert caught.value.param == "max_tokens"


NAUGHTY = {
    "NaN": b'{"model": "local-echo", "messages": [{"role": "user", "content": "x"}], "temperature": NaN}',
    "Infinity": b'{"model": "local-echo", "messages": [{"role": "user", "content": "x"}], "top_p": Infinity}',
    "-Infinity in an ignored field": b'{"model": "local-echo", "messages": [{"role": "user", "content": "x"}], '
                                     b'"future": [-Infinity]}',
    "overflowing float": b'{"model": "local-echo", "messages": [{"role": "user", "content": "x"}], '
                         b'"temperature": 1e400}',
    "huge integer": b'{"model": "local-echo", "messages": [{"role": "user", "content": "x"}], "max_tokens": '
                    + b"9" * 5000 + b"}",
    "nested 100,000 deep": b'{"model": "local-echo", "messages": [{"role": "user", "content": "x"}], "x": '
                           + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "nested 200 deep in a tool schema": json.dumps({
        "model": "local-echo", "messages": USER,
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
    }).encode().replace(b'{"type": "object"}', b'{"a": ' * 200 + b"1" + b"}" * 200),
    "lone surrogate in content": b'{"model": "local-echo", "messages": [{"role": "user", "content": "a\\ud800b"}]}',
    "lone low surrogate in a key": b'{"model": "local-echo", "messages": [{"role": "user", "content": "x"}], '
                                   b'"\\udc00": 1}',
    "lone surrogate in metadata": b'{"model": "local-echo", "messages": [{"role": "user", "content": "x"}], '
                                  b'"metadata": {"k": "\\uDBFF"}}',
    "UTF-16 body": json.dumps({"model": "local-echo", "messages": USER}).encode("utf-16"),
    "invalid UTF-8": b'{"model": "local-echo", "messages": [{"role": "user", "content": "\xed\xa0\x80"}]}',
    "deep tool-call arguments": json.dumps({"model": "local-echo", "messages": [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "[" * 50_000 + "]" * 50_000}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "ok"}, *USER]}).encode(),
}


@pytest.mark.parametrize("name", list(NAUGHTY))
def test_hostile_bodies_are_400_in_openai_shape(garden: Garden, name: str) -> None:
    response = garden.chat(NAUGHTY[name])
    assert response.status_code == 400, (name, response.body[:300])
    error = json.loads(response.body)
    validate(error, "ErrorResponse")
    assert error["error"]["type"] == "invalid_request_error"
    assert response.headers["x-request-id"]


def test_a_valid_surrogate_pair_is_text(garden: Garden) -> None:
    response = garden.chat(b'{"model": "local-echo", "messages": [{"role": "user", "content": "smile \\ud83d\\ude00"}]}')
    assert response.status_code == 200, response.body
    assert json.loads(response.body)["choices"][0]["message"]["content"] == "smile \U0001F600"
