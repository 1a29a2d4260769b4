"""Stages every governed route shares: who is calling, which model, PII screening, guardrail
verdicts and settling what a call cost. Each stage notes what it did in the request's record."""
from __future__ import annotations

from chalicelib.catalog import App, Catalog, Model, Price
from chalicelib.chat import Usage
from chalicelib.cost import cost_usd
from chalicelib.errors import InvalidRequest, NotFound, PermissionDenied, ServiceUnavailable
from chalicelib.guardrails import PASS, Guardrail, GuardrailVerdict
from chalicelib.identity import Identity
from chalicelib.incoming import IncomingRequest
from chalicelib.pii import PiiDetector
from chalicelib.pii.policy import Edit, PiiOutcome, policy_edits
from chalicelib.quota import QuotaKeeper, Reservation
from chalicelib.record import RequestRecord


class Stages:
    def __init__(self, *, catalog: Catalog, identity: Identity, quota: QuotaKeeper, pii: PiiDetector,
                 guardrail: Guardrail) -> None:
        self.catalog = catalog
        self.quota = quota
        self._identity = identity
        self._pii = pii
        self._guardrail = guardrail

    def identify(self, request: IncomingRequest, record: RequestRecord) -> App:
        principal = self._identity.principal(request)
        app = self.catalog.app_for_principal(principal)
        if app is None:
            raise PermissionDenied(
                "the calling IAM principal is not registered with the gateway", code="unknown_principal"
            )
        record.principal, record.app_id, record.business_unit = principal, app.id, app.business_unit
        return app

    def model(self, app: App, model_id: str, record: RequestRecord, kind: str | None = None) -> Model:
        """The catalog model this app may call by `model_id`, for a route serving `kind` models."""
        model = self.catalog.models.get(model_id)
        if model is None or model_id not in app.allowed_models:
            # One answer for unknown and not-allowed: callers cannot probe the catalog.
            raise NotFound(
                f"the model '{model_id}' does not exist or this app may not use it", param="model"
            )
        if kind is not None and model.kind != kind:
            route = "/v1/embeddings" if model.kind == "embedding" else "/v1/chat/completions"
            raise InvalidRequest(f"the model '{model_id}' is a {model.kind} model: call it on {route}",
                                 code="model_kind_mismatch", param="model")
        record.model = model.id
        return model

    def lifecycle_headers(self, model: Model) -> dict[str, str]:
        """Deprecation / Sunset / Link headers for a legacy model (none for an active one)."""
        return {}

    def screen(self, app: App, text: str, direction: str, record: RequestRecord) -> tuple[list[Edit], PiiOutcome]:
        """The edits the app's PII policy makes to `text`, and what it found (counts, noted)."""
        if not text:
            return [], PiiOutcome()
        edits: list[Edit] = []
        try:
            entities = self._pii.detect(text, app.pii.language)
        except ServiceUnavailable:
            if not app.pii.fail_open:
                raise  # fail closed: no unscreened text reaches a model or a caller
            outcome = PiiOutcome()
            outcome.counts["DETECTOR_UNAVAILABLE:FAIL_OPEN"] += 1
        else:
            edits, outcome = policy_edits(text, entities, app.pii, direction)
        _note_pii(record, outcome)
        return edits, outcome

    def guardrail(self, app: App, texts: list[str], source: str, record: RequestRecord) -> GuardrailVerdict:
        try:
            verdict = self._guardrail.check(texts, source, app.guardrail)
        except ServiceUnavailable:
            if not app.guardrail.fail_open:
                raise
            record.guardrail.append(f"{source}:UNAVAILABLE:FAIL_OPEN")
            return PASS
        record.guardrail += [f"{source}:{verdict.action}:{c}" for c in verdict.categories]
        return verdict

    def settle(self, reservation: Reservation, price: Price, usage: Usage, record: RequestRecord) -> None:
        """Book what a call used and cost (at the serving deployment's price) in place of its reservation."""
        cost = cost_usd(price, usage)
        self.quota.settle(reservation, usage.total_tokens, cost)
        record.prompt_tokens, record.completion_tokens, record.cost_usd = (
            usage.prompt_tokens, usage.completion_tokens, cost)


def _note_pii(record: RequestRecord, outcome: PiiOutcome) -> None:
    for key, n in outcome.counts.items():
        record.pii[key] = record.pii.get(key, 0) + n
