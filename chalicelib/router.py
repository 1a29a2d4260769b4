"""Routing resilience shared by every provider: one deadline, fallback, and circuit breakers.

Fallback is a plain loop over the route's deployments, in order. A deployment is skipped when it
lies outside the app's geography or a breaker is open; a call that fails with a `fallback` error
(throttled, unavailable, timed out) moves on to the next; any other error (400, 403, 404, 502)
ends the request at once, because another deployment would only repeat it.

Breakers count only what a failure says about the deployment (`GatewayError.signal`), so that no
app can take a model away from the others:
- NONE (4xx, validation, content filter, a model error on one input, the request's own deadline)
  never counts: it is the request's doing, and any app could send it on purpose.
- BUSY (throttling, timeouts) counts per (app, deployment): an app that floods a deployment opens
  its own circuit and falls back, or gets 429 with `retry-after`; other apps keep reaching the
  deployment and count only the throttling they meet themselves.
- DOWN (5xx from the provider, connection failures) counts per deployment, for every app: it does
  not depend on what a request says, and one app's evidence spares the others the wait.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Generic, Mapping, TypeVar

from chalicelib.catalog import App, Deployment, Model
from chalicelib.chat import ChatRequest, Completion
from chalicelib.errors import (DeadlineExceeded, GatewayError, NotFound, ServiceUnavailable, Signal,
                               UpstreamThrottled)
from chalicelib.geography import deployment_geographies
from chalicelib.providers import Embedded, EmbeddingCall, Provider, ProviderCall
from chalicelib.record import RequestRecord


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Routed(Generic[T]):
    result: T  # a Completion for chat, Embedded for embeddings
    deployment: Deployment
    attempts: int  # deployments called, the one that served included

    @property
    def completion(self) -> T:
        return self.result


@dataclass(slots=True)
class _Circuit:
    failures: int = 0  # consecutive counted failures
    opened_at: float | None = None
    probing: bool = False


_EVERYONE = ""  # the app key of a deployment's shared circuit


class CircuitBreaker:
    """Two circuits guard each call: the deployment's shared one (DOWN) and the app's own one for
    that deployment (BUSY). Each opens after `threshold` consecutive counted failures; after
    `cooldown_s` it lets exactly one probe through (half-open), whose outcome closes or re-opens it."""

    def __init__(self, threshold: int = 5, cooldown_s: float = 30.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._threshold = threshold
        self._cooldown_s = cooldown_s
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._circuits: dict[tuple[str, str], _Circuit] = {}  # (deployment, app or _EVERYONE)

    def allow(self, deployment: str, app: str) -> bool:
        with self._lock:
            now = self._monotonic()
            circuits = [c for c in (self._circuits.get((deployment, _EVERYONE)),
                                    self._circuits.get((deployment, app))) if c is not None]
            if not all(self._admits(c, now) for c in circuits):
                return False  # decided before any probe is taken: no probe is left dangling
            for circuit in circuits:
                if circuit.opened_at is not None:
                    circuit.probing = True  # this caller is the one probe
            return True

    def app_cooldown(self, deployment: str, app: str) -> float | None:
        """Seconds until this app's own circuit for the deployment lets a probe through, if open."""
        with self._lock:
            circuit = self._circuits.get((deployment, app))
            if circuit is None or circuit.opened_at is None:
                return None
            return max(0.0, self._cooldown_s - (self._monotonic() - circuit.opened_at))

    def record(self, deployment: str, app: str, signal: Signal | None) -> bool:
        """The outcome of an allowed call: None for success, else its error's signal. True when it
        opened (or re-opened) a circuit, for the BreakerOpens metric."""
        with self._lock:
            shared, own = (deployment, _EVERYONE), (deployment, app)
            if signal is Signal.DOWN:
                opened = self._count(shared)
                return self._fail_probe(own) or opened
            if signal is Signal.BUSY:
                self._close(shared, only_probe=True)  # it answered: reachable, if busy
                return self._count(own)
            # success or the request's own doing: the deployment is healthy
            self._close(shared)
            self._close(own)
            return False

    def abandon(self, deployment: str, app: str) -> None:
        """An allowed call ended in an unexpected error of ours: it proves nothing; free its probes."""
        with self._lock:
            for key in ((deployment, _EVERYONE), (deployment, app)):
                circuit = self._circuits.get(key)
                if circuit is not None:
                    circuit.probing = False

    def _admits(self, circuit: _Circuit, now: float) -> bool:
        if circuit.opened_at is None:
            return True
        return not circuit.probing and now - circuit.opened_at >= self._cooldown_s

    def _count(self, key: tuple[str, str]) -> bool:
        circuit = self._circuits.setdefault(key, _Circuit())
        circuit.failures += 1
        opens = circuit.probing or circuit.failures >= self._threshold
        if opens:
            circuit.opened_at = self._monotonic()  # (re-)open: a new cool-down starts
        circuit.probing = False
        return opens

    def _fail_probe(self, key: tuple[str, str]) -> bool:
        circuit = self._circuits.get(key)
        if circuit is not None and circuit.probing:
            circuit.opened_at, circuit.probing = self._monotonic(), False
            return True
        return False

    def _close(self, key: tuple[str, str], only_probe: bool = False) -> None:
        circuit = self._circuits.get(key)
        if circuit is not None and (circuit.probing or not only_probe):
            del self._circuits[key]


class Router:
    def __init__(
        self,
        providers: Mapping[str, Provider],
        breaker: CircuitBreaker,
        default_region: str,
        monotonic: Callable[[], float] = time.monotonic,
        disabled: Callable[[], frozenset[str]] = frozenset,
    ) -> None:
        self._providers = providers
        self._breaker = breaker
        self._default_region = default_region
        self._monotonic = monotonic
        # The kill switch: names of deployments switched off in the registry, per request (the
        # composition root passes the current catalog's `disabled_deployments`).
        self._disabled = disabled

    def complete(self, app: App, model: Model, request: ChatRequest, max_tokens: int,
                 deadline: float, request_id: str = "", record: RequestRecord | None = None) -> Routed[Completion]:
        def attempt(deployment: Deployment) -> Completion:
            provider = self._providers[deployment.provider]
            return provider.complete(ProviderCall(app, deployment, request, max_tokens, deadline, request_id))

        return self._route(app, model, deadline, attempt, record)

    def embed(self, app: App, model: Model, inputs: tuple[str, ...], dimensions: int | None,
              deadline: float, record: RequestRecord | None = None) -> Routed[Embedded]:
        def attempt(deployment: Deployment) -> Embedded:
            provider: Any = self._providers[deployment.provider]
            return provider.embed(EmbeddingCall(app, deployment, inputs, dimensions, deadline))

        return self._route(app, model, deadline, attempt, record)

    def _route(self, app: App, model: Model, deadline: float, attempt: Callable[[Deployment], T],
               record: RequestRecord | None = None) -> Routed[T]:
        """The fallback loop, the same for every kind of call. `record` counts, for the operator's
        metrics, throttled attempts, deployments passed over and circuits opened."""
        notes = record if record is not None else RequestRecord("", "", "")  # a scratch one
        route = self.deployments_for(app, model)
        attempts = passed = 0
        own_wait: float | None = None  # shortest cool-down of this app's own open circuits
        last_error: GatewayError = ServiceUnavailable(
            "every deployment of this model is unavailable; retry later", code="all_deployments_down"
        )
        for deployment in route:
            if self._monotonic() >= deadline:
                last_error = DeadlineExceeded("the request deadline passed before a deployment answered")
                break
            if not self._breaker.allow(deployment.name, app.id):
                wait = self._breaker.app_cooldown(deployment.name, app.id)
                if wait is not None:
                    own_wait = wait if own_wait is None else min(own_wait, wait)
                passed += 1
                continue
            attempts += 1
            notes.fallbacks = passed
            try:
                result = attempt(deployment)
            except GatewayError as error:
                notes.breaker_opens += self._breaker.record(deployment.name, app.id, error.signal)
                notes.upstream_throttles += isinstance(error, UpstreamThrottled)
                if not error.fallback:
                    raise _with_attempts(error, attempts, deployment) from None
                last_error = error
                passed += 1
                continue
            except Exception:
                self._breaker.abandon(deployment.name, app.id)  # a bug of ours says nothing about it
                raise
            self._breaker.record(deployment.name, app.id, None)
            return Routed(result, deployment, attempts)
        if attempts == 0 and own_wait is not None:
            # This app's own traffic has been throttled on the route: it waits, the others do not.
            last_error = UpstreamThrottled(
                "this app's requests to this model are being throttled; retry later", code="app_throttled",
                headers={"retry-after": str(max(1, math.ceil(own_wait)))})
        raise _with_attempts(last_error, attempts, None)

    def deployments_for(self, app: App, model: Model, disabled: frozenset[str] | None = None) -> list[Deployment]:
        """The model's route for this app: its geography's deployments, less those switched off
        (`disabled`, default: the current catalog's). All switched off: 503 all_deployments_disabled."""
        route = list(model.deployments)
        if app.geography is not None:
            route = [d for d in route if app.geography in deployment_geographies(d, self._default_region)]
            if not route:
                raise NotFound(f"the model '{model.id}' has no deployment in this app's geography "
                               f"({app.geography})", param="model", code="model_not_in_geography")
        off = self._disabled() if disabled is None else disabled
        if off:
            route = [d for d in route if d.name not in off]
            if not route:
                raise ServiceUnavailable("every deployment of this model is switched off by the platform team; "
                                         "retry later", code="all_deployments_disabled")
        return route


def _with_attempts(error: GatewayError, attempts: int, deployment: Deployment | None) -> GatewayError:
    error.headers = {**error.headers, "x-garden-attempts": str(attempts)}
    if deployment is not None:
        error.headers["x-garden-deployment"] = deployment.name
    return error
