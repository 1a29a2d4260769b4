"""`POST /v1/chat/completions`, top to bottom:

identify -> validate -> route -> reserve quota -> redact PII (in) -> guardrail (in) -> top up
  -> provider call -> guardrail (out) -> redact PII (out) -> settle usage (+ the frame's audit)
"""
from __future__ import annotations

from dataclasses import replace

from chalicelib import controls
from chalicelib.catalog import App, Model
from chalicelib.chat import ChatRequest, Completion
from chalicelib.errors import InvalidRequest, ServiceUnavailable
from chalicelib.guardrails import BLOCKED, MASKED
from chalicelib.incoming import IncomingRequest
from chalicelib.openai_api import responses
from chalicelib.openai_api.chat_request import parse_chat_request
from chalicelib.pipeline.governed import EVENT_STREAM, GatewayResponse
from chalicelib.pipeline.route import AppRoute
from chalicelib.quota import STORE_FAIL_OPEN, with_headers
from chalicelib.ratelimit_headers import cost_header
from chalicelib.record import RequestRecord
from chalicelib.screening import (InputView, OutputView, guard_texts, output_guard_texts, pin_system_prompt,
                                  with_guarded_texts, with_output_guarded_texts)
from chalicelib.tokens import estimate_input_tokens


class ChatRoute(AppRoute):
    def _serve(self, app: App, request: IncomingRequest, record: RequestRecord) -> GatewayResponse:
        stages = self._stages
        chat = pin_system_prompt(app, parse_chat_request(request.body))
        record.stream = chat.stream
        model = stages.model(app, chat.model, record, kind="chat")
        try:
            reservation = self._quota.reserve(
                app, _estimate(model, chat), min(chat.max_tokens or model.max_output_tokens, model.max_output_tokens),
                reservation_id=request.request_id, flexible=chat.max_tokens is None,
                model=model, unit=stages.business_unit(app),
            )
        except ServiceUnavailable:  # the quota store is down and the app fails closed
            controls.note(record, controls.QUOTA, controls.UNAVAILABLE)
            raise
        record.reserved_tokens = reservation.tokens
        record.quota_store = STORE_FAIL_OPEN if reservation.unmetered else None
        controls.note_reservation(record, reservation.unmetered, reservation.budget_pace)
        try:
            chat = self._redact_input(app, chat, record)
            chat = self._guard_input(app, chat, record)
            # What the model will see may have grown (placeholders, masks): hold it before paying.
            reservation = self._quota.top_up(app, reservation, _estimate(model, chat))
            record.reserved_tokens = reservation.tokens
            # The deadline bound by the frame: the provider gets what the stages before it left.
            routed = self._router.complete(app, model, chat, reservation.output_tokens, self._frame.deadline_at(),
                                           request_id=request.request_id, record=record)
            record.deployment, record.attempts = routed.deployment.name, routed.attempts
            completion = routed.completion
        except BaseException as exc:
            self._quota.release(reservation)  # no model call was paid for
            with_headers(exc, reservation.headers)
            raise
        try:
            completion = self._guard_output(app, completion, record)
            completion = self._redact_output(app, completion, record)
        except BaseException as exc:
            with_headers(exc, reservation.headers)
            raise
        finally:
            # The model answered and was billed: the app pays, even if the answer then fails
            # (an output screen that is down or out of time must not make a call free).
            stages.settle(reservation, model.price_for(routed.deployment), completion.usage, record)
        record.finish_reason = completion.finish_reason
        return self._response(request, chat, model, completion, record, reservation.headers)

    def _redact_input(self, app: App, chat: ChatRequest, record: RequestRecord) -> ChatRequest:
        view = InputView(chat)  # every caller text the model will see, screened in one pass
        edits, outcome = self._stages.screen(app, view.text, "input", record)
        if outcome.blocked:
            raise InvalidRequest(
                f"the request contains {', '.join(outcome.blocked)}, which this app's policy blocks",
                code="pii_blocked", param="messages",
            )
        return view.rebuild(edits)

    def _guard_input(self, app: App, chat: ChatRequest, record: RequestRecord) -> ChatRequest:
        # Everything the caller wrote is judged, system and developer messages and tool
        # definitions included; only the app's pinned system prompt (configuration) is not.
        verdict = self._stages.guardrail(app, guard_texts(chat), "INPUT", record)
        if verdict.action == BLOCKED:
            raise InvalidRequest(
                "the request was blocked by the app's guardrail", code="content_filter", param="messages"
            )
        if verdict.action != MASKED or verdict.texts is None:
            return chat
        return with_guarded_texts(chat, verdict.texts)

    def _guard_output(self, app: App, completion: Completion, record: RequestRecord) -> Completion:
        verdict = self._stages.guardrail(app, output_guard_texts(completion), "OUTPUT", record)
        if verdict.action == BLOCKED:
            return replace(completion, content="", tool_calls=(), finish_reason="content_filter")
        if verdict.action != MASKED or verdict.texts is None:
            return completion
        return with_output_guarded_texts(completion, verdict.texts)

    def _redact_output(self, app: App, completion: Completion, record: RequestRecord) -> Completion:
        view = OutputView(completion)
        edits, outcome = self._stages.screen(app, view.text, "output", record)
        if outcome.blocked:
            return replace(completion, content="", tool_calls=(), finish_reason="content_filter")
        return view.rebuild(edits)

    def _response(
        self, request: IncomingRequest, chat: ChatRequest, model: Model, completion: Completion,
        record: RequestRecord, quota_headers: dict[str, str],
    ) -> GatewayResponse:
        completion_id = "chatcmpl-" + request.request_id.replace("-", "")
        created = int(self._frame.now())
        headers = {"x-garden-deployment": record.deployment or "", "x-garden-attempts": str(record.attempts),
                   **self._stages.lifecycle_headers(model), **quota_headers, **cost_header(record.cost_usd)}
        if chat.stream:
            # model.id: the model that served, a retired one's successor when auto-upgraded.
            body = responses.stream_body(completion_id, created, model.id, completion, chat.include_usage)
            return GatewayResponse(200, body, headers, EVENT_STREAM)
        return GatewayResponse(200, responses.completion_body(completion_id, created, model.id, completion), headers)


def _estimate(model: Model, chat: ChatRequest) -> int:
    return estimate_input_tokens(chat, model.bytes_per_token, model.input_overhead_tokens)
