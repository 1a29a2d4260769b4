"""Gateway results -> OpenAI JSON bodies: completions, buffered SSE streams, embeddings, models, errors.

Chalice cannot stream a body, so `stream: true` gets the whole `text/event-stream` at once: the same
chunks OpenAI would send, ending in `data: [DONE]`, so streaming clients work unchanged.
"""
from __future__ import annotations

import base64
import json
import re
import struct
from typing import Any, Iterable, Sequence

from chalicelib.catalog import Model
from chalicelib.chat import Completion, ToolCall, Usage
from chalicelib.errors import GatewayError

# Split a reply into stream deltas at word boundaries, keeping the whitespace with each word.
_DELTAS = re.compile(r"\S+\s*|\s+")
_MAX_STREAM_DELTAS = 512  # beyond this, deltas grow: a 6 MB Lambda response must not be mostly framing


def usage_body(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cache_read_tokens},
    }


def tool_calls_body(calls: tuple[ToolCall, ...]) -> list[dict[str, Any]]:
    return [{"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in calls]


def completion_body(completion_id: str, created: int, model: str, result: Completion) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": result.content, "refusal": None}
    if result.tool_calls:
        message["tool_calls"] = tool_calls_body(result.tool_calls)
        message["content"] = result.content or None  # as OpenAI: null when the model only calls tools
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": result.finish_reason,
            }
        ],
        "usage": usage_body(result.usage),
    }


def stream_body(
    completion_id: str, created: int, model: str, result: Completion, include_usage: bool
) -> str:
    def chunk(delta: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }
        if include_usage:
            body["usage"] = None  # as OpenAI does: null on every chunk but the last
        return body

    events = [chunk({"role": "assistant", "content": ""}, None)]
    events += [chunk({"content": piece}, None) for piece in _pieces(result.content)]
    events += [chunk({"tool_calls": [{"index": i, **call}]}, None)
               for i, call in enumerate(tool_calls_body(result.tool_calls))]
    events.append(chunk({}, result.finish_reason))
    if include_usage:
        events.append({**chunk({}, None), "choices": [], "usage": usage_body(result.usage)})
    return "".join(f"data: {json.dumps(e, separators=(',', ':'))}\n\n" for e in events) + "data: [DONE]\n\n"


def _pieces(text: str) -> Iterable[str]:
    words = _DELTAS.findall(text)
    per_delta = max(1, -(-len(words) // _MAX_STREAM_DELTAS))
    for start in range(0, len(words), per_delta):
        yield "".join(words[start : start + per_delta])


def model_body(model: Model) -> dict[str, Any]:
    # `created` is required by the spec; catalog entries have no creation time, so 0 (the epoch).
    body: dict[str, Any] = {"id": model.id, "object": "model", "created": 0, "owned_by": model.owned_by,
                            "lifecycle": lifecycle_body(model)}
    if model.lifecycle is not None and model.lifecycle.sunset is not None:
        body["shutdown_date"] = model.lifecycle.sunset  # OpenAI's own field for the same date
    return body


def lifecycle_body(model: Model) -> dict[str, Any]:
    """`{"status", "deprecated", "sunset", "successor"}`, fields the catalog does not set omitted."""
    life = model.lifecycle
    if life is None:
        return {"status": "active"}
    fields = {"status": life.status, "deprecated": life.deprecated, "sunset": life.sunset,
              "successor": life.successor}
    return {name: value for name, value in fields.items() if value is not None}


def models_body(models: Iterable[Model]) -> dict[str, Any]:
    return {"object": "list", "data": [model_body(m) for m in models]}


def embeddings_body(model: str, vectors: Sequence[Sequence[float]], prompt_tokens: int,
                    encoding_format: str) -> dict[str, Any]:
    """OpenAI's CreateEmbeddingResponse. Values are float32, as OpenAI's are: `float` prints each
    with the 9 significant digits that give back the same float32; `base64` packs them
    little-endian, as OpenAI encodes them (what its SDK decodes)."""
    def encoded(vector: Sequence[float]) -> Any:
        packed = struct.pack(f"<{len(vector)}f", *vector)
        if encoding_format == "base64":
            return base64.b64encode(packed).decode("ascii")
        return [float(f"{x:.9g}") for x in struct.unpack(f"<{len(vector)}f", packed)]

    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": encoded(v)} for i, v in enumerate(vectors)],
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


def error_body(error: GatewayError) -> dict[str, Any]:
    return {
        "error": {
            "message": error.message,
            "type": error.type,
            "param": error.param,
            "code": error.code,
        }
    }
