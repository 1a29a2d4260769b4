"""Bedrock Converse (chat) and InvokeModel (embeddings) behind the provider port: one attempt per call, typed errors.

botocore makes the bounded retries inside that attempt (standard mode, `total_max_attempts`); the
router owns fallback and the request deadline. Clients are guarded like every AWS client of the
gateway (chalicelib/deadline.py): a call whose worst case does not fit the deadline is not made, a
retry that would not finish in time is vetoed. Each client's read timeout is fitted to the time left.
"""
from __future__ import annotations

import contextvars
import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterator, Mapping, TypeVar

from chalicelib.aws.runtime_clients import (ClientFor, call_within_deadline, runtime_client_factory,
                                            transport_error)
from chalicelib.aws.sts_credentials import AssumedRoleCredentials
from chalicelib.chat import Completion
from chalicelib.errors import DeadlineExceeded, GatewayError, Signal
from chalicelib.providers import Embedded, EmbeddingCall, ProviderCall
from chalicelib.providers.bedrock.embeddings import from_invoke_model, to_invoke_model
from chalicelib.providers.bedrock.translate import from_converse, from_stream, map_error, to_converse


# Embedding calls in flight at once per request (Titan takes one input a call); botocore's
# connection pool holds 10 per client.
EMBED_PARALLEL = 8


class BedrockProvider:
    def __init__(self, client_for: ClientFor, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._client_for = client_for
        self._monotonic = monotonic

    def complete(self, call: ProviderCall) -> Completion:
        kwargs = to_converse(call)  # may raise InvalidRequest before any network work

        def converse(client: Any) -> Completion:
            if call.request.stream:
                response = client.converse_stream(**kwargs)
                return from_stream(self._until_deadline(response["stream"], call.deadline))
            return from_converse(client.converse(**kwargs))

        return self._call(call, converse)

    def embed(self, call: EmbeddingCall) -> Embedded:
        """InvokeModel for Titan / Cohere embeddings (bedrock/embeddings.py): one call per Titan
        input or Cohere batch, up to EMBED_PARALLEL at once, all under the call's deadline."""
        invocations = to_invoke_model(call)  # may raise InvalidRequest before any network work
        answers = self._call(call, lambda client: _each(lambda i: _invoke(client, i.kwargs), invocations))
        return from_invoke_model(call, answers)

    def _call(self, call: ProviderCall | EmbeddingCall, invoke: Callable[[Any], T]) -> T:
        return call_within_deadline(self._client_for, call.app, call.deployment, call.deadline, invoke,
                                    _translate, "Bedrock", self._monotonic)

    def _until_deadline(self, stream: Any, until: float) -> Iterator[Mapping[str, Any]]:
        # read_timeout bounds each socket read, not the whole stream: a model that trickles tokens
        # could otherwise run past the deadline.
        try:
            for event in stream:
                if self._monotonic() > until:
                    raise DeadlineExceeded("the Bedrock stream ran past the deadline", signal=Signal.BUSY)
                yield event
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()


def _invoke(client: Any, kwargs: dict[str, Any]) -> tuple[Any, Mapping[str, str]]:
    response = client.invoke_model(**kwargs)
    try:
        payload = json.loads(response["body"].read())
    except ValueError:  # not JSON: Bedrock's fault, never quoted
        payload = None
    return payload, response.get("ResponseMetadata", {}).get("HTTPHeaders", {})


T = TypeVar("T")
R = TypeVar("R")


def _each(work: Callable[[T], R], items: list[T]) -> list[R]:
    """`work` on every item, up to EMBED_PARALLEL at once, results in order; the first failure
    cancels what has not started and is raised. Each worker sees the caller's context (the bound
    deadline, read by the client's hooks)."""
    if len(items) == 1:
        return [work(items[0])]
    with ThreadPoolExecutor(max_workers=min(EMBED_PARALLEL, len(items))) as pool:
        futures = [pool.submit(contextvars.copy_context().run, work, item) for item in items]
        try:
            return [future.result() for future in futures]
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def _translate(exc: BaseException) -> GatewayError:
    """Any failure of the boto3 call or of reading its stream -> a GatewayError, with what it says
    about the deployment (`signal`) for the router's breakers."""
    from botocore import exceptions as bce  # lazy: keeps boto3 out of cold start when unused

    if isinstance(exc, bce.ClientError):  # EventStreamError (mid-stream exception) included
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return map_error(str(error.get("Code", "")), status)
    return transport_error(exc, "Bedrock")


def bedrock_client_factory(
    region: str,
    credentials: AssumedRoleCredentials | None,
    max_attempts: int = 2,
    endpoint_url: str | None = None,
) -> ClientFor:
    """Cached, deadline-fitted bedrock-runtime clients (chalicelib/aws/runtime_clients.py);
    boto3 itself honours AWS_ENDPOINT_URL_BEDROCK_RUNTIME when no endpoint_url is given."""
    return runtime_client_factory("bedrock-runtime", region, credentials, max_attempts, endpoint_url)
