"""OpenAI `POST /v1/chat/completions` body -> `ChatRequest`, or a 400 naming the field.

Unknown fields are ignored, as OpenAI-compatible servers do. Error messages name the field and the
rule, never the value: a value may be a customer's words, and error messages reach logs.
"""
from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from chalicelib.chat import ChatRequest, Message
from chalicelib.errors import InvalidRequest

_NULLABLE_NUMBER = {"type": ["number", "null"]}
_TEXT_PART = {
    "type": "object",
    "required": ["type"],
    "properties": {"type": {"const": "text"}, "text": {"type": "string"}},
    "if": {"properties": {"type": {"const": "text"}}},
    "then": {"required": ["text"]},
}
_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["model", "messages"],
    "properties": {
        "model": {"type": "string", "minLength": 1},
        "messages": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["role", "content"],
                "properties": {
                    "role": {"enum": ["system", "developer", "user", "assistant"]},
                    "content": {
                        "anyOf": [
                            {"type": "string"},
                            {"type": "array", "minItems": 1, "items": _TEXT_PART},
                        ]
                    },
                    "name": {"type": "string"},
                },
            },
        },
        "max_tokens": {"type": ["integer", "null"], "minimum": 1},
        "max_completion_tokens": {"type": ["integer", "null"], "minimum": 1},
        "temperature": {**_NULLABLE_NUMBER, "minimum": 0, "maximum": 2},
        "top_p": {**_NULLABLE_NUMBER, "minimum": 0, "maximum": 1},
        "n": {"type": ["integer", "null"]},
        "stop": {
            "anyOf": [
                {"type": ["string", "null"]},
                {"type": "array", "maxItems": 4, "items": {"type": "string", "minLength": 1}},
            ]
        },
        "stream": {"type": ["boolean", "null"]},
        "stream_options": {
            "type": ["object", "null"],
            "properties": {"include_usage": {"type": "boolean"}},
        },
        "user": {"type": "string", "maxLength": 256},
        "metadata": {
            "type": ["object", "null"],
            "maxProperties": 16,
            "propertyNames": {"maxLength": 64},
            "additionalProperties": {"type": "string", "maxLength": 512},
        },
        "tools": {"type": ["array", "null"], "maxItems": 0},
    },
}

# What to say for each JSON Schema rule; none of them quotes the offending value.
_RULES = {
    "type": "has the wrong type",
    "required": "is required",
    "enum": "is not one of the accepted values",
    "const": "is not supported",
    "minimum": "is below the minimum",
    "maximum": "is above the maximum",
    "minItems": "must not be empty",
    "maxItems": "has too many items",
    "minLength": "must not be empty",
    "maxLength": "is too long",
    "maxProperties": "has too many keys",
    "propertyNames": "has a key that is too long",
    "anyOf": "has the wrong type or shape",
}


@lru_cache(maxsize=1)
def _validator() -> Any:
    import jsonschema

    return jsonschema.Draft202012Validator(_SCHEMA)


def parse_chat_request(body: bytes) -> ChatRequest:
    raw = _json_object(body)
    _check_schema(raw)
    if raw.get("n") not in (None, 1):
        raise InvalidRequest("n: only n=1 is supported", param="n", code="unsupported_value")
    stop = raw.get("stop")
    stream_options = raw.get("stream_options") or {}
    return ChatRequest(
        model=raw["model"],
        messages=tuple(_message(m) for m in raw["messages"]),
        max_tokens=raw.get("max_completion_tokens") or raw.get("max_tokens"),
        temperature=raw.get("temperature"),
        top_p=raw.get("top_p"),
        stop=(stop,) if isinstance(stop, str) else tuple(stop or ()),
        stream=bool(raw.get("stream")),
        include_usage=bool(stream_options.get("include_usage")),
        user=raw.get("user"),
        metadata=dict(raw.get("metadata") or {}),
    )


def _json_object(body: bytes) -> dict[str, Any]:
    if not body:
        raise InvalidRequest("request body is empty: expected a JSON object", code="invalid_json")
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("request body is not valid JSON", code="invalid_json") from None
    if not isinstance(raw, dict):
        raise InvalidRequest("request body must be a JSON object", code="invalid_json")
    return raw


def _check_schema(raw: dict[str, Any]) -> None:
    import jsonschema

    error = jsonschema.exceptions.best_match(_validator().iter_errors(raw))
    if error is None:
        return
    path = list(error.absolute_path)
    if error.validator == "required":
        # The missing property is the one named in the schema's list that is absent.
        missing = next(p for p in error.validator_value if p not in error.instance)
        path.append(missing)
    if error.validator == "maxItems" and path == ["tools"]:
        raise InvalidRequest("tools: tool calling is not supported yet", param="tools",
                             code="unsupported_parameter")
    param = _param(path)
    rule = _RULES.get(str(error.validator), "is invalid")
    raise InvalidRequest(f"{param}: {rule}", param=param, code="invalid_value")


def _param(path: list[Any]) -> str:
    text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
    return text.lstrip(".") or "(body)"


def _message(m: dict[str, Any]) -> Message:
    role = "system" if m["role"] == "developer" else m["role"]
    content = m["content"]
    if isinstance(content, list):
        content = "\n".join(part["text"] for part in content)
    return Message(role=role, content=content)
