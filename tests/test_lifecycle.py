"""Model lifecycle at request time: a legacy model is served with Deprecation (RFC 9745), Sunset
(RFC 8594) and successor Link headers; a retired one by its successor where the app has
`auto_upgrade` and may use it, else 410 in OpenAI's error shape naming the successor; `/v1/models`
shows each model's lifecycle."""
from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from openai_schema import validate
from support import BLOCK_KEY_ID, KEY_ID, QUOTA_KEY_ID, TEST_CATALOG, Garden, running_garden

from chalicelib.catalog import Price, parse_catalog
from chalicelib.chat import Usage
from chalicelib.cost import cost_usd
from chalicelib.errors import ConfigError, Gone, InvalidRequest
from chalicelib.lifecycle import MAX_UPGRADE_STEPS
from chalicelib.quota import utc_day

NEXT_PRICE = {"input_per_1k": 0.5, "output_per_1k": 2.0}  # dear, so a cost at the wrong price shows


def _model(model_id: str, price: dict[str, float] | None = None, **lifecycle: str) -> dict[str, Any]:
    model: dict[str, Any] = {
        "max_output_tokens": 256, "bytes_per_token": 4, "input_overhead_tokens": 0,
        "price": price or {"input_per_1k": 0.0, "output_per_1k": 0.0},
        "deployments": [{"provider": "local-echo", "model_id": model_id, "name": f"echo-{model_id}"}],
    }
    if lifecycle:
        model["lifecycle"] = lifecycle
    return model


def _retired(successor: str | None = None) -> dict[str, str]:
    life = {"status": "retired", "deprecated": "2025-01-15", "sunset": "2025-07-01"}
    return {**life, "successor": successor} if successor else life


def lifecycle_catalog(chain: int = 2) -> dict[str, Any]:
    raw = copy.deepcopy(TEST_CATALOG)
    raw["models"].update({
        "next": _model("next", NEXT_PRICE),
        "legacy": _model("legacy", status="legacy", deprecated="2026-01-15", sunset="2026-06-01", successor="next"),
        "legacy-alone": _model("legacy-alone", status="legacy", deprecated="2026-01-15", sunset="2026-06-01"),
        "retired": _model("retired", **_retired("next")),
        "retired-alone": _model("retired-alone", **_retired()),
        "loop-a": _model("loop-a", **_retired("loop-b")),
        "loop-b": _model("loop-b", **_retired("loop-a")),
        "to-legacy": _model("to-legacy", **_retired("legacy")),
    })
    # chain-1 -> chain-2 -> ... -> chain-<chain> (each retired) -> next
    for i in range(1, chain + 1):
        raw["models"][f"chain-{i}"] = _model(f"chain-{i}", **_retired(f"chain-{i + 1}" if i < chain else "next"))
    every = sorted(raw["models"])
    apps = {a["id"]: a for a in raw["apps"]}
    apps["test-app"].update(auto_upgrade=True, allowed_models=every)  # KEY_ID
    apps["small-quota-app"].update(allowed_models=every, quotas={"tokens_per_day": 1_000_000})  # QUOTA_KEY_ID
    # BLOCK_KEY_ID: upgrades, but may not use `next` (nor `legacy`)
    apps["strict-app"].update(auto_upgrade=True, allowed_models=[m for m in every if m not in ("next", "legacy")])
    return raw


@pytest.fixture
def garden(tmp_path: Path) -> Iterator[Garden]:
    with running_garden(tmp_path, catalog=parse_catalog(lifecycle_catalog())) as g:
        yield g


def chat(g: Garden, model: str, key_id: str = KEY_ID, stream: bool = False) -> Any:
    return g.chat({"model": model, "messages": [{"role": "user", "content": "lifecycle please"}], "stream": stream},
                  key_id=key_id)


def audit_records(g: Garden) -> list[dict[str, Any]]:
    return [json.loads(line) for path in sorted((g.home / "audit").rglob("*.jsonl"))
            for line in path.read_text().splitlines()]


LEGACY_HEADERS = {
    "Deprecation": "@1768435200",  # 2026-01-15T00:00:00Z
    "Sunset": "Mon, 01 Jun 2026 00:00:00 GMT",
    "Link": '</v1/models/next>; rel="successor-version"',
}


def test_legacy_model_is_served_with_deprecation_sunset_and_successor_link(garden: Garden) -> None:
    response = chat(garden, "legacy")
    assert response.status_code == 200
    assert {name: response.headers.get(name) for name in LEGACY_HEADERS} == LEGACY_HEADERS
    body = json.loads(response.body)
    validate(body, "CreateChatCompletionResponse")
    assert body["model"] == "legacy"


def test_legacy_headers_on_a_streamed_answer_too(garden: Garden) -> None:
    response = chat(garden, "legacy", stream=True)
    assert response.status_code == 200 and response.headers["Content-Type"] == "text/event-stream"
    assert {name: response.headers.get(name) for name in LEGACY_HEADERS} == LEGACY_HEADERS


def test_legacy_model_without_successor_has_no_link(garden: Garden) -> None:
    response = chat(garden, "legacy-alone")
    assert response.status_code == 200
    assert response.headers["Deprecation"] == "@1768435200" and "Link" not in response.headers


def test_active_model_has_no_lifecycle_headers(garden: Garden) -> None:
    response = chat(garden, "next")
    assert response.status_code == 200
    assert not {"Deprecation", "Sunset", "Link"} & set(response.headers)


@pytest.mark.parametrize("stream", [False, True])
def test_retired_model_is_served_by_its_successor_with_auto_upgrade(garden: Garden, stream: bool) -> None:
    response = chat(garden, "retired", stream=stream)
    assert response.status_code == 200
    if stream:
        chunks = [json.loads(block[len("data: "):]) for block in response.body.decode().split("\n\n")
                  if block and block != "data: [DONE]"]
        assert {c["model"] for c in chunks} == {"next"}
    else:
        body = json.loads(response.body)
        validate(body, "CreateChatCompletionResponse")
        assert body["model"] == "next"
        usage = Usage(body["usage"]["prompt_tokens"], body["usage"]["completion_tokens"])
        expected = cost_usd(Price(**NEXT_PRICE), usage)
        assert expected > 0
        record = audit_records(garden)[-1]
        assert (record["model"], record["deployment"], record["status"]) == ("next", "echo-next", 200)
        assert record["upgraded_from"] == "retired"  # the audit still shows what the caller named
        assert record["cost_usd"] == expected  # priced as the successor, not as the free retired model
        assert garden.ledger.usage("test-app", utc_day(time.time()), 0).cost_usd == expected
    assert response.headers["x-garden-deployment"] == "echo-next"
    assert not {"Deprecation", "Sunset", "Link"} & set(response.headers)  # `next` is active


def test_auto_upgrade_to_a_legacy_successor_carries_the_successors_headers(garden: Garden) -> None:
    response = chat(garden, "to-legacy")
    assert response.status_code == 200 and json.loads(response.body)["model"] == "legacy"
    assert {name: response.headers.get(name) for name in LEGACY_HEADERS} == LEGACY_HEADERS


def _gone(response: Any, message_names: str | None) -> dict[str, Any]:
    assert response.status_code == 410
    body = json.loads(response.body)
    validate(body, "ErrorResponse")
    error = body["error"]
    assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", "model_retired", "model")
    if message_names is not None:
        assert f"'{message_names}'" in error["message"]
    assert response.headers["x-request-id"]
    return error


@pytest.mark.parametrize("stream", [False, True])
def test_retired_model_without_auto_upgrade_is_410_naming_the_successor(garden: Garden, stream: bool) -> None:
    response = chat(garden, "retired", key_id=QUOTA_KEY_ID, stream=stream)
    _gone(response, "next")
    # The retired model's own lifecycle headers ride on the 410: when it went, and what follows it.
    assert response.headers["Sunset"] == "Tue, 01 Jul 2025 00:00:00 GMT"
    assert response.headers["Link"] == '</v1/models/next>; rel="successor-version"'
    record = audit_records(garden)[-1]
    assert (record["model"], record["status"], record["error_code"], record["cost_usd"]) == \
        ("retired", 410, "model_retired", 0.0)
    assert garden.ledger.usage("small-quota-app", utc_day(time.time()), 0).reserved == 0


def test_retired_model_whose_successor_the_app_may_not_use_is_410(garden: Garden) -> None:
    _gone(chat(garden, "retired", key_id=BLOCK_KEY_ID), "next")


def test_retired_model_without_successor_is_410(garden: Garden) -> None:
    error = _gone(chat(garden, "retired-alone"), None)
    assert "no successor" in error["message"]


def test_a_chain_of_retired_models_is_followed_to_the_first_live_one(garden: Garden) -> None:
    response = chat(garden, "chain-1")
    assert response.status_code == 200 and json.loads(response.body)["model"] == "next"
    assert audit_records(garden)[-1]["model"] == "next"
    # Without auto_upgrade, the 410 names where the chain leads, not the next retired link.
    _gone(chat(garden, "chain-1", key_id=QUOTA_KEY_ID), "next")


def test_a_loop_of_retired_models_ends_in_410(garden: Garden) -> None:
    for model in ("loop-a", "loop-b"):
        error = _gone(chat(garden, model), None)
        assert "no successor" in error["message"]


def test_a_chain_longer_than_the_bound_is_not_followed(tmp_path: Path) -> None:
    with running_garden(tmp_path, catalog=parse_catalog(lifecycle_catalog(chain=MAX_UPGRADE_STEPS + 1))) as g:
        _gone(chat(g, "chain-1"), None)
        assert chat(g, "chain-2").status_code == 200  # one link shorter: within the bound


def test_models_list_shows_each_models_lifecycle(garden: Garden) -> None:
    response = garden.request("GET", "/v1/models")
    body = json.loads(response.body)
    validate(body, "ListModelsResponse")
    models = {m["id"]: m for m in body["data"]}
    assert models["next"]["lifecycle"] == {"status": "active"} and "shutdown_date" not in models["next"]
    assert models["legacy"]["lifecycle"] == {"status": "legacy", "deprecated": "2026-01-15", "sunset": "2026-06-01",
                                             "successor": "next"}
    assert models["legacy"]["shutdown_date"] == "2026-06-01"
    assert models["retired-alone"]["lifecycle"] == {"status": "retired", "deprecated": "2025-01-15",
                                                    "sunset": "2025-07-01"}
    assert all("lifecycle" in m for m in body["data"])


def test_model_retrieve_shows_lifecycle_and_carries_the_headers(garden: Garden) -> None:
    response = garden.request("GET", "/v1/models/legacy")
    assert response.status_code == 200
    body = json.loads(response.body)
    validate(body, "Model")
    assert body["lifecycle"]["status"] == "legacy"
    assert {name: response.headers.get(name) for name in LEGACY_HEADERS} == LEGACY_HEADERS
    # A retired model is still described (with its successor), not answered with 410.
    retired = garden.request("GET", "/v1/models/retired", key_id=QUOTA_KEY_ID)
    assert retired.status_code == 200 and json.loads(retired.body)["lifecycle"]["successor"] == "next"
    assert retired.headers["Link"] == '</v1/models/next>; rel="successor-version"'
    active = garden.request("GET", "/v1/models/next")
    assert json.loads(active.body)["lifecycle"] == {"status": "active"} and "Deprecation" not in active.headers


def test_a_lifecycle_date_the_calendar_lacks_fails_at_start(tmp_path: Path) -> None:
    raw = lifecycle_catalog()
    raw["models"]["legacy"]["lifecycle"]["sunset"] = "2026-02-30"  # matches the schema's pattern
    with pytest.raises(ConfigError, match=r"models\.legacy\.lifecycle\.sunset"):
        with running_garden(tmp_path, catalog=parse_catalog(raw)):
            pass


def _embedding(model_id: str, **lifecycle: str) -> dict[str, Any]:
    model: dict[str, Any] = {"kind": "embedding", "price": {"input_per_1k": 0.0},
                             "deployments": [{"provider": "local-embed", "model_id": model_id}]}
    if lifecycle:
        model["lifecycle"] = lifecycle
    return model


def test_embedding_models_follow_the_same_lifecycle() -> None:
    """The stage every route shares: `/v1/embeddings` calls it with kind="embedding"."""
    from chalicelib.pipeline.stages import Stages
    from chalicelib.record import RequestRecord

    raw = lifecycle_catalog()
    raw["models"].update({
        "embed-next": _embedding("embed-next"),
        "embed-old": _embedding("embed-old", **_retired("embed-next")),
        "embed-legacy": _embedding("embed-legacy", status="legacy", deprecated="2026-01-15", sunset="2026-06-01",
                                   successor="embed-next"),
    })
    for app in raw["apps"]:
        app["allowed_models"] += ["embed-next", "embed-old", "embed-legacy"]
    catalog = parse_catalog(raw)
    stages = Stages(catalog=catalog, identity=None, quota=None, pii=None, guardrail=None)  # type: ignore[arg-type]
    upgrading, not_upgrading = catalog.apps["test-app"], catalog.apps["small-quota-app"]

    record = RequestRecord("r1", "2026-01-01T00:00:00.000+00:00", "embeddings")
    served = stages.model(upgrading, "embed-old", record, kind="embedding")
    assert (served.id, record.model) == ("embed-next", "embed-next")
    legacy = stages.model(upgrading, "embed-legacy", record, kind="embedding")
    assert stages.lifecycle_headers(legacy) == {**LEGACY_HEADERS, "Link": '</v1/models/embed-next>; rel="successor-version"'}
    with pytest.raises(Gone) as gone:
        stages.model(not_upgrading, "embed-old", record, kind="embedding")
    assert (gone.value.status, gone.value.code, gone.value.param) == (410, "model_retired", "model")
    assert "'embed-next'" in gone.value.message
    # The route's kind is checked on the model asked for, before any upgrade.
    with pytest.raises(InvalidRequest) as mismatch:
        stages.model(upgrading, "embed-old", record, kind="chat")
    assert mismatch.value.code == "model_kind_mismatch"


def test_through_make_run_with_the_openai_sdk(tmp_path: Path) -> None:
    """The headers survive the local server, and the official SDK reads the answers as OpenAI's."""
    import openai
    from botocore.credentials import Credentials
    from local_server import serve
    from support import SECRET

    from client.garden_auth import openai_client

    catalog = tmp_path / "lifecycle-catalog.json"
    catalog.write_text(json.dumps(lifecycle_catalog()))
    messages = [{"role": "user", "content": "lifecycle please"}]
    with serve(tmp_path, {"GARDEN_CATALOG": str(catalog)}) as server:
        def sdk(key_id: str) -> openai.OpenAI:
            return openai_client(f"{server.base_url}/v1", region="us-east-1", credentials=Credentials(key_id, SECRET),
                                 max_retries=0)

        for stream in (False, True):
            raw = sdk(KEY_ID).chat.completions.with_raw_response.create(model="legacy", messages=messages,
                                                                         stream=stream)
            assert {name: raw.headers.get(name) for name in LEGACY_HEADERS} == LEGACY_HEADERS
        assert sdk(KEY_ID).chat.completions.create(model="retired", messages=messages).model == "next"
        with pytest.raises(openai.APIStatusError) as gone:
            sdk(QUOTA_KEY_ID).chat.completions.create(model="retired", messages=messages)
        assert gone.value.status_code == 410 and gone.value.code == "model_retired"
        lifecycles = {m.id: m.model_extra["lifecycle"] for m in sdk(KEY_ID).models.list()}
        assert lifecycles["legacy"]["successor"] == "next" and lifecycles["next"] == {"status": "active"}
