"""Routing resilience: fallback, no fallback, one deadline, breakers, geography. Fakes stand at the
provider port; the clock is injected, so nothing sleeps."""
from __future__ import annotations

from typing import Any, Callable

import pytest

from chalicelib import errors
from chalicelib.catalog import App, Deployment, GuardrailPolicy, Model, PiiPolicy
from chalicelib.chat import ChatRequest, Completion, Message, Usage
from chalicelib.geography import deployment_geographies
from chalicelib.providers import ProviderCall
from chalicelib.router import CircuitBreaker, Router

OK = Completion("ok", "stop", Usage(1, 1))
REQUEST = ChatRequest(model="m", messages=(Message("user", "hi"),))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Scripted:
    """A provider whose answers per deployment are scripted: an exception to raise or a completion."""

    def __init__(self, script: dict[str, list[Any]], on_call: Callable[[ProviderCall], None] | None = None):
        self.script = script
        self.calls: list[str] = []
        self.on_call = on_call

    def complete(self, call: ProviderCall) -> Completion:
        self.calls.append(call.deployment.name)
        if self.on_call:
            self.on_call(call)
        outcome = self.script[call.deployment.name].pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def app(geography: str | None = None) -> App:
    return App("a", "bu", ("arn:aws:iam::111122223333:role/r",), frozenset({"m"}),
               PiiPolicy({}, {}), GuardrailPolicy(), 1000, geography=geography)


def model(*names: str) -> Model:
    return Model("m", "x", 100, 0.0, 0.0, tuple(Deployment("fake", n, n) for n in names))


def router(provider: Scripted, clock: Clock, threshold: int = 3, cooldown: float = 30.0) -> Router:
    return Router({"fake": provider}, CircuitBreaker(threshold, cooldown, clock), "eu-west-1", clock)


@pytest.mark.parametrize("error", [errors.UpstreamThrottled("t"), errors.ServiceUnavailable("u"),
                                   errors.DeadlineExceeded("d")])
def test_falls_back_on_retryable_faults(error: errors.GatewayError) -> None:
    clock = Clock()
    provider = Scripted({"primary": [error], "secondary": [OK]})
    routed = router(provider, clock).complete(app(), model("primary", "secondary"), REQUEST, 10, clock.now + 25)
    assert routed.completion is OK and routed.deployment.name == "secondary" and routed.attempts == 2
    assert provider.calls == ["primary", "secondary"]


@pytest.mark.parametrize("error", [errors.InvalidRequest("bad"), errors.PermissionDenied("no"),
                                   errors.NotFound("gone"), errors.UpstreamError("broken")])
def test_no_fallback_on_caller_or_model_errors(error: errors.GatewayError) -> None:
    clock = Clock()
    provider = Scripted({"primary": [error], "secondary": [OK]})
    with pytest.raises(type(error)) as raised:
        router(provider, clock).complete(app(), model("primary", "secondary"), REQUEST, 10, clock.now + 25)
    assert provider.calls == ["primary"]
    assert raised.value.headers["x-garden-attempts"] == "1"
    assert raised.value.headers["x-garden-deployment"] == "primary"


def test_every_deployment_failing_returns_the_last_error_with_attempts() -> None:
    clock = Clock()
    provider = Scripted({"a": [errors.UpstreamThrottled("t")], "b": [errors.ServiceUnavailable("u")]})
    with pytest.raises(errors.ServiceUnavailable) as raised:
        router(provider, clock).complete(app(), model("a", "b"), REQUEST, 10, clock.now + 25)
    assert raised.value.headers["x-garden-attempts"] == "2"


def test_no_attempt_starts_after_the_deadline() -> None:
    clock = Clock()

    def slow(call: ProviderCall) -> None:
        clock.now = call.deadline + 0.001  # the first deployment used the whole budget

    provider = Scripted({"a": [errors.DeadlineExceeded("slow")], "b": [OK]}, on_call=slow)
    with pytest.raises(errors.DeadlineExceeded):
        router(provider, clock).complete(app(), model("a", "b"), REQUEST, 10, clock.now + 25)
    assert provider.calls == ["a"]


def test_every_attempt_shares_one_deadline() -> None:
    clock = Clock()
    seen: list[float] = []
    provider = Scripted({"a": [errors.UpstreamThrottled("t")], "b": [OK]},
                        on_call=lambda call: seen.append(call.deadline))
    router(provider, clock).complete(app(), model("a", "b"), REQUEST, 10, 1025.0)
    assert seen == [1025.0, 1025.0]


def test_breaker_opens_then_allows_one_probe_per_cooldown() -> None:
    clock = Clock()
    dead = [errors.ServiceUnavailable("down")] * 20
    provider = Scripted({"dead": list(dead), "backup": [OK] * 20})
    r = router(provider, clock, threshold=3, cooldown=30.0)
    for _ in range(3):  # three consecutive failures open the circuit
        r.complete(app(), model("dead", "backup"), REQUEST, 10, clock.now + 25)
    assert provider.calls.count("dead") == 3
    for _ in range(5):  # open: the dead deployment is not called at all
        r.complete(app(), model("dead", "backup"), REQUEST, 10, clock.now + 25)
    assert provider.calls.count("dead") == 3
    clock.now += 31  # cool-down over: exactly one probe, which fails and re-opens
    for _ in range(5):
        r.complete(app(), model("dead", "backup"), REQUEST, 10, clock.now + 25)
    assert provider.calls.count("dead") == 4
    clock.now += 31
    provider.script["dead"] = [OK]  # the probe succeeds: closed again
    assert r.complete(app(), model("dead", "backup"), REQUEST, 10, clock.now + 25).deployment.name == "dead"


def test_half_open_admits_a_single_concurrent_probe() -> None:
    clock = Clock()
    breaker = CircuitBreaker(1, 10.0, clock)
    breaker.failure("d")
    assert not breaker.allow("d")
    clock.now += 11
    assert [breaker.allow("d") for _ in range(4)] == [True, False, False, False]


def test_client_errors_do_not_open_the_circuit() -> None:
    clock = Clock()
    provider = Scripted({"a": [errors.InvalidRequest("bad")] * 5 + [OK]})
    r = router(provider, clock, threshold=2)
    for _ in range(5):
        with pytest.raises(errors.InvalidRequest):
            r.complete(app(), model("a"), REQUEST, 10, clock.now + 25)
    assert r.complete(app(), model("a"), REQUEST, 10, clock.now + 25).completion is OK


def test_eu_app_is_never_routed_outside_the_eu() -> None:
    clock = Clock()
    provider = Scripted({"us.anthropic.claude": [OK], "global.anthropic.claude": [OK],
                         "eu.anthropic.claude": [OK]})
    routed = router(provider, clock).complete(
        app("eu"), model("us.anthropic.claude", "global.anthropic.claude", "eu.anthropic.claude"),
        REQUEST, 10, clock.now + 25)
    assert provider.calls == ["eu.anthropic.claude"] and routed.attempts == 1
    with pytest.raises(errors.NotFound):
        router(provider, clock).complete(app("eu"), model("us.x.y", "global.x.y"), REQUEST, 10, clock.now + 25)


@pytest.mark.parametrize(
    ("model_id", "region", "geographies"),
    [
        ("eu.anthropic.claude-3-haiku-20240307-v1:0", None, {"eu"}),
        ("us.amazon.nova-lite-v1:0", None, {"us"}),
        ("global.anthropic.claude-sonnet-4-5-20250929-v1:0", None, set()),
        ("anthropic.claude-3-haiku-20240307-v1:0", None, {"eu"}),  # in the gateway's region, eu-west-1
        ("anthropic.claude-3-haiku-20240307-v1:0", "us-east-1", {"us"}),
        ("arn:aws:bedrock:eu-central-1:111122223333:inference-profile/eu.meta.llama3", None, {"eu"}),
        ("arn:aws:bedrock:us-west-2:111122223333:provisioned-model/abc123", None, {"us"}),
        ("arn:aws:bedrock:ap-northeast-1:111122223333:application-inference-profile/xyz", None, {"apac", "jp"}),
    ],
)
def test_deployment_geographies(model_id: str, region: str | None, geographies: set[str]) -> None:
    deployment = Deployment("bedrock", model_id, model_id, region=region)
    assert deployment_geographies(deployment, "eu-west-1") == geographies
