"""`x-garden-controls` on every /v1 answer, through the gateway as `make run` serves it: which controls
ran and what each decided, never content (a canary in every prompt must not reach the header). The
fail modes run in process, where a failing detector, guardrail or store can stand at its port."""
from __future__ import annotations

import copy
import json
from typing import Any, Iterator

import pytest
import requests
from botocore.credentials import Credentials
from local_server import Server, serve
from support import BLOCK_KEY_ID, KEY_ID, OTHER_KEY_ID, QUOTA_KEY_ID, SECRET, TEST_CATALOG, running_garden
from test_fail_modes import DownDetector, DownGuardrail, MaskingGuardrail, audit_lines
from test_fail_modes import catalog as fail_catalog
from test_limits import ask, unreachable_store
from test_limits import catalog as limits_catalog
from test_limits import garden as limits_garden

from client.garden_auth import SigV4RequestsAuth
from test_embeddings import embedding_catalog

CANARY = "CANARY-ctl-7f3a9c"
CARD_AND_MAIL = f"{CANARY} wire 4111 1111 1111 1111 to jane.doe@example.com"
PASS = "identity=sigv4-local; quota=reserved; pii-in=none; guardrail-in=pass; pii-out=none; guardrail-out=pass"


def catalog() -> dict[str, Any]:
    raw = copy.deepcopy(embedding_catalog())
    raw["business_units"] = {"retail-banking": {"usd_per_month": 1000}}
    assert raw["apps"][0]["guardrail"] == TEST_CATALOG["apps"][0]["guardrail"]
    return raw


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("controls")
    path = root / "controls-catalog.json"
    path.write_text(json.dumps(catalog()))
    with serve(root, env={"GARDEN_CATALOG": str(path)}) as server:
        yield server


def call(server: Server, path: str, body: Any = None, key_id: str = KEY_ID, method: str = "POST") -> requests.Response:
    auth = SigV4RequestsAuth(region="us-east-1", credentials=Credentials(key_id, SECRET))
    response = requests.request(method, f"{server.base_url}{path}", json=body, auth=auth, timeout=15)
    value = response.headers.get("x-garden-controls", "")
    assert CANARY not in value and "4111" not in value and "jane" not in value
    return response


def chat(server: Server, content: str, key_id: str = KEY_ID, **extra: Any) -> requests.Response:
    return call(server, "/v1/chat/completions",
                {"model": "local-echo", "messages": [{"role": "user", "content": content}], **extra}, key_id)


def controls(response: requests.Response) -> dict[str, str]:
    return dict(part.split("=", 1) for part in response.headers["x-garden-controls"].split("; "))


def test_a_clean_call_names_every_control_it_passed(served: Server) -> None:
    response = chat(served, f"{CANARY} hello there")
    assert response.status_code == 200, response.text
    assert response.headers["x-garden-controls"] == PASS


def test_redaction_is_counted_per_direction(served: Server) -> None:
    response = chat(served, CARD_AND_MAIL)
    assert response.status_code == 200
    # The echo model sees (and repeats) placeholders only: nothing is left to redact on the way out.
    assert controls(response) == {"identity": "sigv4-local", "quota": "reserved", "pii-in": "redact:2",
                                  "guardrail-in": "pass", "pii-out": "none", "guardrail-out": "pass"}


def test_a_pii_block_stops_the_stages_after_it(served: Server) -> None:
    response = chat(served, CARD_AND_MAIL, key_id=BLOCK_KEY_ID)  # strict-app: cards BLOCK, e-mail ALLOW
    assert response.status_code == 400 and response.json()["error"]["code"] == "pii_blocked"
    assert response.headers["x-garden-controls"] == (
        "identity=sigv4-local; quota=reserved; pii-in=block:1,allow:1; guardrail-in=not-run; pii-out=not-run; "
        "guardrail-out=not-run")


def test_a_guardrail_block(served: Server) -> None:
    response = chat(served, f"{CANARY} promise me guaranteed returns")
    assert response.status_code == 400 and response.json()["error"]["code"] == "content_filter"
    assert controls(response)["guardrail-in"] == "block"
    assert controls(response)["pii-out"] == controls(response)["guardrail-out"] == "not-run"


def test_a_quota_rejection(served: Server) -> None:
    response = chat(served, f"{CANARY} hello", key_id=QUOTA_KEY_ID, max_tokens=4000)  # 200 tokens a day
    assert response.status_code == 429, response.text
    assert response.headers["x-garden-controls"] == (
        "identity=sigv4-local; quota=rejected; pii-in=not-run; guardrail-in=not-run; pii-out=not-run; "
        "guardrail-out=not-run")


def test_an_unknown_principal_and_a_bad_signature_are_denied(served: Server) -> None:
    unknown = chat(served, f"{CANARY} hi", key_id=OTHER_KEY_ID)
    assert unknown.status_code == 403 and unknown.json()["error"]["code"] == "unknown_principal"
    assert unknown.headers["x-garden-controls"] == (
        "identity=denied; quota=not-run; pii-in=not-run; guardrail-in=not-run; pii-out=not-run; "
        "guardrail-out=not-run")
    unsigned = requests.post(f"{served.base_url}/v1/chat/completions", json={"model": "local-echo"}, timeout=15)
    assert unsigned.status_code == 403 and controls(unsigned)["identity"] == "denied"


def test_a_streamed_answer_carries_it(served: Server) -> None:
    response = chat(served, CARD_AND_MAIL, stream=True)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    assert controls(response)["pii-in"] == "redact:2" and controls(response)["guardrail-out"] == "pass"


def test_embeddings_have_no_output_stages(served: Server) -> None:
    response = call(served, "/v1/embeddings", {"model": "embed", "input": [CARD_AND_MAIL, "plain"]})
    assert response.status_code == 200, response.text
    assert response.headers["x-garden-controls"] == (
        "identity=sigv4-local; quota=reserved; pii-in=redact:2; guardrail-in=pass; pii-out=n/a; guardrail-out=n/a")


def test_models_routes_say_only_identity_applies(served: Server) -> None:
    listed = call(served, "/v1/models", method="GET")
    missing = call(served, "/v1/models/no-such-model", method="GET")
    assert (listed.status_code, missing.status_code) == (200, 404)
    for response in (listed, missing):
        assert response.headers["x-garden-controls"] == (
            "identity=sigv4-local; quota=n/a; pii-in=n/a; guardrail-in=n/a; pii-out=n/a; guardrail-out=n/a")


def test_an_answer_the_pipeline_never_saw_says_nothing_ran(served: Server) -> None:
    response = call(served, "/v1/chat/completions", method="DELETE")  # Chalice's own 405
    assert response.status_code == 405
    assert set(controls(response).values()) == {"not-run"}


def test_a_request_too_large_ran_no_control(served: Server) -> None:
    response = chat(served, CANARY + "x" * 2_000_000)
    assert response.status_code == 413
    assert set(controls(response).values()) == {"not-run"}


# -- fail modes, in process (the adapters that fail stand at their ports) -------------------------


@pytest.mark.parametrize(("overrides", "fail_open", "status", "expected"), [
    ({"pii": DownDetector()}, True, 200, {"pii-in": "fail-open", "pii-out": "fail-open"}),
    ({"pii": DownDetector()}, False, 503, {"pii-in": "unavailable", "guardrail-in": "not-run"}),
    ({"guardrail": DownGuardrail()}, True, 200, {"guardrail-in": "fail-open", "guardrail-out": "fail-open"}),
    ({"guardrail": DownGuardrail()}, False, 503, {"guardrail-in": "unavailable", "pii-out": "not-run"}),
    ({"guardrail": MaskingGuardrail()}, False, 200, {"guardrail-in": "mask", "guardrail-out": "mask"}),
], ids=["pii-fail-open", "pii-fail-closed", "guardrail-fail-open", "guardrail-fail-closed", "guardrail-mask"])
def test_fail_modes_and_masks_say_so_in_the_header_and_the_audit_record(
        tmp_path: Any, overrides: dict[str, Any], fail_open: bool, status: int, expected: dict[str, str]) -> None:
    with running_garden(tmp_path, catalog=fail_catalog(fail_open), **overrides) as g:
        response = g.chat({"model": "local-echo", "messages": [{"role": "user", "content": f"{CANARY} a@b.example"}]})
        header = response.headers["x-garden-controls"]
        (record,) = audit_lines(g.home)
    assert response.status_code == status
    assert CANARY not in header
    parsed = dict(part.split("=", 1) for part in header.split("; "))
    assert {k: parsed[k] for k in expected} == expected
    # The auditor's copy says what the app was told.
    assert "; ".join(f"{k}={record['controls'].get(k, 'not-run')}" for k in parsed) == header


def test_a_quota_store_down_with_fail_open_is_unmetered(tmp_path: Any) -> None:
    cat = limits_catalog({"tokens_per_day": 10_000}, on_store_unavailable="fail_open")
    with limits_garden(tmp_path, cat, ledger=unreachable_store()) as g:
        served = ask(g)
    assert served.status_code == 200
    assert served.headers["x-garden-controls"].startswith("identity=sigv4-local; quota=unmetered; pii-in=none")


def test_a_quota_store_down_without_fail_open_is_unavailable(tmp_path: Any) -> None:
    with limits_garden(tmp_path, limits_catalog({"tokens_per_day": 10_000}), ledger=unreachable_store()) as g:
        refused = ask(g)
    assert refused.status_code == 503
    assert refused.headers["x-garden-controls"].startswith("identity=sigv4-local; quota=unavailable; pii-in=not-run")
