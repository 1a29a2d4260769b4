"""SageMaker endpoints behind the provider port: one attempt per call, typed errors.

`InvokeEndpoint` for chat and embeddings, `InvokeEndpointWithResponseStream` for `stream: true`
(buffered: the gateway answers the whole SSE body at once). Clients come from the shared runtime
factory (chalicelib/aws/runtime_clients.py): cached, signed with the app's operations-account session
when configured, read timeouts fitted to the deadline and guarded by its hooks. botocore makes the
bounded retries inside the attempt; the router owns fallback and the request deadline.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Iterator, TypeVar

from chalicelib.aws.runtime_clients import ClientFor, call_within_deadline, transport_error
from chalicelib import tracing
from chalicelib.chat import Completion
from chalicelib.errors import DeadlineExceeded, GatewayError, Signal, UpstreamError
from chalicelib.providers import Embedded, EmbeddingCall, ProviderCall
from chalicelib.providers.sagemaker.translate import (from_chat, from_embeddings, from_stream, invoke_kwargs,
                                                      map_error, to_chat, to_embeddings)

T = TypeVar("T")
MAX_BODY_BYTES = 6 * 1024 * 1024  # InvokeEndpoint's own response limit
READ_CHUNK = 64 * 1024


class SageMakerProvider:
    def __init__(self, client_for: ClientFor, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._client_for = client_for
        self._monotonic = monotonic

    def complete(self, call: ProviderCall) -> Completion:
        kwargs = tracing.inject_sagemaker(invoke_kwargs(call.deployment, to_chat(call)))  # may raise InvalidRequest

        def invoke(client: Any) -> Completion:
            if not call.request.stream:
                response = client.invoke_endpoint(**kwargs)
                return from_chat(self._read(response["Body"], call.deadline))
            stream = client.invoke_endpoint_with_response_stream(**kwargs)["Body"]
            try:
                return from_stream(self._parts(stream, call.deadline))
            finally:
                stream.close()  # [DONE] may come before the event stream ends: let the connection go

        return self._call(call.app, call.deployment, call.deadline, invoke)

    def embed(self, call: EmbeddingCall) -> Embedded:
        kwargs = tracing.inject_sagemaker(invoke_kwargs(call.deployment, to_embeddings(call)))

        def invoke(client: Any) -> Embedded:
            response = client.invoke_endpoint(**kwargs)
            return from_embeddings(self._read(response["Body"], call.deadline), call)

        return self._call(call.app, call.deployment, call.deadline, invoke)

    def _call(self, app: Any, deployment: Any, until: float, invoke: Callable[[Any], T]) -> T:
        return call_within_deadline(self._client_for, app, deployment, until, invoke, _translate, "SageMaker",
                                    self._monotonic)

    def _read(self, body: Any, until: float) -> bytes:
        # read_timeout bounds each socket read, not the whole body: a container that trickles its
        # answer could otherwise run past the deadline.
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in body.iter_chunks(READ_CHUNK):
                self._check(until)
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    raise UpstreamError("the SageMaker answer is too large", code="upstream_malformed_response")
                chunks.append(chunk)
        finally:
            body.close()
        return b"".join(chunks)

    def _parts(self, stream: Any, until: float) -> Iterator[bytes]:
        for event in stream:
            self._check(until)
            part = event.get("PayloadPart")
            if part is not None:
                yield part.get("Bytes", b"")

    def _check(self, until: float) -> None:
        if self._monotonic() > until:
            raise DeadlineExceeded("the SageMaker answer ran past the deadline", code="upstream_timeout",
                                   signal=Signal.BUSY)


def _translate(exc: BaseException) -> GatewayError:
    """Any failure of the boto3 call or of reading its answer -> a GatewayError, with what it says
    about the deployment (`signal`) for the router's breakers."""
    from botocore.exceptions import ClientError  # lazy: keeps boto3 out of cold start when unused

    if isinstance(exc, ClientError):  # EventStreamError (ModelStreamError mid-stream) included
        response = exc.response
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        original = response.get("OriginalStatusCode")  # ModelError: the container's own status
        return map_error(str(response.get("Error", {}).get("Code", "")), status,
                         original if isinstance(original, int) else None)
    return transport_error(exc, "SageMaker")
