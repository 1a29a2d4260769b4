"""Bedrock Converse behind the provider port: one attempt per `complete()`, typed errors.

botocore makes the bounded retries inside that attempt (standard mode, `total_max_attempts`); the
router owns fallback and the request deadline. Clients are guarded like every AWS client of the
gateway (chalicelib/deadline.py): a call whose worst case does not fit the deadline is not made, a
retry that would not finish in time is vetoed. Each client's read timeout is fitted to the time left.
"""
from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from typing import Any, Callable, Iterator, Mapping

from chalicelib import deadline
from chalicelib.aws.sts_credentials import AssumedRoleCredentials
from chalicelib.catalog import App, Deployment
from chalicelib.chat import Completion
from chalicelib.errors import (DeadlineExceeded, GatewayError, InvalidRequest, RetryVetoed,
                               ServiceUnavailable, Signal, UpstreamError)
from chalicelib.providers import ProviderCall
from chalicelib.providers.bedrock.translate import from_converse, from_stream, map_error, to_converse

ClientFor = Callable[[App, Deployment, float], Any]

# Kept free in a long call's budget so that one retry after a quick failure still fits: the failed
# attempt (throttled, 5xx: well under a second) plus botocore's first backoff (at most 1 s).
RETRY_HEADROOM_S = 2.0
MIN_READ_TIMEOUT_S = 0.5  # read timeouts are fitted to the budget in steps of this size
MAX_CACHED_CLIENTS = 64
FIT_MARGIN_S = 0.05  # between fitting a client and its call: serialising the request, signing


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
    from urllib3.exceptions import ProtocolError, ReadTimeoutError

    if isinstance(exc, bce.ClientError):  # EventStreamError (mid-stream exception) included
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return map_error(str(error.get("Code", "")), status)
    if isinstance(exc, (bce.ParamValidationError, bce.ValidationError, RecursionError)):
        # botocore refused the request before sending it: the request's content, not Bedrock's
        # health. botocore's report quotes values: never passed on.
        return InvalidRequest("the request has a value Bedrock does not accept", code="invalid_parameter")
    if isinstance(exc, (bce.NoCredentialsError, bce.PartialCredentialsError)):
        return ServiceUnavailable("no AWS credentials for Bedrock", code="no_credentials", signal=Signal.NONE)
    # Mid-stream reads raise urllib3's own ReadTimeoutError (botocore's derives from a vendored copy).
    if isinstance(exc, (bce.ReadTimeoutError, ReadTimeoutError)):
        return DeadlineExceeded("Bedrock did not answer in time", code="upstream_timeout", signal=Signal.BUSY)
    if isinstance(exc, bce.ConnectTimeoutError):
        return DeadlineExceeded("Bedrock could not be reached in time", code="upstream_timeout",
                                signal=Signal.DOWN)
    if isinstance(exc, bce.ConnectionError):  # endpoint, proxy, TLS
        return ServiceUnavailable("Bedrock could not be reached", code="upstream_unreachable")
    if isinstance(exc, (bce.HTTPClientError, ProtocolError)):  # closed, broken stream
        return ServiceUnavailable("the connection to Bedrock broke", code="upstream_connection")
    if isinstance(exc, bce.BotoCoreError):  # our configuration (region, endpoint): not the deployment's
        return UpstreamError("the call to Bedrock failed", code="upstream_error", signal=Signal.NONE)
    raise exc  # a bug of ours: let the pipeline turn it into a 500 with its traceback


def bedrock_client_factory(
    region: str,
    credentials: AssumedRoleCredentials | None,
    max_attempts: int = 2,
    endpoint_url: str | None = None,
) -> ClientFor:
    """`client_for(app, deployment, remaining_s)`: a cached bedrock-runtime client whose worst case
    (connect + read timeout) fits the remaining budget, leaving room for one quick retry when the
    budget is long enough. `credentials=None` uses the default chain (the Lambda role).
    endpoint_url: only when given; boto3 itself honours AWS_ENDPOINT_URL_BEDROCK_RUNTIME."""
    clients: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
    lock = threading.Lock()
    session: list[Any] = []  # one boto3 Session, made on first use (Sessions are not thread-safe)

    def client_for(app: App, deployment: Deployment, remaining_s: float) -> Any:
        started = time.monotonic()
        creds = credentials.for_app(app) if credentials is not None else None  # may call STS
        target_region = deployment.region or region
        while True:  # fitted to what is left once the client is at hand (STS, making it: time)
            left = remaining_s - (time.monotonic() - started) - FIT_MARGIN_S
            read_timeout = fitted_read_timeout(left, retry=max_attempts > 1)  # raises when none fits
            client = cached(creds, target_region, read_timeout)
            if time.monotonic() - started + deadline.CONNECT_TIMEOUT_S + read_timeout \
                    <= remaining_s - FIT_MARGIN_S:
                return client

    def cached(creds: Any, target_region: str, read_timeout: float) -> Any:
        key = (creds.access_key if creds else None, target_region, read_timeout)
        with lock:
            client = clients.get(key)
            if client is not None:
                clients.move_to_end(key)
                return client
            client = clients[key] = _new_client(session, target_region, read_timeout, max_attempts,
                                                endpoint_url, creds)
            while len(clients) > MAX_CACHED_CLIENTS:
                clients.popitem(last=False)  # least recently used; expired sessions age out
            return client

    return client_for


def fitted_read_timeout(remaining_s: float, retry: bool) -> float:
    """The longest read timeout (a multiple of MIN_READ_TIMEOUT_S) whose call fits `remaining_s`,
    keeping RETRY_HEADROOM_S free for a retry where that still leaves a useful timeout."""
    budget = remaining_s - deadline.CONNECT_TIMEOUT_S
    if retry and budget - RETRY_HEADROOM_S >= 2 * RETRY_HEADROOM_S:
        budget -= RETRY_HEADROOM_S
    steps = math.floor(budget / MIN_READ_TIMEOUT_S)
    if steps < 1:
        raise DeadlineExceeded("no time left to call Bedrock")
    return steps * MIN_READ_TIMEOUT_S


def _new_client(session: list[Any], region: str, read_timeout: float, max_attempts: int,
                endpoint_url: str | None, creds: Any) -> Any:
    import boto3  # lazy: ~200 ms of import paid only by containers that call Bedrock
    from botocore.config import Config

    if not session:
        session.append(boto3.session.Session())
    config = Config(
        connect_timeout=deadline.CONNECT_TIMEOUT_S,
        read_timeout=read_timeout,
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        tcp_keepalive=True,
    )
    extra: dict[str, Any] = {}
    if endpoint_url:
        extra["endpoint_url"] = endpoint_url
    if creds is not None:
        extra.update(aws_access_key_id=creds.access_key, aws_secret_access_key=creds.secret_key,
                     aws_session_token=creds.token)
    client = session[0].client("bedrock-runtime", region_name=region, config=config, **extra)
    return deadline.guard(client, connect_timeout=deadline.CONNECT_TIMEOUT_S, read_timeout=read_timeout,
                          max_attempts=max_attempts)
