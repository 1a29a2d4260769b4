"""`POST /v1/embeddings`, top to bottom:

identify -> validate -> route -> reserve quota -> redact PII (in) -> guardrail (in) -> top up
  -> provider call -> settle usage (+ the frame's audit)

Each input is its own text to every screen: one PII detection pass over all of them (a `TextView`,
an input a slot, with a separator no detector joins across, so an entity is never found straddling
two inputs that no model reads together), and one guardrail text per input. An embedding is no
text, so nothing is screened on the way out. Output tokens are always 0.
"""
from __future__ import annotations

import math

from chalicelib import controls
from chalicelib.catalog import App, Model
from chalicelib.chat import Usage
from chalicelib.errors import InvalidRequest, PayloadTooLarge, ServiceUnavailable, UpstreamError
from chalicelib.guardrails import BLOCKED, MASKED
from chalicelib.incoming import IncomingRequest
from chalicelib.openai_api import responses
from chalicelib.openai_api.embeddings_request import EmbeddingsRequest, parse_embeddings_request
from chalicelib.pipeline.governed import GatewayResponse
from chalicelib.pipeline.route import AppRoute
from chalicelib.providers import Embedded
from chalicelib.quota import STORE_FAIL_OPEN, with_headers
from chalicelib.ratelimit_headers import cost_header
from chalicelib.record import RequestRecord
from chalicelib.text_view import TextView

# Between inputs in the PII view: longer than any separator run the local rules join digit groups
# or keywords across (at most 4 characters), and newlines, which no entity pattern spans.
_BETWEEN = "\n" * 8
# Lambda answers at most 6 MB (6,291,456 bytes); keep room for headers. Bytes a value takes at most:
# "-1.23456789e-05," in float, 4 bytes as base64 (4/3 of them).
MAX_RESPONSE_BYTES = 6_000_000
_VALUE_BYTES = {"float": 16, "base64": 16 / 3}


class EmbeddingsRoute(AppRoute):
    def _serve(self, app: App, request: IncomingRequest, record: RequestRecord) -> GatewayResponse:
        stages = self._stages
        embeddings = parse_embeddings_request(request.body)
        model = stages.model(app, embeddings.model, record, kind="embedding")
        dimensions = _dimensions(model, embeddings)
        try:
            reservation = self._quota.reserve(app, _estimate(model, embeddings.inputs), 0,
                                              reservation_id=request.request_id, model=model,
                                              unit=stages.business_unit(app))
        except ServiceUnavailable:  # the quota store is down and the app fails closed
            controls.note(record, controls.QUOTA, controls.UNAVAILABLE)
            raise
        record.reserved_tokens = reservation.tokens
        record.quota_store = STORE_FAIL_OPEN if reservation.unmetered else None
        controls.note_reservation(record, reservation.unmetered, reservation.budget_pace)
        try:
            inputs = self._redact_input(app, embeddings.inputs, record)
            inputs = self._guard_input(app, inputs, record)
            # What the model will see may have grown (placeholders, masks): hold it before paying.
            reservation = self._quota.top_up(app, reservation, _estimate(model, inputs))
            record.reserved_tokens = reservation.tokens
            routed = self._router.embed(app, model, inputs, dimensions, self._frame.deadline_at(), record=record)
            record.deployment, record.attempts = routed.deployment.name, routed.attempts
        except BaseException as exc:
            self._quota.release(reservation)  # no model call was paid for
            with_headers(exc, reservation.headers)
            raise
        embedded = routed.result
        try:
            _check_answer(embedded, inputs, dimensions, embeddings.encoding_format)
            # model.id: the model that served, a retired one's successor when auto-upgraded (else as asked).
            body = responses.embeddings_body(model.id, embedded.vectors, embedded.prompt_tokens,
                                             embeddings.encoding_format)
        except BaseException as exc:
            with_headers(exc, reservation.headers)
            raise
        finally:
            # The provider answered and billed: the app pays, even if the answer then fails.
            stages.settle(reservation, model.price_for(routed.deployment), Usage(embedded.prompt_tokens, 0), record)
        headers = {"x-garden-deployment": record.deployment or "", "x-garden-attempts": str(record.attempts),
                   **stages.lifecycle_headers(model), **reservation.headers, **cost_header(record.cost_usd)}
        return GatewayResponse(200, body, headers)

    def _redact_input(self, app: App, inputs: tuple[str, ...], record: RequestRecord) -> tuple[str, ...]:
        view = TextView()  # every input in one detector pass, each its own slot
        for i, text in enumerate(inputs):
            if i:
                view.separate(_BETWEEN)
            view.add(text)
        edits, outcome = self._stages.screen(app, view.text, "input", record)
        if outcome.blocked:
            raise InvalidRequest(
                f"the request contains {', '.join(outcome.blocked)}, which this app's policy blocks",
                code="pii_blocked", param="input",
            )
        return tuple(view.apply(edits)) if edits else inputs

    def _guard_input(self, app: App, inputs: tuple[str, ...], record: RequestRecord) -> tuple[str, ...]:
        verdict = self._stages.guardrail(app, list(inputs), "INPUT", record)
        if verdict.action == BLOCKED:
            raise InvalidRequest("the request was blocked by the app's guardrail", code="content_filter",
                                 param="input")
        if verdict.action != MASKED or verdict.texts is None:
            return inputs
        if len(verdict.texts) != len(inputs):  # a guardrail adapter's bug: never send misaligned inputs
            raise UpstreamError("the guardrail answered for a different number of inputs", code="guardrail_error")
        return tuple(verdict.texts)


def _dimensions(model: Model, embeddings: EmbeddingsRequest) -> int | None:
    """The size to ask the provider for: the caller's, only where the catalog says the model takes
    it and only a size it accepts; else the catalog's default (None: the model has one size). An
    answer whose size is known must fit in a Lambda response: checked before anything is paid."""
    wanted = embeddings.dimensions
    if wanted is not None and (model.dimensions is None or not model.dimensions.accepts(wanted)):
        raise InvalidRequest(f"dimensions: the model '{model.id}' does not accept this size", param="dimensions",
                             code="invalid_value")
    size = wanted or (model.dimensions.default if model.dimensions is not None else None)
    if size is not None:
        _check_size(len(embeddings.inputs) * size, embeddings.encoding_format)
    return size


def _check_answer(embedded: Embedded, inputs: tuple[str, ...], size: int | None, encoding_format: str) -> None:
    if len(embedded.vectors) != len(inputs):
        raise UpstreamError("the provider answered for a different number of inputs", code="upstream_malformed_output")
    if size is not None and any(len(v) != size for v in embedded.vectors):
        raise UpstreamError("the provider answered with another size than asked", code="upstream_malformed_output")
    _check_size(sum(len(v) for v in embedded.vectors), encoding_format)


def _check_size(values: int, encoding_format: str) -> None:
    if values * _VALUE_BYTES[encoding_format] > MAX_RESPONSE_BYTES:
        raise PayloadTooLarge("the embeddings would not fit in one response (6 MB): send fewer inputs, "
                              "ask for fewer dimensions, or use encoding_format base64", param="input",
                              code="response_too_large")


def _estimate(model: Model, inputs: tuple[str, ...]) -> int:
    """An upper bound on the tokens the provider bills: ceil(UTF-8 bytes / bytes_per_token) per input."""
    return sum(math.ceil((len(t) if t.isascii() else len(t.encode("utf-8"))) / model.bytes_per_token)
               for t in inputs)
