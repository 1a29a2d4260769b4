"""OpenAI `POST /v1/embeddings` body -> `EmbeddingsRequest`, or a 400 naming the field.

Unknown fields are ignored, as OpenAI-compatible servers do. Error messages name the field and the
rule, never the value: a value may be a customer's words, and error messages reach logs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalicelib.errors import InvalidRequest
from chalicelib.generated.embeddings_request_validator import validate as validate_embeddings_request
from chalicelib.openai_api.embeddings_schema import EMBEDDINGS_REQUEST_SCHEMA
from chalicelib.openai_api.strict_json import strict_json_object
from chalicelib.schema_validation import JsonSchemaValueException, coerce_integers, violation

@dataclass(frozen=True, slots=True)
class EmbeddingsRequest:
    model: str
    inputs: tuple[str, ...]  # a single string is one input
    encoding_format: str = "float"  # float | base64 (little-endian float32, as OpenAI encodes it)
    dimensions: int | None = None  # None: the model's default
    user: str | None = None


def parse_embeddings_request(body: bytes) -> EmbeddingsRequest:
    raw = strict_json_object(body)
    _refuse_tokens(raw.get("input"))
    _check_schema(raw)
    raw = coerce_integers(EMBEDDINGS_REQUEST_SCHEMA, raw)  # 256.0 is an integer to the schema: make it one
    text = raw["input"]
    return EmbeddingsRequest(
        model=raw["model"],
        inputs=(text,) if isinstance(text, str) else tuple(text),
        encoding_format=raw.get("encoding_format") or "float",
        dimensions=raw.get("dimensions"),
        user=raw.get("user"),
    )


def _refuse_tokens(value: Any) -> None:
    """Token arrays are refused as a whole, with `param` input: no provider here takes tokens, and
    neither the PII screen nor the guardrail can read them."""
    if isinstance(value, list) and any(
            isinstance(item, list) or (isinstance(item, (int, float)) and not isinstance(item, bool))
            for item in value):
        raise InvalidRequest("input: token arrays are not supported; send a string or a list of strings",
                             param="input", code="unsupported_value")


def _check_schema(raw: dict[str, Any]) -> None:
    try:
        validate_embeddings_request(raw)
    except JsonSchemaValueException as error:
        where, rule = violation(error)
        # An input's problem is reported on `input`, as OpenAI does; the message names the index.
        param = "input" if where == "input" or where.startswith("input[") else where
        raise InvalidRequest(f"{where}: {rule}", param=param, code="invalid_value") from None
