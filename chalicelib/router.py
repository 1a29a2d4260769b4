"""Routing resilience shared by every provider: one deadline, fallback, and a breaker per deployment.

Fallback is a plain loop over the route's deployments, in order. A deployment is skipped when it
lies outside the app's geography or its breaker is open; a call that fails with a `fallback` error
(throttled, unavailable, timed out) moves on to the next; any other error (400, 403, 404, 502)
ends the request at once, because another deployment would only repeat it.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Mapping

from chalicelib.catalog import App, Deployment, Model
from chalicelib.chat import ChatRequest, Completion
from chalicelib.errors import DeadlineExceeded, GatewayError, NotFound, ServiceUnavailable
from chalicelib.geography import deployment_geographies
from chalicelib.providers import Provider, ProviderCall


@dataclass(frozen=True, slots=True)
class Routed:
    completion: Completion
    deployment: Deployment
    attempts: int  # deployments called, the one that served included


class CircuitBreaker:
    """Per deployment: opens after `threshold` consecutive failures; after `cooldown_s` it lets
    exactly one probe through (half-open); the probe's outcome closes it or re-opens it."""

    def __init__(self, threshold: int = 5, cooldown_s: float = 30.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._threshold = threshold
        self._cooldown_s = cooldown_s
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._failures: dict[str, int] = {}
        self._opened_at: dict[str, float] = {}
        self._probing: set[str] = set()

    def allow(self, name: str) -> bool:
        with self._lock:
            opened = self._opened_at.get(name)
            if opened is None:
                return True
            if name in self._probing or self._monotonic() - opened < self._cooldown_s:
                return False
            self._probing.add(name)  # this caller is the one probe
            return True

    def success(self, name: str) -> None:
        with self._lock:
            self._failures.pop(name, None)
            self._opened_at.pop(name, None)
            self._probing.discard(name)

    def failure(self, name: str) -> None:
        with self._lock:
            count = self._failures.get(name, 0) + 1
            self._failures[name] = count
            if name in self._probing or count >= self._threshold:
                self._opened_at[name] = self._monotonic()  # (re-)open: a new cool-down starts
            self._probing.discard(name)


class Router:
    def __init__(
        self,
        providers: Mapping[str, Provider],
        breaker: CircuitBreaker,
        default_region: str,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._providers = providers
        self._breaker = breaker
        self._default_region = default_region
        self._monotonic = monotonic

    def complete(self, app: App, model: Model, request: ChatRequest, max_tokens: int,
                 deadline: float) -> Routed:
        route = self.deployments_for(app, model)
        attempts = 0
        last_error: GatewayError = ServiceUnavailable(
            "every deployment of this model is unavailable; retry later", code="all_deployments_down"
        )
        for deployment in route:
            if self._monotonic() >= deadline:
                last_error = DeadlineExceeded("the request deadline passed before a deployment answered")
                break
            if not self._breaker.allow(deployment.name):
                continue
            attempts += 1
            call = ProviderCall(app, deployment, request, max_tokens, deadline)
            try:
                completion = self._providers[deployment.provider].complete(call)
            except GatewayError as error:
                self._record_failure(deployment, error)
                if not error.fallback:
                    raise _with_attempts(error, attempts, deployment) from None
                last_error = error
                continue
            except Exception:
                self._breaker.failure(deployment.name)
                raise
            self._breaker.success(deployment.name)
            return Routed(completion, deployment, attempts)
        raise _with_attempts(last_error, attempts, None)

    def deployments_for(self, app: App, model: Model) -> list[Deployment]:
        if app.geography is None:
            return list(model.deployments)
        route = [d for d in model.deployments
                 if app.geography in deployment_geographies(d, self._default_region)]
        if not route:
            raise NotFound(f"the model '{model.id}' has no deployment in this app's geography "
                           f"({app.geography})", param="model", code="model_not_in_geography")
        return route

    def _record_failure(self, deployment: Deployment, error: GatewayError) -> None:
        # The deployment answered a 4xx: it is healthy, the request was not. Anything else counts.
        if error.status in (400, 403, 404):
            self._breaker.success(deployment.name)
        else:
            self._breaker.failure(deployment.name)


def _with_attempts(error: GatewayError, attempts: int, deployment: Deployment | None) -> GatewayError:
    error.headers = {**error.headers, "x-garden-attempts": str(attempts)}
    if deployment is not None:
        error.headers["x-garden-deployment"] = deployment.name
    return error
