"""Where the pipeline's stages get their spans, without the stages knowing spans.

- Decorators on `Stages` methods (pipeline/stages.py): `garden.identity`, `garden.pii.input|output`,
  `garden.guardrail.input|output`, `garden.quota.settle`. Untraced, each costs one context-variable
  read and a call.
- Wrappers the composition root puts around ports when tracing is on (`wrap_ports`): the quota keeper
  (`garden.quota.reserve`, `garden.quota.release`; a top-up, one more ledger write, stays in its
  parent's time: each span costs CPU on every request), the audit sink (`garden.audit`) and each provider
  (one CLIENT span per attempt, named `chat <model>` / `embeddings <model>` as the GenAI semantic
  conventions say). With tracing off nothing is wrapped.

Attributes come from the record, verdicts, counts and deployments: never from the texts.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Mapping, TypeVar

from chalicelib import tracing

F = TypeVar("F", bound=Callable[..., Any])


def _stage(name_of: Callable[..., str], describe: Callable[..., Mapping[str, Any]]) -> Callable[[F], F]:
    """A span named `name_of(*args)` around the method; `describe(result, *args)` adds attributes
    on success, and the record's state is described in any case where it says more."""

    def decorate(method: F) -> F:
        @functools.wraps(method)
        def traced_method(self: Any, *args: Any) -> Any:
            if tracing.current() is None:
                return method(self, *args)
            with tracing.span(name_of(*args)) as span:
                result = method(self, *args)
                span.update(describe(result, *args))
                return result

        return traced_method  # type: ignore[return-value]

    return decorate


def _identity(app: Any, request: Any, record: Any) -> Mapping[str, Any]:
    return {"garden.app_id": record.app_id, "garden.business_unit": record.business_unit}


def _pii(result: Any, app: Any, text: str, direction: str, record: Any) -> Mapping[str, Any]:
    from chalicelib.tracing.attributes import pii_counts  # only once traced: not on cold start

    return {**pii_counts(dict(result[1].counts)), "garden.pii.blocked": bool(result[1].blocked)}


def _guardrail(verdict: Any, app: Any, texts: Any, source: str, record: Any) -> Mapping[str, Any]:
    action = str(verdict.action).lower()
    return {"garden.guardrail.verdict": "pass" if action == "none" else action,
            "garden.guardrail.categories": [str(c) for c in verdict.categories]}


def _settle(result: Any, reservation: Any, price: Any, usage: Any, record: Any) -> Mapping[str, Any]:
    return {"gen_ai.usage.input_tokens": record.prompt_tokens, "gen_ai.usage.output_tokens": record.completion_tokens,
            "garden.cost_usd": record.cost_usd}


identity_span = _stage(lambda request, record: "garden.identity", _identity)
pii_span = _stage(lambda app, text, direction, record: f"garden.pii.{direction}", _pii)
guardrail_span = _stage(lambda app, texts, source, record: f"garden.guardrail.{source.lower()}", _guardrail)
settle_span = _stage(lambda reservation, price, usage, record: "garden.quota.settle", _settle)


class TracedQuota:
    """The quota keeper, its ledger writes in spans; everything else passes through."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def reserve(self, *args: Any, **kwargs: Any) -> Any:
        with tracing.span("garden.quota.reserve") as span:
            reservation = self._inner.reserve(*args, **kwargs)
            span.update({"garden.reserved_tokens": reservation.tokens,
                         "garden.quota.unmetered": bool(getattr(reservation, "unmetered", False))})
            return reservation

    def release(self, *args: Any, **kwargs: Any) -> Any:
        with tracing.span("garden.quota.release"):
            return self._inner.release(*args, **kwargs)


class TracedAudit:
    """The audit sink, each write in a `garden.audit` span."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def write(self, *args: Any, **kwargs: Any) -> Any:
        with tracing.span("garden.audit"):
            return self._inner.write(*args, **kwargs)


class TracedProvider:
    """A provider whose every call (one attempt of the router's fallback loop) is a CLIENT span."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def complete(self, call: Any) -> Any:
        from chalicelib.tracing import attributes as attrs

        request = call.request
        with _attempt("chat", call.deployment, max_tokens=call.max_tokens, temperature=request.temperature,
                      top_p=request.top_p) as span:
            completion = self._inner.complete(call)
            span.update(attrs.completion_attributes(call.deployment, completion))
            return completion

    def embed(self, call: Any) -> Any:
        from chalicelib.tracing import attributes as attrs

        with _attempt("embeddings", call.deployment, dimensions=call.dimensions) as span:
            embedded = self._inner.embed(call)
            span.update(attrs.embedded_attributes(call.deployment, embedded))
            return embedded


def _attempt(operation: str, deployment: Any, **request: Any) -> Any:
    trace: Any = tracing.current()
    if trace is None:
        return tracing.NO_SPAN
    from chalicelib.tracing import attributes as attrs

    trace.attempts = getattr(trace, "attempts", 0) + 1
    record = getattr(trace, "record", None)
    model = record.model if record is not None and record.model else deployment.model_id
    name, start = attrs.attempt_start(operation, deployment, model, trace.attempts, **request)
    return tracing.client_span(name, start)


def wrap_ports(built: dict[str, Any]) -> None:
    """Put the wrappers around the composition root's ports when `built["tracing"]` traces."""
    if isinstance(built.get("tracing"), tracing.NoTracing) or built.get("tracing") is None:
        return
    built["quota"] = TracedQuota(built["quota"])
    built["audit"] = TracedAudit(built["audit"])


def wrap_providers(providers: Mapping[str, Any], traced: bool) -> Mapping[str, Any]:
    return {name: TracedProvider(p) for name, p in providers.items()} if traced else providers
