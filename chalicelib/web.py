"""Chalice <-> pipeline: build an `IncomingRequest`, turn a `GatewayResponse` into a Chalice one.

Also the last line of defence: anything that escapes the pipeline, and Chalice's own errors
(405, 415), leave here as OpenAI-shaped errors, never as a stack trace.
"""
from __future__ import annotations

import json
import logging
from typing import Any, Callable

from chalice.app import Request, Response

from chalicelib import gateway
from chalicelib.errors import ConfigError, GatewayError, InternalError, InvalidRequest
from chalicelib.incoming import IncomingRequest
from chalicelib.openai_api.responses import error_body
from chalicelib.pipeline import GatewayResponse, new_request_id
from chalicelib.settings import VERSION
from chalicelib.telemetry import LOGGER_NAME, LogTelemetry

# Chalice answers these itself, before a view runs; their bodies are re-rendered in OpenAI's shape.
_CHALICE_ERRORS = {405: "method_not_allowed", 415: "unsupported_media_type", 400: "bad_request"}


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
        request_id=context.get("requestId") or new_request_id(),
    )


def respond(result: GatewayResponse, request_id: str) -> Response:
    headers = {**result.headers, "x-request-id": request_id, "Content-Type": result.content_type}
    body = result.body if isinstance(result.body, str) else json.dumps(result.body, separators=(",", ":"))
    return Response(body=body, status_code=result.status, headers=headers)


def handle(request: Request, route: Callable[..., GatewayResponse], *args: str) -> Response:
    req = incoming(request)
    return respond(route(gateway.pipeline(), req, *args), req.request_id)


def sweep_reservations() -> None:
    swept = gateway.pipeline().sweep_expired_reservations()
    logging.getLogger(LOGGER_NAME).info(json.dumps({"event": "sweep", "released": swept}))


def health() -> Response:
    return Response(body={"status": "ok", "version": VERSION}, status_code=200)


def guard(event: Any, get_response: Callable[[Any], Response]) -> Response:
    """Chalice HTTP middleware: OpenAI-shaped errors for whatever the pipeline did not answer."""
    try:
        response = get_response(event)
    except ConfigError as exc:
        # Configuration, not customer data: safe and necessary to log in full.
        logging.getLogger(LOGGER_NAME).error(json.dumps({"event": "config_error", "error": str(exc)}))
        return _error(InternalError("the gateway is misconfigured; see its logs"))
    except Exception as exc:
        request_id = new_request_id()
        LogTelemetry().fault(request_id, exc)
        return _error(InternalError(f"internal error; quote request id {request_id}"), request_id=request_id)
    code = _CHALICE_ERRORS.get(response.status_code)
    if code and isinstance(response.body, dict) and "Code" in response.body:
        error = InvalidRequest(str(response.body.get("Message", code)), code=code)
        error.status = response.status_code
        return _error(error, headers=response.headers)
    return response


def _error(error: GatewayError, headers: dict[str, str] | None = None, request_id: str | None = None) -> Response:
    result = GatewayResponse(error.status, error_body(error), {**(headers or {}), **error.headers})
    return respond(result, request_id or new_request_id())
