"""Chalice <-> pipeline: build an `IncomingRequest`, turn a `GatewayResponse` into a Chalice one.

Also the last line of defence. Chalice catches a view's exception itself, logs its traceback and
answers in its own shape, before any middleware sees it; so each view catches everything here
(`handle`), and the middleware (`guard`) re-renders whatever Chalice answered on its own (405, 415,
its 500) and gives every response an `x-request-id`. A fault is logged by class only: exception
messages and tracebacks may quote the request.
"""
from __future__ import annotations

import json
import logging
from urllib.parse import unquote
from http import HTTPStatus
from typing import Any, Callable

from chalice.app import Request, Response

from chalicelib import controls, gateway
from chalicelib.errors import ConfigError, GatewayError, InternalError, InvalidRequest, NotFound
from chalicelib.incoming import IncomingRequest
from chalicelib.openai_api.responses import error_body
from chalicelib.pipeline import GatewayResponse, new_request_id
from chalicelib.settings import VERSION
from chalicelib.telemetry import LOGGER_NAME, LogTelemetry

# Chalice answers these itself, before a view runs; re-rendered in OpenAI's shape, without Chalice's
# message (which quotes the request's content-type).
_CHALICE_ERRORS = {
    405: ("method_not_allowed", "this method is not allowed on this route"),
    415: ("unsupported_media_type", "unsupported media type: send application/json"),
    400: ("bad_request", "the response type does not match the request's Accept header"),
}


def request_id(request: Request | None) -> str:
    """API Gateway's request id, or one made here (local mode), kept on the request so that the
    view and the middleware name the same one."""
    context = request.context if request is not None and request.context is not None else {}
    return context.setdefault("requestId", new_request_id())


def incoming(request: Request) -> IncomingRequest:
    context = request.context or {}
    identity = context.get("identity") or {}
    query = request.query_params
    return IncomingRequest(
        method=request.method,
        path=context.get("path") or "/",
        query={k: query.getlist(k) for k in query} if query else None,
        headers={k.lower(): v for k, v in request.headers.items()},
        body=request.raw_body or b"",
        caller_arn=identity.get("userArn"),
        request_id=request_id(request),
    )


def respond(result: GatewayResponse, request_id: str) -> Response:
    headers = {**result.headers, "x-request-id": request_id, "Content-Type": result.content_type}
    body = result.body if isinstance(result.body, str) else json.dumps(result.body, separators=(",", ":"))
    return Response(body=body, status_code=result.status, headers=headers)


def handle(request: Request, route: Callable[..., GatewayResponse], *args: str) -> Response:
    rid = request_id(request)
    try:
        return respond(route(gateway.pipeline(), incoming(request), *args), rid)
    except Exception as exc:  # building the pipeline, or anything the pipeline did not answer
        return fault(exc, rid)


def handle_admin(request: Request, route: str, *args: str) -> Response:
    """An /admin/v1 route: as `handle`, over the admin API's method `route` (chalicelib/admin/, built
    and imported on first use)."""
    rid = request_id(request)
    # Path parameters arrive percent-encoded from Chalice's local server: a deployment's default
    # name, "<provider>/<model_id>", can only travel as %2F. Decoding an already-decoded name is a
    # no-op unless it holds a literal "%" followed by two hex digits.
    args = tuple(unquote(a) for a in args)
    try:
        return respond(getattr(gateway.admin(), route)(incoming(request), *args), rid)
    except Exception as exc:
        return fault(exc, rid)


def sweep_reservations() -> None:
    swept = gateway.pipeline().sweep_expired_reservations()
    logging.getLogger(LOGGER_NAME).info(json.dumps({"event": "sweep", "released": swept}))


def health() -> Response:
    return Response(body={"status": "ok", "version": VERSION}, status_code=200)


def fault(exc: Exception, rid: str) -> Response:
    """The OpenAI-shaped answer to an exception nothing else answered; logged by class only, except a
    configuration error, whose message names the file, entry and problem (configuration, never input)."""
    if isinstance(exc, GatewayError):
        return _error(exc, request_id=rid)
    if isinstance(exc, ConfigError):
        logging.getLogger(LOGGER_NAME).error(json.dumps(
            {"event": "config_error", "request_id": rid, "error": str(exc)}, separators=(",", ":")))
        return _error(InternalError(f"the gateway is misconfigured; quote request id {rid}"), request_id=rid)
    LogTelemetry().fault(rid, exc)
    return _error(InternalError(f"internal error; quote request id {rid}"), request_id=rid)


def unknown_route() -> Response:
    """An unknown path (local mode: API Gateway answers these itself in AWS). Nothing is echoed."""
    return _error(NotFound("no such route: the gateway serves /v1/chat/completions, /v1/embeddings, /v1/models, "
                           "/admin/v1 and /health",
                           code="unknown_route"))


def http_error(status: int) -> Response:
    """An HTTP request the local server could not parse (bad request line, headers too large, an
    unknown method): its standard phrase, never the offending bytes."""
    phrase = HTTPStatus(status).phrase
    error = InvalidRequest(f"the HTTP request could not be served: {phrase}", code=phrase.lower().replace(" ", "_"))
    error.status = status
    return _error(error)


def guard(event: Any, get_response: Callable[[Any], Response]) -> Response:
    """Chalice HTTP middleware: OpenAI-shaped errors for whatever the views did not answer, and an
    `x-request-id` on every response (/health and Chalice's own answers included)."""
    rid = request_id(event)
    try:
        response = get_response(event)
    except Exception as exc:
        return _with_controls(event, fault(exc, rid))
    body = response.body
    if response.status_code >= 400 and isinstance(body, dict) and "Code" in body:  # Chalice's own shape
        known = _CHALICE_ERRORS.get(response.status_code)
        if known is None:  # its 500: Chalice caught an exception and logged it (by class: see below)
            return _with_controls(event, _error(InternalError(f"internal error; quote request id {rid}"),
                                                request_id=rid))
        error = InvalidRequest(known[1], code=known[0])
        error.status = response.status_code
        return _with_controls(event, _error(error, headers=response.headers, request_id=rid))
    response.headers.setdefault("x-request-id", rid)
    return _with_controls(event, response)


def _with_controls(event: Any, response: Response) -> Response:
    """Every /v1 answer says which controls ran: one the pipeline never saw (an unknown /v1 route, a
    method Chalice refused, a fault before the pipeline) says none did (controls.py)."""
    context = getattr(event, "context", None) or {}
    # The route's template: in Lambda, `path` carries the API Gateway stage (/api/v1/...).
    path = context.get("resourcePath") or context.get("path") or ""
    if path.startswith("/v1") and not any(k.lower() == controls.HEADER for k in response.headers):
        response.headers.update(controls.not_run_header())
    return response


class _FaultsByClassOnly(logging.Filter):
    """Chalice logs an exception it caught with its traceback; keep only the class."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info:
            error_class = record.exc_info[0].__name__ if record.exc_info[0] else "unknown"
            record.msg = json.dumps({"event": "fault", "where": "chalice", "error_class": error_class},
                                    separators=(",", ":"))
            record.args, record.exc_info, record.exc_text = None, None, None
        return True


def quiet_chalice_log(log: logging.Logger) -> None:
    """For `app.log`: whatever Chalice catches on its own is logged by class, never by traceback."""
    log.addFilter(_FaultsByClassOnly())


def _error(error: GatewayError, headers: dict[str, str] | None = None, request_id: str | None = None) -> Response:
    result = GatewayResponse(error.status, error_body(error), {**(headers or {}), **error.headers})
    return respond(result, request_id or new_request_id())
