"""OpenAI-compatible upstreams (the LiteLLM tier, vLLM, TGI) behind the provider port: one
attempt per call, typed errors.

No retry here: a 429 or 5xx is the router's to fall back on (the LiteLLM tier retries and balances
among its own model deployments already). The exception is the API key: a 401 gets one more try
with a refreshed key (keys.py). The call's deadline bounds everything, the SSM read included: every
socket operation is fitted to the time left (upstream_http.py).
"""
from __future__ import annotations

import time
from typing import Callable, Iterator

from chalicelib import deadline
from chalicelib import tracing
from chalicelib.catalog import Deployment
from chalicelib.chat import Completion
from chalicelib.errors import DeadlineExceeded, Signal
from chalicelib.providers import Embedded, EmbeddingCall, ProviderCall
from chalicelib.providers.openai import translate
from chalicelib.providers.openai.keys import ApiKeys
from chalicelib.providers.sse import SseDecoder
from chalicelib.providers.upstream_http import HttpPool, Response, TransportError

MAX_RESPONSE_BYTES = 8 * 1024 * 1024  # above Lambda's 6 MB answer: anything larger cannot be served
USER_AGENT = "execution-garden"


class OpenAIProvider:
    def __init__(self, pool: HttpPool, keys: ApiKeys, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._pool = pool
        self._keys = keys
        self._monotonic = monotonic

    def complete(self, call: ProviderCall) -> Completion:
        payload = translate.encode(translate.chat_body(call))  # may raise InvalidRequest first
        stream = call.request.stream
        response = self._post(call.deployment, "/chat/completions", payload, call.deadline, stream)
        try:
            if stream and response.headers.get("content-type", "").startswith("text/event-stream"):
                completion = translate.from_chunks(_events(response))
            else:  # an upstream that ignores `stream` answers plain JSON: take it as it is
                completion = translate.from_chat(translate.decode(_read(response)))
        finally:
            response.close()
        self._check_deadline(call.deadline)
        return completion

    def embed(self, call: EmbeddingCall) -> Embedded:
        payload = translate.encode(translate.embeddings_body(call))
        response = self._post(call.deployment, "/embeddings", payload, call.deadline, stream=False)
        try:
            vectors, tokens = translate.from_embeddings(translate.decode(_read(response)), call)
        finally:
            response.close()
        self._check_deadline(call.deadline)
        if tokens is None:  # not reported: one token per UTF-8 byte, an upper bound for any BPE tokenizer
            tokens = sum(len(text.encode("utf-8", "surrogatepass")) for text in call.inputs)
        return Embedded(vectors, tokens)

    def _post(self, deployment: Deployment, path: str, payload: bytes, until: float, stream: bool) -> Response:
        """The upstream's 2xx response, its body unread; any other outcome is a GatewayError."""
        if until - self._monotonic() <= 0:
            raise DeadlineExceeded("no time left to call the upstream")
        url = (deployment.base_url or "").rstrip("/") + path
        # The key's SSM read is held to the call's deadline like every boto3 call of the gateway.
        with deadline.bound(deadline.Deadline(until, 0.0, self._monotonic)):
            key = self._keys.get(deployment)
            response = self._send(url, payload, key, until, stream)
            if 200 <= response.status < 300:
                return response
            refused = translate.key_refused(response.status, _discard(response))
            if refused:  # rotated under us? one more try with the key SSM holds now
                key = self._keys.refresh(deployment, key)
                if key is None:
                    raise translate.map_status(401)
                response = self._send(url, payload, key, until, stream)
                if 200 <= response.status < 300:
                    return response
                refused = translate.key_refused(response.status, _discard(response))
        raise translate.map_status(401 if refused else response.status)

    def _send(self, url: str, payload: bytes, key: str | None, until: float, stream: bool) -> Response:
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
                   "Accept": "text/event-stream" if stream else "application/json"}
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        tracing.inject(headers)  # traceparent: the upstream's own spans join the gateway's trace
        try:
            return self._pool.post(url, payload, headers, until)
        except TransportError as exc:
            raise translate.map_transport(exc.kind) from exc

    def _check_deadline(self, until: float) -> None:
        if self._monotonic() > until:
            raise DeadlineExceeded("the upstream answered after the deadline", code="upstream_timeout",
                                   signal=Signal.BUSY)


def _read(response: Response) -> bytes:
    try:
        return response.read_all(MAX_RESPONSE_BYTES)
    except TransportError as exc:
        raise translate.map_transport(exc.kind) from exc


def _events(response: Response) -> Iterator[str]:
    decoder = SseDecoder()
    try:
        for piece in response.pieces(MAX_RESPONSE_BYTES):
            yield from decoder.feed(piece)
    except TransportError as exc:
        raise translate.map_transport(exc.kind) from exc
    yield from decoder.end()


def _discard(response: Response) -> bytes:
    """An error answer's body (when small; drained, so the connection is kept). Only translate.key_refused
    reads it, for the error's type: its message may quote the prompt."""
    try:
        return response.read_all(64 * 1024)
    except TransportError:
        return b""
    finally:
        response.close()
