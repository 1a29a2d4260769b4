"""JSON Schema of the chat completions request fields the gateway reads; others are ignored.

Rules that depend on another field (an assistant message that calls tools may omit its content; a
tool message names its call) are checked in chat_request.py: compiled `if`/`then` validators
raise and catch an exception per message, which cost more than the rest of the validation.

The validator in `chalicelib/generated/` is compiled from this schema by
`scripts/generate_validators.py` (`make validators`); a test fails if they drift apart.
"""
from __future__ import annotations

from typing import Any

_NULLABLE_NUMBER = {"type": ["number", "null"]}
_TEXT_PART = {
    "type": "object",
    "required": ["type"],  # and "text": checked in chat_request.py, after the type says it is text
    "properties": {"type": {"const": "text"}, "text": {"type": "string"}},
}
_TOOL_CALL = {
    "type": "object",
    "required": ["id", "type", "function"],
    "properties": {
        "id": {"type": "string", "minLength": 1, "maxLength": 256},
        "type": {"const": "function"},
        "function": {
            "type": "object",
            "required": ["name", "arguments"],
            "properties": {"name": {"type": "string", "minLength": 1}, "arguments": {"type": "string"}},
        },
    },
}
_FUNCTION_NAME = {"type": "string", "pattern": "^[a-zA-Z0-9_-]{1,64}$"}
_TOOL = {
    "type": "object",
    "required": ["type", "function"],
    "properties": {
        "type": {"const": "function"},
        "function": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": _FUNCTION_NAME,
                "description": {"type": "string"},
                "parameters": {"type": "object"},
            },
        },
    },
}
CHAT_REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["model", "messages"],
    "properties": {
        "model": {"type": "string", "minLength": 1},
        "messages": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["role"],
                "properties": {
                    "role": {"enum": ["system", "developer", "user", "assistant", "tool"]},
                    # Array keywords apply only to arrays: a string passes them untouched.
                    "content": {"type": ["string", "array", "null"], "minItems": 1, "items": _TEXT_PART},
                    "name": {"type": "string"},
                    "tool_calls": {"type": "array", "maxItems": 128, "items": _TOOL_CALL},
                    "tool_call_id": {"type": "string", "minLength": 1},
                },
            },
        },
        "max_tokens": {"type": ["integer", "null"], "minimum": 1},
        "max_completion_tokens": {"type": ["integer", "null"], "minimum": 1},
        "temperature": {**_NULLABLE_NUMBER, "minimum": 0, "maximum": 2},
        "top_p": {**_NULLABLE_NUMBER, "minimum": 0, "maximum": 1},
        "n": {"type": ["integer", "null"]},
        "stop": {"type": ["string", "array", "null"], "maxItems": 4,
                 "items": {"type": "string", "minLength": 1}},
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
        "tools": {"type": ["array", "null"], "maxItems": 128, "items": _TOOL},
        "tool_choice": {
            "anyOf": [
                {"enum": ["none", "auto", "required", None]},
                {
                    "type": "object",
                    "required": ["type", "function"],
                    "properties": {
                        "type": {"const": "function"},
                        "function": {"type": "object", "required": ["name"], "properties": {"name": _FUNCTION_NAME}},
                    },
                },
            ]
        },
    },
}
