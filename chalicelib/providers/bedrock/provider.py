"""Bedrock Converse behind the provider port: one attempt per `complete()`, typed errors.

botocore makes the bounded retries inside that attempt (standard mode, `total_max_attempts`); the
router owns fallback and the request deadline. Clients are guarded like every AWS client of the
gateway (chalicelib/deadline.py): a call whose worst case does not fit the deadline is not made, a
retry that would not finish in time is vetoed. Each client's read timeout is fitted to the time left.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Iterator, Mapping

from chalicelib import deadline
from chalicelib.aws.runtime_clients import (MIN_READ_TIMEOUT_S, ClientFor, runtime_client_factory,
                                            transport_error)
from chalicelib.aws.sts_credentials import AssumedRoleCredentials
from chalicelib.chat import Completion
from chalicelib.errors import DeadlineExceeded, GatewayError, RetryVetoed, Signal
from chalicelib.providers import ProviderCall
from chalicelib.providers.bedrock.translate import from_converse, from_stream, map_error, to_converse


class BedrockProvider:
    def __init__(self, client_for: ClientFor, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._client_for = client_for
        self._monotonic = monotonic

    def complete(self, call: ProviderCall) -> Completion:
        kwargs = to_converse(call)  # may raise InvalidRequest before any network work
        remaining = call.deadline - self._monotonic()
        if remaining < deadline.CONNECT_TIMEOUT_S + MIN_READ_TIMEOUT_S:
            raise DeadlineExceeded("no time left to call Bedrock")
        # The call's own deadline, bound for the client's hooks (the pipeline's may be looser: tests
        # and other callers drive the provider directly).
        with deadline.bound(deadline.Deadline(call.deadline, 0.0, self._monotonic)):
            try:
                client = self._client_for(call.app, call.deployment, remaining)
                if call.request.stream:
                    response = client.converse_stream(**kwargs)
                    completion = from_stream(self._until_deadline(response["stream"], call.deadline))
                else:
                    completion = from_converse(client.converse(**kwargs))
            except RetryVetoed as vetoed:
                raise _translate(vetoed.last) from vetoed  # what the last attempt said, for the router
            except GatewayError:
                raise
            except Exception as exc:
                raise _translate(exc) from exc
        if self._monotonic() > call.deadline:
            raise DeadlineExceeded("Bedrock answered after the deadline")
        return completion

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
