"""The prod composition in Lambda with active tracing: the Lambda handler serves API Gateway proxy
events (IAM identity, DynamoDB ledger and S3 audit on moto, Comprehend and Bedrock fakes) under
GARDEN_TRACING=xray, Lambda naming each invocation's trace in `_X_AMZN_TRACE_ID`. Every invocation's
spans have reached the X-Ray daemon (a UDP socket on loopback) by the time the handler returns, in
that invocation's trace, with a span for each AWS call carrying the app and model, and Bedrock told its parent span."""
from __future__ import annotations

import base64
import json
import socket
from typing import Any

import pytest
from lambda_events import LambdaContext, proxy_event
from otlp_receiver import ExportedSpan, decode
from test_aws_mode_e2e import CALLER, aws_gateway  # noqa: F401 - the fixture

from chalicelib import gateway
from chalicelib.catalog import parse_catalog
from chalicelib.settings import Settings

CANARY = "CANARY-l7Vb4-lambda-xray-9e2a"
INVOCATIONS = [("1-5759e988-bd862e3fe1be46a994272793", "53995c3f42cd8ad8"),
               ("1-6a1b2c3d-0123456789abcdef01234567", "0f0e0d0c0b0a0908")]


def received(daemon: socket.socket) -> list[ExportedSpan]:
    """Every datagram already delivered (non-blocking: nothing is waited for)."""
    spans = []
    while True:
        try:
            datagram = daemon.recv(65535)
        except BlockingIOError:
            return spans
        header, _, payload = datagram.partition(b"\n")
        assert json.loads(header) == {"format": "json", "version": 1} and payload.startswith(b"T1S")
        assert CANARY.encode() not in datagram
        spans += decode(base64.b64decode(payload[3:]))


def test_each_invocations_spans_reach_the_daemon_before_the_handler_returns(
        aws_gateway: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    from app import app

    daemon = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    daemon.bind(("127.0.0.1", 0))
    daemon.setblocking(False)
    env = {**aws_gateway["env"], "GARDEN_TRACING": "xray",
           "AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{daemon.getsockname()[1]}"}
    raw = json.loads(open(env["GARDEN_CATALOG"]).read())
    del raw["apps"][0]["guardrail"]["bedrock_guardrail_id"]  # as the fixture's own composition
    for name, value in env.items():
        monkeypatch.setenv(name, value)  # the composition root reads the tracing variables from here
    gateway.use(gateway.build_pipeline(Settings.from_env(env), catalog=parse_catalog(raw)))
    try:
        for root_id, parent in INVOCATIONS:
            monkeypatch.setenv("_X_AMZN_TRACE_ID", f"Root={root_id};Parent={parent};Sampled=1")
            body = {"model": "claude", "messages": [{"role": "user", "content": f"{CANARY} jane.doe@example.com"}]}
            result = app(proxy_event("POST", "/v1/chat/completions", body, caller_arn=CALLER), LambdaContext())
            assert result["statusCode"] == 200, result["body"]
            spans = received(daemon)  # right after the handler returned
            root = next(s for s in spans if s.kind == "SERVER")
            assert (root.trace_id, root.parent_span_id) == (root_id[2:].replace("-", ""), parent)
            assert {s.trace_id for s in spans} == {root.trace_id}
            calls = [s for s in spans if s.attributes.get("rpc.system") == "aws-api"]
            # The ledger (DynamoDB), Comprehend for PII, the audit object (S3): each a CLIENT span.
            assert {s.name for s in calls} >= {"DynamoDB.UpdateItem", "Comprehend.DetectPiiEntities", "S3.PutObject"}
            for call in calls:
                assert call.kind == "CLIENT" and call.attributes["garden.app_id"] == "test-app"
                assert call.attributes["garden.model"] == "claude" and call.attributes["aws.request_id"]
            assert {s.name for s in spans} >= {"garden.identity", "chat anthropic.claude-3-haiku", "garden.audit"}
            # The model call: a span under the provider attempt, whose id Bedrock receives as the parent.
            attempt = next(s for s in spans if s.name == "chat anthropic.claude-3-haiku")
            [converse] = [s for s in calls if s.name == "Bedrock Runtime.Converse"]
            assert converse.parent_span_id == attempt.span_id
            path, _body, headers = aws_gateway["bedrock"].requests[-1]
            assert headers["x-amzn-trace-id"] == f"Root={root_id};Parent={converse.span_id};Sampled=1"
    finally:
        gateway.use(None)
        daemon.close()
