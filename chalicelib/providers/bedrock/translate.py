"""Bedrock Converse <-> the gateway's chat types: pure functions, no boto3, no I/O.

Shapes follow botocore's `bedrock-runtime` service model (Converse / ConverseStream). Every value a
caller controls leaves here in a form that model accepts (types, lengths, name patterns, JSON depth)
or is refused with a 400 naming the field: botocore never refuses a request on the client side, and
Bedrock's own ValidationException is the exception. Error messages never quote AWS's text (a
ValidationException can echo the prompt) nor the caller's values: messages may reach logs.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Any, Iterable, Mapping

from chalicelib.chat import Completion, Message, ToolCall, Usage
from chalicelib.errors import (
    DeadlineExceeded,
    GatewayError,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    ServiceUnavailable,
    Signal,
    UpstreamError,
    UpstreamThrottled,
)
from chalicelib.providers import ProviderCall
from chalicelib.providers.json_values import check_depth, tool_schema

_CACHE_POINT: dict[str, Any] = {"cachePoint": {"type": "default"}}

_FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}
_MALFORMED = {"malformed_model_output", "malformed_tool_use"}

# From the service model: ToolName and ToolUseId (min 1, max 64, patterns), the stop sequence list
# (max 2500, members min 1). JSON nested deeper than this is refused: botocore walks documents
# recursively, and no tool schema or argument needs it.
_TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_TOOL_USE_ID = re.compile(r"[a-zA-Z0-9_.:-]{1,64}")
MAX_STOP_SEQUENCES = 2500
# requestMetadata (service model RequestMetadata): 1 to 16 entries; keys 1-256 and values 0-256
# characters of [a-zA-Z0-9\s:_@$#=/+,-.]. Our ids already fit; anything else is replaced, never sent.
_METADATA_UNSAFE = re.compile(r"[^a-zA-Z0-9:_@$#=/+,.\-]")


# --- request -------------------------------------------------------------------------------------

def to_converse(call: ProviderCall) -> dict[str, Any]:
    """kwargs for `client.converse(**kwargs)` and `client.converse_stream(**kwargs)`."""
    request = call.request
    caching = call.deployment.prompt_caching
    # An empty system text says nothing, and Converse refuses it (NonEmptyString).
    system = [{"text": m.content} for m in request.messages if m.role in ("system", "developer") and m.content]
    if system and caching:
        system.append(dict(_CACHE_POINT))

    # always: Bedrock reserves input + maxTokens
    inference: dict[str, Any] = {"maxTokens": _whole(call.max_tokens, "max_tokens")}
    if request.temperature is not None:
        inference["temperature"] = _unit(request.temperature, "temperature")
    if request.top_p is not None:
        inference["topP"] = _unit(request.top_p, "top_p")
    if request.stop:
        inference["stopSequences"] = _stop_sequences(request.stop)

    tool_config = _tool_config(call)
    kwargs: dict[str, Any] = {
        "modelId": call.deployment.model_id,
        # Converse rejects toolUse/toolResult blocks unless toolConfig is sent ("The toolConfig field
        # must be defined when using toolUse and toolResult content blocks"); without tools (or with
        # tool_choice "none") the tool history is carried as plain text instead.
        "messages": _messages(request.messages, as_text=tool_config is None),
        "inferenceConfig": inference,
    }
    if system:
        kwargs["system"] = system
    if tool_config is not None:
        kwargs["toolConfig"] = tool_config
    kwargs["requestMetadata"] = request_metadata(call)
    return kwargs


def request_metadata(call: ProviderCall) -> dict[str, str]:
    """Who a call is for, as Converse `requestMetadata`: the app, its business unit and the
    gateway's request id (the audit record's and the usage aggregates' keys). Bedrock records it
    in model invocation logs only (when they are on); ids only, never request content."""
    metadata = {"garden:app": call.app.id, "garden:business_unit": call.app.business_unit or "_unidentified"}
    if call.request_id:
        metadata["garden:request_id"] = call.request_id
    return {key: _METADATA_UNSAFE.sub("_", value)[:256] for key, value in metadata.items()}


def _messages(messages: tuple[Message, ...], as_text: bool = False) -> list[dict[str, Any]]:
    """Converse wants strictly alternating user/assistant turns: consecutive same-role messages
    (including a run of tool results, which Converse carries in a user turn) merge into one."""
    turns: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        if message.role in ("system", "developer"):
            continue
        role, blocks = _blocks(i, message, as_text)
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return turns


def _blocks(i: int, message: Message, as_text: bool) -> tuple[str, list[dict[str, Any]]]:
    if message.role == "tool":
        if not message.tool_call_id:
            raise InvalidRequest("a tool message needs tool_call_id", param=f"messages[{i}].tool_call_id")
        if as_text:
            return "user", [{"text": f"[tool result for {message.tool_call_id}]: {message.content}"}]
        result = {"toolUseId": _tool_use_id(message.tool_call_id), "content": [{"text": message.content}]}
        return "user", [{"toolResult": result}]
    if message.role == "assistant":
        # Converse rejects blank text blocks; an assistant turn that only calls tools has none.
        blocks: list[dict[str, Any]] = [{"text": message.content}] if message.content else []
        for j, tool_call in enumerate(message.tool_calls):
            param = f"messages[{i}].tool_calls[{j}].function.arguments"
            if as_text:
                arguments = json.dumps(_arguments(tool_call.arguments, param))
                blocks.append({"text": f"[tool call {tool_call.id}: {tool_call.name}({arguments})]"})
                continue
            blocks.append({"toolUse": {
                "toolUseId": _tool_use_id(tool_call.id),
                "name": _tool_name(tool_call.name, f"messages[{i}].tool_calls[{j}].function.name"),
                "input": _arguments(tool_call.arguments, param),
            }})
        return "assistant", blocks or [{"text": message.content}]
    # Text parts stay separate blocks, as the caller sent them (redactions already sit in the part
    # their entity began in); blank parts are dropped, since Converse refuses blank text blocks.
    return "user", [{"text": p} for p in message.parts if p] or [{"text": message.content}]


def _arguments(arguments: str, param: str) -> Any:
    try:
        value = json.loads(arguments, parse_constant=_no_constant) if arguments.strip() else {}
    except (ValueError, RecursionError):  # JSONDecodeError, NaN / Infinity, nesting
        raise InvalidRequest("tool call arguments are not valid JSON", param=param) from None
    check_depth(value, param)
    return value


def _no_constant(name: str) -> Any:
    raise ValueError("NaN and Infinity are not JSON")


def _whole(value: Any, param: str) -> int:
    """An integer >= 1: botocore refuses a float, even 1.0, for an integer member."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value).is_integer() \
            or value < 1:
        raise InvalidRequest(f"{param} must be a whole number of at least 1", param=param)
    return int(value)


def _unit(value: Any, param: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1 \
            or not math.isfinite(value):
        raise InvalidRequest(f"{param} must be between 0 and 1 for this model", param=param)
    return float(value)


def _stop_sequences(stop: Iterable[Any]) -> list[str]:
    sequences = list(stop)
    if len(sequences) > MAX_STOP_SEQUENCES or not all(isinstance(s, str) and s for s in sequences):
        raise InvalidRequest(f"stop takes at most {MAX_STOP_SEQUENCES} non-empty strings", param="stop")
    return sequences


def _tool_name(name: str, param: str) -> str:
    if not isinstance(name, str) or not _TOOL_NAME.fullmatch(name):
        raise InvalidRequest("a function name must be 1 to 64 letters, digits, underscores or dashes",
                             param=param)
    return name


def _tool_use_id(tool_call_id: str) -> str:
    """Tool-call ids only pair a call with its result: one that Converse would refuse (another
    provider's format, too long) is replaced by a digest, the same on the call and on its result."""
    if _TOOL_USE_ID.fullmatch(tool_call_id):
        return tool_call_id
    return "id_" + hashlib.sha256(tool_call_id.encode("utf-8", "surrogatepass")).hexdigest()[:40]


def _tool_config(call: ProviderCall) -> dict[str, Any] | None:
    request = call.request
    # Converse has no "none": the only way to forbid tool use is to offer no tools.
    if not request.tools or request.tool_choice == "none":
        return None
    tools: list[dict[str, Any]] = []
    for k, tool in enumerate(request.tools):
        param = f"tools[{k}].function"
        spec: dict[str, Any] = {"name": _tool_name(tool.name, f"{param}.name"),
                                "inputSchema": {"json": tool_schema(tool.parameters, f"{param}.parameters")}}
        if tool.description:  # Converse requires a non-empty description when present
            spec["description"] = tool.description
        tools.append({"toolSpec": spec})
    if call.deployment.prompt_caching:
        tools.append(dict(_CACHE_POINT))
    config: dict[str, Any] = {"tools": tools}
    choice = request.tool_choice
    if choice == "auto":
        config["toolChoice"] = {"auto": {}}
    elif choice == "required":
        config["toolChoice"] = {"any": {}}
    elif choice:
        config["toolChoice"] = {"tool": {"name": _tool_name(choice, "tool_choice")}}
    return config


# --- response ------------------------------------------------------------------------------------

def from_converse(response: Mapping[str, Any]) -> Completion:
    content = response.get("output", {}).get("message", {}).get("content", [])
    texts: list[str] = []
    calls: list[ToolCall] = []
    for block in content:
        if "text" in block:
            texts.append(block["text"])
        elif "toolUse" in block:
            use = block["toolUse"]
            calls.append(ToolCall(use["toolUseId"], use["name"], json.dumps(use.get("input", {}))))
        # reasoningContent, citations, images: not carried by the OpenAI chat format we answer in
    return Completion(
        content="".join(texts),
        finish_reason=_finish_reason(response.get("stopReason")),
        usage=_usage(response.get("usage")),
        tool_calls=tuple(calls),
    )


def from_stream(events: Iterable[Mapping[str, Any]]) -> Completion:
    """Fold ConverseStream events (as botocore parses them) into one Completion."""
    texts: dict[int, list[str]] = {}
    tools: dict[int, tuple[str, str]] = {}  # block index -> (toolUseId, name)
    tool_inputs: dict[int, list[str]] = {}
    stop_reason: str | None = None
    usage: Mapping[str, Any] | None = None
    for event in events:
        if "contentBlockStart" in event:
            start = event["contentBlockStart"]
            use = start.get("start", {}).get("toolUse")
            if use:
                tools[start["contentBlockIndex"]] = (use["toolUseId"], use["name"])
        elif "contentBlockDelta" in event:
            delta_event = event["contentBlockDelta"]
            index, delta = delta_event["contentBlockIndex"], delta_event.get("delta", {})
            if "text" in delta:
                texts.setdefault(index, []).append(delta["text"])
            elif "toolUse" in delta:
                tool_inputs.setdefault(index, []).append(delta["toolUse"].get("input", ""))
        elif "messageStop" in event:
            stop_reason = event["messageStop"]["stopReason"]
        elif "metadata" in event:
            usage = event["metadata"].get("usage")
        # messageStart, contentBlockStop: nothing to keep
    if stop_reason is None or usage is None:
        # Without messageStop and metadata the answer may be cut and its usage is unknown: quota and
        # cost settlement need real numbers, so this is a fault, not a short answer.
        raise UpstreamError("the Bedrock stream ended before the model finished",
                            code="upstream_stream_incomplete")  # a cut connection: Signal.DOWN
    calls = tuple(
        ToolCall(tool_id, name, _stream_arguments("".join(tool_inputs.get(index, []))))
        for index, (tool_id, name) in sorted(tools.items())
    )
    content = "".join("".join(texts[index]) for index in sorted(texts))
    return Completion(content, _finish_reason(stop_reason), _usage(usage), calls)


def _stream_arguments(partial_json: str) -> str:
    # Streamed tool input arrives as JSON text in pieces; normalise it like Converse's `input`.
    try:
        return json.dumps(json.loads(partial_json)) if partial_json.strip() else "{}"
    except json.JSONDecodeError:
        raise UpstreamError("the model produced malformed tool input", code="upstream_malformed_output",
                            signal=Signal.NONE) from None  # this input's answer, not the deployment


def _finish_reason(stop_reason: str | None) -> str:
    if stop_reason in _MALFORMED:
        raise UpstreamError("the model produced malformed output", code="upstream_malformed_output",
                            signal=Signal.NONE)
    return _FINISH_REASONS.get(stop_reason or "end_turn", "stop")


def _usage(usage: Mapping[str, Any] | None) -> Usage:
    # Bedrock's `inputTokens` counts only the uncached input: cache reads and writes are reported
    # beside it, not inside it (AWS prompt-caching guide: tokens "not read from or written to cache"
    # are charged at the standard input rate; TokenUsage lists the three as separate counts). The
    # OpenAI `prompt_tokens` is the whole prompt, so the three are summed; cost.py prices the cache
    # parts from cache_read_tokens / cache_write_tokens.
    usage = usage or {}
    read = int(usage.get("cacheReadInputTokens", 0) or 0)
    write = int(usage.get("cacheWriteInputTokens", 0) or 0)
    return Usage(
        prompt_tokens=int(usage.get("inputTokens", 0)) + read + write,
        completion_tokens=int(usage.get("outputTokens", 0)),
        cache_read_tokens=read,
        cache_write_tokens=write,
    )


# --- errors --------------------------------------------------------------------------------------

_THROTTLED = {"ThrottlingException", "ModelNotReadyException", "ServiceQuotaExceededException"}
_UNAVAILABLE = {"ServiceUnavailableException", "InternalServerException"}


def map_error(code: str, http_status: int | None) -> GatewayError:
    """A Bedrock error code -> the gateway's error and what it says about the deployment. AWS's
    message is never passed on (it may quote the prompt); `http_status` only breaks ties for codes
    we do not know."""
    # Mid-stream exception events carry the stream member name (`throttlingException`).
    code = code[:1].upper() + code[1:] if code else ""
    if code == "ValidationException":
        return InvalidRequest("Bedrock rejected the request as invalid", code="upstream_validation")
    if code == "AccessDeniedException":
        return PermissionDenied("the gateway is not allowed to call this Bedrock model",
                                code="upstream_access_denied")
    if code == "ResourceNotFoundException":
        return NotFound("the Bedrock model or inference profile was not found",
                        code="upstream_model_not_found")
    if code in _THROTTLED:
        return UpstreamThrottled("Bedrock is throttling or the model is not ready")
    if code == "ModelTimeoutException":  # a long answer to this request: counted for this app only
        return DeadlineExceeded("the Bedrock model timed out", code="upstream_timeout", signal=Signal.BUSY)
    if code in _UNAVAILABLE:
        return ServiceUnavailable("Bedrock is unavailable", code="upstream_unavailable")
    if code in ("ModelErrorException", "ModelStreamErrorException"):  # 424: failed on this input
        return UpstreamError("the Bedrock model failed to answer", code="upstream_model_error",
                             signal=Signal.NONE)
    # Unknown codes: only a status that says "try elsewhere" earns a fallback-able error.
    if http_status == 429:
        return UpstreamThrottled("Bedrock is throttling")
    if http_status == 503:
        return ServiceUnavailable("Bedrock is unavailable", code="upstream_unavailable")
    fault = http_status is None or http_status >= 500
    return UpstreamError("Bedrock returned an unexpected error", code="upstream_error",
                         signal=Signal.DOWN if fault else Signal.NONE)
