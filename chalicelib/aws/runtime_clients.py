"""botocore clients for the model runtimes (bedrock-runtime, sagemaker-runtime), shared by providers.

`runtime_client_factory` gives a provider `client_for(app, deployment, remaining_s)`: a cached client
whose worst case (connect + read timeout) fits the time left, signed with the app's operations-account
session when one is configured, and `guard`ed with the request deadline's hooks (chalicelib/deadline.py).
`transport_error` turns botocore's non-service failures into the gateway's errors, alike for every
runtime. Nothing here imports botocore until a client is made.
"""
from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from typing import Any, Callable, TypeVar

from chalicelib import deadline
from chalicelib.aws.sts_credentials import AssumedRoleCredentials
from chalicelib.catalog import App, Deployment
from chalicelib.errors import (DeadlineExceeded, GatewayError, InvalidRequest, RetryVetoed, ServiceUnavailable, Signal,
                               UpstreamError, WouldOverrun)

ClientFor = Callable[[App, Deployment, float], Any]
T = TypeVar("T")

# Kept free in a long call's budget so that one retry after a quick failure still fits: the failed
# attempt (throttled, 5xx: well under a second) plus botocore's first backoff (at most 1 s).
RETRY_HEADROOM_S = 2.0
MIN_READ_TIMEOUT_S = 0.5  # read timeouts are fitted to the budget in steps of this size
MAX_CACHED_CLIENTS = 64
FIT_MARGIN_S = 0.1  # between fitting a client and its call: serialising the request, signing
MAX_REFITS = 4  # fittings per call when the send outran the margin (call_within_deadline)

# How errors name each runtime to the caller.
_WHAT = {"bedrock-runtime": "Bedrock", "sagemaker-runtime": "SageMaker"}


def runtime_client_factory(
    service: str,
    region: str,
    credentials: AssumedRoleCredentials | None,
    max_attempts: int = 2,
    endpoint_url: str | None = None,
) -> ClientFor:
    """`client_for(app, deployment, remaining_s)`: a cached `service` client for the deployment's
    region (else `region`) whose worst case fits the remaining budget, leaving room for one quick
    retry when the budget is long enough. `credentials=None` uses the default chain (the Lambda
    role). endpoint_url: only when given; botocore itself honours AWS_ENDPOINT_URL_<SERVICE>
    (AWS_ENDPOINT_URL_BEDROCK_RUNTIME, AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME)."""
    what = _WHAT.get(service, service)
    clients: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
    lock = threading.Lock()

    def client_for(app: App, deployment: Deployment, remaining_s: float) -> Any:
        started = time.monotonic()
        creds = credentials.for_app(app) if credentials is not None else None  # may call STS
        target_region = deployment.region or region
        while True:  # fitted to what is left once the client is at hand (STS, making it: time)
            left = remaining_s - (time.monotonic() - started) - FIT_MARGIN_S
            read_timeout = fitted_read_timeout(left, retry=max_attempts > 1, what=what)  # raises when none fits
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
            client = clients[key] = _new_client(service, target_region, read_timeout, max_attempts,
                                                endpoint_url, creds)
            while len(clients) > MAX_CACHED_CLIENTS:
                clients.popitem(last=False)  # least recently used; expired sessions age out
            return client

    return client_for


def call_within_deadline(
    client_for: ClientFor, app: App, deployment: Deployment, until: float, invoke: Callable[[Any], T],
    translate: Callable[[BaseException], GatewayError], what: str, monotonic: Callable[[], float] = time.monotonic,
) -> T:
    """One runtime call, `invoke(client)`, that cannot outlive `until`: refused when no call could
    fit, made with a client fitted to the time left under the call's own deadline (bound for the
    client's hooks: the pipeline's may be looser, as tests and other callers drive providers
    directly), every failure turned into a GatewayError by `translate`, and an answer that came
    too late refused.

    Getting from the fitting to the send (a new client's first call loads its endpoint rules and
    serialisers; a busy host can stall) may take longer than FIT_MARGIN_S; the client's hook then
    refuses the send (WouldOverrun, nothing sent) and the call is refitted to what is left, a read
    timeout step shorter, rather than failed while time remains."""
    with deadline.bound(deadline.Deadline(until, 0.0, monotonic)):
        for _ in range(MAX_REFITS):
            remaining = until - monotonic()
            if remaining < deadline.CONNECT_TIMEOUT_S + MIN_READ_TIMEOUT_S:
                break
            try:
                result = invoke(client_for(app, deployment, remaining))
            except WouldOverrun:
                continue
            except RetryVetoed as vetoed:
                raise translate(vetoed.last) from vetoed  # what the last attempt said, for the router
            except GatewayError:
                raise
            except Exception as exc:
                raise translate(exc) from exc
            if monotonic() > until:
                raise DeadlineExceeded(f"{what} answered after the deadline")
            return result
    raise DeadlineExceeded(f"no time left to call {what}")


def fitted_read_timeout(remaining_s: float, retry: bool, what: str = "Bedrock") -> float:
    """The longest read timeout (a multiple of MIN_READ_TIMEOUT_S) whose call fits `remaining_s`,
    keeping RETRY_HEADROOM_S free for a retry where that still leaves a useful timeout."""
    budget = remaining_s - deadline.CONNECT_TIMEOUT_S
    if retry and budget - RETRY_HEADROOM_S >= 2 * RETRY_HEADROOM_S:
        budget -= RETRY_HEADROOM_S
    steps = math.floor(budget / MIN_READ_TIMEOUT_S)
    if steps < 1:
        raise DeadlineExceeded(f"no time left to call {what}")
    return steps * MIN_READ_TIMEOUT_S


def _new_client(service: str, region: str, read_timeout: float, max_attempts: int,
                endpoint_url: str | None, creds: Any) -> Any:
    # On the process's one botocore session (chalicelib/aws/session.py): no boto3 import, botocore's
    # endpoint data loaded once for all the gateway's clients, each made under the session's lock.
    from chalicelib.aws import session

    client = session.new_client(service, region, connect_timeout=deadline.CONNECT_TIMEOUT_S,
                                read_timeout=read_timeout, max_attempts=max_attempts, tcp_keepalive=True,
                                endpoint_url=endpoint_url, credentials=creds)
    guarded = deadline.guard(client, connect_timeout=deadline.CONNECT_TIMEOUT_S, read_timeout=read_timeout,
                             max_attempts=max_attempts)
    from chalicelib.tracing import instrument_aws  # a span per model call once tracing is on

    return instrument_aws(guarded)


def transport_error(exc: BaseException, what: str) -> GatewayError:
    """A failure of a runtime call that is not the service's own answer (a ClientError, which each
    provider maps) -> a GatewayError, with what it says about the deployment (`signal`)."""
    from botocore import exceptions as bce  # lazy: keeps boto3 out of cold start when unused
    from urllib3.exceptions import ProtocolError, ReadTimeoutError

    if isinstance(exc, (bce.ParamValidationError, bce.ValidationError, RecursionError)):
        # botocore refused the request before sending it: the request's content, not the
        # deployment's health. botocore's report quotes values: never passed on.
        return InvalidRequest(f"the request has a value {what} does not accept", code="invalid_parameter")
    if isinstance(exc, (bce.NoCredentialsError, bce.PartialCredentialsError)):
        return ServiceUnavailable(f"no AWS credentials for {what}", code="no_credentials", signal=Signal.NONE)
    # Mid-stream reads raise urllib3's own ReadTimeoutError (botocore's derives from a vendored copy).
    if isinstance(exc, (bce.ReadTimeoutError, ReadTimeoutError)):
        return DeadlineExceeded(f"{what} did not answer in time", code="upstream_timeout", signal=Signal.BUSY)
    if isinstance(exc, bce.ConnectTimeoutError):
        return DeadlineExceeded(f"{what} could not be reached in time", code="upstream_timeout",
                                signal=Signal.DOWN)
    if isinstance(exc, bce.ConnectionError):  # endpoint, proxy, TLS
        return ServiceUnavailable(f"{what} could not be reached", code="upstream_unreachable")
    if isinstance(exc, (bce.HTTPClientError, ProtocolError)):  # closed, broken stream
        return ServiceUnavailable(f"the connection to {what} broke", code="upstream_connection")
    if isinstance(exc, bce.BotoCoreError):  # our configuration (region, endpoint): not the deployment's
        return UpstreamError(f"the call to {what} failed", code="upstream_error", signal=Signal.NONE)
    raise exc  # a bug of ours: let the pipeline turn it into a 500 with its traceback
