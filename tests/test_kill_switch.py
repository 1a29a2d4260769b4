"""The kill switch: a deployment switched off in the registry leaves every route (chat and
embeddings) within the refresh bound; a model with none left answers 503 all_deployments_disabled.
Through the router (its port) and through the whole pipeline (signed requests, a real SQLite
registry, an injected clock: nothing sleeps)."""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from chalicelib import errors
from chalicelib.catalog import App, Deployment, GuardrailPolicy, Model, PiiPolicy, Quotas, parse_catalog
from chalicelib.catalog_source import REFRESH_S, RegistryCatalog
from chalicelib.chat import ChatRequest, Completion, Message, Usage
from chalicelib.lazy import OnFirstUse
from chalicelib.providers import ProviderCall
from chalicelib.registry.sqlite import SqliteRegistry
from chalicelib.router import CircuitBreaker, Router
from support import TEST_CATALOG, running_garden

OPS = "arn:aws:iam::000000000000:role/garden-platform-admin"
REQUEST = ChatRequest(model="m", messages=(Message("user", "hi"),))


class Recording:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def complete(self, call: ProviderCall) -> Completion:
        self.calls.append(call.deployment.name)
        return Completion("ok", "stop", Usage(1, 1))


def app(geography: str | None = None) -> App:
    return App("a", "bu", ("arn:aws:iam::111122223333:role/r",), frozenset({"m"}),
               PiiPolicy({}, {}), GuardrailPolicy(), Quotas(tokens_per_day=1000), geography=geography)


def model(*deployments: Deployment) -> Model:
    return Model("m", "x", 100, 0.0, 0.0, deployments)


def router(provider: Recording, disabled: set[str]) -> Router:
    return Router({"fake": provider}, CircuitBreaker(), "eu-west-1", disabled=lambda: frozenset(disabled))


def test_the_router_skips_a_switched_off_deployment_and_never_calls_it() -> None:
    provider, off = Recording(), set()
    r = router(provider, off)
    m = model(Deployment("fake", "p", "primary"), Deployment("fake", "s", "secondary"))
    assert r.complete(app(), m, REQUEST, 10, float("inf")).deployment.name == "primary"
    off.add("primary")  # read per request: no new router
    routed = r.complete(app(), m, REQUEST, 10, float("inf"))
    assert (routed.deployment.name, routed.attempts) == ("secondary", 1)
    assert provider.calls == ["primary", "secondary"]
    assert [d.name for d in r.deployments_for(app(), m)] == ["secondary"]
    assert [d.name for d in r.deployments_for(app(), m, frozenset())] == ["primary", "secondary"]


def test_every_deployment_off_is_503_all_deployments_disabled() -> None:
    provider = Recording()
    r = router(provider, {"primary", "secondary"})
    m = model(Deployment("fake", "p", "primary"), Deployment("fake", "s", "secondary"))
    with pytest.raises(errors.ServiceUnavailable) as caught:
        r.complete(app(), m, REQUEST, 10, float("inf"))
    assert (caught.value.status, caught.value.code) == (503, "all_deployments_disabled")
    assert provider.calls == []


def test_geography_is_decided_before_the_switch() -> None:
    r = router(Recording(), {"eu"})
    m = model(Deployment("fake", "eu.anthropic.x", "eu", region="eu-west-1"),
              Deployment("fake", "us.anthropic.x", "us", region="us-east-1"))
    with pytest.raises(errors.ServiceUnavailable) as caught:
        r.deployments_for(app("eu"), m)  # its only EU deployment is off: never the US one
    assert caught.value.code == "all_deployments_disabled"
    with pytest.raises(errors.NotFound):
        router(Recording(), set()).deployments_for(app("apac"), m)


def switch_catalog() -> dict[str, Any]:
    raw = copy.deepcopy(TEST_CATALOG)
    raw["models"]["local-echo"]["deployments"] = [
        {"provider": "local-echo", "model_id": "echo-1", "name": "echo-primary"},
        {"provider": "local-echo", "model_id": "echo-2", "name": "echo-secondary"}]
    raw["models"]["echo-small"]["deployments"] = [
        {"provider": "local-echo", "model_id": "echo-small", "name": "echo-primary"}]  # the same name
    raw["models"]["embed"] = {
        "kind": "embedding", "bytes_per_token": 4, "price": {"input_per_1k": 0.0},
        "deployments": [{"provider": "local-embed", "model_id": "hashed-trigrams-256", "name": "embed-a"},
                        {"provider": "local-embed", "model_id": "hashed-trigrams-256", "name": "embed-b"}]}
    for a in raw["apps"]:
        a["allowed_models"] += ["embed"]
    return raw


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def served_by(response: Any) -> str:
    assert response.status_code == 200, response.body
    return response.headers["x-garden-deployment"]


def error_code(response: Any) -> str:
    return json.loads(response.body)["error"]["code"]


def test_a_switched_off_deployment_leaves_every_route_within_the_bound(tmp_path: Path) -> None:
    raw, clock = switch_catalog(), Clock()
    # The registry running_garden's home holds, opened on the first request as the gateway does.
    opened = OnFirstUse(lambda: SqliteRegistry(tmp_path / "garden-home" / "garden.sqlite3"))
    source = RegistryCatalog(parse_catalog(copy.deepcopy(raw)), raw, opened, monotonic=clock)

    def chat(model_id: str) -> Any:
        return g.chat({"model": model_id, "messages": [{"role": "user", "content": "hi"}]})

    def embed() -> Any:
        return g.request("POST", "/v1/embeddings", {"model": "embed", "input": "hi"})

    with running_garden(tmp_path, catalog=source) as g:
        registry = SqliteRegistry(g.home / "garden.sqlite3")
        assert (served_by(chat("local-echo")), served_by(chat("echo-small")), served_by(embed())) == (
            "echo-primary", "echo-primary", "embed-a")
        registry.set_deployment("echo-primary", False, OPS)
        registry.set_deployment("embed-a", False, OPS)
        clock.now += REFRESH_S - 1  # still within the cache: served as before
        assert served_by(chat("local-echo")) == "echo-primary"
        clock.now += 1  # REFRESH_S after the write: taken out of every route that has it
        assert served_by(chat("local-echo")) == "echo-secondary"
        response = chat("echo-small")  # its only deployment
        assert (response.status_code, error_code(response)) == (503, "all_deployments_disabled")
        assert served_by(embed()) == "embed-b"
        registry.set_deployment("embed-b", False, OPS)
        clock.now += REFRESH_S
        response = embed()
        assert (response.status_code, error_code(response)) == (503, "all_deployments_disabled")
        # Switched back on: served again within the same bound.
        registry.set_deployment("echo-primary", True, OPS)
        clock.now += REFRESH_S
        assert served_by(chat("echo-small")) == "echo-primary"
        assert [c.target for c in registry.changes(limit=4)] == [
            "deployment:echo-primary", "deployment:embed-b", "deployment:embed-a", "deployment:echo-primary"]
    registry.close()
    opened().close()
