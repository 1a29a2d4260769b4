"""Memoryless: no prompt or completion text in any log, store or record, on success or error paths.

A canary string rides every field a caller controls, through a real `chalice local`; afterwards
every byte the gateway wrote (state folder: SQLite + WAL, audit files; the server's whole output)
is searched for it.
"""
from __future__ import annotations

import json
from pathlib import Path

import requests
from botocore.credentials import Credentials
from local_server import serve
from support import BLOCK_KEY_ID, KEY_ID, QUOTA_KEY_ID, SECRET
from tracing.otlp_receiver import otlp_receiver, tracing_env

from client.garden_auth import SigV4RequestsAuth

CANARY = "CANARY-q7Zx9-memoryless-0c4f"


def test_no_canary_anywhere_the_gateway_writes(tmp_path: Path) -> None:
    with otlp_receiver() as receiver, serve(tmp_path, tracing_env(receiver)) as server:
        url = f"{server.base_url}/v1/chat/completions"

        def post(body: object, key_id: str = KEY_ID, secret: str = SECRET) -> requests.Response:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            auth = SigV4RequestsAuth(region="us-east-1", credentials=Credentials(key_id, secret))
            return requests.post(url, data=data, auth=auth, timeout=10,
                                 headers={"content-type": "application/json"})

        def chat(text: str, **extra: object) -> dict:
            return {"model": "local-echo", "messages": [
                {"role": "system", "content": f"system {CANARY}"},
                {"role": "user", "content": text}], **extra}

        statuses = {
            "plain": post(chat(f"hello {CANARY}", user=CANARY, metadata={"k": CANARY})),
            "stream": post(chat(f"hello {CANARY}", stream=True, stream_options={"include_usage": True})),
            "schema": post({"model": "local-echo", "messages": [{"role": CANARY, "content": CANARY}]}),
            "json": post(f'{{"model": "local-echo", "messages": "{CANARY}'.encode()),
            "model": post({"model": CANARY, "messages": [{"role": "user", "content": CANARY}]}),
            "n": post(chat(CANARY, n=2)),
            "guardrail": post(chat(f"{CANARY} guaranteed returns")),
            "pii_block": post(chat(f"{CANARY} 4111 1111 1111 1111"), key_id=BLOCK_KEY_ID),
            "quota": post(chat(CANARY * 40, max_tokens=150), key_id=QUOTA_KEY_ID),
            "signature": post(chat(CANARY), secret="wrong"),
            "too_large": post(chat(CANARY * 40_000)),
            "tools": post(chat(f"hi {CANARY}", stop=[CANARY], tools=[{"type": "function", "function": {
                "name": "lookup", "description": CANARY,
                "parameters": {"type": "object", "properties": {"q": {"type": "string", "description": CANARY,
                                                                       "enum": [CANARY]}}}}}])),
            "tool_calls": post({"model": "local-echo", "messages": [
                {"role": "assistant", "content": None, "tool_calls": [{"id": CANARY, "type": "function",
                                                                       "function": {"name": "f",
                                                                                    "arguments": json.dumps({"q": CANARY})}}]},
                {"role": "tool", "tool_call_id": CANARY, "content": CANARY}]}),
            "parts": post(chat([{"type": "text", "text": CANARY}, {"type": "text", "text": CANARY}])),
            "nan": post(f'{{"model": "local-echo", "messages": [{{"role": "user", "content": "{CANARY}"}}], '
                        f'"temperature": NaN}}'.encode()),
            "deep": post(f'{{"model": "local-echo", "messages": [{{"role": "user", "content": "{CANARY}"}}], '
                         f'"x": {"[" * 5000}"{CANARY}"{"]" * 5000}}}'.encode()),
            "surrogate": post(f'{{"model": "local-echo", "messages": [{{"role": "user", "content": "{CANARY}\\ud800"}}]}}'.encode()),
            "float_max_tokens": post(chat(CANARY, max_tokens=1.5)),
        }
        codes = {name: r.status_code for name, r in statuses.items()}
        assert codes == {"plain": 200, "stream": 200, "schema": 400, "json": 400, "model": 404, "n": 400,
                         "guardrail": 400, "pii_block": 400, "quota": 429, "signature": 403,
                         "too_large": 413, "tools": 200, "tool_calls": 200, "parts": 200, "nan": 400,
                         "deep": 400, "surrogate": 400, "float_max_tokens": 400}
        # The canary did travel: the echo model returned it, so it was in the pipeline's hands.
        assert CANARY in statuses["plain"].text and CANARY in statuses["stream"].text

    written = [p for p in server.home.rglob("*") if p.is_file()] + [server.output]
    hits = [str(p) for p in written if CANARY.encode() in p.read_bytes()]
    assert hits == []
    # Nor in the exported spans (content capture asked for), one trace per request (chalicelib/tracing/).
    assert CANARY.encode() not in receiver.raw()
    assert sum(s.kind == "SERVER" for s in receiver.spans()) == len(statuses)
    # And the search was not vacuous: the gateway did write an audit line and a log line per request.
    audit_lines = [line for p in (server.home / "audit").rglob("*.jsonl") for line in p.read_text().splitlines()]
    assert len(audit_lines) == len(statuses)
    output = server.output.read_text()
    for response in statuses.values():
        assert response.headers["x-request-id"] in output


def test_no_canary_anywhere_embeddings_write(tmp_path: Path) -> None:
    """The same search for `/v1/embeddings`: inputs, `user`, and the error paths that read them."""
    from test_embeddings import embedding_catalog

    catalog = tmp_path / "embedding-catalog.json"
    catalog.write_text(json.dumps(embedding_catalog()))
    with otlp_receiver() as receiver, \
            serve(tmp_path, env={"GARDEN_CATALOG": str(catalog), **tracing_env(receiver)}) as server:
        url = f"{server.base_url}/v1/embeddings"

        def post(body: object, key_id: str = KEY_ID) -> requests.Response:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            auth = SigV4RequestsAuth(region="us-east-1", credentials=Credentials(key_id, SECRET))
            return requests.post(url, data=data, auth=auth, timeout=10, headers={"content-type": "application/json"})

        def embed(text: object, **extra: object) -> dict:
            return {"model": "embed", "input": text, **extra}

        statuses = {
            "plain": post(embed(f"hello {CANARY}", user=CANARY)),
            "list": post(embed([CANARY, f"mail {CANARY}@example.com"], encoding_format="base64", dimensions=64)),
            "tokens": post(embed([CANARY, 1212, 318])),
            "schema": post(embed(CANARY, encoding_format=CANARY)),
            "empty": post(embed([CANARY, ""])),
            "dimensions": post(embed(CANARY, dimensions=4096)),
            "model": post({"model": CANARY, "input": CANARY}),
            "kind": post({"model": "local-echo", "input": CANARY}),
            "guardrail": post(embed([CANARY, f"{CANARY} guaranteed returns"])),
            "pii_block": post(embed(f"{CANARY} 4111 1111 1111 1111"), key_id=BLOCK_KEY_ID),
            "quota": post(embed(CANARY * 40), key_id=QUOTA_KEY_ID),
            "too_long": post(embed(CANARY * 2000)),
            "too_large": post(embed([CANARY * 1000] * 40)),
            "nan": post(f'{{"model": "embed", "input": "{CANARY}", "dimensions": NaN}}'.encode()),
        }
        codes = {name: r.status_code for name, r in statuses.items()}
        assert codes == {"plain": 200, "list": 200, "tokens": 400, "schema": 400, "empty": 400, "dimensions": 400,
                         "model": 404, "kind": 400, "guardrail": 400, "pii_block": 400, "quota": 429,
                         "too_long": 400, "too_large": 413, "nan": 400}

    written = [p for p in server.home.rglob("*") if p.is_file()] + [server.output]
    assert [str(p) for p in written if CANARY.encode() in p.read_bytes()] == []
    assert CANARY.encode() not in receiver.raw()
    assert sum(s.kind == "SERVER" for s in receiver.spans()) == len(statuses)
    audit_lines = [line for p in (server.home / "audit").rglob("*.jsonl") for line in p.read_text().splitlines()]
    assert len(audit_lines) == len(statuses)
    output = server.output.read_text()
    for name, response in statuses.items():
        assert response.headers["x-request-id"] in output
        if name != "model":  # the model id a caller named is named back, as OpenAI does; no input ever is
            assert CANARY not in response.text
