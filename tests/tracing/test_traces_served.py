"""Traces from the gateway as `make run` (devserver) and `chalice local` serve it, received as real
OTLP/HTTP exports (http/protobuf) on a loopback receiver and decoded with opentelemetry-proto: the
span tree (parents, kinds, names), the GenAI attributes, the caller's traceparent, and no content,
even with the GenAI conventions' content capture asked for."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests
from botocore.credentials import Credentials
from local_server import serve
from otlp_receiver import ExportedSpan, by_request, otlp_receiver
from support import BLOCK_KEY_ID, KEY_ID, SECRET

from client.garden_auth import SigV4RequestsAuth

CANARY = "CANARY-t4Rc8-traces-1b9e"
CALLER_TRACE, CALLER_SPAN = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
TRACEPARENT = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
CHAT_CHILDREN = ["garden.identity", "garden.quota.reserve", "garden.pii.input", "garden.guardrail.input",
                 "chat echo-1", "garden.guardrail.output", "garden.pii.output",
                 "garden.quota.settle", "garden.audit"]


def post(base_url: str, body: Any, key_id: str = KEY_ID, headers: dict[str, str] | None = None) -> requests.Response:
    auth = SigV4RequestsAuth(region="us-east-1", credentials=Credentials(key_id, SECRET))
    return requests.post(f"{base_url}/v1/chat/completions", data=json.dumps(body).encode(), auth=auth, timeout=20,
                         headers={"content-type": "application/json", **(headers or {})})


def tracing_env(url: str, **extra: str) -> dict[str, str]:
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": url, "OTEL_SERVICE_NAME": "garden-under-test",
            # The GenAI conventions' opt-in for prompt and completion content: never honoured.
            "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true", **extra}


def trace_of(spans: list[ExportedSpan], request_id: str) -> list[ExportedSpan]:
    roots = [s for s in spans if s.attributes.get("garden.request_id") == request_id]
    assert len(roots) == 1, [s.name for s in spans]
    return [s for s in spans if s.trace_id == roots[0].trace_id]


@pytest.mark.parametrize("chalice_cli", [False, True], ids=["make-run", "chalice-local"])
def test_a_chat_request_exports_its_span_tree_with_genai_attributes(tmp_path: Path, chalice_cli: bool) -> None:
    with otlp_receiver() as receiver:
        with serve(tmp_path, tracing_env(receiver.url), chalice_cli=chalice_cli) as server:
            body = {"model": "local-echo", "max_tokens": 64, "temperature": 0.2, "messages": [
                {"role": "user", "content": f"hello {CANARY} mail jane.doe@example.com"}]}
            response = post(server.base_url, body, headers={"traceparent": TRACEPARENT})
            assert response.status_code == 200 and CANARY in response.text  # the canary reached the model
            spans = receiver.wait_for(lambda s: any(x.kind == "SERVER" for x in s))
        assert receiver.paths and set(receiver.paths) == {"/v1/traces"}
        assert receiver.headers[0]["content-type"] == "application/x-protobuf"

    tree = trace_of(spans, response.headers["x-request-id"])
    root = next(s for s in tree if s.kind == "SERVER")
    # The caller's W3C traceparent is honoured: same trace, the caller's span as parent.
    assert (root.trace_id, root.parent_span_id) == (CALLER_TRACE, CALLER_SPAN)
    assert root.name == "POST /v1/chat/completions"
    assert root.resource["service.name"] == "garden-under-test"
    children = sorted((s for s in tree if s is not root), key=lambda s: s.start_ns)
    assert [s.name for s in children] == CHAT_CHILDREN
    assert all(s.parent_span_id == root.span_id for s in children)
    assert {s.name: s.kind for s in children}["chat echo-1"] == "CLIENT"
    assert {s.kind for s in children if s.name != "chat echo-1"} == {"INTERNAL"}
    assert all(root.start_ns <= s.start_ns <= s.end_ns <= root.end_ns for s in children)

    a = root.attributes
    assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.request.model"] == "local-echo"
    assert a["gen_ai.response.model"] == "local-echo"
    assert a["gen_ai.usage.input_tokens"] > 0 and a["gen_ai.usage.output_tokens"] > 0
    assert a["gen_ai.response.finish_reasons"] == ["stop"]
    assert "error.type" not in a and a["http.response.status_code"] == 200
    assert (a["garden.app_id"], a["garden.business_unit"]) == ("test-app", "retail-banking")
    assert (a["garden.deployment"], a["garden.attempts"]) == ("local-echo/echo-1", 1)
    assert a["garden.cost_usd"] > 0 and a["garden.pii.email.redact"] == 1
    assert a["garden.guardrail.verdict"] == "pass"

    attempt = next(s for s in children if s.kind == "CLIENT").attributes
    assert attempt["gen_ai.operation.name"] == "chat" and attempt["gen_ai.provider.name"] == "garden.local"
    assert (attempt["gen_ai.request.model"], attempt["gen_ai.response.model"]) == ("echo-1", "echo-1")
    assert (attempt["gen_ai.request.max_tokens"], attempt["gen_ai.request.temperature"]) == (64, 0.2)
    assert attempt["gen_ai.usage.input_tokens"] == a["gen_ai.usage.input_tokens"]
    assert attempt["gen_ai.response.finish_reasons"] == ["stop"]
    assert (attempt["garden.deployment"], attempt["garden.outcome"], attempt["garden.model"]) == (
        "local-echo/echo-1", "ok", "local-echo")
    pii_in = next(s for s in children if s.name == "garden.pii.input").attributes
    assert pii_in["garden.pii.email.redact"] == 1

    # No content anywhere in what was exported, content capture asked for or not.
    assert CANARY.encode() not in receiver.raw() and b"jane.doe" not in receiver.raw()
    assert all(s.events == 0 and s.status_message == "" for s in spans)


def test_refused_requests_carry_error_type_and_no_provider_span(tmp_path: Path) -> None:
    with otlp_receiver() as receiver:
        with serve(tmp_path, tracing_env(receiver.url)) as server:
            blocked = post(server.base_url, {"model": "local-echo", "messages": [
                {"role": "user", "content": f"{CANARY} guaranteed returns"}]})
            card = post(server.base_url, {"model": "local-echo", "messages": [
                {"role": "user", "content": f"{CANARY} 4111 1111 1111 1111"}]}, key_id=BLOCK_KEY_ID)
            unknown = post(server.base_url, {"model": CANARY, "messages": [{"role": "user", "content": CANARY}]})
            assert (blocked.status_code, card.status_code, unknown.status_code) == (400, 400, 404)
            spans = receiver.wait_for(lambda s: sum(x.kind == "SERVER" for x in s) >= 3)

    for response, error_type, stage, verdict in (
            (blocked, "content_filter", "garden.guardrail.input", {"garden.guardrail.verdict": "blocked"}),
            (card, "pii_blocked", "garden.pii.input", {"garden.pii.blocked": True,
                                                       "garden.pii.credit_debit_number.block": 1}),
            (unknown, "model_not_found", "garden.identity", {"garden.app_id": "test-app"})):
        tree = trace_of(spans, response.headers["x-request-id"])
        root = next(s for s in tree if s.kind == "SERVER")
        assert root.attributes["error.type"] == response.json()["error"]["code"] == error_type
        assert root.attributes["http.response.status_code"] == response.status_code
        assert not any(s.kind == "CLIENT" for s in tree)  # no model was called
        assert root.status_code == 0  # a 4xx is the caller's: the server span is not in error
        # The stage that refused says so, by verdict and count, never by text.
        said = next(s for s in tree if s.name == stage).attributes
        assert {k: said.get(k) for k in verdict} == verdict
        names = {s.name for s in tree}
        assert "garden.audit" in names and "garden.quota.settle" not in names
    assert CANARY.encode() not in receiver.raw()


def test_the_samplers_variable_is_honoured(tmp_path: Path) -> None:
    with otlp_receiver() as receiver:
        with serve(tmp_path, tracing_env(receiver.url, OTEL_TRACES_SAMPLER="always_off")) as server:
            response = post(server.base_url, {"model": "local-echo", "messages": [{"role": "user", "content": "hi"}]})
            assert response.status_code == 200
            # Sampled out, yet an upstream would still see this request's trace context (not asserted here).
        assert receiver.bodies == []


def test_a_caller_without_traceparent_starts_a_trace_and_export_options_apply(tmp_path: Path) -> None:
    with otlp_receiver() as receiver:
        env = tracing_env(receiver.url, OTEL_EXPORTER_OTLP_COMPRESSION="gzip",
                          OTEL_EXPORTER_OTLP_HEADERS="x-backend-key=k%201,x-tenant=garden")
        with serve(tmp_path, env) as server:
            first = post(server.base_url, {"model": "local-echo", "messages": [{"role": "user", "content": "a"}]})
            second = post(server.base_url, {"model": "local-echo", "messages": [{"role": "user", "content": "b"}]})
            spans = receiver.wait_for(lambda s: sum(x.kind == "SERVER" for x in s) >= 2)
        assert receiver.headers[0].get("content-encoding") == "gzip"
        assert (receiver.headers[0]["x-backend-key"], receiver.headers[0]["x-tenant"]) == ("k 1", "garden")
    roots = [s for s in spans if s.kind == "SERVER"]
    assert {s.attributes["garden.request_id"] for s in roots} == {first.headers["x-request-id"],
                                                                  second.headers["x-request-id"]}
    assert all(s.parent_span_id == "" for s in roots) and len(by_request(spans)) == 2


def test_an_embeddings_request_exports_its_span_tree(tmp_path: Path) -> None:
    from test_embeddings import embedding_catalog

    catalog = tmp_path / "embedding-catalog.json"
    catalog.write_text(json.dumps(embedding_catalog()))
    with otlp_receiver() as receiver:
        with serve(tmp_path, {"GARDEN_CATALOG": str(catalog), **tracing_env(receiver.url)}) as server:
            auth = SigV4RequestsAuth(region="us-east-1", credentials=Credentials(KEY_ID, SECRET))
            body = {"model": "embed", "input": [f"a {CANARY}", "b"], "dimensions": 64}
            response = requests.post(f"{server.base_url}/v1/embeddings", data=json.dumps(body).encode(), auth=auth,
                                     timeout=20, headers={"content-type": "application/json"})
            assert response.status_code == 200
            spans = receiver.wait_for(lambda s: any(x.kind == "SERVER" for x in s))
    tree = trace_of(spans, response.headers["x-request-id"])
    root = next(s for s in tree if s.kind == "SERVER")
    assert root.name == "POST /v1/embeddings" and root.attributes["gen_ai.operation.name"] == "embeddings"
    children = sorted((s for s in tree if s is not root), key=lambda s: s.start_ns)
    assert [s.name for s in children] == ["garden.identity", "garden.quota.reserve", "garden.pii.input",
                                          "garden.guardrail.input", "embeddings hashed-trigrams-256",
                                          "garden.quota.settle", "garden.audit"]
    attempt = children[4]
    assert attempt.kind == "CLIENT" and attempt.attributes["gen_ai.operation.name"] == "embeddings"
    assert attempt.attributes["gen_ai.embeddings.dimension.count"] == 64
    assert attempt.attributes["gen_ai.usage.input_tokens"] == root.attributes["gen_ai.usage.input_tokens"] > 0
    assert CANARY.encode() not in receiver.raw()
