"""A loopback server that speaks OpenAI's chat completions and embeddings API, as vLLM or the LiteLLM
tier would: JSON answers, SSE streams (chunked transfer encoding, split at odd bytes), errors in
OpenAI's shape that quote the prompt (as real upstreams do), keep-alive.

    with FakeOpenAI({"m1": [Fail(429), Reply("ok")]}, keys={"sk-1"}) as fake:
        ... base_url=fake.base_url ...

A model's script is one behaviour or a list played one per call (the last one repeats), or a
function of the request body that returns one.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, Callable, Mapping, Sequence, Union

from fakes.loopback import AwsHandler, LoopbackServer


@dataclass(frozen=True)
class Reply:
    text: str | None = None  # None: echo the last user text
    tool_call: Mapping[str, Any] | None = None  # {"name": ..., "arguments": {...}}
    finish_reason: str | None = None  # default: tool_calls with a tool call, else stop
    cached_tokens: int | None = None  # reported as usage.prompt_tokens_details.cached_tokens
    usage: bool = True  # False: report no usage (a server that ignores include_usage)
    split: int = 7  # streams: the body goes out in chunks of this many bytes
    crlf: bool = False  # streams: CRLF line endings


@dataclass(frozen=True)
class Fail:
    status: int
    message: str = "upstream said something that may quote the prompt: SECRET-PROMPT-TEXT"


@dataclass(frozen=True)
class Hang:
    """Send nothing for `seconds` (or until the server stops), then behave as `then`."""

    seconds: float
    then: Reply = field(default_factory=Reply)


@dataclass(frozen=True)
class Trickle:
    """Answer 200 and stream, then stall `seconds` after `after_bytes` of the body."""

    after_bytes: int = 20
    seconds: float = 30.0


@dataclass(frozen=True)
class StreamError:
    """A 200 stream that carries an `error` object after its first chunk, as LiteLLM sends."""

    code: int = 500
    message: str = "mid-stream failure quoting SECRET-PROMPT-TEXT"


@dataclass(frozen=True)
class Drop:
    """Close the connection without an answer."""


Behaviour = Union[Reply, Fail, Hang, Trickle, StreamError, Drop]
Script = Union[Behaviour, Sequence[Behaviour], Callable[[dict[str, Any]], Behaviour]]


class FakeOpenAI(LoopbackServer):
    def __init__(self, script: Mapping[str, Script] | None = None, keys: set[str] | None = None,
                 idle_timeout_s: float | None = None) -> None:
        self.script: dict[str, Script] = dict(script or {})
        self.keys = keys  # None: no Authorization checked
        self.idle_timeout_s = idle_timeout_s  # close a kept-alive connection idle this long (as uvicorn does)
        self.requests: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        self.connections: set[int] = set()  # client ports seen: one per TCP connection
        self.calls: dict[str, int] = {}
        super().__init__(_handler(self))

    @property
    def base_url(self) -> str:
        return f"{self.endpoint_url}/v1"

    def behaviour(self, model: str, path: str, body: dict[str, Any], headers: dict[str, str],
                  port: int) -> Behaviour:
        with self._lock:
            self.requests.append((path, body, headers))
            self.connections.add(port)
            n = self.calls.get(model, 0)
            self.calls[model] = n + 1
            planned = self.script.get(model, Reply())
        if isinstance(planned, (Reply, Fail, Hang, Trickle, StreamError, Drop)):
            return planned
        if callable(planned):
            return planned(body)
        return planned[min(n, len(planned) - 1)]


def _handler(fake: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(AwsHandler):
        timeout = fake.idle_timeout_s

        def do_POST(self) -> None:
            raw = self.read_body()
            if self.path not in ("/v1/chat/completions", "/v1/embeddings"):
                return self.send_json(404, _error("unknown route", "not_found"))
            headers = {k.lower(): v for k, v in self.headers.items()}
            if fake.keys is not None and headers.get("authorization", "")[len("Bearer "):] not in fake.keys:
                return self.send_json(401, _error("Incorrect API key provided", "invalid_api_key"))
            body = json.loads(raw or b"{}")
            behaviour = fake.behaviour(str(body.get("model")), self.path, body, headers, self.client_address[1])
            if isinstance(behaviour, Hang):
                if fake.stopping.wait(behaviour.seconds):
                    return
                behaviour = behaviour.then
            if isinstance(behaviour, Drop):
                self.close_connection = True
                return
            if isinstance(behaviour, Fail):
                return self.send_json(behaviour.status, _error(behaviour.message, "upstream_error"))
            if self.path == "/v1/embeddings":
                return self.send_json(200, _embeddings(body))
            reply = behaviour if isinstance(behaviour, Reply) else Reply()
            if not body.get("stream"):
                return self.send_json(200, _completion(body, reply))
            events = _chunks(body, reply)
            if isinstance(behaviour, StreamError):
                events = events[:1] + [{"error": {"message": behaviour.message, "code": behaviour.code}}]
            eol = "\r\n" if reply.crlf else "\n"
            stream = "".join(f"data: {json.dumps(e)}{eol}{eol}" for e in events)
            if not isinstance(behaviour, StreamError):
                stream += f": keep-alive comment{eol}{eol}data: [DONE]{eol}{eol}"
            self.send_chunked(stream.encode(), reply.split, behaviour if isinstance(behaviour, Trickle) else None)

        def send_chunked(self, payload: bytes, size: int, trickle: Trickle | None) -> None:
            try:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for start in range(0, len(payload), size):
                    if trickle is not None and start >= trickle.after_bytes:
                        fake.stopping.wait(trickle.seconds)
                        return
                    piece = payload[start:start + size]
                    self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                    self.wfile.flush()
                    time.sleep(0)
                self.wfile.write(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass

    return Handler


def _error(message: str, code: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}


def _last_user_text(body: Mapping[str, Any]) -> str:
    for message in reversed(body.get("messages", [])):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return "".join(p.get("text", "") for p in content)
            return content or ""
    return ""


def _usage(body: Mapping[str, Any], text: str, reply: Reply) -> dict[str, Any] | None:
    if not reply.usage:
        return None
    prompt = len(json.dumps(body.get("messages", []))) // 4 + 1
    usage: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": len(text) // 4 + 1,
                             "total_tokens": prompt + len(text) // 4 + 1}
    if reply.cached_tokens is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": reply.cached_tokens}
    return usage


def _tool_calls(reply: Reply) -> list[dict[str, Any]]:
    if reply.tool_call is None:
        return []
    return [{"id": "call_fake_1", "type": "function", "function": {
        "name": reply.tool_call["name"], "arguments": json.dumps(reply.tool_call.get("arguments", {}))}}]


def _text(body: Mapping[str, Any], reply: Reply) -> str:
    return _last_user_text(body) if reply.text is None else reply.text


def _finish(reply: Reply) -> str:
    return reply.finish_reason or ("tool_calls" if reply.tool_call else "stop")


def _completion(body: Mapping[str, Any], reply: Reply) -> dict[str, Any]:
    text, calls = _text(body, reply), _tool_calls(reply)
    message: dict[str, Any] = {"role": "assistant", "content": None if calls and not reply.text else text}
    if calls:
        message["tool_calls"] = calls
    answer: dict[str, Any] = {"id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
                              "model": body.get("model"),
                              "choices": [{"index": 0, "message": message, "finish_reason": _finish(reply)}]}
    usage = _usage(body, text, reply)
    if usage is not None:
        answer["usage"] = usage
    return answer


def _chunks(body: Mapping[str, Any], reply: Reply) -> list[dict[str, Any]]:
    text, calls = _text(body, reply), _tool_calls(reply)
    base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()),
            "model": body.get("model")}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    events = [chunk({"role": "assistant", "content": ""})]
    if not calls:
        events += [chunk({"content": text[i:i + 5]}) for i in range(0, len(text), 5)]
    for k, call in enumerate(calls):
        arguments = call["function"]["arguments"]
        events.append(chunk({"tool_calls": [{"index": k, "id": call["id"], "type": "function",
                                             "function": {"name": call["function"]["name"], "arguments": ""}}]}))
        events += [chunk({"tool_calls": [{"index": k, "function": {"arguments": arguments[i:i + 4]}}]})
                   for i in range(0, len(arguments), 4)]
    events.append(chunk({}, _finish(reply)))
    usage = _usage(body, text, reply)
    if usage is not None and (body.get("stream_options") or {}).get("include_usage"):
        events.append({**base, "choices": [], "usage": usage})
    return events


def _embeddings(body: Mapping[str, Any]) -> dict[str, Any]:
    inputs = body.get("input")
    texts = [inputs] if isinstance(inputs, str) else list(inputs or [])
    size = int(body.get("dimensions") or 8)
    data = []
    for index, text in enumerate(texts):
        raw = [math.sin(len(text) + index + i) for i in range(size)]
        norm = math.sqrt(sum(x * x for x in raw)) or 1.0
        data.append({"object": "embedding", "index": index, "embedding": [x / norm for x in raw]})
    tokens = sum(len(t) // 4 + 1 for t in texts)
    return {"object": "list", "data": list(reversed(data)), "model": body.get("model"),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
