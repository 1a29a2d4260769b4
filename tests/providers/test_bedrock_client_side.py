"""No caller-controlled value reaches botocore in a form it refuses on the client side: whatever a
request holds, `to_converse` either refuses it with a 400 naming the field, or returns parameters
that botocore's own validator (the real bedrock-runtime service model) accepts. What botocore still
refuses is a 400 for the caller, never a fault of the deployment."""
from __future__ import annotations

import json
from typing import Any

import botocore.session
import pytest
from botocore.exceptions import ParamValidationError
from botocore.validate import ParamValidator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.chat import Message, Tool, ToolCall
from chalicelib.errors import InvalidRequest, Signal
from chalicelib.providers.bedrock.provider import _translate
from chalicelib.providers.bedrock.translate import to_converse
from chalicelib.providers.json_values import MAX_JSON_DEPTH
from fakes.provider_calls import make_call

_CONVERSE = botocore.session.get_session().get_service_model("bedrock-runtime").operation_model("Converse")


def botocore_refuses(kwargs: dict[str, Any]) -> str | None:
    report = ParamValidator().validate(kwargs, _CONVERSE.input_shape)
    return report.generate_report() if report.has_errors() else None


def converse_or_400(call: Any) -> dict[str, Any] | None:
    try:
        kwargs = to_converse(call)
    except InvalidRequest as error:
        assert error.status == 400 and error.param
        return None
    assert botocore_refuses(kwargs) is None
    return kwargs


# --- the values that used to slip through --------------------------------------------------------

@pytest.mark.parametrize(("max_tokens", "sent"), [(1.0, 1), (100.0, 100), (7, 7)])
def test_integral_max_tokens_leave_as_integers(max_tokens: Any, sent: int) -> None:
    kwargs = converse_or_400(make_call(max_tokens=max_tokens))
    assert kwargs is not None and kwargs["inferenceConfig"]["maxTokens"] == sent
    assert type(kwargs["inferenceConfig"]["maxTokens"]) is int


@pytest.mark.parametrize(("field", "request_fields"), [
    ("max_tokens", {"max_tokens": 1.5}), ("max_tokens", {"max_tokens": 0}),
    ("max_tokens", {"max_tokens": True}), ("temperature", {"temperature": 1.5}),
    ("temperature", {"temperature": float("nan")}), ("top_p", {"top_p": -0.1}),
    ("top_p", {"top_p": float("inf")}), ("stop", {"stop": ("END", "")}),
    ("stop", {"stop": ("x",) * 2501}),
])
def test_out_of_range_values_are_400_naming_the_field(field: str, request_fields: dict[str, Any]) -> None:
    max_tokens = request_fields.pop("max_tokens", 256)
    with pytest.raises(InvalidRequest) as raised:
        to_converse(make_call(max_tokens=max_tokens, **request_fields))
    assert raised.value.param == field


def test_an_empty_system_message_is_dropped_not_sent() -> None:
    kwargs = converse_or_400(make_call(Message("system", ""), Message("user", "hi")))
    assert kwargs is not None and "system" not in kwargs


@pytest.mark.parametrize("name", ["", "has space", "x" * 65, "naïve", "a.b"])
def test_function_names_bedrock_refuses_are_400(name: str) -> None:
    tool = Tool(name, None, {"type": "object"})
    with pytest.raises(InvalidRequest) as raised:
        to_converse(make_call(tools=(tool,), tool_choice="auto"))
    assert raised.value.param == "tools[0].function.name"
    history = (Message("user", "q"), Message("assistant", "", (ToolCall("call_1", name, "{}"),)),
               Message("tool", "r", tool_call_id="call_1"), Message("user", "go on"))
    with pytest.raises(InvalidRequest) as raised:
        to_converse(make_call(*history, tools=(Tool("ok", None, {}),), tool_choice="auto"))
    assert raised.value.param == "messages[1].tool_calls[0].function.name"


@pytest.mark.parametrize("call_id", ["", "call id with spaces", "x" * 200, "call/1?", "☃"])
def test_tool_call_ids_converse_refuses_are_replaced_consistently(call_id: str) -> None:
    history = (Message("user", "q"), Message("assistant", "", (ToolCall(call_id or "", "lookup", "{}"),)),
               Message("tool", "r", tool_call_id=call_id or "x y"), Message("user", "go on"))
    if not call_id:  # a tool message needs an id; an assistant call may carry an empty one
        history = history[:2] + (Message("tool", "r", tool_call_id="x y"),) + history[3:]
    kwargs = converse_or_400(make_call(*history, tools=(Tool("lookup", None, {}),), tool_choice="auto"))
    assert kwargs is not None
    use = kwargs["messages"][1]["content"][0]["toolUse"]["toolUseId"]
    result = kwargs["messages"][2]["content"][0]["toolResult"]["toolUseId"]
    assert len(use) <= 64 and len(result) <= 64
    if call_id:
        assert use == result  # the pair still matches


@pytest.mark.parametrize("arguments", ['{"a": NaN}', '{"a": Infinity}', "[" * 100_000 + "]" * 100_000,
                                       '{"a":' * (MAX_JSON_DEPTH + 1) + "1" + "}" * (MAX_JSON_DEPTH + 1)],
                         ids=["nan", "infinity", "deep-100k", "deep-65"])
def test_hostile_tool_arguments_are_400(arguments: str) -> None:
    history = (Message("user", "q"), Message("assistant", "", (ToolCall("call_1", "lookup", arguments),)),
               Message("tool", "r", tool_call_id="call_1"), Message("user", "go on"))
    with pytest.raises(InvalidRequest) as raised:
        to_converse(make_call(*history, tools=(Tool("lookup", None, {}),), tool_choice="auto"))
    assert raised.value.param == "messages[1].tool_calls[0].function.arguments"


def test_hostile_tool_schemas_are_400() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(MAX_JSON_DEPTH + 1):
        node["x"] = {}
        node = node["x"]
    for parameters in ({"type": "object", "default": float("nan")}, deep):
        with pytest.raises(InvalidRequest) as raised:
            to_converse(make_call(tools=(Tool("lookup", None, parameters),), tool_choice="auto"))
        assert raised.value.param == "tools[0].function.parameters"


def test_what_botocore_still_refuses_is_a_400_quoting_nothing() -> None:
    error = _translate(ParamValidationError(report="Invalid length for parameter x, value: SECRET-VALUE"))
    assert isinstance(error, InvalidRequest) and error.status == 400 and error.signal is Signal.NONE
    assert "SECRET" not in error.message and error.code == "invalid_parameter"


# --- the class: any request ----------------------------------------------------------------------

_text = st.text(max_size=80)
_number = st.one_of(st.integers(-3, 5000), st.floats(allow_nan=True, allow_infinity=True), st.booleans())
_json_text = st.one_of(_text, st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3), max_leaves=20,
).map(lambda v: json.dumps(v)))
_tool_call = st.builds(ToolCall, _text, _text, _json_text)
_message = st.one_of(
    st.builds(Message, st.sampled_from(["system", "developer", "user"]), _text),
    st.builds(Message, st.just("assistant"), _text, st.lists(_tool_call, max_size=2).map(tuple)),
    st.builds(Message, st.just("tool"), _text, st.just(()), st.one_of(_text, st.just("call_1"))),
)
_tool = st.builds(Tool, _text, st.one_of(st.none(), _text),
                  st.dictionaries(_text, st.one_of(_text, st.integers(), st.floats()), max_size=3))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages=st.lists(_message, min_size=1, max_size=5), max_tokens=_number,
       temperature=st.one_of(st.none(), _number), top_p=st.one_of(st.none(), _number),
       stop=st.lists(_text, max_size=5).map(tuple), tools=st.lists(_tool, max_size=3).map(tuple),
       tool_choice=st.one_of(st.none(), st.sampled_from(["auto", "none", "required"]), _text))
def test_any_request_is_either_400_or_accepted_by_botocore(
    messages: list[Message], max_tokens: Any, temperature: Any, top_p: Any, stop: tuple[str, ...],
    tools: tuple[Tool, ...], tool_choice: str | None,
) -> None:
    call = make_call(*messages, max_tokens=max_tokens, temperature=temperature, top_p=top_p, stop=stop,
                     tools=tools, tool_choice=tool_choice)
    converse_or_400(call)
