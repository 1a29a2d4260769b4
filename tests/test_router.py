"""Routing resilience: fallback, no fallback, one deadline, breakers, geography. Fakes stand at the
provider port; the clock is injected, so nothing sleeps."""
from __future__ import annotations

from typing import Any, Callable

import pytest

from chalicelib import errors
from chalicelib.catalog import App, Deployment, GuardrailPolicy, Model, PiiPolicy, Quotas
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


def app(geography: str | None = None, app_id: str = "a") -> App:
    return App(app_id, "bu", ("arn:aws:iam::111122223333:role/r",), frozenset({"m"}),
               PiiPolicy({}, {}), GuardrailPolicy(), Quotas(tokens_per_day=1000), geography=geography)


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


@pytest.mark.parametrize("signal", [errors.Signal.DOWN, errors.Signal.BUSY])
def test_half_open_admits_a_single_concurrent_probe(signal: errors.Signal) -> None:
    clock = Clock()
    breaker = CircuitBreaker(1, 10.0, clock)
    breaker.record("d", "a", signal)
    assert not breaker.allow("d", "a")
    clock.now += 11
    assert [breaker.allow("d", "a") for _ in range(4)] == [True, False, False, False]


# Everything a single request's content can cause, with the class it surfaces as.
REQUESTS_OWN_DOING = [
    errors.InvalidRequest("bad"),  # Bedrock ValidationException, botocore's client-side validation
    errors.InvalidRequest("blocked", code="content_filter"),
    errors.PermissionDenied("no"),
    errors.NotFound("gone"),
    errors.UpstreamError("model failed on this input", code="upstream_model_error", signal=errors.Signal.NONE),
    errors.UpstreamError("malformed output", code="upstream_malformed_output", signal=errors.Signal.NONE),
    errors.DeadlineExceeded("the request's own deadline"),
    errors.RetryVetoed(RuntimeError("last attempt")),
]


@pytest.mark.parametrize("error", REQUESTS_OWN_DOING, ids=lambda e: f"{type(e).__name__}-{e.code}")
def test_nothing_a_request_causes_opens_a_circuit(error: errors.GatewayError) -> None:
    clock = Clock()
    provider = Scripted({"a": [error] * 20 + [OK]})
    r = router(provider, clock, threshold=2)
    for _ in range(20):  # ten times the threshold, from one app
        with pytest.raises(type(error)):
            r.complete(app(app_id="attacker"), model("a"), REQUEST, 10, clock.now + 25)
    assert provider.calls == ["a"] * 20  # never skipped
    assert r.complete(app(app_id="victim"), model("a"), REQUEST, 10, clock.now + 25).completion is OK


@pytest.mark.parametrize(("error", "signal"), [
    (errors.GatewayError("x"), errors.Signal.NONE),
    (errors.InvalidRequest("x"), errors.Signal.NONE),
    (errors.PermissionDenied("x"), errors.Signal.NONE),
    (errors.NotFound("x"), errors.Signal.NONE),
    (errors.QuotaExceeded("x"), errors.Signal.NONE),
    (errors.DeadlineExceeded("x"), errors.Signal.NONE),
    (errors.UpstreamThrottled("x"), errors.Signal.BUSY),
    (errors.ServiceUnavailable("x"), errors.Signal.DOWN),
    (errors.UpstreamError("x"), errors.Signal.DOWN),
    (errors.UpstreamError("x", signal=errors.Signal.NONE), errors.Signal.NONE),
    (errors.DeadlineExceeded("x", signal=errors.Signal.BUSY), errors.Signal.BUSY),
])
def test_every_error_says_what_it_means_for_the_deployment(error: errors.GatewayError,
                                                           signal: errors.Signal) -> None:
    assert error.signal is signal


def test_faults_open_the_deployment_for_every_app() -> None:
    clock = Clock()
    provider = Scripted({"a": [errors.ServiceUnavailable("down")] * 2, "b": [OK] * 5})
    r = router(provider, clock, threshold=2)
    for _ in range(2):
        r.complete(app(app_id="first"), model("a", "b"), REQUEST, 10, clock.now + 25)
    routed = r.complete(app(app_id="second"), model("a", "b"), REQUEST, 10, clock.now + 25)
    assert routed.deployment.name == "b" and routed.attempts == 1  # "a" was skipped for the second app too
    assert provider.calls == ["a", "b", "a", "b", "b"]


@pytest.mark.parametrize("busy", [errors.UpstreamThrottled("slow down"),
                                  errors.DeadlineExceeded("model timed out", signal=errors.Signal.BUSY)])
def test_an_app_that_floods_a_deployment_opens_only_its_own_circuit(busy: errors.GatewayError) -> None:
    clock = Clock()
    provider = Scripted({"a": [busy] * 3 + [OK] * 10})
    r = router(provider, clock, threshold=3, cooldown=30.0)
    flooder, other = app(app_id="flooder"), app(app_id="other")
    for _ in range(3):
        with pytest.raises(type(busy)):
            r.complete(flooder, model("a"), REQUEST, 10, clock.now + 25)
    with pytest.raises(errors.UpstreamThrottled) as raised:  # its own circuit: no call, a 429 to wait
        r.complete(flooder, model("a"), REQUEST, 10, clock.now + 25)
    assert raised.value.code == "app_throttled" and raised.value.headers["retry-after"] == "30"
    assert raised.value.headers["x-garden-attempts"] == "0"
    assert r.complete(other, model("a"), REQUEST, 10, clock.now + 25).completion is OK  # others still served
    assert provider.calls == ["a"] * 4
    clock.now += 31  # the flooder's probe succeeds: closed again
    assert r.complete(flooder, model("a"), REQUEST, 10, clock.now + 25).completion is OK


def test_a_throttled_app_falls_back_while_others_keep_the_primary() -> None:
    clock = Clock()
    provider = Scripted({"primary": [errors.UpstreamThrottled("t")] * 2 + [OK] * 5, "secondary": [OK] * 5})
    r = router(provider, clock, threshold=2)
    for _ in range(2):  # throttled twice, served by the secondary each time
        assert r.complete(app(app_id="flooder"), model("primary", "secondary"), REQUEST, 10,
                          clock.now + 25).deployment.name == "secondary"
    assert r.complete(app(app_id="flooder"), model("primary", "secondary"), REQUEST, 10,
                      clock.now + 25).attempts == 1  # the primary is skipped for the flooder only
    assert r.complete(app(app_id="other"), model("primary", "secondary"), REQUEST, 10,
                      clock.now + 25).deployment.name == "primary"


def test_an_unexpected_error_counts_nowhere_and_frees_its_probe() -> None:
    clock = Clock()
    provider = Scripted({"a": [RuntimeError("bug")] * 5 + [OK]})
    r = router(provider, clock, threshold=1)
    for _ in range(5):
        with pytest.raises(RuntimeError):
            r.complete(app(), model("a"), REQUEST, 10, clock.now + 25)
    assert r.complete(app(), model("a"), REQUEST, 10, clock.now + 25).completion is OK
    breaker = CircuitBreaker(1, 10.0, clock)
    breaker.record("d", "a", errors.Signal.DOWN)
    clock.now += 11
    assert breaker.allow("d", "a")
    breaker.abandon("d", "a")
    assert breaker.allow("d", "a")  # the abandoned probe did not leave the circuit stuck


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


@pytest.mark.parametrize(("provider", "region", "geographies"), [
    ("openai", None, set()),  # unknown residency: serves no geography-bound app
    ("openai", "eu-central-1", {"eu"}),
    ("sagemaker", None, {"eu"}),  # an endpoint runs in the gateway's region unless told otherwise
    ("sagemaker", "us-east-1", {"us"}),
])
def test_other_providers_geographies(provider: str, region: str | None, geographies: set[str]) -> None:
    deployment = Deployment(provider, "eu.looks-like-a-profile", "d", region=region)
    assert deployment_geographies(deployment, "eu-west-1") == geographies


def test_an_openai_deployment_without_region_never_serves_a_geography_bound_app() -> None:
    clock = Clock()
    provider = Scripted({"litellm": [OK, OK]})
    m = Model("m", "x", 100, 0.0, 0.0, (Deployment("fake", "gpt-4o", "litellm"),))
    r = Router({"fake": provider}, CircuitBreaker(3, 30.0, clock), "eu-west-1", clock)
    assert r.complete(app(), m, REQUEST, 10, clock.now + 25).deployment.name == "litellm"
    upstream = Model("m", "x", 100, 0.0, 0.0, (Deployment("openai", "gpt-4o", "litellm"),))
    with pytest.raises(errors.NotFound):
        Router({"openai": provider}, CircuitBreaker(3, 30.0, clock), "eu-west-1", clock).complete(
            app("eu"), upstream, REQUEST, 10, clock.now + 25)
