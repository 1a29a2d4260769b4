"""Bedrock InvokeModel <-> the gateway's embedding types: pure functions, no boto3, no I/O.

Two model families, as AWS's Bedrock model-parameters guide describes their bodies:
- Amazon Titan Text Embeddings (`amazon.titan-embed-text-v2:0`; v1 too): ONE input per call.
  v2 request {inputText, dimensions (256 | 512 | 1024), normalize: true}; v1 takes inputText only.
  Answer {embedding, inputTextTokenCount, embeddingsByType}. inputText: at most 50,000 characters.
- Cohere Embed v3 (`cohere.embed-english-v3`, `cohere.embed-multilingual-v3`): up to 96 texts per
  call, each at most 2,048 characters. Request {texts, input_type: "search_document", truncate: "END"}
  (OpenAI's API has no input type; documents are what gateways mostly embed; END: a text past the
  model's 512 tokens loses its end rather than failing). Answer {embeddings, id, response_type,
  texts}: `embeddings` is a list of float lists, or {"float": [...]} when embedding types were asked.

Token counts: Bedrock's `X-Amzn-Bedrock-Input-Token-Count` response header, else Titan's
inputTextTokenCount, else ceil(UTF-8 bytes / 4) per input (Cohere reports none in its body). AWS's
messages are never passed on, nor are the `texts` Cohere echoes.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from chalicelib.errors import InvalidRequest, Signal, UpstreamError
from chalicelib.providers import Embedded, EmbeddingCall

TITAN_MAX_CHARS = 50_000
TITAN_V2_DIMENSIONS = (256, 512, 1024)
COHERE_MAX_TEXTS = 96
COHERE_MAX_CHARS = 2048
COHERE_DIMENSIONS = 1024
TOKEN_HEADER = "x-amzn-bedrock-input-token-count"


@dataclass(frozen=True, slots=True)
class Invocation:
    kwargs: dict[str, Any]  # for `client.invoke_model(**kwargs)`
    inputs: int  # how many of the call's inputs it embeds, in order


def to_invoke_model(call: EmbeddingCall) -> list[Invocation]:
    """The InvokeModel calls that embed `call.inputs`, in order; InvalidRequest (naming the field)
    for what the model would refuse, before any call is made."""
    family = _family(call.deployment.model_id)
    if family == "cohere":
        if call.dimensions not in (None, COHERE_DIMENSIONS):
            raise _dimensions(f"this model gives {COHERE_DIMENSIONS} dimensions only")
        _fits(call.inputs, COHERE_MAX_CHARS)
        batches = [call.inputs[i:i + COHERE_MAX_TEXTS] for i in range(0, len(call.inputs), COHERE_MAX_TEXTS)]
        return [_invocation(call, {"texts": list(batch), "input_type": "search_document", "truncate": "END"},
                            len(batch)) for batch in batches]
    _fits(call.inputs, TITAN_MAX_CHARS)
    body: dict[str, Any] = {}
    if family == "titan-v2":
        if call.dimensions is not None and call.dimensions not in TITAN_V2_DIMENSIONS:
            raise _dimensions("this model gives 256, 512 or 1024 dimensions")
        body = {"dimensions": call.dimensions or TITAN_V2_DIMENSIONS[-1], "normalize": True}
    elif call.dimensions is not None:
        raise _dimensions("this model has one size: omit dimensions")
    return [_invocation(call, {"inputText": text, **body}, 1) for text in call.inputs]


def from_invoke_model(call: EmbeddingCall, answers: Sequence[tuple[Any, Mapping[str, str]]]) -> Embedded:
    """Fold the answers of `to_invoke_model`'s calls (parsed JSON body, HTTP headers) into one
    Embedded. A malformed answer is Bedrock's fault (502), never quoted."""
    family = _family(call.deployment.model_id)
    vectors: list[tuple[float, ...]] = []
    tokens = 0
    start = 0
    for payload, headers in answers:
        if not isinstance(payload, dict):
            raise _malformed()
        if family == "cohere":
            got = payload.get("embeddings")
            got = got.get("float") if isinstance(got, dict) else got
            batch = [_vector(v) for v in got] if isinstance(got, list) else []
            size = min(COHERE_MAX_TEXTS, len(call.inputs) - start)
        else:
            batch, size = [_vector(payload.get("embedding"))], 1
        if len(batch) != size:
            raise _malformed()
        reported = _count(headers.get(TOKEN_HEADER)) if headers else None
        if reported is None and family != "cohere":
            reported = _count(payload.get("inputTextTokenCount"))
        if reported is None:
            reported = sum((len(t.encode("utf-8")) + 3) // 4 for t in call.inputs[start:start + size])
        vectors += batch
        tokens += reported
        start += size
    if start != len(call.inputs):
        raise _malformed()
    return Embedded(tuple(vectors), tokens)


def _family(model_id: str) -> str:
    """Which body the model takes; inference profiles and ARNs carry the model id inside."""
    if "cohere.embed" in model_id:
        return "cohere"
    if "titan-embed-text-v2" in model_id:
        return "titan-v2"
    if "titan-embed" in model_id:
        return "titan"
    # The catalog routes an embedding model here that this gateway cannot speak to: its configuration.
    raise UpstreamError("the gateway has no InvokeModel format for this Bedrock model",
                        code="unsupported_model", signal=Signal.NONE)


def _invocation(call: EmbeddingCall, body: dict[str, Any], inputs: int) -> Invocation:
    data = json.dumps(body, ensure_ascii=False).encode("utf-8")
    return Invocation({"modelId": call.deployment.model_id, "body": data, "contentType": "application/json",
                       "accept": "application/json"}, inputs)


def _fits(inputs: Sequence[str], limit: int) -> None:
    for i, text in enumerate(inputs):
        if len(text) > limit:
            raise InvalidRequest(f"input[{i}]: this model takes at most {limit} characters an input",
                                 param="input", code="invalid_value")


def _dimensions(message: str) -> InvalidRequest:
    return InvalidRequest(f"dimensions: {message}", param="dimensions", code="invalid_value")


def _vector(value: Any) -> tuple[float, ...]:
    if not isinstance(value, list) or not value:
        raise _malformed()
    out = []
    for x in value:
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
            raise _malformed()
        out.append(float(x))
    return tuple(out)


def _count(value: Any) -> int | None:
    try:
        n = int(value)
    except (TypeError, ValueError):
        return None
    return n if n >= 0 else None


def _malformed() -> UpstreamError:
    return UpstreamError("Bedrock returned a malformed embedding", code="upstream_malformed_output")
