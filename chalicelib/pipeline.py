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
from chalicelib.chat import ChatRequest, Completion, Usage
from chalicelib.cost import cost_usd
from chalicelib.errors import (GatewayError, InternalError, InvalidRequest, NotFound,
                               PayloadTooLarge, PermissionDenied, ServiceUnavailable)
from chalicelib.guardrails import BLOCKED, MASKED, PASS, Guardrail, GuardrailVerdict
from chalicelib.identity import Identity
from chalicelib.incoming import IncomingRequest
from chalicelib.openai_api import responses
from chalicelib.openai_api.chat_request import parse_chat_request
from chalicelib.pii import PiiDetector
from chalicelib.pii.policy import Edit, PiiOutcome, policy_edits
from chalicelib.quota import QuotaKeeper, Reservation
from chalicelib.record import RequestRecord
from chalicelib.router import Router
from chalicelib.audit import AuditSink
from chalicelib.telemetry import Telemetry
from chalicelib.screening import (InputView, OutputView, guard_texts, output_guard_texts, pin_system_prompt,
                                  with_guarded_texts, with_output_guarded_texts)
from chalicelib.tokens import estimate_input_tokens

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
        chat = pin_system_prompt(app, parse_chat_request(request.body))
        record.stream = chat.stream
        model = self._route(app, chat.model, record)
        reservation = self._quota.reserve(
            app, self._estimate(model, chat), min(chat.max_tokens or model.max_output_tokens, model.max_output_tokens),
            reservation_id=request.request_id, flexible=chat.max_tokens is None,
        )
        record.reserved_tokens = reservation.tokens
        try:
            chat = self._redact_input(app, chat, record)
            chat = self._guard_input(app, chat, record)
            # What the model will see may have grown (placeholders, masks): hold it before paying.
            reservation = self._quota.top_up(app, reservation, self._estimate(model, chat))
            record.reserved_tokens = reservation.tokens
            completion = self._call_provider(app, model, chat, reservation.output_tokens, record)
        except BaseException:
            self._quota.release(reservation)  # no model call was paid for
            raise
        try:
            completion = self._guard_output(app, completion, record)
            completion = self._redact_output(app, completion, record)
        finally:
            # The model answered and was billed: the app pays, even if the answer then fails
            # (an output screen that is down or out of time must not make a call free).
            self._settle(reservation, model, completion.usage, record)
        record.finish_reason = completion.finish_reason
        return self._chat_response(request, chat, completion, record)

    def _settle(self, reservation: Reservation, model: Model, usage: Usage, record: RequestRecord) -> None:
        cost = cost_usd(model, usage)
        self._quota.settle(reservation, usage.total_tokens, cost)
        record.prompt_tokens, record.completion_tokens, record.cost_usd = (
            usage.prompt_tokens, usage.completion_tokens, cost)

    @staticmethod
    def _estimate(model: Model, chat: ChatRequest) -> int:
        return estimate_input_tokens(chat, model.bytes_per_token, model.input_overhead_tokens)

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
        view = InputView(chat)  # every caller text the model will see, screened in one pass
        edits, outcome = self._screen(app, view.text, "input")
        self._note_pii(record, outcome)
        if outcome.blocked:
            raise InvalidRequest(
                f"the request contains {', '.join(outcome.blocked)}, which this app's policy blocks",
                code="pii_blocked", param="messages",
            )
        return view.rebuild(edits)

    def _guard_input(self, app: App, chat: ChatRequest, record: RequestRecord) -> ChatRequest:
        # Everything the caller wrote is judged, system and developer messages and tool
        # definitions included; only the app's pinned system prompt (configuration) is not.
        verdict = self._check_guardrail(app, guard_texts(chat), "INPUT", record)
        if verdict.action == BLOCKED:
            raise InvalidRequest(
                "the request was blocked by the app's guardrail", code="content_filter", param="messages"
            )
        if verdict.action != MASKED or verdict.texts is None:
            return chat
        return with_guarded_texts(chat, verdict.texts)

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
        verdict = self._check_guardrail(app, output_guard_texts(completion), "OUTPUT", record)
        if verdict.action == BLOCKED:
            return replace(completion, content="", tool_calls=(), finish_reason="content_filter")
        if verdict.action != MASKED or verdict.texts is None:
            return completion
        return with_output_guarded_texts(completion, verdict.texts)

    def _redact_output(self, app: App, completion: Completion, record: RequestRecord) -> Completion:
        view = OutputView(completion)
        edits, outcome = self._screen(app, view.text, "output")
        self._note_pii(record, outcome)
        if outcome.blocked:
            return replace(completion, content="", tool_calls=(), finish_reason="content_filter")
        return view.rebuild(edits)

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

    def _screen(self, app: App, text: str, direction: str) -> tuple[list[Edit], PiiOutcome]:
        """The edits the app's PII policy makes to `text`, and what it found (counts only)."""
        if not text:
            return [], PiiOutcome()
        try:
            entities = self._pii.detect(text, app.pii.language)
        except ServiceUnavailable:
            if not app.pii.fail_open:
                raise  # fail closed: no unscreened text reaches a model or a caller
            outcome = PiiOutcome()
            outcome.counts["DETECTOR_UNAVAILABLE:FAIL_OPEN"] += 1
            return [], outcome
        return policy_edits(text, entities, app.pii, direction)

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


def new_request_id() -> str:
    return str(uuid.uuid4())
