"""Bedrock Converse behind the provider port: one attempt per `complete()`, typed errors.

botocore makes the bounded retries inside that attempt (standard mode, `total_max_attempts`); the
router owns fallback and the request deadline. botocore cannot see our deadline, so clients made by
`bedrock_client_factory` carry a `needs-retry` hook that stops retrying when too little time is left.
"""
from __future__ import annotations

import contextvars
import math
import threading
import time
from collections import OrderedDict
from typing import Any, Callable, Iterator, Mapping

from chalicelib.aws.sts_credentials import AssumedRoleCredentials
from chalicelib.catalog import App, Deployment
from chalicelib.chat import Completion
from chalicelib.errors import DeadlineExceeded, GatewayError, ServiceUnavailable, UpstreamError
from chalicelib.providers import ProviderCall
from chalicelib.providers.bedrock.translate import from_converse, from_stream, map_error, to_converse

ClientFor = Callable[[App, Deployment, float], Any]

# A retry needs its backoff (standard mode: up to 1 s before the 2nd attempt) plus a useful call.
MIN_RETRY_BUDGET_S = 1.0
MAX_CACHED_CLIENTS = 32

# The deadline of the call running in this thread (context), read by the needs-retry hook of
# clients shared across calls with different deadlines.
_deadline: contextvars.ContextVar[tuple[float, Callable[[], float]] | None] = contextvars.ContextVar(
    "bedrock_deadline", default=None)


class _NoTimeToRetry(Exception):
    def __init__(self, code: str | None, status: int | None, caught: Exception | None) -> None:
        super().__init__(code)
        self.code, self.status, self.caught = code, status, caught


class BedrockProvider:
    def __init__(self, client_for: ClientFor, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._client_for = client_for
        self._monotonic = monotonic

    def complete(self, call: ProviderCall) -> Completion:
        remaining = call.deadline - self._monotonic()
        if remaining <= 0:
            raise DeadlineExceeded("no time left to call Bedrock")
        kwargs = to_converse(call)  # may raise InvalidRequest before any network work
        token = _deadline.set((call.deadline, self._monotonic))
        try:
            client = self._client_for(call.app, call.deployment, remaining)
            if call.request.stream:
                response = client.converse_stream(**kwargs)
                completion = from_stream(self._until_deadline(response["stream"], call.deadline))
            else:
                completion = from_converse(client.converse(**kwargs))
        except GatewayError:
            raise
        except Exception as exc:
            raise _translate(exc) from exc
        finally:
            _deadline.reset(token)
        if self._monotonic() > call.deadline:
            raise DeadlineExceeded("Bedrock answered after the deadline")
        return completion

    def _until_deadline(self, stream: Any, deadline: float) -> Iterator[Mapping[str, Any]]:
        # read_timeout bounds each socket read, not the whole stream: a model that trickles tokens
        # could otherwise run past the deadline.
        try:
            for event in stream:
                if self._monotonic() > deadline:
                    raise DeadlineExceeded("the Bedrock stream ran past the deadline")
                yield event
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()


def _translate(exc: Exception) -> GatewayError:
    """Any failure of the boto3 call or of reading its stream -> a GatewayError."""
    from botocore import exceptions as bce  # lazy: keeps boto3 out of cold start when unused
    from urllib3.exceptions import ProtocolError, ReadTimeoutError

    if isinstance(exc, _NoTimeToRetry):
        if exc.caught is not None:
            return _translate(exc.caught)
        return map_error(exc.code or "", exc.status)
    if isinstance(exc, bce.ClientError):  # EventStreamError (mid-stream exception) included
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return map_error(str(error.get("Code", "")), status)
    if isinstance(exc, (bce.NoCredentialsError, bce.PartialCredentialsError)):
        return ServiceUnavailable("no AWS credentials for Bedrock", code="no_credentials")
    # Mid-stream reads raise urllib3's own ReadTimeoutError (botocore's derives from a vendored copy).
    if isinstance(exc, (bce.ConnectTimeoutError, bce.ReadTimeoutError, ReadTimeoutError)):
        return DeadlineExceeded("Bedrock did not answer in time", code="upstream_timeout")
    if isinstance(exc, bce.EndpointConnectionError):
        return ServiceUnavailable("Bedrock could not be reached", code="upstream_unreachable")
    if isinstance(exc, (bce.ConnectionClosedError, ProtocolError, bce.ResponseStreamingError)):
        return ServiceUnavailable("the connection to Bedrock broke", code="upstream_connection")
    if isinstance(exc, bce.BotoCoreError):
        return UpstreamError("the call to Bedrock failed", code="upstream_error")
    raise exc  # a bug of ours: let the pipeline turn it into a 500 with its traceback


def _stop_retry_past_deadline(attempts: int, response: Any = None,
                              caught_exception: Exception | None = None, **_: Any) -> None:
    """needs-retry hook: runs before botocore decides to retry; vetoes a retry that cannot finish
    within the current call's deadline by raising, and the adapter maps the last outcome."""
    current = _deadline.get()
    if current is None:
        return None
    status: int | None = None
    code: str | None = None
    if response is not None:
        http, parsed = response
        status = http.status_code
        if status < 400:
            return None
        code = parsed.get("Error", {}).get("Code")
    elif caught_exception is None:
        return None
    deadline, monotonic = current
    if deadline - monotonic() < MIN_RETRY_BUDGET_S:
        raise _NoTimeToRetry(code, status, caught_exception)
    return None


def bedrock_client_factory(
    region: str,
    credentials: AssumedRoleCredentials | None,
    max_attempts: int = 2,
    endpoint_url: str | None = None,
) -> ClientFor:
    """`client_for(app, deployment, remaining_s)`: a cached bedrock-runtime client whose read
    timeout fits the remaining budget. `credentials=None` uses the default chain (the Lambda role).
    endpoint_url: only when given; boto3 itself honours AWS_ENDPOINT_URL_BEDROCK_RUNTIME."""
    clients: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
    lock = threading.Lock()
    session: list[Any] = []  # one boto3 Session, made on first use (Sessions are not thread-safe)

    def client_for(app: App, deployment: Deployment, remaining_s: float) -> Any:
        read_timeout = max(1, math.ceil(remaining_s))
        creds = credentials.for_app(app) if credentials is not None else None
        target_region = deployment.region or region
        key = (creds.access_key if creds else None, target_region, read_timeout)
        with lock:
            client = clients.get(key)
            if client is not None:
                clients.move_to_end(key)
                return client
            client = _new_client(session, target_region, read_timeout, max_attempts, endpoint_url, creds)
            clients[key] = client
            while len(clients) > MAX_CACHED_CLIENTS:
                clients.popitem(last=False)  # least recently used; expired sessions age out
            return client

    return client_for


def _new_client(session: list[Any], region: str, read_timeout: int, max_attempts: int,
                endpoint_url: str | None, creds: Any) -> Any:
    import boto3  # lazy: ~200 ms of import paid only by containers that call Bedrock
    from botocore.config import Config

    if not session:
        session.append(boto3.session.Session())
    config = Config(
        connect_timeout=2,
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
    client.meta.events.register_first("needs-retry.bedrock-runtime", _stop_retry_past_deadline)
    return client
