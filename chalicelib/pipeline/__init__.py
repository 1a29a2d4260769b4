"""The governed pipeline. Every request runs in one frame (governed.py: size cap, deadline, error
rendering, one audit record and one telemetry line) and walks its route's stages top to bottom:

chat.py     identify -> validate -> route -> reserve -> PII (in) -> guardrail (in) -> top up
              -> provider -> guardrail (out) -> PII (out) -> settle
embeddings.py identify -> validate -> route -> reserve -> PII (in) -> guardrail (in) -> top up
              -> provider -> settle

The pipeline sees ports only; `gateway.py` (the composition root) picks the adapters.
"""
from __future__ import annotations

import time
from typing import Callable

from chalicelib.audit import AuditSink
from chalicelib.catalog import App, Catalog
from chalicelib.catalog_source import CatalogSource
from chalicelib.errors import GatewayError
from chalicelib.guardrails import Guardrail
from chalicelib.identity import Identity
from chalicelib.incoming import IncomingRequest
from chalicelib.lazy import OnFirstUse
from chalicelib.openai_api import responses
from chalicelib.pii import PiiDetector
from chalicelib.pipeline.chat import ChatRoute
from chalicelib.pipeline.governed import GatewayResponse, Governed, Route, error_response, new_request_id
from chalicelib.pipeline.stages import Stages
from chalicelib.quota import QuotaKeeper, with_app_headers
from chalicelib.record import RequestRecord
from chalicelib.router import Router
from chalicelib.telemetry import Telemetry
from chalicelib.tracing import Tracing
from chalicelib.usage_store import UsageRecorder

__all__ = ["GatewayResponse", "Pipeline", "error_response", "new_request_id"]


class Pipeline:
    def __init__(
        self,
        *,
        catalog: Catalog | CatalogSource,  # a fixed catalog, or the source of the current one
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
        usage: UsageRecorder | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self._quota = quota
        self._governed = Governed(audit=audit, telemetry=telemetry, max_body_bytes=max_body_bytes,
                                  request_timeout_s=request_timeout_s, clock=clock, monotonic=monotonic,
                                  usage=usage, tracing=tracing)
        self._stages = Stages(catalog=catalog, identity=identity, quota=quota, pii=pii, guardrail=guardrail)
        self._chat = ChatRoute(self._stages, router, self._governed)
        # Built on the first embeddings request: a chat-only container never loads its modules.
        self._embeddings = OnFirstUse(lambda: _embeddings_route(self._stages, router, self._governed))

    @property
    def catalog(self) -> Catalog:
        """The current catalog (catalog_source.py): read per request, never kept."""
        return self._stages.catalog

    def chat_completions(self, request: IncomingRequest) -> GatewayResponse:
        return self._governed(request, "chat.completions", self._chat)

    def embeddings(self, request: IncomingRequest) -> GatewayResponse:
        return self._governed(request, "embeddings", self._embeddings())

    def list_models(self, request: IncomingRequest) -> GatewayResponse:
        def run(req: IncomingRequest, record: RequestRecord) -> GatewayResponse:
            app = self._stages.identify(req, record)
            return GatewayResponse(200, responses.models_body(self.catalog.models_for(app)), self._quota_headers(app))

        return self._governed(request, "models.list", run)

    def get_model(self, request: IncomingRequest, model_id: str) -> GatewayResponse:
        def run(req: IncomingRequest, record: RequestRecord) -> GatewayResponse:
            app = self._stages.identify(req, record)
            try:
                model = self._stages.catalog_model(app, model_id, record)
            except GatewayError as error:
                with_app_headers(error, self._quota, app, self._stages.business_unit(app))
                raise
            return GatewayResponse(200, responses.model_body(model),
                                   {**self._stages.lifecycle_headers(model), **self._quota_headers(app)})

        return self._governed(request, "models.retrieve", run)

    def _quota_headers(self, app: App) -> dict[str, str]:
        # /v1/models consumes no window: it shows the app's windows as chat and embeddings left them.
        return self._quota.headers(app, self._stages.business_unit(app))

    def sweep_expired_reservations(self) -> int:
        return self._quota.sweep()


def _embeddings_route(stages: Stages, router: Router, frame: Governed) -> Route:
    from chalicelib.pipeline.embeddings import EmbeddingsRoute

    return EmbeddingsRoute(stages, router, frame)
