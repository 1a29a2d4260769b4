"""Stages every governed route shares: who is calling, which model, PII screening, guardrail
verdicts and settling what a call cost. Each stage notes what it did in the request's record."""
from __future__ import annotations

import calendar
from datetime import date
from email.utils import formatdate

from chalicelib.catalog import App, Catalog, Model, Price
from chalicelib.chat import Usage
from chalicelib.cost import cost_usd
from chalicelib.errors import ConfigError, Gone, InvalidRequest, NotFound, PermissionDenied, ServiceUnavailable
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
        # Worked out once per container, so a date the calendar lacks fails at start-up, not per request.
        self._lifecycle_headers = {m.id: _lifecycle_headers(m) for m in catalog.models.values()}

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
        return dict(self._lifecycle_headers.get(model.id, {}))

    def _upgraded(self, app: App, retired: Model) -> Model:
        successor = live_successor(self.catalog, retired)
        if successor is None:
            raise Gone(f"the model '{retired.id}' is retired and has no successor", param="model",
                       headers=self.lifecycle_headers(retired))
        if not (app.auto_upgrade and successor.id in app.allowed_models):
            raise Gone(f"the model '{retired.id}' is retired: its successor is '{successor.id}'", param="model",
                       headers=self.lifecycle_headers(retired))
        return successor

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


# A successor chain longer than this is a catalog mistake; it is not followed further.
MAX_UPGRADE_STEPS = 8


def live_successor(catalog: Catalog, retired: Model) -> Model | None:
    """The first model down `retired`'s successor chain that is not retired itself (the one a caller
    should move to), or None: no successor, a loop, or a chain over MAX_UPGRADE_STEPS."""
    seen = {retired.id}
    model = retired
    for _ in range(MAX_UPGRADE_STEPS):
        successor_id = model.lifecycle.successor if model.lifecycle is not None else None
        if successor_id is None or successor_id in seen:
            return None
        seen.add(successor_id)
        model = catalog.models[successor_id]  # catalog.py checks every successor exists
        if model.status != "retired":
            return model
    return None


def _lifecycle_headers(model: Model) -> dict[str, str]:
    life = model.lifecycle
    if life is None or life.status == "active" or not (life.deprecated and life.sunset):
        return {}  # catalog.py requires both dates unless active
    where = f"catalog: models.{model.id}.lifecycle"
    headers = {
        # RFC 9745: an sf-date, "@" and Unix seconds; RFC 8594: an HTTP-date (IMF-fixdate).
        "Deprecation": f"@{_midnight_utc(life.deprecated, f'{where}.deprecated')}",
        "Sunset": formatdate(_midnight_utc(life.sunset, f"{where}.sunset"), usegmt=True),
    }
    if life.successor is not None:
        headers["Link"] = f'</v1/models/{life.successor}>; rel="successor-version"'
    return headers


def _midnight_utc(day: str, where: str) -> int:
    try:
        return calendar.timegm(date.fromisoformat(day).timetuple())
    except ValueError:
        raise ConfigError(f"{where}: {day} is not a calendar date") from None


def _note_pii(record: RequestRecord, outcome: PiiOutcome) -> None:
    for key, n in outcome.counts.items():
        record.pii[key] = record.pii.get(key, 0) + n
