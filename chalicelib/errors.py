"""The gateway's errors: one root, one subclass per HTTP status, each with a stable OpenAI `type`.

Every error a caller can see is a `GatewayError`; `openai_api.error_body` renders it, in exactly one
place. Messages are written for the caller and never quote request content (memoryless: an error
message may end up in a log line).
"""
from __future__ import annotations


class GatewayError(Exception):
    status: int = 500
    type: str = "server_error"
    default_code: str | None = None
    # True where the next deployment of a route may succeed (throttled, unavailable, timed out).
    fallback: bool = False

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code if code is not None else self.default_code
        self.param = param
        self.headers = headers or {}


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


class UpstreamError(GatewayError):
    """The provider answered with a fault (502)."""

    status = 502
    type = "api_error"
    default_code = "upstream_error"


class ServiceUnavailable(GatewayError):
    """A dependency (provider, detector, guardrail, store) could not be reached (503)."""

    status = 503
    type = "api_error"
    default_code = "service_unavailable"
    fallback = True


class DeadlineExceeded(GatewayError):
    status = 504
    type = "api_error"
    default_code = "timeout"
    fallback = True


class InternalError(GatewayError):
    """An unexpected fault: the caller sees only this and a request id."""

    status = 500
    type = "server_error"
    default_code = "internal_error"


class ConfigError(Exception):
    """The gateway's configuration is broken; raised at start-up, naming the bad field."""
