"""Stages every governed route shares: who is calling, which model, PII screening, guardrail
verdicts and settling what a call cost. Each stage notes what it did in the request's record."""
from __future__ import annotations

from chalicelib import controls
from chalicelib.catalog import App, BusinessUnit, Catalog, Model, Price
from chalicelib.catalog_source import CatalogSource, as_source
from chalicelib.chat import Usage
from chalicelib.cost import cost_usd
from chalicelib.errors import GatewayError, Gone, InvalidRequest, NotFound, PermissionDenied, ServiceUnavailable
from chalicelib.guardrails import PASS, Guardrail, GuardrailVerdict
from chalicelib.identity import Identity
from chalicelib.incoming import IncomingRequest
from chalicelib.lifecycle import lifecycle_headers, live_successor
from chalicelib.pii import PiiDetector
from chalicelib.pii.policy import Edit, PiiOutcome, policy_edits
from chalicelib.quota import QuotaKeeper, Reservation
from chalicelib.record import RequestRecord
from chalicelib.tracing.wrappers import guardrail_span, identity_span, pii_span, settle_span


class Stages:
    def __init__(self, *, catalog: Catalog | CatalogSource, identity: Identity, quota: QuotaKeeper,
                 pii: PiiDetector, guardrail: Guardrail) -> None:
        self.source = as_source(catalog)
        self.quota = quota
        self._identity = identity
        self._identity_kind = controls.identity_kind(identity)  # what x-garden-controls says of it
        self._pii = pii
        self._guardrail = guardrail
        # Models come from the catalog file, fixed for the container: computed once per model.
        self._lifecycle_headers: dict[str, dict[str, str]] = {}

    @property
    def catalog(self) -> Catalog:
        """The current catalog (apps, budgets and switches follow the registry: catalog_source.py)."""
        return self.source.current()

    @identity_span
    def identify(self, request: IncomingRequest, record: RequestRecord) -> App:
        try:
            principal = self._identity.principal(request)
        except GatewayError:
            controls.note(record, controls.IDENTITY, controls.DENIED)
            raise
        app = self.catalog.app_for_principal(principal)
        if app is None or app.disabled:
            controls.note(record, controls.IDENTITY, controls.DENIED)
        else:
            controls.note(record, controls.IDENTITY, self._identity_kind)
        if app is None:
            raise PermissionDenied(
                "the calling IAM principal is not registered with the gateway", code="unknown_principal"
            )
        record.principal, record.app_id, record.business_unit = principal, app.id, app.business_unit
        if app.disabled:
            raise PermissionDenied("this app has been deleted from the gateway's registry", code="app_disabled")
        return app

    def business_unit(self, app: App) -> BusinessUnit | None:
        """The app's business unit's budgets, or None: a business unit without an entry has none."""
        return self.catalog.business_units.get(app.business_unit)

    def model(self, app: App, model_id: str, record: RequestRecord, kind: str | None = None) -> Model:
        """The model that serves `model_id` for this app on a route serving `kind` models: the model
        itself, or, when it is retired, its successor where the app has `auto_upgrade` and may use
        it (else 410). The record names the model that serves."""
        model = self.catalog_model(app, model_id, record)
        if kind is not None and model.kind != kind:
            what, route = (("an embedding", "/v1/embeddings") if model.kind == "embedding"
                           else ("a chat", "/v1/chat/completions"))
            raise InvalidRequest(f"the model '{model_id}' is {what} model: call it on {route}",
                                 code="model_kind_mismatch", param="model")
        if model.status == "retired":
            # A successor has the same kind (catalog.py checks), so the route still fits.
            record.upgraded_from = model.id
            model = self._upgraded(app, model)
        record.model = model.id
        return model

    def catalog_model(self, app: App, model_id: str, record: RequestRecord) -> Model:
        """The catalog model this app may see by `model_id`, whatever its lifecycle (a retired one
        included: `GET /v1/models/{id}` shows it, with its successor)."""
        model = self.catalog.models.get(model_id)
        if model is None or model_id not in app.allowed_models:
            # One answer for unknown and not-allowed: callers cannot probe the catalog.
            raise NotFound(
                f"the model '{model_id}' does not exist or this app may not use it", param="model"
            )
        record.model = model.id
        return model

    def lifecycle_headers(self, model: Model) -> dict[str, str]:
        """Deprecation (RFC 9745), Sunset (RFC 8594) and successor Link headers for a legacy or
        retired model; none for an active one."""
        headers = self._lifecycle_headers.get(model.id)
        if headers is None:
            headers = self._lifecycle_headers[model.id] = lifecycle_headers(model)
        return dict(headers)

    def _upgraded(self, app: App, retired: Model) -> Model:
        successor = live_successor(self.catalog, retired)
        if successor is None:
            raise Gone(f"the model '{retired.id}' is retired and has no successor", param="model",
                       headers=self.lifecycle_headers(retired))
        if not (app.auto_upgrade and successor.id in app.allowed_models):
            raise Gone(f"the model '{retired.id}' is retired: its successor is '{successor.id}'", param="model",
                       headers=self.lifecycle_headers(retired))
        return successor

    @pii_span
    def screen(self, app: App, text: str, direction: str, record: RequestRecord) -> tuple[list[Edit], PiiOutcome]:
        """The edits the app's PII policy makes to `text`, and what it found (counts, noted)."""
        if not text:
            controls.note_pii(record, direction, {})
            return [], PiiOutcome()
        edits: list[Edit] = []
        try:
            entities = self._pii.detect(text, app.pii.language)
        except ServiceUnavailable:
            if not app.pii.fail_open:
                controls.note(record, controls.PII_IN if direction == "input" else controls.PII_OUT,
                              controls.UNAVAILABLE)
                raise  # fail closed: no unscreened text reaches a model or a caller
            outcome = PiiOutcome()
            outcome.counts["DETECTOR_UNAVAILABLE:FAIL_OPEN"] += 1
        else:
            edits, outcome = policy_edits(text, entities, app.pii, direction)
        _note_pii(record, outcome)
        controls.note_pii(record, direction, outcome.counts)
        return edits, outcome

    @guardrail_span
    def guardrail(self, app: App, texts: list[str], source: str, record: RequestRecord) -> GuardrailVerdict:
        try:
            verdict = self._guardrail.check(texts, source, app.guardrail)
        except ServiceUnavailable:
            controls.note_guardrail(record, source,
                                    controls.FAIL_OPEN if app.guardrail.fail_open else controls.UNAVAILABLE)
            if not app.guardrail.fail_open:
                raise
            record.guardrail.append(f"{source}:UNAVAILABLE:FAIL_OPEN")
            return PASS
        record.guardrail += [f"{source}:{verdict.action}:{c}" for c in verdict.categories]
        controls.note_guardrail(record, source, verdict.action)
        return verdict

    @settle_span
    def settle(self, reservation: Reservation, price: Price, usage: Usage, record: RequestRecord) -> None:
        """Book what a call used and cost (at the serving deployment's price) in place of its reservation."""
        cost = cost_usd(price, usage)
        self.quota.settle(reservation, usage.total_tokens, cost)
        record.prompt_tokens, record.completion_tokens, record.cost_usd = (
            usage.prompt_tokens, usage.completion_tokens, cost)
        record.cached_tokens = usage.cache_read_tokens


def _note_pii(record: RequestRecord, outcome: PiiOutcome) -> None:
    for key, n in outcome.counts.items():
        record.pii[key] = record.pii.get(key, 0) + n
