"""SageMaker endpoints <-> the gateway's types: pure functions, no boto3, no I/O.

The body is OpenAI's chat completions format, which the LMI, TGI and vLLM containers accept on a
SageMaker endpoint's `/invocations` (the Messages API); the answer is an OpenAI chat completion, or
for a response stream, `chat.completion.chunk` events as SSE `data:` lines carried in payload parts
that may be split at any byte. Embeddings use OpenAI's embeddings body and response.

Error messages never quote the container's or AWS's text (a model error may echo the prompt) nor
the caller's values: messages may reach logs.
"""
from __future__ import annotations

import base64
import json
import math
import struct
from typing import Any, Iterable, Iterator, Mapping

from chalicelib.catalog import Deployment
from chalicelib.chat import Completion, Message, ToolCall, Usage
from chalicelib.errors import (DeadlineExceeded, GatewayError, InvalidRequest, PermissionDenied,
                               ServiceUnavailable, Signal, UpstreamError, UpstreamThrottled)
from chalicelib.providers.json_values import tool_schema
from chalicelib.providers import Embedded, EmbeddingCall, ProviderCall

JSON = "application/json"
MAX_LINE_BYTES = 6 * 1024 * 1024  # one SSE line; a Lambda answer cannot be larger anyway

_FINISH_REASONS = {
    "stop": "stop", "eos_token": "stop", "stop_sequence": "stop", "end_turn": "stop",  # TGI says eos_token
    "length": "length", "max_tokens": "length",
    "tool_calls": "tool_calls", "function_call": "tool_calls",
    "content_filter": "content_filter",
}


# --- requests ------------------------------------------------------------------------------------

def invoke_kwargs(deployment: Deployment, body: bytes) -> dict[str, Any]:
    """kwargs for `invoke_endpoint` and `invoke_endpoint_with_response_stream`."""
    kwargs: dict[str, Any] = {"EndpointName": deployment.model_id, "Body": body, "ContentType": JSON,
                              "Accept": JSON}
    if deployment.inference_component:
        kwargs["InferenceComponentName"] = deployment.inference_component
    return kwargs


def _served_name(deployment: Deployment) -> str:
    # LMI and TGI ignore `model`; vLLM checks it against --served-model-name (serve it under this).
    return deployment.inference_component or deployment.model_id


def to_chat(call: ProviderCall) -> bytes:
    request = call.request
    body: dict[str, Any] = {
        "model": _served_name(call.deployment),
        "messages": [_message(m) for m in request.messages],
        "max_tokens": int(call.max_tokens),  # always: the container's default may be its whole context
        "stream": request.stream,
    }
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.stop:
        body["stop"] = list(request.stop)
    if request.tools:
        body["tools"] = [{"type": "function", "function": {
            "name": t.name, **({"description": t.description} if t.description else {}),
            "parameters": tool_schema(t.parameters, f"tools[{k}].function.parameters")}}
            for k, t in enumerate(request.tools)]
        if request.tool_choice in ("auto", "none", "required"):
            body["tool_choice"] = request.tool_choice
        elif request.tool_choice:
            body["tool_choice"] = {"type": "function", "function": {"name": request.tool_choice}}
    if request.stream:
        body["stream_options"] = {"include_usage": True}  # quota and cost need the usage
    return _dumps(body)


def _message(message: Message) -> dict[str, Any]:
    # "developer" is OpenAI's newer name for system; the containers' chat templates know "system".
    role = "system" if message.role == "developer" else message.role
    out: dict[str, Any] = {"role": role, "content": message.content}
    if message.role == "assistant" and message.tool_calls:
        out["content"] = message.content or None
        out["tool_calls"] = [{"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                             for c in message.tool_calls]
    if message.role == "tool":
        if not message.tool_call_id:
            raise InvalidRequest("a tool message needs tool_call_id", param="messages")
        out["tool_call_id"] = message.tool_call_id
    return out


def to_embeddings(call: EmbeddingCall) -> bytes:
    body: dict[str, Any] = {"model": _served_name(call.deployment), "input": list(call.inputs),
                            "encoding_format": "float"}
    if call.dimensions is not None:
        body["dimensions"] = int(call.dimensions)
    return _dumps(body)


def _dumps(body: Mapping[str, Any]) -> bytes:
    # ASCII escapes: any string the parser let through serialises, whatever it holds.
    return json.dumps(body, separators=(",", ":"), allow_nan=False).encode("ascii")


# --- answers -------------------------------------------------------------------------------------

def from_chat(raw: bytes) -> Completion:
    """An OpenAI chat completion (InvokeEndpoint's body) -> Completion."""
    answer = _json(raw)
    _raise_if_error(answer)
    choices = answer.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise _malformed("the SageMaker answer has no choices")
    choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, dict):
        raise _malformed("the SageMaker answer has no message")
    calls = tuple(_tool_call(i, c.get("id"), _dict(c.get("function")).get("name"),
                             [_dict(c.get("function")).get("arguments")])
                  for i, c in enumerate(_list(message.get("tool_calls"))) if isinstance(c, dict))
    return Completion(_text(message.get("content")), _finish_reason(choice.get("finish_reason"), calls),
                      _usage(answer.get("usage")), calls)


def from_stream(parts: Iterable[bytes]) -> Completion:
    """Payload parts of InvokeEndpointWithResponseStream -> Completion. The parts carry SSE text
    split at arbitrary bytes; `data: [DONE]` ends it. A stream that stops before the model finished
    and reported its usage is an error, never a short answer: quota and cost need real numbers."""
    answer = _StreamAnswer()
    done = False
    for data in sse_data(parts):
        if data == "[DONE]":
            done = True
            break
        answer.add(_json(data))
    return answer.completion(done)


def sse_data(parts: Iterable[bytes]) -> Iterator[str]:
    """The `data` of each server-sent event in a byte stream cut at any point (even inside a UTF-8
    character: lines are split on bytes first, and a newline byte never occurs inside a character).
    A bare JSON line counts as one event too (LMI can stream JSON lines rather than SSE)."""
    buffer = bytearray()
    data: list[str] = []
    for part in parts:
        scan = len(buffer)  # what is buffered holds no newline: look only at the new bytes
        buffer += part
        start = 0
        while (end := buffer.find(b"\n", scan)) >= 0:
            line, start = bytes(buffer[start:end]), end + 1
            scan = start
            event = _line(line, data)
            if event is not None:
                yield event
        del buffer[:start]
        if len(buffer) > MAX_LINE_BYTES:
            raise _malformed("the SageMaker stream sent a line too long to be an event")
    if buffer:  # a last line without its newline
        _line(bytes(buffer), data)
    if data:  # a last event without its blank line
        yield "\n".join(data)


def _line(raw: bytes, data: list[str]) -> str | None:
    """Fold one SSE line into the pending event's data lines; an empty line dispatches it."""
    try:
        line = raw.decode("utf-8").removesuffix("\r")
    except UnicodeDecodeError:
        raise _malformed("the SageMaker stream is not UTF-8 text") from None
    if not line:
        event = "\n".join(data) if data else None
        data.clear()
        return event
    if line.startswith("{") and not data:  # JSON lines, as some containers stream: one event each
        return line
    name, _, value = line.partition(":")
    if name == "data":  # comments (":..."), event:, id:, retry: say nothing to us
        data.append(value.removeprefix(" "))
    return None


class _StreamAnswer:
    """`chat.completion.chunk` events folded into one answer (choice 0; n is never sent)."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.tools: dict[int, dict[str, Any]] = {}  # by the delta's index: id, name, argument pieces
        self.finish: str | None = None
        self.usage: Any = None

    def add(self, chunk: Any) -> None:
        _raise_if_error(chunk)
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for choice in _list(chunk.get("choices")):
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = _dict(choice.get("delta"))
            if isinstance(delta.get("content"), str):
                self.text.append(delta["content"])
            for position, piece in enumerate(_list(delta.get("tool_calls"))):
                if isinstance(piece, dict):
                    self._tool_piece(position, piece)
            if choice.get("finish_reason"):
                self.finish = choice["finish_reason"]

    def _tool_piece(self, position: int, piece: Mapping[str, Any]) -> None:
        index = piece.get("index", position)
        slot = self.tools.setdefault(index if isinstance(index, int) else position,
                                     {"id": None, "name": None, "arguments": []})
        function = _dict(piece.get("function"))
        slot["id"] = slot["id"] or piece.get("id")
        slot["name"] = slot["name"] or function.get("name")
        slot["arguments"].append(function.get("arguments"))

    def completion(self, done: bool) -> Completion:
        if done and self.finish is not None and self.usage is None:
            raise _malformed("the SageMaker stream reported no usage")  # stream_options not honoured
        if self.finish is None or self.usage is None:
            # Cut before the model finished, or before it said what it used: a fault, not an answer.
            raise UpstreamError("the SageMaker stream ended before the model finished",
                                code="upstream_stream_incomplete")  # a cut stream: Signal.DOWN
        calls = tuple(_tool_call(n, slot["id"], slot["name"], slot["arguments"])
                      for n, (_, slot) in enumerate(sorted(self.tools.items())))
        return Completion("".join(self.text), _finish_reason(self.finish, calls), _usage(self.usage), calls)


def from_embeddings(raw: bytes, call: EmbeddingCall) -> Embedded:
    """An OpenAI embeddings response -> Embedded, in the caller's order."""
    answer = _json(raw)
    _raise_if_error(answer)
    data = [d for d in _list(answer.get("data")) if isinstance(d, dict)]
    if len(data) != len(call.inputs):
        raise _malformed("the SageMaker answer has not one embedding per input")
    by_index = sorted(data, key=lambda d: d.get("index", 0) if isinstance(d.get("index"), int) else 0)
    vectors = tuple(_vector(d.get("embedding"), call.dimensions) for d in by_index)
    usage = answer.get("usage")
    tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    if not _count(tokens):
        # No usage reported (some embedding containers): one token per byte, the catalog's most
        # conservative floor, so the quota never undercounts.
        tokens = sum(len(text.encode("utf-8", "surrogatepass")) for text in call.inputs)
    return Embedded(vectors, int(tokens))


def _vector(value: Any, dimensions: int | None) -> tuple[float, ...]:
    if isinstance(value, str):  # base64 of little-endian float32, should a container answer so
        try:
            packed = base64.b64decode(value, validate=True)
            value = list(struct.unpack(f"<{len(packed) // 4}f", packed)) if len(packed) % 4 == 0 else None
        except (ValueError, struct.error):
            value = None
    if not isinstance(value, list) or not value or not all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in value):
        raise _malformed("the SageMaker answer has an embedding that is not a list of numbers")
    if dimensions is not None and len(value) != dimensions:
        raise _malformed("the SageMaker endpoint did not return the dimensions asked for")
    return tuple(float(x) for x in value)


def _json(raw: bytes | str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, nested absurdly
        raise _malformed("the SageMaker answer is not JSON") from None
    if not isinstance(value, dict):
        raise _malformed("the SageMaker answer is not a JSON object")
    return value


def _raise_if_error(answer: Mapping[str, Any]) -> None:
    # An OpenAI-style error inside a 200 or inside the stream (vLLM, TGI): the model failed on this
    # input. Its text may quote the prompt: never passed on.
    if "error" in answer or answer.get("object") == "error":
        raise UpstreamError("the SageMaker model failed to answer", code="upstream_model_error",
                            signal=Signal.NONE)


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return "".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    raise _malformed("the SageMaker answer's content is not text")


def _tool_call(n: int, call_id: Any, name: Any, arguments: list[Any]) -> ToolCall:
    if not isinstance(name, str) or not name:
        raise UpstreamError("the model produced a tool call without a name", code="upstream_malformed_output",
                            signal=Signal.NONE)  # this input's answer, not the deployment
    pieces = [json.dumps(a) if isinstance(a, (dict, list)) else a for a in arguments]  # TGI: an object
    text = "".join(p for p in pieces if isinstance(p, str))
    return ToolCall(call_id if isinstance(call_id, str) and call_id else f"call_{n}", name, text or "{}")


def _finish_reason(reason: Any, calls: tuple[ToolCall, ...]) -> str:
    mapped = _FINISH_REASONS.get(reason, "stop") if isinstance(reason, str) else "stop"
    return "tool_calls" if calls and mapped == "stop" and reason != "stop" else mapped


def _usage(usage: Any) -> Usage:
    if not isinstance(usage, dict) or not _count(usage.get("prompt_tokens")) \
            or not _count(usage.get("completion_tokens"), zero=True):
        raise _malformed("the SageMaker answer has no usage")  # quota and cost need it
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    # OpenAI's prompt_tokens already includes the cached tokens.
    return Usage(int(usage["prompt_tokens"]), int(usage["completion_tokens"]),
                 cache_read_tokens=int(cached) if _count(cached, zero=True) else 0)


def _count(value: Any, zero: bool = False) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= (0 if zero else 1)


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _malformed(message: str) -> GatewayError:
    # Not the shape every answer of this endpoint should have: the deployment (its container, its
    # configuration) is at fault, for every caller.
    return UpstreamError(message, code="upstream_malformed_response", signal=Signal.DOWN)


# --- errors --------------------------------------------------------------------------------------

_THROTTLED = {"ThrottlingException", "ModelNotReadyException", "TooManyRequestsException"}
_UNAVAILABLE = {"ServiceUnavailable", "InternalFailure", "InternalDependencyException", "InternalStreamFailure"}


def map_error(code: str, http_status: int | None, original_status: int | None = None) -> GatewayError:
    """A sagemaker-runtime error (botocore's service model) -> the gateway's error and what it says
    about the deployment. `original_status`: a ModelError's OriginalStatusCode, what the container
    itself answered. AWS's and the container's messages are never passed on."""
    if code == "ValidationError":  # the request, as SageMaker saw it (endpoint names included)
        return InvalidRequest("SageMaker rejected the request as invalid", code="upstream_validation")
    if code == "AccessDeniedException":
        return PermissionDenied("the gateway is not allowed to call this SageMaker endpoint",
                                code="upstream_access_denied")
    if code in _THROTTLED:
        return UpstreamThrottled("SageMaker is throttling or the model is not ready")
    if code in _UNAVAILABLE:
        return ServiceUnavailable("SageMaker is unavailable", code="upstream_unavailable")
    if code == "ModelStreamError":
        # ModelInvocationTimeExceeded or StreamBroken (botocore keeps neither ErrorCode): a long
        # answer or a dropped model connection on this request; counted for this app only.
        return ServiceUnavailable("the SageMaker model's stream failed", code="upstream_stream_error",
                                  signal=Signal.BUSY)
    if code == "ModelError":
        return _model_error(original_status)
    # Unknown codes: only a status that says "try elsewhere" earns a fallback-able error.
    if http_status == 429:
        return UpstreamThrottled("SageMaker is throttling")
    if http_status is None or http_status >= 500:
        return ServiceUnavailable("SageMaker is unavailable", code="upstream_unavailable")
    return UpstreamError("SageMaker returned an unexpected error", code="upstream_error", signal=Signal.NONE)


def _model_error(status: int | None) -> GatewayError:
    """The container answered an error (ModelError, 424): what it means depends on its own status."""
    if status == 429:  # the container's queue is full (TGI, vLLM): capacity, not this input
        return UpstreamThrottled("the SageMaker model is overloaded")
    if status == 408:
        return DeadlineExceeded("the SageMaker model timed out", code="upstream_timeout", signal=Signal.BUSY)
    if status in (400, 413, 422):  # the model refused this input (too long for its context, ...)
        return InvalidRequest("the SageMaker model rejected the request", code="upstream_validation")
    if status is not None and status >= 500:  # the container is unwell: every caller would see it
        return ServiceUnavailable("the SageMaker model failed", code="upstream_model_unavailable")
    # Other 4xx, or no status: failed on this input. Says nothing about the deployment.
    return UpstreamError("the SageMaker model failed to answer", code="upstream_model_error", signal=Signal.NONE)
