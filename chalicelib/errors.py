"""The gateway's errors: one root, one subclass per HTTP status, each with a stable OpenAI `type`.

Every error a caller can see is a `GatewayError`; `openai_api.error_body` renders it, in exactly one
place. Messages are written for the caller and never quote request content (memoryless: an error
message may end up in a log line).
"""
from __future__ import annotations

from enum import Enum


class Signal(Enum):
    """What a failed call says about the deployment that answered it: the router's breakers count
    BUSY per (app, deployment) and DOWN per deployment, and never count NONE."""

    NONE = "none"  # the request's own doing: 4xx, validation, content filter, a model error on one
    #                input, the request's own deadline. Says nothing about the deployment.
    BUSY = "busy"  # throttled, or timed out on this request: capacity as this caller experiences it
    DOWN = "down"  # 5xx from the provider, connection failures: unwell for every caller


class GatewayError(Exception):
    status: int = 500
    type: str = "server_error"
    default_code: str | None = None
    # True where the next deployment of a route may succeed (throttled, unavailable, timed out).
    fallback: bool = False
    # Read by the router's breakers; an instance may say otherwise (`signal=` below).
    signal: Signal = Signal.NONE

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
        signal: Signal | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code if code is not None else self.default_code
        self.param = param
        self.headers = headers or {}
        if signal is not None:
            self.signal = signal


class InvalidRequest(GatewayError):
    status = 400
    type = "invalid_request_error"
    default_code = "invalid_request"


class AuthenticationFailed(GatewayError):
    status = 401
    type = "authentication_error"
    default_code = "invalid_signature"


class PermissionDenied(GatewayError):
    status = 403
    type = "permission_error"
    default_code = "forbidden"


class NotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    default_code = "model_not_found"


class Gone(GatewayError):
    """The model is retired (410); the message names its successor, where it has one."""

    status = 410
    type = "invalid_request_error"
    default_code = "model_retired"


class PayloadTooLarge(GatewayError):
    status = 413
    type = "invalid_request_error"
    default_code = "request_too_large"


class QuotaExceeded(GatewayError):
    status = 429
    type = "rate_limit_error"
    default_code = "quota_exceeded"


class UpstreamThrottled(GatewayError):
    """The provider throttled us or is not ready (429); another deployment may have capacity."""

    status = 429
    type = "rate_limit_error"
    default_code = "upstream_throttled"
    fallback = True
    signal = Signal.BUSY


class UpstreamError(GatewayError):
    """The provider answered with a fault (502). A model that fails on one input says so with
    `signal=Signal.NONE`."""

    status = 502
    type = "api_error"
    default_code = "upstream_error"
    signal = Signal.DOWN


class ServiceUnavailable(GatewayError):
    """A dependency (provider, detector, guardrail, store) could not be reached (503)."""

    status = 503
    type = "api_error"
    default_code = "service_unavailable"
    fallback = True
    signal = Signal.DOWN


class DeadlineExceeded(GatewayError):
    """The request's own deadline ran out (Signal.NONE); a provider that timed out says so with
    `signal=Signal.BUSY`."""

    status = 504
    type = "api_error"
    default_code = "timeout"
    fallback = True


class WouldOverrun(DeadlineExceeded):
    """A call's worst case no longer fits the time left at the moment it was to be sent (nothing
    was sent). A caller that fitted its client to the time left may refit a smaller one and try
    again; to anyone else it is a plain DeadlineExceeded."""


class RetryVetoed(DeadlineExceeded):
    """A call failed in a way botocore would retry, but the retry could not finish before the
    deadline. `last` is what the call raised or would have raised (a ClientError or botocore
    exception), for adapters that map it (Bedrock); to everyone else this is a 504."""

    def __init__(self, last: BaseException) -> None:
        super().__init__("the request deadline left no time to retry a failed call")
        self.last = last


class InternalError(GatewayError):
    """An unexpected fault: the caller sees only this and a request id."""

    status = 500
    type = "server_error"
    default_code = "internal_error"


class ConfigError(Exception):
    """The gateway's configuration is broken; raised at start-up, naming the bad field."""
