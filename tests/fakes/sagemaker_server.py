"""A loopback server that speaks SageMaker runtime's wire protocol (restJson1, and the AWS event
stream of InvokeEndpointWithResponseStream), hosting a fake OpenAI-compatible container (the
Messages API of LMI, TGI, vLLM), so tests drive the REAL boto3 client through
AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME or endpoint_url.

    with FakeSageMaker({"llama-endpoint": [Fail("ModelError", 500), Reply("ok")]}) as fake:
        ...

An endpoint's script is one behaviour or a list played one per call (the last one repeats). A chat
answer echoes the last user text unless told otherwise; an embeddings body (`input`) gets
deterministic vectors. Streams go out one payload part per SSE event, or cut at given byte offsets.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, Mapping, Sequence, Union
from urllib.parse import unquote

from fakes.event_stream import CONTENT_TYPE, blob_event, exception_frame
from fakes.loopback import AwsHandler, LoopbackServer

SECRET = "SECRET-PROMPT-TEXT"  # in every error message: the gateway must never pass it on
# HTTP status per error code: botocore's sagemaker-runtime model; the last two are AWS's common errors.
ERROR_STATUS = {"ValidationError": 400, "ModelError": 424, "ModelNotReadyException": 429,
                "InternalFailure": 500, "ServiceUnavailable": 503, "InternalDependencyException": 530,
                "ThrottlingException": 400, "AccessDeniedException": 400}


@dataclass(frozen=True)
class Reply:
    text: str | None = None  # None: echo the last user text (empty when calling tools)
    tool_calls: Sequence[Mapping[str, Any]] = ()  # [{"name": ..., "arguments": {...}}]
    finish_reason: str | None = None  # default: tool_calls with tools, else stop
    usage: bool = True  # False: the container reports none (stream_options not honoured)
    cached_tokens: int = 0
    split_at: Sequence[int] | None = None  # stream: byte offsets where payload parts are cut
    sse: bytes | None = None  # stream: exactly this SSE text instead of the generated one


@dataclass(frozen=True)
class Fail:
    code: str  # ModelError, ValidationError, ModelNotReadyException, ...
    original_status: int | None = None  # ModelError: what the container answered


@dataclass(frozen=True)
class Hang:
    seconds: float
    then: Reply = field(default_factory=Reply)


@dataclass(frozen=True)
class StreamFail:
    """A stream exception event after some payload parts (ModelStreamError, InternalStreamFailure)."""

    exception_type: str = "ModelStreamError"
    after_parts: int = 2
    error_code: str = "ModelInvocationTimeExceeded"


@dataclass(frozen=True)
class CutShort:
    """The stream stops after `after_parts` payload parts: cleanly at a frame boundary, or `broken`
    (the connection closes mid-frame, before the chunked body's end)."""

    after_parts: int = 3
    broken: bool = False


@dataclass(frozen=True)
class Trickle:
    """Payload parts sent one by one, `interval_s` apart."""

    interval_s: float
    then: Reply = field(default_factory=Reply)


Behaviour = Union[Reply, Fail, Hang, StreamFail, CutShort, Trickle]
Script = Union[Behaviour, Sequence[Behaviour]]


@dataclass(frozen=True)
class Seen:
    endpoint: str
    operation: str  # invocations | invocations-response-stream
    body: dict[str, Any]
    headers: dict[str, str]  # lower-case names


class FakeSageMaker(LoopbackServer):
    def __init__(self, script: Mapping[str, Script] | None = None) -> None:
        self.script: dict[str, Script] = dict(script or {})
        self.requests: list[Seen] = []
        self.calls: dict[str, int] = {}
        super().__init__(_handler(self))

    def behaviour(self, seen: Seen) -> Behaviour:
        with self._lock:
            self.requests.append(seen)
            n = self.calls.get(seen.endpoint, 0)
            self.calls[seen.endpoint] = n + 1
            planned = self.script.get(seen.endpoint, Reply())
        if not isinstance(planned, (list, tuple)):
            return planned
        return planned[min(n, len(planned) - 1)]


def _handler(fake: FakeSageMaker) -> type[BaseHTTPRequestHandler]:
    class Handler(AwsHandler):
        def do_POST(self) -> None:
            raw = self.read_body()
            parts = self.path.split("/")  # /endpoints/{name}/invocations[-response-stream]
            if len(parts) != 4 or parts[1] != "endpoints" or \
                    parts[3] not in ("invocations", "invocations-response-stream"):
                return self.send_json(404, {"message": "unknown route"}, error_type="UnknownOperationException")
            seen = Seen(unquote(parts[2]), parts[3], json.loads(raw or b"{}"),
                        {k.lower(): v for k, v in self.headers.items()})
            behaviour = fake.behaviour(seen)
            if isinstance(behaviour, Hang):
                if fake.stopping.wait(behaviour.seconds):
                    return
                behaviour = behaviour.then
            if isinstance(behaviour, Fail):
                return self._fail(behaviour, _last_user_text(seen.body))
            if seen.operation == "invocations":
                reply = behaviour if isinstance(behaviour, Reply) else getattr(behaviour, "then", Reply())
                answer = _embeddings(seen.body) if "input" in seen.body else _completion(seen.body, reply)
                return self.send_json(200, answer)
            self._stream(seen.body, behaviour)

        def _fail(self, fail: Fail, prompt: str) -> None:
            # As real containers do, the messages quote the input.
            body: dict[str, Any] = {"Message": f"upstream said: {SECRET} {prompt}"}
            if fail.code == "ModelError":
                body.update(ErrorCode="CLIENT_ERROR_FROM_MODEL" if (fail.original_status or 500) < 500
                            else "SERVER_ERROR_FROM_MODEL", OriginalMessage=f"container said: {SECRET} {prompt}",
                            LogStreamArn="arn:aws:logs:us-east-1:111122223333:log-group:/aws/sagemaker/Endpoints/x")
                if fail.original_status is not None:
                    body["OriginalStatusCode"] = fail.original_status
            self.send_json(ERROR_STATUS.get(fail.code, 500), body, error_type=fail.code)

        def _stream(self, body: dict[str, Any], behaviour: Behaviour) -> None:
            reply = behaviour if isinstance(behaviour, Reply) else getattr(behaviour, "then", Reply())
            prompt = _last_user_text(body)
            sse = reply.sse if reply.sse is not None else _sse(body, reply)
            pieces = _cut(sse, reply.split_at)
            frames = [blob_event("PayloadPart", p) for p in pieces]
            if isinstance(behaviour, StreamFail):
                frames = frames[: behaviour.after_parts] + [exception_frame(behaviour.exception_type, {
                    "Message": f"stream failed: {SECRET} {prompt}", "ErrorCode": behaviour.error_code})]
            if isinstance(behaviour, CutShort):
                kept = frames[: behaviour.after_parts]
                if behaviour.broken:  # half a frame more, then hang up without the last chunk
                    half = frames[behaviour.after_parts][: len(frames[behaviour.after_parts]) // 2]
                    self._write([*kept, half], finish=False)
                    self.close_connection = True
                    return
                frames = kept
            interval = behaviour.interval_s if isinstance(behaviour, Trickle) else 0.0
            self._write(frames, interval=interval)

        def _write(self, chunks: list[bytes], finish: bool = True, interval: float = 0.0) -> None:
            # Chunked, one HTTP chunk per payload part, as SageMaker streams: the client sees each
            # part as it comes (with a Content-Length, urllib3 would wait for 64 KiB or the end).
            try:
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("X-Amzn-SageMaker-Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.send_header("x-amzn-RequestId", "00000000-0000-0000-0000-000000000000")
                self.end_headers()
                for n, chunk in enumerate(chunks):
                    if n and interval and fake.stopping.wait(interval):
                        return
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
                if finish:
                    self.wfile.write(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client gave up (deadline tests)

    return Handler


def _cut(data: bytes, split_at: Sequence[int] | None) -> list[bytes]:
    if split_at is None:  # one payload part per SSE event, as containers usually send them
        return [e + b"\n\n" for e in data.split(b"\n\n") if e]
    points = sorted({p for p in split_at if 0 < p < len(data)})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def _last_user_text(body: Mapping[str, Any]) -> str:
    for message in reversed(body.get("messages", [])):
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            return message["content"]
    return ""


def _parts(body: Mapping[str, Any], reply: Reply) -> tuple[str, list[dict[str, Any]], str, dict[str, Any]]:
    text = reply.text if reply.text is not None else ("" if reply.tool_calls else _last_user_text(body))
    calls = [{"id": f"call_fake{n}", "type": "function",
              "function": {"name": c["name"], "arguments": json.dumps(c.get("arguments", {}))}}
             for n, c in enumerate(reply.tool_calls)]
    finish = reply.finish_reason or ("tool_calls" if calls else "stop")
    prompt = len(json.dumps(body.get("messages", [])).encode()) // 4 + 1
    completion = len(text.encode()) // 4 + 1
    usage: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                             "total_tokens": prompt + completion}
    if reply.cached_tokens:
        usage["prompt_tokens_details"] = {"cached_tokens": reply.cached_tokens}
    return text, calls, finish, usage


def _completion(body: Mapping[str, Any], reply: Reply) -> dict[str, Any]:
    text, calls, finish, usage = _parts(body, reply)
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = calls
    answer: dict[str, Any] = {"id": "chatcmpl-fake", "object": "chat.completion", "created": 1700000000,
                              "model": body.get("model", ""), "choices": [
                                  {"index": 0, "message": message, "finish_reason": finish}]}
    if reply.usage:
        answer["usage"] = usage
    return answer


def _sse(body: Mapping[str, Any], reply: Reply) -> bytes:
    text, calls, finish, usage = _parts(body, reply)
    base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1700000000,
            "model": body.get("model", "")}

    def chunk(delta: dict[str, Any], finish_reason: str | None = None, **extra: Any) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}], **extra}

    chunks = [chunk({"role": "assistant", "content": ""})]
    chunks += [chunk({"content": text[i:i + 5]}) for i in range(0, len(text), 5)]
    for n, call in enumerate(calls):
        arguments = call["function"]["arguments"]
        half = len(arguments) // 2  # split mid-token, as servers do
        chunks.append(chunk({"tool_calls": [{"index": n, "id": call["id"], "type": "function",
                                             "function": {"name": call["function"]["name"], "arguments": ""}}]}))
        chunks += [chunk({"tool_calls": [{"index": n, "function": {"arguments": piece}}]})
                   for piece in (arguments[:half], arguments[half:])]
    chunks.append(chunk({}, finish))
    if reply.usage and (body.get("stream_options") or {}).get("include_usage"):
        chunks.append({**base, "choices": [], "usage": usage})
    events = [f"data: {json.dumps(c, ensure_ascii=False)}\n\n" for c in chunks] + ["data: [DONE]\n\n"]
    return "".join(events).encode("utf-8")


def fake_vector(text: str, dimensions: int) -> list[float]:
    """Deterministic, unit length."""
    raw = [int.from_bytes(hashlib.sha256(f"{i}:{text}".encode()).digest()[:4], "big") / 2**31 - 1.0
           for i in range(dimensions)]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    return [x / norm for x in raw]


def _embeddings(body: Mapping[str, Any]) -> dict[str, Any]:
    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
    dimensions = int(body.get("dimensions") or 8)
    data = [{"object": "embedding", "index": i, "embedding": fake_vector(t, dimensions)} for i, t in enumerate(inputs)]
    tokens = sum(-(-len(t.encode()) // 4) for t in inputs)
    return {"object": "list", "model": body.get("model", ""), "data": list(reversed(data)),  # any order
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
