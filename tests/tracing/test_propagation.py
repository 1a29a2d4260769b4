"""The gateway's trace context reaches its upstreams: a W3C `traceparent` header to an OpenAI-compatible
upstream, and `traceparent=...` in SageMaker's CustomAttributes (the container sees it as
X-Amzn-SageMaker-Custom-Attributes), each naming the provider attempt's CLIENT span as the parent,
in the caller's trace. A fallback's second attempt names its own span. With tracing off, nothing is
added."""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import requests
from botocore.credentials import Credentials
from fakes.openai_server import Fail, FakeOpenAI, Reply
from fakes.sagemaker_server import FakeSageMaker
from local_server import serve
from otlp_receiver import otlp_receiver
from support import KEY_ID, SECRET, TEST_CATALOG

from client.garden_auth import SigV4RequestsAuth

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{CALLER_TRACE}-00f067aa0ba902b7-01"
CANARY = "CANARY-p2Wq6-propagation-7a3d"


def openai_catalog(base_url: str) -> dict[str, Any]:
    raw = copy.deepcopy(TEST_CATALOG)
    deployment = {"provider": "openai", "base_url": base_url, "api_key_env": "GARDEN_TEST_TIER_KEY"}
    raw["models"]["tier"] = {"max_output_tokens": 64, "price": {"input_per_1k": 0, "output_per_1k": 0},
                             "deployments": [{**deployment, "model_id": "busy", "name": "tier-busy"},
                                             {**deployment, "model_id": "ok", "name": "tier-ok"}]}
    raw["models"]["sm"] = {"max_output_tokens": 64, "price": {"input_per_1k": 0, "output_per_1k": 0},
                           "deployments": [{"provider": "sagemaker", "model_id": "sm-endpoint", "region": "us-east-1"}]}
    raw["apps"][0]["allowed_models"] += ["tier", "sm"]
    return raw


def chat(base_url: str, model: str, traceparent: str | None = TRACEPARENT) -> requests.Response:
    auth = SigV4RequestsAuth(region="us-east-1", credentials=Credentials(KEY_ID, SECRET))
    headers = {"content-type": "application/json", **({"traceparent": traceparent} if traceparent else {})}
    body = {"model": model, "messages": [{"role": "user", "content": f"hello {CANARY}"}]}
    return requests.post(f"{base_url}/v1/chat/completions", data=json.dumps(body).encode(), auth=auth,
                         timeout=20, headers=headers)


def test_openai_and_sagemaker_upstreams_receive_the_attempts_trace_context(tmp_path: Path) -> None:
    with FakeOpenAI({"busy": Fail(429), "ok": Reply()}) as upstream, FakeSageMaker() as sagemaker, \
            otlp_receiver() as receiver:
        catalog = tmp_path / "upstreams-catalog.json"
        catalog.write_text(json.dumps(openai_catalog(upstream.base_url)))
        env = {"GARDEN_CATALOG": str(catalog), "GARDEN_TEST_TIER_KEY": "sk-test", "GARDEN_BEDROCK_REGION": "us-east-1",
               "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": sagemaker.endpoint_url,
               "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url}
        with serve(tmp_path, env) as server:
            tier = chat(server.base_url, "tier")
            sm = chat(server.base_url, "sm")
            assert (tier.status_code, sm.status_code) == (200, 200), (tier.text, sm.text)
            spans = receiver.wait_for(lambda s: sum(x.kind == "SERVER" for x in s) >= 2)

    attempts = {s.attributes["garden.deployment"]: s for s in spans if "gen_ai.operation.name" in s.attributes
                and s.kind == "CLIENT"}
    assert set(attempts) >= {"tier-busy", "tier-ok", "sagemaker/sm-endpoint"}
    assert attempts["tier-busy"].attributes["garden.outcome"] == "fallback"
    assert attempts["tier-busy"].attributes["error.type"] and attempts["tier-busy"].status_code == 2
    assert attempts["tier-ok"].attributes["garden.attempt"] == 2
    assert attempts["tier-ok"].attributes["gen_ai.provider.name"] == "openai"
    assert attempts["tier-ok"].attributes["server.address"] == "127.0.0.1"
    assert attempts["sagemaker/sm-endpoint"].attributes["gen_ai.provider.name"] == "aws.sagemaker"
    # The InvokeEndpoint call itself is an AWS call span under its attempt.
    [invoke] = [s for s in spans if s.name == "SageMaker Runtime.InvokeEndpoint"]
    assert invoke.kind == "CLIENT" and invoke.parent_span_id == attempts["sagemaker/sm-endpoint"].span_id

    sent = [headers.get("traceparent") for _path, _body, headers in upstream.requests]
    assert sent == [f"00-{CALLER_TRACE}-{attempts['tier-busy'].span_id}-01",
                    f"00-{CALLER_TRACE}-{attempts['tier-ok'].span_id}-01"]
    custom = [seen.headers.get("x-amzn-sagemaker-custom-attributes") for seen in sagemaker.requests]
    assert custom == [f"traceparent=00-{CALLER_TRACE}-{attempts['sagemaker/sm-endpoint'].span_id}-01"]
    assert CANARY.encode() not in receiver.raw()


def test_with_tracing_off_no_trace_context_goes_upstream(tmp_path: Path) -> None:
    with FakeOpenAI({"busy": Reply()}) as upstream, FakeSageMaker() as sagemaker:
        catalog = tmp_path / "upstreams-catalog.json"
        catalog.write_text(json.dumps(openai_catalog(upstream.base_url)))
        env = {"GARDEN_CATALOG": str(catalog), "GARDEN_TEST_TIER_KEY": "sk-test", "GARDEN_BEDROCK_REGION": "us-east-1",
               "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": sagemaker.endpoint_url}
        with serve(tmp_path, env) as server:
            assert chat(server.base_url, "tier").status_code == 200
            assert chat(server.base_url, "sm").status_code == 200
    assert [h.get("traceparent") for _p, _b, h in upstream.requests] == [None]
    assert [s.headers.get("x-amzn-sagemaker-custom-attributes") for s in sagemaker.requests] == [None]


def test_a_caller_that_sampled_out_is_followed_and_its_decision_passed_on(tmp_path: Path) -> None:
    with FakeOpenAI({"busy": Reply()}) as upstream, otlp_receiver() as receiver:
        catalog = tmp_path / "upstreams-catalog.json"
        catalog.write_text(json.dumps(openai_catalog(upstream.base_url)))
        env = {"GARDEN_CATALOG": str(catalog), "GARDEN_TEST_TIER_KEY": "sk-test",
               "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url}  # the default sampler: parentbased_always_on
        with serve(tmp_path, env) as server:
            assert chat(server.base_url, "tier", traceparent=f"00-{CALLER_TRACE}-00f067aa0ba902b7-00").status_code == 200
        assert receiver.bodies == []  # the caller's "not sampled" is honoured: nothing exported
    [(_path, _body, headers)] = upstream.requests
    version, trace_id, _span, flags = headers["traceparent"].split("-")
    assert (version, trace_id, flags) == ("00", CALLER_TRACE, "00")  # same trace, still not sampled
