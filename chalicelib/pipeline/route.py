"""What every /v1 route for an app shares: identify the caller, serve, and put the app's rate-limit
windows on every answer, errors included."""
from __future__ import annotations

from chalicelib.catalog import App
from chalicelib.errors import GatewayError
from chalicelib.incoming import IncomingRequest
from chalicelib.pipeline.governed import GatewayResponse, Governed
from chalicelib.pipeline.stages import Stages
from chalicelib.quota import with_app_headers
from chalicelib.record import RequestRecord
from chalicelib.router import Router


class AppRoute:
    def __init__(self, stages: Stages, router: Router, frame: Governed) -> None:
        self._stages = stages
        self._quota = stages.quota
        self._router = router
        self._frame = frame

    def __call__(self, request: IncomingRequest, record: RequestRecord) -> GatewayResponse:
        app = self._stages.identify(request, record)
        try:
            return self._serve(app, request, record)
        except GatewayError as error:  # every answer to a known app carries its windows
            with_app_headers(error, self._quota, app, self._stages.business_unit(app))
            raise

    def _serve(self, app: App, request: IncomingRequest, record: RequestRecord) -> GatewayResponse:
        raise NotImplementedError
