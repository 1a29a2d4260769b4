"""A loopback server that speaks Bedrock runtime's wire protocol (restJson1 + AWS event stream), so
tests drive the REAL boto3 client (serialisation, error parsing, retries, timeouts) via endpoint_url.

    with FakeBedrock({"m1": [Fail("ThrottlingException"), Reply("ok")]}) as fake:
        ... endpoint_url=fake.endpoint_url ...

A model's script is one behaviour or a list played one per call (the last one repeats), or a
function of the request body that returns one (to answer by content: one app's requests fail, an
other's succeed, on the same model).
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, Callable, Mapping, Sequence, Union

from fakes.event_stream import CONTENT_TYPE, event, exception_frame
from fakes.loopback import AwsHandler, LoopbackServer
from urllib.parse import unquote

# HTTP status per error code, from botocore's bedrock-runtime model (and FACTS.md).
ERROR_STATUS = {
    "AccessDeniedException": 403, "ResourceNotFoundException": 404, "ThrottlingException": 429,
    "ModelNotReadyException": 429, "ModelTimeoutException": 408, "ModelErrorException": 424,
    "ValidationException": 400, "InternalServerException": 500, "ServiceUnavailableException": 503,
    "ServiceQuotaExceededException": 400,
}


@dataclass(frozen=True)
class Reply:
    text: str | None = None  # None: echo the last user text
    tool_use: Mapping[str, Any] | None = None  # {"name": ..., "input": {...}}
    stop_reason: str | None = None  # default: tool_use with a tool, else end_turn
    cache_read: int = 0
    cache_write: int = 0


@dataclass(frozen=True)
class Fail:
    code: str
    message: str = "upstream said something that may quote the prompt: SECRET-PROMPT-TEXT"


@dataclass(frozen=True)
class Hang:
    seconds: float
    then: Reply = field(default_factory=Reply)


@dataclass(frozen=True)
class StreamFail:
    exception_type: str = "modelStreamErrorException"  # the stream member name, camelCase
    after_events: int = 2


Behaviour = Union[Reply, Fail, Hang, StreamFail]
Script = Union[Behaviour, Sequence[Behaviour], Callable[[dict[str, Any]], Behaviour]]


class FakeBedrock(LoopbackServer):
    def __init__(self, script: Mapping[str, Script] | None = None) -> None:
        self.script: dict[str, Script] = dict(script or {})
        self.requests: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        self.calls: dict[str, int] = {}
        super().__init__(_handler(self))

    def behaviour(self, model_id: str, path: str, body: dict[str, Any], headers: dict[str, str]) -> Behaviour:
        with self._lock:
            self.requests.append((path, body, headers))
            n = self.calls.get(model_id, 0)
            self.calls[model_id] = n + 1
            planned = self.script.get(model_id, Reply())
        if isinstance(planned, (Reply, Fail, Hang, StreamFail)):
            return planned
        if callable(planned):
            return planned(body)
        return planned[min(n, len(planned) - 1)]


def _handler(fake: FakeBedrock) -> type[BaseHTTPRequestHandler]:
    class Handler(AwsHandler):
        def do_POST(self) -> None:
            raw = self.read_body()
            parts = self.path.split("/")  # /model/{id}/converse[-stream] | /model/{id}/invoke (embeddings)
            if len(parts) != 4 or parts[1] != "model" or parts[3] not in ("converse", "converse-stream", "invoke"):
                return self.send_json(404, {"message": "unknown route"}, error_type="UnknownOperationException")
            model_id, body = unquote(parts[2]), json.loads(raw or b"{}")
            behaviour = fake.behaviour(model_id, self.path, body, {k.lower(): v for k, v in self.headers.items()})
            if isinstance(behaviour, Hang):
                if fake.stopping.wait(behaviour.seconds):
                    return
                behaviour = behaviour.then
            if isinstance(behaviour, Fail):
                return self.send_json(ERROR_STATUS.get(behaviour.code, 500), {"message": behaviour.message},
                                      error_type=behaviour.code)
            reply = behaviour if isinstance(behaviour, Reply) else Reply()
            if parts[3] == "invoke":
                answer, tokens = _invoke_body(model_id, body)
                return self.send_bytes(200, json.dumps(answer).encode(), "application/json",
                                       {"X-Amzn-Bedrock-Input-Token-Count": str(tokens)})
            if parts[3] == "converse":
                return self.send_json(200, _converse_body(body, reply))
            frames = _stream_frames(body, reply)
            if isinstance(behaviour, StreamFail):
                frames = frames[: behaviour.after_events] + [
                    exception_frame(behaviour.exception_type, {"message": "model stream failed: SECRET-PROMPT-TEXT"})]
            self.send_bytes(200, b"".join(frames), CONTENT_TYPE)

    return Handler


def fake_vector(text: str, dimensions: int) -> list[float]:
    """The fake's embedding of `text`: deterministic, unit length (Titan normalises; so does this)."""
    raw = [int.from_bytes(hashlib.sha256(f"{i}:{text}".encode()).digest()[:4], "big") / 2**31 - 1.0
           for i in range(dimensions)]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    return [x / norm for x in raw]


def _invoke_body(model_id: str, body: Mapping[str, Any]) -> tuple[dict[str, Any], int]:
    """InvokeModel for embedding models: Titan (one inputText) or Cohere (texts), and the input
    token count Bedrock reports in X-Amzn-Bedrock-Input-Token-Count (here: 1 per 4 bytes, rounded up)."""
    if "cohere.embed" in model_id:
        texts = list(body["texts"])
        tokens = sum(-(-len(t.encode()) // 4) for t in texts)
        return {"id": "fake-id", "response_type": "embeddings_floats", "texts": texts,
                "embeddings": [fake_vector(t, 1024) for t in texts]}, tokens
    text = body["inputText"]
    tokens = -(-len(text.encode()) // 4)
    vector = fake_vector(text, int(body.get("dimensions", 1024)))
    return {"embedding": vector, "inputTextTokenCount": tokens, "embeddingsByType": {"float": vector}}, tokens


def _last_user_text(body: Mapping[str, Any]) -> str:
    for message in reversed(body.get("messages", [])):
        if message.get("role") == "user":
            texts = [b["text"] for b in message.get("content", []) if "text" in b]
            if texts:
                return texts[-1]
    return ""


def _usage(body: Mapping[str, Any], text: str, reply: Reply) -> dict[str, int]:
    prompt = sum(len(json.dumps(m)) for m in body.get("messages", [])) // 4 + 1
    output = len(text) // 4 + 1
    usage = {"inputTokens": prompt, "outputTokens": output,
             "totalTokens": prompt + output + reply.cache_read + reply.cache_write}
    if reply.cache_read or reply.cache_write:
        usage.update(cacheReadInputTokens=reply.cache_read, cacheWriteInputTokens=reply.cache_write)
    return usage


def _reply_parts(body: Mapping[str, Any], reply: Reply) -> tuple[str, str]:
    text = reply.text if reply.text is not None else ("" if reply.tool_use else _last_user_text(body))
    stop = reply.stop_reason or ("tool_use" if reply.tool_use else "end_turn")
    return text, stop


def _converse_body(body: Mapping[str, Any], reply: Reply) -> dict[str, Any]:
    text, stop = _reply_parts(body, reply)
    content: list[dict[str, Any]] = [{"text": text}] if text else []
    if reply.tool_use:
        content.append({"toolUse": {"toolUseId": "tooluse_fake1", "name": reply.tool_use["name"],
                                    "input": reply.tool_use.get("input", {})}})
    return {"output": {"message": {"role": "assistant", "content": content}}, "stopReason": stop,
            "usage": _usage(body, text, reply), "metrics": {"latencyMs": 7}}


def _stream_frames(body: Mapping[str, Any], reply: Reply) -> list[bytes]:
    text, stop = _reply_parts(body, reply)
    frames = [event("messageStart", {"role": "assistant"})]
    index = 0
    if text:
        pieces = [text[i:i + 5] for i in range(0, len(text), 5)]
        frames += [event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": p}}) for p in pieces]
        frames.append(event("contentBlockStop", {"contentBlockIndex": 0}))
        index = 1
    if reply.tool_use:
        frames.append(event("contentBlockStart", {"contentBlockIndex": index, "start": {"toolUse": {
            "toolUseId": "tooluse_fake1", "name": reply.tool_use["name"]}}}))
        arguments = json.dumps(reply.tool_use.get("input", {}))
        half = len(arguments) // 2  # split mid-token, as Bedrock does
        for piece in (arguments[:half], arguments[half:]):
            frames.append(event("contentBlockDelta", {"contentBlockIndex": index,
                                                      "delta": {"toolUse": {"input": piece}}}))
        frames.append(event("contentBlockStop", {"contentBlockIndex": index}))
    frames.append(event("messageStop", {"stopReason": stop}))
    frames.append(event("metadata", {"usage": _usage(body, text, reply), "metrics": {"latencyMs": 7}}))
    return frames
