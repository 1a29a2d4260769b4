"""The governed pipeline. Every request walks it top to bottom:

identify -> validate -> route -> reserve quota -> redact PII (in) -> guardrail (in)
  -> provider call -> guardrail (out) -> redact PII (out) -> settle usage -> telemetry + audit

The pipeline sees ports only; `gateway.py` (the composition root) picks the adapters.
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

from chalicelib import deadline
from chalicelib.catalog import App, Catalog, Model
from chalicelib.chat import ChatRequest, Completion, Message, ToolCall
from chalicelib.cost import cost_usd
from chalicelib.errors import (GatewayError, InternalError, InvalidRequest, NotFound,
                               PayloadTooLarge, PermissionDenied, ServiceUnavailable)
from chalicelib.guardrails import BLOCKED, MASKED, PASS, Guardrail, GuardrailVerdict
from chalicelib.identity import Identity
from chalicelib.incoming import IncomingRequest
from chalicelib.openai_api import responses
from chalicelib.openai_api.chat_request import parse_chat_request
from chalicelib.pii import PiiDetector
from chalicelib.pii.policy import PiiOutcome, apply_policy
from chalicelib.quota import QuotaKeeper
from chalicelib.record import RequestRecord
from chalicelib.router import Router
from chalicelib.audit import AuditSink
from chalicelib.telemetry import Telemetry
from chalicelib.tokens import request_tokens

JSON = "application/json"
EVENT_STREAM = "text/event-stream"


@dataclass(frozen=True, slots=True)
class GatewayResponse:
    status: int
    body: Any  # a JSON-able dict, or the SSE text of a buffered stream
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str = JSON


class Pipeline:
    def __init__(
        self,
        *,
        catalog: Catalog,
        identity: Identity,
        quota: QuotaKeeper,
        pii: PiiDetector,
        guardrail: Guardrail,
        router: Router,
        audit: AuditSink,
        telemetry: Telemetry,
        max_body_bytes: int,
        request_timeout_s: float,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.catalog = catalog
        self._identity = identity
        self._quota = quota
        self._pii = pii
        self._guardrail = guardrail
        self._router = router
        self._audit = audit
        self._telemetry = telemetry
        self._max_body_bytes = max_body_bytes
        self._timeout_s = request_timeout_s
        self._clock = clock
        self._monotonic = monotonic

    # ---- routes -------------------------------------------------------------------------------

    def chat_completions(self, request: IncomingRequest) -> GatewayResponse:
        return self._governed(request, "chat.completions", self._chat)

    def list_models(self, request: IncomingRequest) -> GatewayResponse:
        def run(req: IncomingRequest, record: RequestRecord) -> GatewayResponse:
            app = self._identify(req, record)
            return GatewayResponse(200, responses.models_body(self.catalog.models_for(app)))

        return self._governed(request, "models.list", run)

    def get_model(self, request: IncomingRequest, model_id: str) -> GatewayResponse:
        def run(req: IncomingRequest, record: RequestRecord) -> GatewayResponse:
            model = self._route(self._identify(req, record), model_id, record)
            return GatewayResponse(200, responses.model_body(model))

        return self._governed(request, "models.retrieve", run)

    def sweep_expired_reservations(self) -> int:
        return self._quota.sweep(self.catalog.apps)

    # ---- the chat pipeline, top to bottom -----------------------------------------------------

    def _chat(self, request: IncomingRequest, record: RequestRecord) -> GatewayResponse:
        app = self._identify(request, record)
        chat = parse_chat_request(request.body)
        record.stream = chat.stream
        model = self._route(app, chat.model, record)
        max_tokens = min(chat.max_tokens or model.max_output_tokens, model.max_output_tokens)
        reservation = self._quota.reserve(
            app, request_tokens(chat) + max_tokens, reservation_id=request.request_id
        )
        record.reserved_tokens = reservation.tokens
        try:
            chat = self._redact_input(app, chat, record)
            chat = self._guard_input(app, chat, record)
            completion = self._call_provider(app, model, chat, max_tokens, record)
            completion = self._guard_output(app, completion, record)
            completion = self._redact_output(app, completion, record)
        except BaseException:
            self._quota.release(reservation)  # nothing was used that the app should pay for
            raise
        cost = cost_usd(model, completion.usage)
        self._quota.settle(reservation, completion.usage.total_tokens, cost)
        record.prompt_tokens = completion.usage.prompt_tokens
        record.completion_tokens = completion.usage.completion_tokens
        record.cost_usd = cost
        record.finish_reason = completion.finish_reason
        return self._chat_response(request, chat, completion, record)

    def _identify(self, request: IncomingRequest, record: RequestRecord) -> App:
        principal = self._identity.principal(request)
        app = self.catalog.app_for_principal(principal)
        if app is None:
            raise PermissionDenied(
                "the calling IAM principal is not registered with the gateway", code="unknown_principal"
            )
        record.principal, record.app_id, record.business_unit = principal, app.id, app.business_unit
        return app

    def _route(self, app: App, model_id: str, record: RequestRecord) -> Model:
        model = self.catalog.models.get(model_id)
        if model is None or model_id not in app.allowed_models:
            # One answer for unknown and not-allowed: callers cannot probe the catalog.
            raise NotFound(
                f"the model '{model_id}' does not exist or this app may not use it", param="model"
            )
        record.model = model.id
        return model

    def _redact_input(self, app: App, chat: ChatRequest, record: RequestRecord) -> ChatRequest:
        outcome = PiiOutcome()
        messages = []
        for message in chat.messages:
            text, found = self._redact(app, message.content, "input")
            outcome.merge(found)
            calls, found = self._redact_calls(app, message.tool_calls, "input")
            outcome.merge(found)
            messages.append(Message(message.role, text, calls, message.tool_call_id))
        self._note_pii(record, outcome)
        if outcome.blocked:
            raise InvalidRequest(
                f"the request contains {', '.join(outcome.blocked)}, which this app's policy blocks",
                code="pii_blocked", param="messages",
            )
        return chat.with_messages(tuple(messages))

    def _guard_input(self, app: App, chat: ChatRequest, record: RequestRecord) -> ChatRequest:
        # System prompts are the app's own configuration; what the guardrail judges is the
        # conversation: user turns, tool results, and the arguments of earlier tool calls.
        slots = [(i, j) for i, m in enumerate(chat.messages) if m.role != "system"
                 for j in range(-1, len(m.tool_calls))]
        texts = [_slot_text(chat.messages[i], j) for i, j in slots]
        verdict = self._check_guardrail(app, texts, "INPUT", record)
        if verdict.action == BLOCKED:
            raise InvalidRequest(
                "the request was blocked by the app's guardrail", code="content_filter", param="messages"
            )
        if verdict.action != MASKED or verdict.texts is None:
            return chat
        messages = list(chat.messages)
        for (i, j), text in zip(slots, verdict.texts, strict=True):  # a short verdict is a bug: fail
            messages[i] = _with_slot_text(messages[i], j, text)
        return chat.with_messages(tuple(messages))

    def _call_provider(
        self, app: App, model: Model, chat: ChatRequest, max_tokens: int, record: RequestRecord
    ) -> Completion:
        # The request's deadline, bound by _governed: the provider gets what the stages before it left.
        bound = deadline.current()
        until = bound.at if bound is not None else self._monotonic() + self._timeout_s
        routed = self._router.complete(app, model, chat, max_tokens, until)
        record.deployment, record.attempts = routed.deployment.name, routed.attempts
        return routed.completion

    def _guard_output(self, app: App, completion: Completion, record: RequestRecord) -> Completion:
        texts = [completion.content] + [c.arguments for c in completion.tool_calls]
        verdict = self._check_guardrail(app, texts, "OUTPUT", record)
        if verdict.action == BLOCKED:
            return replace(completion, content="", tool_calls=(), finish_reason="content_filter")
        if verdict.action != MASKED or verdict.texts is None:
            return completion
        content, *arguments = verdict.texts
        calls = tuple(replace(c, arguments=a) for c, a in zip(completion.tool_calls, arguments, strict=True))
        return replace(completion, content=content, tool_calls=calls)

    def _redact_output(self, app: App, completion: Completion, record: RequestRecord) -> Completion:
        text, outcome = self._redact(app, completion.content, "output")
        calls, found = self._redact_calls(app, completion.tool_calls, "output")
        outcome.merge(found)
        self._note_pii(record, outcome)
        if outcome.blocked:
            return replace(completion, content="", tool_calls=(), finish_reason="content_filter")
        return replace(completion, content=text, tool_calls=calls)

    def _chat_response(
        self, request: IncomingRequest, chat: ChatRequest, completion: Completion, record: RequestRecord
    ) -> GatewayResponse:
        completion_id = "chatcmpl-" + request.request_id.replace("-", "")
        created = int(self._clock())
        headers = {"x-garden-deployment": record.deployment or "", "x-garden-attempts": str(record.attempts)}
        if chat.stream:
            body = responses.stream_body(completion_id, created, chat.model, completion, chat.include_usage)
            return GatewayResponse(200, body, headers, EVENT_STREAM)
        return GatewayResponse(200, responses.completion_body(completion_id, created, chat.model, completion), headers)

    # ---- shared machinery ---------------------------------------------------------------------

    def _redact(self, app: App, text: str, direction: str) -> tuple[str, PiiOutcome]:
        if not text:
            return text, PiiOutcome()
        try:
            entities = self._pii.detect(text, app.pii.language)
        except ServiceUnavailable:
            if not app.pii.fail_open:
                raise  # fail closed: no unscreened text reaches a model or a caller
            outcome = PiiOutcome()
            outcome.counts["DETECTOR_UNAVAILABLE:FAIL_OPEN"] += 1
            return text, outcome
        return apply_policy(text, entities, app.pii, direction)

    def _check_guardrail(
        self, app: App, texts: list[str], source: str, record: RequestRecord
    ) -> GuardrailVerdict:
        try:
            verdict = self._guardrail.check(texts, source, app.guardrail)
        except ServiceUnavailable:
            if not app.guardrail.fail_open:
                raise
            record.guardrail.append(f"{source}:UNAVAILABLE:FAIL_OPEN")
            return PASS
        record.guardrail += [f"{source}:{verdict.action}:{c}" for c in verdict.categories]
        return verdict

    def _redact_calls(
        self, app: App, calls: tuple[ToolCall, ...], direction: str
    ) -> tuple[tuple[ToolCall, ...], PiiOutcome]:
        """Tool arguments are JSON text: values are redacted in place, the JSON stays JSON, since
        detectors never match quotes or backslashes."""
        outcome = PiiOutcome()
        redacted = []
        for call in calls:
            arguments, found = self._redact(app, call.arguments, direction)
            outcome.merge(found)
            redacted.append(replace(call, arguments=arguments))
        return tuple(redacted), outcome

    @staticmethod
    def _note_pii(record: RequestRecord, outcome: PiiOutcome) -> None:
        for key, n in outcome.counts.items():
            record.pii[key] = record.pii.get(key, 0) + n

    def _governed(
        self,
        request: IncomingRequest,
        route: str,
        run: Callable[[IncomingRequest, RequestRecord], GatewayResponse],
    ) -> GatewayResponse:
        """Size cap, error rendering, and one audit record + telemetry line for every request."""
        started = self._monotonic()
        # One deadline for the whole request, seen by every AWS call made while serving it.
        token = deadline.bind(deadline.Deadline(started + self._timeout_s, deadline.TAIL_S, self._monotonic))
        try:
            return self._governed_within(request, route, run, started)
        finally:
            deadline.unbind(token)

    def _governed_within(
        self,
        request: IncomingRequest,
        route: str,
        run: Callable[[IncomingRequest, RequestRecord], GatewayResponse],
        started: float,
    ) -> GatewayResponse:
        record = RequestRecord(
            request_id=request.request_id,
            timestamp=datetime.fromtimestamp(self._clock(), timezone.utc).isoformat(timespec="milliseconds"),
            route=route,
        )
        try:
            if len(request.body) > self._max_body_bytes:
                raise PayloadTooLarge(f"request body exceeds {self._max_body_bytes} bytes")
            response = run(request, record)
        except GatewayError as error:
            response = self.error_response(error)
            record.error_code = error.code
            # The router names on its errors how far a failed call got: keep that in the record.
            record.attempts = int(error.headers.get("x-garden-attempts", record.attempts))
            record.deployment = error.headers.get("x-garden-deployment", record.deployment)
        except Exception as exc:  # an unexpected fault: the caller gets a request id, nothing else
            self._telemetry.fault(request.request_id, exc)
            error = InternalError(f"internal error; quote request id {request.request_id}")
            response = self.error_response(error)
            record.error_code = error.code
        record.status = response.status
        record.latency_ms = round((self._monotonic() - started) * 1000, 3)
        self._audit.write(record)
        self._telemetry.record(record)
        return response

    @staticmethod
    def error_response(error: GatewayError) -> GatewayResponse:
        return GatewayResponse(error.status, responses.error_body(error), dict(error.headers))


def _slot_text(message: Message, call: int) -> str:
    """Slot -1 is a message's content; slot j >= 0 its j-th tool call's arguments."""
    return message.content if call < 0 else message.tool_calls[call].arguments


def _with_slot_text(message: Message, call: int, text: str) -> Message:
    if call < 0:
        return replace(message, content=text)
    calls = list(message.tool_calls)
    calls[call] = replace(calls[call], arguments=text)
    return replace(message, tool_calls=tuple(calls))


def new_request_id() -> str:
    return str(uuid.uuid4())
