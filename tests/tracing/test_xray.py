"""X-Ray through OpenTelemetry (no aws-xray-sdk): under GARDEN_TRACING=xray (or an invocation Lambda's
active tracing sampled) the request's span joins the trace Lambda names in `_X_AMZN_TRACE_ID` (API
Gateway's and Lambda's segments), the caller's W3C context is kept as a link, new trace ids are ones
X-Ray accepts, and each AWS call the gateway makes is a CLIENT span carrying the app and model."""
from __future__ import annotations

import base64
import json
import socket
import time
from pathlib import Path

import requests
from botocore.credentials import Credentials
from fakes.comprehend_server import FakeComprehend
from local_server import serve
from otlp_receiver import decode, otlp_receiver
from support import KEY_ID, SECRET

from chalicelib.tracing.otlp import traces_endpoint
from chalicelib.tracing.xray_udp import daemon_address
from client.garden_auth import SigV4RequestsAuth

XRAY_ROOT, XRAY_PARENT = "1-5759e988-bd862e3fe1be46a994272793", "53995c3f42cd8ad8"
CALLER_TRACE, CALLER_SPAN = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
CANARY = "CANARY-x5Ty2-xray-3c8f"


def chat(base_url: str, headers: dict[str, str] | None = None) -> requests.Response:
    auth = SigV4RequestsAuth(region="us-east-1", credentials=Credentials(KEY_ID, SECRET))
    body = {"model": "local-echo", "messages": [{"role": "user", "content": f"hi {CANARY} jane.doe@example.com"}]}
    return requests.post(f"{base_url}/v1/chat/completions", data=json.dumps(body).encode(), auth=auth, timeout=20,
                         headers={"content-type": "application/json", **(headers or {})})


def test_the_request_joins_lambdas_trace_and_each_aws_call_is_a_span(tmp_path: Path) -> None:
    with otlp_receiver() as receiver, FakeComprehend() as comprehend:
        env = {"GARDEN_TRACING": "xray", "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
               "_X_AMZN_TRACE_ID": f"Root={XRAY_ROOT};Parent={XRAY_PARENT};Sampled=1",
               "GARDEN_PII": "comprehend", "AWS_ENDPOINT_URL_COMPREHEND": comprehend.endpoint_url}
        with serve(tmp_path, env) as server:
            response = chat(server.base_url, {"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"})
            assert response.status_code == 200, response.text
            spans = receiver.wait_for(lambda s: any(x.kind == "SERVER" for x in s))
        assert len(comprehend.requests) == 2  # input and output screened by Comprehend

    root = next(s for s in spans if s.kind == "SERVER")
    assert (root.trace_id, root.parent_span_id) == (XRAY_ROOT[2:].replace("-", ""), XRAY_PARENT)
    assert root.links == [(CALLER_TRACE, CALLER_SPAN)]  # the caller's own context, kept
    by_id = {s.span_id: s for s in spans}
    calls = [s for s in spans if s.name == "Comprehend.DetectPiiEntities"]
    assert len(calls) == 2 and all(s.kind == "CLIENT" for s in calls)
    assert sorted(by_id[s.parent_span_id].name for s in calls) == ["garden.pii.input", "garden.pii.output"]
    for call in calls:
        a = call.attributes
        assert (a["rpc.system"], a["rpc.service"], a["rpc.method"]) == ("aws-api", "Comprehend", "DetectPiiEntities")
        assert (a["garden.app_id"], a["garden.model"], a["cloud.region"]) == ("test-app", "local-echo", "us-east-1")
        assert a["http.response.status_code"] == 200 and a["aws.request_id"]
    assert CANARY.encode() not in receiver.raw() and b"jane.doe" not in receiver.raw()


def test_without_an_otlp_endpoint_spans_go_to_lambdas_xray_daemon_with_ids_xray_accepts(tmp_path: Path) -> None:
    # Lambda's X-Ray daemon, as AWS_XRAY_DAEMON_ADDRESS names it: a UDP socket on loopback here.
    daemon = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    daemon.bind(("127.0.0.1", 0))
    daemon.settimeout(10)
    address = f"127.0.0.1:{daemon.getsockname()[1]}"
    try:
        env = {"GARDEN_TRACING": "xray", "AWS_XRAY_DAEMON_ADDRESS": f"udp:{address} tcp:{address}"}
        with serve(tmp_path, env) as server:
            response = chat(server.base_url)
            assert response.status_code == 200
            datagrams = []
            spans: list = []
            while not any(s.kind == "SERVER" for s in spans):  # bounded by the socket's timeout
                datagrams.append(daemon.recv(65535))
                header, _, payload = datagrams[-1].partition(b"\n")
                assert json.loads(header) == {"format": "json", "version": 1} and payload.startswith(b"T1S")
                spans += decode(base64.b64decode(payload[3:]))
    finally:
        daemon.close()
    assert all(len(decode(base64.b64decode(d.partition(b"\n")[2][3:]))) <= 10 for d in datagrams)
    root = next(s for s in spans if s.kind == "SERVER")
    assert root.attributes["garden.request_id"] == response.headers["x-request-id"]
    # X-Ray's trace id starts with the epoch second it began (AwsXRayIdGenerator).
    assert root.parent_span_id == "" and abs(int(root.trace_id[:8], 16) - time.time()) < 600
    assert {s.name for s in spans} >= {"garden.identity", "chat echo-1", "garden.audit"}
    assert all(CANARY.encode() not in d and b"jane.doe" not in d for d in datagrams)
    assert all(CANARY.encode() not in base64.b64decode(d.partition(b"\n")[2][3:]) for d in datagrams)


def test_the_otlp_endpoint_variables() -> None:
    assert traces_endpoint({}) == "http://localhost:4318/v1/traces"  # the ADOT layer's Collector
    assert traces_endpoint({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/"}) == "http://c:4318/v1/traces"
    assert traces_endpoint({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318",
                            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://d/x"}) == "http://d/x"
    assert daemon_address({}) == ("127.0.0.1", 2000)
    assert daemon_address({"AWS_XRAY_DAEMON_ADDRESS": "169.254.79.129:2000"}) == ("169.254.79.129", 2000)
    assert daemon_address({"AWS_XRAY_DAEMON_ADDRESS": "tcp:10.0.0.1:2000 udp:10.0.0.2:2001"}) == ("10.0.0.2", 2001)
