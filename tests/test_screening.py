"""Every caller-controlled text that reaches a model is screened (PII) and judged (guardrail):
content parts as one text, system and developer messages, tool definitions, tool-call arguments;
names, ids and stop sequences are refused when they would need redacting."""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Iterator

import pytest
from openai_schema import validate
from support import TEST_CATALOG, Garden, running_garden

from chalicelib.catalog import parse_catalog
from chalicelib.chat import Completion
from chalicelib.providers import ProviderCall
from chalicelib.providers.local_echo import LocalEchoProvider

CARD = "4111 1111 1111 1111"


class Recording:
    """local-echo that keeps what it was sent: the request as the model would see it."""

    def __init__(self) -> None:
        self.calls: list[ProviderCall] = []

    def complete(self, call: ProviderCall) -> Completion:
        self.calls.append(call)
        return LocalEchoProvider().complete(call)


def catalog(**app_fields: Any) -> Any:
    raw = copy.deepcopy(TEST_CATALOG)
    raw["apps"][0].update(app_fields)
    return parse_catalog(raw)


@pytest.fixture
def recorded(tmp_path: Path) -> Iterator[tuple[Garden, Recording]]:
    provider = Recording()
    with running_garden(tmp_path, providers={"local-echo": provider}) as garden:
        yield garden, provider


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def parts(*texts: str) -> list[dict[str, str]]:
    return [{"type": "text", "text": t} for t in texts]


def test_a_card_split_across_content_parts_is_redacted_where_it_began(recorded: tuple[Garden, Recording]) -> None:
    garden, provider = recorded
    response = garden.chat({"model": "local-echo", "messages": [user(parts("my card 4111 1111", " 1111 1111 ok"))]})
    assert response.status_code == 200, response.body
    sent = provider.calls[-1].request.messages[-1]
    assert sent.parts == ("my card [CREDIT_DEBIT_NUMBER]", " ok")
    assert "1111" not in sent.content


def test_tool_definitions_and_arguments_are_redacted_and_stay_json(recorded: tuple[Garden, Recording]) -> None:
    garden, provider = recorded
    tools = [{"type": "function", "function": {
        "name": "lookup", "description": f"Find the customer with card {CARD}",
        "parameters": {"type": "object", "properties": {"email": {"type": "string", "default": "jane@example.com",
                                                                 "description": "password: hunter2hunter2"}}}}}]
    messages = [
        user("look her up"),
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {
            "name": "lookup", "arguments": json.dumps({"email": "jane@example.com", "card": 4111111111111111})}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": f"found {CARD}"},
    ]
    response = garden.chat({"model": "local-echo", "messages": messages, "tools": tools})
    assert response.status_code == 200, response.body
    request = provider.calls[-1].request
    assert request.tools[0].description == "Find the customer with card [CREDIT_DEBIT_NUMBER]"
    email = request.tools[0].parameters["properties"]["email"]
    assert email["default"] == "[EMAIL]" and email["description"] == "password: [PASSWORD]"
    arguments = json.loads(request.messages[1].tool_calls[0].arguments)  # still JSON
    assert arguments == {"email": "[EMAIL]", "card": "[CREDIT_DEBIT_NUMBER]"}
    assert request.messages[2].content == "found [CREDIT_DEBIT_NUMBER]"
    everything = repr(request)
    assert "jane@example.com" not in everything and "4111" not in everything and "hunter2" not in everything


@pytest.mark.parametrize("field, body", [
    ("tools[0].function.name", {"tools": [{"type": "function", "function": {"name": "card_4111111111111111"}}]}),
    ("stop", {"stop": ["jane@example.com"]}),
    ("messages[0].tool_calls[0].id", {"messages": [
        {"role": "assistant", "content": None, "tool_calls": [{"id": "jane@example.com", "type": "function",
                                                               "function": {"name": "f", "arguments": "{}"}}]},
        user("hi")]}),
    ("messages[0].tool_call_id", {"messages": [{"role": "tool", "tool_call_id": "id 4111111111111111",
                                                "content": "ok"}, user("hi")]}),
])
def test_names_ids_and_stop_sequences_holding_pii_are_refused(garden: Garden, field: str, body: dict) -> None:
    response = garden.chat({"model": "local-echo", "messages": [user("hi")], **body})
    assert response.status_code == 400, response.body
    error = json.loads(response.body)
    validate(error, "ErrorResponse")
    assert error["error"]["code"] == "pii_blocked" and error["error"]["param"] == field
    assert "4111" not in response.body.decode() and "jane" not in response.body.decode()


@pytest.mark.parametrize("message", [
    {"role": "system", "content": "Always promise guaranteed returns."},
    {"role": "developer", "content": "Mention guaranteed returns."},
    user(parts("we offer guaranteed ", "returns")),
])
def test_the_guardrail_judges_system_developer_and_split_user_text(garden: Garden, message: dict) -> None:
    response = garden.chat({"model": "local-echo", "messages": [message, user("hello")]})
    assert response.status_code == 400, response.body
    assert json.loads(response.body)["error"]["code"] == "content_filter"


def test_the_guardrail_judges_tool_descriptions(garden: Garden) -> None:
    tools = [{"type": "function", "function": {"name": "sell", "description": "Sells with guaranteed returns"}}]
    response = garden.chat({"model": "local-echo", "messages": [user("hello")], "tools": tools})
    assert response.status_code == 400, response.body
    assert json.loads(response.body)["error"]["code"] == "content_filter"


PINNED = {"text": "You are the bank's assistant. Never discuss guaranteed returns."}


def test_a_pinned_system_prompt_refuses_the_callers(tmp_path: Path) -> None:
    with running_garden(tmp_path, catalog=catalog(system_prompt=PINNED)) as garden:
        for role in ("system", "developer"):
            response = garden.chat({"model": "local-echo", "messages": [{"role": role, "content": "be rude"},
                                                                        user("hi")]})
            assert response.status_code == 400, response.body
            error = json.loads(response.body)["error"]
            assert (error["code"], error["param"]) == ("system_prompt_pinned", "messages[0].role")


def test_a_pinned_system_prompt_goes_first_unjudged_and_the_callers_is_appended_and_judged(tmp_path: Path) -> None:
    provider = Recording()
    app = catalog(system_prompt={**PINNED, "caller_system": "append"})
    with running_garden(tmp_path, catalog=app, providers={"local-echo": provider}) as garden:
        ok = garden.chat({"model": "local-echo", "messages": [{"role": "system", "content": "Be brief."},
                                                              user("hi")]})
        assert ok.status_code == 200, ok.body
        sent = provider.calls[-1].request.messages
        assert [(m.role, m.content, m.pinned) for m in sent[:2]] == [
            ("system", PINNED["text"], True), ("system", "Be brief.", False)]
        judged = garden.chat({"model": "local-echo", "messages": [
            {"role": "system", "content": "Promise guaranteed returns."}, user("hi")]})
        assert judged.status_code == 400
        assert json.loads(judged.body)["error"]["code"] == "content_filter"
