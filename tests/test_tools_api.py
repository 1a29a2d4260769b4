"""Tools through the API: requests carry tools and tool results, answers carry tool calls, and PII
in tool arguments and results is governed like any other text."""
from __future__ import annotations

import json
from pathlib import Path

from openai_schema import validate
from support import running_garden

from chalicelib.chat import Completion, ToolCall, Usage
from chalicelib.providers import ProviderCall

TOOLS = [{"type": "function", "function": {
    "name": "lookup_account", "description": "Find an account",
    "parameters": {"type": "object", "properties": {"email": {"type": "string"}}}}}]


class ToolCallingProvider:
    """Answers with a tool call whose arguments carry an email, and keeps what it was sent."""

    def __init__(self) -> None:
        self.received: list[ProviderCall] = []

    def complete(self, call: ProviderCall) -> Completion:
        self.received.append(call)
        return Completion("", "tool_calls", Usage(20, 5), (
            ToolCall("call_1", "lookup_account", json.dumps({"email": "jane.doe@example.com"})),
        ))


def conversation() -> list[dict]:
    return [
        {"role": "user", "content": "Find the account of jane.doe@example.com"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_0", "type": "function", "function": {
            "name": "lookup_account", "arguments": json.dumps({"email": "jane.doe@example.com"})}}]},
        {"role": "tool", "tool_call_id": "call_0", "content": "Card on file: 4111 1111 1111 1111"},
    ]


def test_tool_calls_round_trip_with_pii_governed(tmp_path: Path) -> None:
    provider = ToolCallingProvider()
    with running_garden(tmp_path, providers={"local-echo": provider}) as g:
        response = g.chat({"model": "local-echo", "messages": conversation(), "tools": TOOLS,
                           "tool_choice": {"type": "function", "function": {"name": "lookup_account"}}})
    assert response.status_code == 200, response.body
    body = json.loads(response.body)
    validate(body, "CreateChatCompletionResponse")
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    call = choice["message"]["tool_calls"][0]
    assert call["function"]["name"] == "lookup_account"
    assert json.loads(call["function"]["arguments"]) == {"email": "[EMAIL]"}  # output policy: REDACT
    sent = provider.received[0].request
    assert sent.tools[0].name == "lookup_account" and sent.tool_choice == "lookup_account"
    assert json.loads(sent.messages[1].tool_calls[0].arguments) == {"email": "[EMAIL]"}
    assert sent.messages[2].role == "tool" and sent.messages[2].tool_call_id == "call_0"
    assert sent.messages[2].content == "Card on file: [CREDIT_DEBIT_NUMBER]"


def test_streamed_tool_calls_are_valid_chunks(tmp_path: Path) -> None:
    with running_garden(tmp_path, providers={"local-echo": ToolCallingProvider()}) as g:
        response = g.chat({"model": "local-echo", "messages": conversation(), "tools": TOOLS, "stream": True})
    chunks = [json.loads(block[len("data: "):]) for block in response.body.decode().split("\n\n")
              if block and block != "data: [DONE]"]
    for chunk in chunks:
        validate(chunk, "CreateChatCompletionStreamResponse")
    deltas = [c["choices"][0]["delta"] for c in chunks]
    calls = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
    assert calls[0]["index"] == 0 and calls[0]["function"]["name"] == "lookup_account"
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_local_echo_accepts_tool_conversations(tmp_path: Path) -> None:
    with running_garden(tmp_path) as g:
        response = g.chat({"model": "local-echo", "messages": conversation(), "tools": TOOLS})
    assert response.status_code == 200, response.body
    # The echo model answers with the last user message, as redacted on its way in.
    assert json.loads(response.body)["choices"][0]["message"]["content"] == "Find the account of [EMAIL]"
