"""OpenAI chat completions and embeddings <-> the gateway's types: pure functions, no I/O.

What goes up is the request after redaction and guardrails, in the format every OpenAI-compatible
server takes (LiteLLM, vLLM, TGI): `max_tokens` always set, `developer` sent as `system` (older
servers refuse the newer role), `user` and `metadata` never forwarded (they are the caller's, and an
upstream may log them). What comes back is read for content, tool calls, finish reason and usage.
Error messages never quote the upstream's text (it may echo the prompt) nor the caller's values.
"""
from __future__ import annotations

import json
import math
from typing import Any, Iterable, Mapping

from chalicelib.chat import Completion, Message, ToolCall, Usage
from chalicelib.errors import (DeadlineExceeded, GatewayError, InvalidRequest, NotFound, PermissionDenied,
                               ServiceUnavailable, Signal, UpstreamError, UpstreamThrottled)
from chalicelib.providers import EmbeddingCall, ProviderCall
from chalicelib.providers.json_values import tool_schema


_FINISH_REASONS = {"stop": "stop", "length": "length", "tool_calls": "tool_calls", "function_call": "tool_calls",
                   "content_filter": "content_filter"}


class UpstreamMisconfigured(ServiceUnavailable):
    """The gateway's own configuration of the deployment is wrong: its key is refused even after a
    refresh, or cannot be read. A 503 (not the caller's fault), with no fallback, so operators see
    it at once rather than a quiet detour, and not counted against the deployment's health."""

    default_code = "upstream_misconfigured"
    fallback = False
    signal = Signal.NONE


# --- requests ------------------------------------------------------------------------------------

def chat_body(call: ProviderCall) -> dict[str, Any]:
    """The JSON body of POST {base_url}/chat/completions."""
    request = call.request
    body: dict[str, Any] = {
        "model": call.deployment.model_id,
        "messages": [_message(i, m) for i, m in enumerate(request.messages)],
        "max_tokens": _whole(call.max_tokens, "max_tokens"),  # always: upstreams reserve by it
    }
    if request.temperature is not None:
        body["temperature"] = _number(request.temperature, 0.0, 2.0, "temperature")
    if request.top_p is not None:
        body["top_p"] = _number(request.top_p, 0.0, 1.0, "top_p")
    if request.stop:
        if not all(isinstance(s, str) and s for s in request.stop):
            raise InvalidRequest("stop takes non-empty strings", param="stop")
        body["stop"] = list(request.stop)
    if request.tools:
        body["tools"] = [{"type": "function", "function": {
            "name": tool.name,
            **({"description": tool.description} if tool.description else {}),
            "parameters": tool_schema(tool.parameters, f"tools[{k}].function.parameters"),
        }} for k, tool in enumerate(request.tools)]
        if request.tool_choice in ("auto", "none", "required"):
            body["tool_choice"] = request.tool_choice
        elif request.tool_choice:
            body["tool_choice"] = {"type": "function", "function": {"name": request.tool_choice}}
    if request.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}  # usage in the last chunk: quota needs it
    return body


def embeddings_body(call: EmbeddingCall) -> dict[str, Any]:
    """The JSON body of POST {base_url}/embeddings. Floats are asked for whatever the caller wants:
    the gateway encodes base64 itself, and reads every vector to check it."""
    body: dict[str, Any] = {"model": call.deployment.model_id, "input": list(call.inputs),
                            "encoding_format": "float"}
    if call.dimensions is not None:
        body["dimensions"] = _whole(call.dimensions, "dimensions")
    return body


def encode(body: Mapping[str, Any]) -> bytes:
    try:
        return json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":"),
                          default=dict).encode("utf-8", "surrogatepass")
    except (ValueError, TypeError, RecursionError):
        raise InvalidRequest("the request holds a value that cannot be sent as JSON") from None


def _message(i: int, message: Message) -> dict[str, Any]:
    role = "system" if message.role == "developer" else message.role
    if message.role == "tool":
        if not message.tool_call_id:
            raise InvalidRequest("a tool message needs tool_call_id", param=f"messages[{i}].tool_call_id")
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    if message.role == "assistant" and message.tool_calls:
        return {"role": "assistant", "content": message.content or None, "tool_calls": [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls]}
    if message.parts and role == "user":  # text parts as the caller sent them (redactions in place)
        return {"role": role, "content": [{"type": "text", "text": p} for p in message.parts]}
    return {"role": role, "content": message.content}


def _whole(value: Any, param: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not float(value).is_integer() or value < 1:
        raise InvalidRequest(f"{param} must be a whole number of at least 1", param=param)
    return int(value)


def _number(value: Any, low: float, high: float, param: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not low <= value <= high:
        raise InvalidRequest(f"{param} must be between {low:g} and {high:g}", param=param)
    return float(value)


# --- responses -----------------------------------------------------------------------------------

def decode(payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or absurdly nested
        raise _malformed() from None


def from_chat(body: Any) -> Completion:
    """A `chat.completion` object -> Completion (the first choice: the gateway never asks for more)."""
    try:
        choice = body["choices"][0]
        message = choice["message"]
        content = message.get("content") or ""
        if not isinstance(content, str):
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        calls = tuple(
            ToolCall(str(c.get("id") or f"call_{k}"), str(c["function"]["name"]),
                     _arguments(c["function"].get("arguments")))
            for k, c in enumerate(message.get("tool_calls") or ()))
        finish = _finish_reason(choice.get("finish_reason"), calls)
    except (KeyError, IndexError, TypeError, AttributeError, ValueError):
        raise _malformed() from None
    return Completion(content, finish, _usage(body.get("usage")), calls)


def _arguments(arguments: Any) -> str:
    # JSON text, as OpenAI carries it; some servers send the object itself.
    if isinstance(arguments, str):
        return arguments or "{}"
    return json.dumps(arguments if arguments is not None else {})


def from_chunks(events: Iterable[str]) -> Completion:
    """The `data` of each SSE event of a streamed answer (`chat.completion.chunk`s, then `[DONE]`)
    -> one Completion. An `error` object in the stream is mapped like an HTTP error."""
    texts: list[str] = []
    tools: dict[int, dict[str, Any]] = {}  # index -> id, name, argument pieces
    finish: str | None = None
    usage: Any = None
    try:
        for data in events:
            if data.strip() == "[DONE]":
                break
            chunk = decode(data.encode("utf-8", "surrogatepass"))
            if not isinstance(chunk, dict):
                raise _malformed()
            if chunk.get("error") is not None:
                raise stream_error(chunk["error"])
            usage = chunk.get("usage") or usage
            for choice in chunk.get("choices") or ():
                if choice.get("index", 0) != 0:
                    continue
                delta = choice.get("delta") or {}
                if delta.get("content"):
                    texts.append(delta["content"])
                for k, piece in enumerate(delta.get("tool_calls") or ()):
                    tool = tools.setdefault(int(piece.get("index", k)), {"id": None, "name": None, "args": []})
                    function = piece.get("function") or {}
                    tool["id"] = tool["id"] or piece.get("id")
                    tool["name"] = tool["name"] or function.get("name")
                    if function.get("arguments"):
                        tool["args"].append(function["arguments"])
                finish = choice.get("finish_reason") or finish
    except (KeyError, TypeError, AttributeError, ValueError):
        raise _malformed() from None
    if finish is None:
        # No finish reason: the answer may be cut, and quota and cost need the real usage.
        raise UpstreamError("the upstream stream ended before the model finished", code="upstream_stream_incomplete")
    calls = tuple(ToolCall(str(t["id"] or f"call_{index}"), str(t["name"] or ""), "".join(t["args"]) or "{}")
                  for index, t in sorted(tools.items()))
    return Completion("".join(texts), _finish_reason(finish, calls), _usage(usage), calls)


def from_embeddings(body: Any, call: EmbeddingCall) -> tuple[tuple[tuple[float, ...], ...], int | None]:
    """The vectors in input order, and usage.prompt_tokens when the upstream reported it."""
    try:
        rows = sorted(body["data"], key=lambda row: int(row.get("index", 0)))
        vectors = tuple(tuple(float(x) for x in row["embedding"]) for row in rows)
        usage = body.get("usage") or {}
        tokens = usage.get("prompt_tokens")
        tokens = int(tokens) if tokens is not None else None
    except (KeyError, TypeError, ValueError, AttributeError):
        raise _malformed() from None
    if len(vectors) != len(call.inputs) or not all(vectors) \
            or any(not all(math.isfinite(x) for x in v) for v in vectors) \
            or (call.dimensions is not None and any(len(v) != call.dimensions for v in vectors)):
        raise _malformed()
    return vectors, tokens


def _finish_reason(reason: Any, calls: tuple[ToolCall, ...]) -> str:
    mapped = _FINISH_REASONS.get(str(reason), "stop")
    return "tool_calls" if calls and mapped == "stop" else mapped


def _usage(usage: Any) -> Usage:
    """OpenAI's `prompt_tokens` is the whole prompt; `prompt_tokens_details.cached_tokens` is the
    part read from the prompt cache. LiteLLM adds `cache_creation_input_tokens` for providers that
    bill cache writes (Anthropic, Bedrock), also counted inside `prompt_tokens`."""
    if not isinstance(usage, dict) or usage.get("prompt_tokens") is None or usage.get("completion_tokens") is None:
        raise UpstreamError("the upstream did not report token usage", code="upstream_no_usage",
                            signal=Signal.NONE)  # its configuration, not its health
    try:
        prompt = max(0, int(usage["prompt_tokens"]))
        details = usage.get("prompt_tokens_details") or {}
        read = min(max(0, int(details.get("cached_tokens") or 0)), prompt)
        write = min(max(0, int(usage.get("cache_creation_input_tokens") or 0)), prompt - read)
        completion = max(0, int(usage["completion_tokens"]))
    except (TypeError, ValueError, AttributeError, OverflowError):
        raise _malformed() from None
    return Usage(prompt_tokens=prompt, completion_tokens=completion, cache_read_tokens=read, cache_write_tokens=write)


def _malformed() -> GatewayError:
    return UpstreamError("the upstream's answer is not a valid OpenAI response", code="upstream_malformed_response")


# --- errors --------------------------------------------------------------------------------------

def map_status(status: int) -> GatewayError:
    """A non-2xx answer -> the gateway's error and what it says about the deployment. The body is
    never read into the message (an upstream's error may quote the prompt). A 401 reaches here only
    when the key was refreshed or cannot be: the gateway's misconfiguration."""
    if status in (400, 413, 422):
        return InvalidRequest("the upstream rejected the request as invalid", code="upstream_validation")
    if status == 401:
        return UpstreamMisconfigured("the upstream refused the gateway's API key", code="upstream_key_rejected")
    if status == 403:
        return PermissionDenied("the gateway is not allowed to call this upstream model", code="upstream_access_denied")
    if status == 404:
        return NotFound("the upstream model or URL was not found", code="upstream_model_not_found")
    if status == 408:
        return DeadlineExceeded("the upstream timed out", code="upstream_timeout", signal=Signal.BUSY)
    if status == 429:
        return UpstreamThrottled("the upstream is throttling")
    if status >= 500:
        return ServiceUnavailable("the upstream is unavailable", code="upstream_unavailable")
    return UpstreamError("the upstream returned an unexpected status", code="upstream_error", signal=Signal.NONE)


# Error types that say the key was not accepted, whatever the status: LiteLLM's own (`auth_error`),
# and what a LiteLLM tier without its database answers for any key but the master key (400
# `no_db_connection`: it cannot look the key up). Only the type is read, never the message.
_KEY_REFUSED_TYPES = {"auth_error", "no_db_connection"}


def key_refused(status: int, payload: bytes) -> bool:
    """Whether a non-2xx answer means the upstream did not accept the gateway's API key."""
    if status == 401:
        return True
    if status not in (400, 403):
        return False
    try:
        error = json.loads(payload).get("error")
        return isinstance(error, dict) and error.get("type") in _KEY_REFUSED_TYPES
    except (ValueError, AttributeError, RecursionError):
        return False


def stream_error(error: Any) -> GatewayError:
    """An `error` object inside a 200 stream (LiteLLM sends one when its upstream fails mid-answer):
    its numeric code, where it has one, says which HTTP error it would have been."""
    code = error.get("code") if isinstance(error, dict) else None
    try:
        status = int(code)
    except (TypeError, ValueError):
        status = 500
    return map_status(status if 400 <= status <= 599 and status != 401 else 500)


def map_transport(kind: str) -> GatewayError:
    """A failure below HTTP (upstream_http.TransportError.kind) -> the gateway's error."""
    if kind == "read_timeout":
        return DeadlineExceeded("the upstream did not answer in time", code="upstream_timeout", signal=Signal.BUSY)
    if kind == "connect_timeout":
        return DeadlineExceeded("the upstream could not be reached in time", code="upstream_timeout",
                                signal=Signal.DOWN)
    if kind == "unreachable":
        return ServiceUnavailable("the upstream could not be reached", code="upstream_unreachable")
    if kind == "too_large":
        return UpstreamError("the upstream's answer is too large", code="upstream_response_too_large",
                             signal=Signal.NONE)
    if kind == "no_time":
        return DeadlineExceeded("no time left to call the upstream")
    return ServiceUnavailable("the connection to the upstream broke", code="upstream_connection")
