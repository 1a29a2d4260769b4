"""Memoryless through the `openai` provider: a canary in every caller field, through `make run`'s
server, to a fake OpenAI upstream that quotes the input back in its errors (as real ones do). No
byte the gateway wrote (state folder, audit, the server's output) holds the canary afterwards."""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import requests
from botocore.credentials import Credentials
from fakes.openai_server import Fail, FakeOpenAI, Reply, StreamError
from local_server import serve
from support import KEY_ID, SECRET, TEST_CATALOG
from tracing.otlp_receiver import otlp_receiver, tracing_env

from client.garden_auth import SigV4RequestsAuth

CANARY = "CANARY-o8Kp3-openai-memoryless-5d1e"
KEY = "sk-canary-test-key"


def quoting(status: int) -> Any:
    """An upstream error whose message quotes the whole request, prompt included."""
    return lambda body: Fail(status, f"cannot process {json.dumps(body)}")


def catalog(base_url: str) -> dict[str, Any]:
    raw = copy.deepcopy(TEST_CATALOG)
    deployment = {"provider": "openai", "base_url": base_url, "api_key_env": "GARDEN_TEST_TIER_KEY"}
    for name in ("ok", "bad", "busy", "down", "refused", "midstream"):
        raw["models"][f"tier-{name}"] = {"max_output_tokens": 64, "price": {"input_per_1k": 0, "output_per_1k": 0},
                                         "deployments": [{**deployment, "model_id": name}]}
    raw["models"]["tier-embed"] = {"kind": "embedding", "price": {"input_per_1k": 0},
                                   "deployments": [{**deployment, "model_id": "embed"}]}
    raw["apps"][0]["allowed_models"] += [m for m in raw["models"] if m.startswith("tier-")]
    return raw


def test_no_canary_anywhere_the_gateway_writes_through_the_openai_provider(tmp_path: Path) -> None:
    script = {"ok": Reply(), "bad": quoting(400), "busy": quoting(429), "down": quoting(500),
              "refused": quoting(401), "midstream": StreamError(500, f"failed on {CANARY}")}
    with FakeOpenAI(script) as upstream:
        catalog_path = tmp_path / "openai-catalog.json"
        catalog_path.write_text(json.dumps(catalog(upstream.base_url)))
        env = {"GARDEN_CATALOG": str(catalog_path), "GARDEN_TEST_TIER_KEY": KEY}
        with otlp_receiver() as receiver, serve(tmp_path, {**env, **tracing_env(receiver)}) as server:
            auth = SigV4RequestsAuth(region="us-east-1", credentials=Credentials(KEY_ID, SECRET))

            def post(path: str, body: dict[str, Any]) -> requests.Response:
                return requests.post(f"{server.base_url}{path}", data=json.dumps(body).encode(), auth=auth,
                                     timeout=20, headers={"content-type": "application/json"})

            def chat(model: str, **extra: Any) -> requests.Response:
                return post("/v1/chat/completions", {"model": f"tier-{model}", "user": CANARY, "messages": [
                    {"role": "system", "content": f"system {CANARY}"},
                    {"role": "user", "content": [{"type": "text", "text": f"hello {CANARY}"}]}], **extra})

            tools = [{"type": "function", "function": {"name": "lookup", "description": CANARY, "parameters": {
                "type": "object", "properties": {"q": {"type": "string", "description": CANARY}}}}}]
            responses = {
                "plain": chat("ok", metadata={"k": CANARY}),
                "stream": chat("ok", stream=True, stream_options={"include_usage": True}),
                "tools": chat("ok", tools=tools, stop=[CANARY]),
                "bad": chat("bad"),
                "busy": chat("busy"),
                "down": chat("down"),
                "refused": chat("refused"),
                "midstream": chat("midstream", stream=True),
                "embed": post("/v1/embeddings", {"model": "tier-embed", "input": [CANARY, f"x {CANARY}"],
                                                 "user": CANARY}),
            }
            codes = {name: r.status_code for name, r in responses.items()}
            assert codes == {"plain": 200, "stream": 200, "tools": 200, "bad": 400, "busy": 429, "down": 503,
                             "refused": 503, "midstream": 503, "embed": 200}
            # The canary did travel: the upstream got it, and echoed it in the answers.
            assert CANARY in responses["plain"].text and CANARY in responses["stream"].text
            assert all(CANARY in json.dumps(body) for _, body, _ in upstream.requests)
            for name in ("bad", "busy", "down", "refused", "midstream"):
                assert CANARY not in responses[name].text and "cannot process" not in responses[name].text
            assert all(h.get("authorization") == f"Bearer {KEY}" for _, _, h in upstream.requests)

    written = [p for p in server.home.rglob("*") if p.is_file()] + [server.output]
    assert [str(p) for p in written if CANARY.encode() in p.read_bytes()] == []
    assert [str(p) for p in written if KEY.encode() in p.read_bytes()] == []
    # Nor in the exported spans (content capture asked for), the upstream's quoting errors included.
    assert receiver.spans() and CANARY.encode() not in receiver.raw() and KEY.encode() not in receiver.raw()
    audit_lines = [line for p in (server.home / "audit").rglob("*.jsonl") for line in p.read_text().splitlines()]
    assert len(audit_lines) == len(responses)
    output = server.output.read_text()
    for response in responses.values():
        assert response.headers["x-request-id"] in output
