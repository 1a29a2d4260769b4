"""The catalog the pipeline serves with (chalicelib/catalog_source.py): the file's models and routes,
the registry's apps, budgets and switches; seeded once, then the registry wins; refreshed from the
registry's version within the documented bound (an injected clock: nothing sleeps); prod never
serves the demo catalog. Real SQLite registries, real signed requests through `running_garden`."""
from __future__ import annotations

import copy
import json
import logging
import shutil
from pathlib import Path
from typing import Any, Iterator

import pytest

from chalicelib.catalog import AppConfigError, parse_app, parse_catalog
from chalicelib.catalog_source import ENFORCED_WITHIN_S, REFRESH_S, RegistryCatalog, prod_refusal
from chalicelib.errors import ServiceUnavailable
from chalicelib.lazy import OnFirstUse
from chalicelib.registry.sqlite import SqliteRegistry
from chalicelib.settings import DEFAULT_CATALOG, Settings
from chalicelib.telemetry import gateway_logger
from support import ACCOUNT, TEST_CATALOG, running_garden

ADMIN = "arn:aws:iam::000000000000:role/garden-platform-admin"
ASK = {"model": "local-echo", "messages": [{"role": "user", "content": "hello"}]}


class Clock:
    def __init__(self) -> None:
        self.now = 5_000.0

    def __call__(self) -> float:
        return self.now


class Lines(logging.Handler):
    """The gateway log's lines, as its handler would write them."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


class Counting:
    """A registry that counts the reads a container makes (a wrapper, not a patch)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.versions, self.snapshots, self.down = inner, 0, 0, False

    def version(self) -> int:
        self.versions += 1
        if self.down:
            raise ServiceUnavailable("registry store unavailable", code="store_unavailable")
        return self.inner.version()

    def snapshot(self) -> Any:
        self.snapshots += 1
        if self.down:
            raise ServiceUnavailable("registry store unavailable", code="store_unavailable")
        return self.inner.snapshot()

    def seed(self, *args: Any) -> bool:
        return self.inner.seed(*args)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[SqliteRegistry]:
    reg = SqliteRegistry(tmp_path / "garden.sqlite3")
    yield reg
    reg.close()


def source(registry: Any, clock: Clock, raw: dict[str, Any] = TEST_CATALOG, **kwargs: Any) -> RegistryCatalog:
    lines: list[dict[str, Any]] = kwargs.pop("lines", [])
    return RegistryCatalog(parse_catalog(copy.deepcopy(raw)), raw, lambda: registry, monotonic=clock,
                           log=lines.append, **kwargs)


def test_the_bound_is_documented_and_holds_with_the_longest_request() -> None:
    longest_request_s = Settings.from_env({}).request_timeout_s + 2.5  # deadline + bookkeeping tail
    assert REFRESH_S + longest_request_s + 2 * 2 < ENFORCED_WITHIN_S == 60  # + two 2 s reads


def test_an_empty_registry_is_seeded_once_from_the_file(registry: SqliteRegistry) -> None:
    clock = Clock()
    first = source(registry, clock)
    assert set(first.current().apps) == {"test-app", "small-quota-app", "strict-app"}
    [seeded] = registry.changes()
    assert (seeded.principal, seeded.action) == ("seed", "catalog.seed")
    # Another container starting on the same registry does not seed again.
    source(registry, clock).current()
    assert len(registry.changes()) == 1 and registry.version() == 1


def test_once_seeded_the_registry_wins_over_the_file(registry: SqliteRegistry) -> None:
    clock = Clock()
    source(registry, clock).current()
    edited = copy.deepcopy(TEST_CATALOG)
    edited["apps"][0]["quotas"] = {"tokens_per_day": 7}  # a redeploy with a different file
    edited["apps"].append({**edited["apps"][0], "id": "file-only",
                           "principal_arns": [f"arn:aws:iam::{ACCOUNT}:role/file-only"]})
    catalog = source(registry, clock, edited).current()
    assert catalog.apps["test-app"].quotas.tokens_per_day == 1_000_000
    assert "file-only" not in catalog.apps
    # Models and routes still come from the file.
    assert catalog.models == parse_catalog(copy.deepcopy(edited)).models


def test_a_change_is_served_within_the_refresh_bound_and_the_version_is_the_only_read(
        registry: SqliteRegistry) -> None:
    clock, counting = Clock(), Counting(registry)
    src = source(counting, clock)
    assert src.current().apps["test-app"].quotas.tokens_per_day == 1_000_000
    reads = (counting.versions, counting.snapshots)
    app = dict(next(a for a in TEST_CATALOG["apps"] if a["id"] == "test-app"), quotas={"tokens_per_day": 5})
    clock.now += 1.0
    registry.put_app(app, ADMIN)  # the write's response: the bound counts from here
    written = clock.now
    clock.now = written + REFRESH_S - 1.001  # the cache is still fresh: not even the version is read
    assert src.current().apps["test-app"].quotas.tokens_per_day == 1_000_000
    assert (counting.versions, counting.snapshots) == reads
    clock.now = written + REFRESH_S  # every request from here on sees the change
    assert src.current().apps["test-app"].quotas.tokens_per_day == 5
    assert counting.versions == reads[0] + 1 and counting.snapshots == reads[1] + 1
    # Unchanged since: one version read per REFRESH_S, no snapshot.
    for _ in range(3):
        clock.now += REFRESH_S
        src.current()
    assert counting.versions == reads[0] + 4 and counting.snapshots == reads[1] + 1


def test_a_registry_that_cannot_be_read_keeps_the_cached_catalog_or_is_a_503(registry: SqliteRegistry) -> None:
    clock, counting, lines = Clock(), Counting(registry), []
    src = source(counting, clock, lines=lines)
    served = src.current()
    counting.down = True
    clock.now += REFRESH_S
    assert src.current() is served
    assert lines[-1]["event"] == "catalog_refresh_failed"
    cold = source(counting, clock)
    with pytest.raises(ServiceUnavailable) as caught:
        cold.current()
    assert caught.value.code == "store_unavailable"


def test_an_app_the_file_models_no_longer_allow_is_left_out_and_named(registry: SqliteRegistry) -> None:
    clock, lines = Clock(), []
    registry.seed([dict(TEST_CATALOG["apps"][0], allowed_models=["gone-model"])], {}, "seed")
    catalog = source(registry, clock, lines=lines).current()
    assert catalog.apps == {}
    assert lines == [{"event": "registry_app_invalid", "app_id": "test-app", "param": "allowed_models",
                      "registry_version": 1}]


@pytest.mark.parametrize(("change", "param"), [
    ({"quotas": {"tokens_per_day": 0}}, "quotas.tokens_per_day"),
    ({"quotas": {"tokens_per_day": "many"}}, "quotas.tokens_per_day"),
    ({"principal_arns": ["not-an-arn"]}, "principal_arns[0]"),
    ({"allowed_models": ["no-such-model"]}, "allowed_models"),
    ({"quotas": {"models": {"echo-hidden": {"tokens_per_day": 5}}}}, "quotas.models"),
    ({"external_id": "execution-garden:other"}, "external_id"),
    ({"surprise": 1}, "(root)"),
])
def test_parse_app_names_the_field(change: dict[str, Any], param: str) -> None:
    models = parse_catalog(copy.deepcopy(TEST_CATALOG)).models
    with pytest.raises(AppConfigError) as caught:
        parse_app({**TEST_CATALOG["apps"][0], **change}, models)
    assert caught.value.param == param
    assert "many" not in str(caught.value) and "not-an-arn" not in str(caught.value)  # rules, not values


def test_parse_app_names_a_missing_field_and_reads_the_disabled_flag() -> None:
    models = parse_catalog(copy.deepcopy(TEST_CATALOG)).models
    raw = {k: v for k, v in TEST_CATALOG["apps"][0].items() if k != "quotas"}
    with pytest.raises(AppConfigError) as caught:
        parse_app(raw, models)
    assert caught.value.param == "quotas"
    app = parse_app({**TEST_CATALOG["apps"][0], "quotas": {"tokens_per_day": 4.0}, "disabled": True}, models)
    assert app.disabled and app.quotas.tokens_per_day == 4 and isinstance(app.quotas.tokens_per_day, int)
    assert not parse_app(TEST_CATALOG["apps"][0], models).disabled


def garden_source(tmp_path: Path, clock: Clock) -> tuple[RegistryCatalog, OnFirstUse[SqliteRegistry]]:
    """The registry `running_garden`'s home holds, opened on the first request as the gateway does,
    with an injected clock."""
    opened = OnFirstUse(lambda: SqliteRegistry(tmp_path / "garden-home" / "garden.sqlite3"))
    src = RegistryCatalog(parse_catalog(copy.deepcopy(TEST_CATALOG)), TEST_CATALOG, opened, monotonic=clock)
    return src, opened


def test_running_garden_serves_from_the_seeded_registry(tmp_path: Path) -> None:
    with running_garden(tmp_path) as g:
        assert g.chat(ASK).status_code == 200
        registry = SqliteRegistry(g.home / "garden.sqlite3")
        assert [c.action for c in registry.changes()] == ["catalog.seed"]
        assert isinstance(g.pipeline._stages.source, RegistryCatalog)
        registry.close()


def test_a_deleted_apps_callers_get_403_app_disabled_within_the_bound(tmp_path: Path) -> None:
    clock = Clock()
    src, opened = garden_source(tmp_path, clock)
    with running_garden(tmp_path, catalog=src) as g:
        assert g.chat(ASK).status_code == 200
        registry = opened()
        registry.disable_app("test-app", ADMIN)
        clock.now += REFRESH_S
        for request in (lambda: g.chat(ASK), lambda: g.request("GET", "/v1/models")):
            response = request()
            assert response.status_code == 403
            error = json.loads(response.body)["error"]
            assert (error["code"], error["type"]) == ("app_disabled", "permission_error")
        audit = [json.loads(line) for p in (g.home / "audit").rglob("*.jsonl") for line in p.read_text().splitlines()]
        assert audit[-1]["app_id"] == "test-app" and audit[-1]["error_code"] == "app_disabled"
        # Putting it back re-enables it, within the same bound.
        registry.put_app(TEST_CATALOG["apps"][0], ADMIN)
        clock.now += REFRESH_S
        assert g.chat(ASK).status_code == 200
    registry.close()


def test_prod_refuses_the_embedded_demo_catalog_and_any_copy_of_it(tmp_path: Path) -> None:
    assert prod_refusal("prod", DEFAULT_CATALOG, DEFAULT_CATALOG)
    copied = tmp_path / "catalog.json"
    copied.write_text(json.dumps(json.loads(DEFAULT_CATALOG.read_text())))  # same JSON, other bytes
    assert prod_refusal("prod", copied, DEFAULT_CATALOG)
    assert prod_refusal("local", DEFAULT_CATALOG, DEFAULT_CATALOG) is None
    own = tmp_path / "platform.json"
    own.write_text(json.dumps(TEST_CATALOG))
    assert prod_refusal("prod", own, DEFAULT_CATALOG) is None


@pytest.mark.parametrize("which", ["embedded", "copy"])
def test_prod_answers_503_catalog_not_configured_with_the_demo_catalog(tmp_path: Path, which: str) -> None:
    path = DEFAULT_CATALOG
    if which == "copy":
        path = tmp_path / "demo-copy.json"
        shutil.copy(DEFAULT_CATALOG, path)
    lines = Lines()
    log = gateway_logger()
    log.addHandler(lines)
    try:
        with running_garden(tmp_path, env={"GARDEN_STAGE": "prod", "GARDEN_CATALOG": str(path)}) as g:
            response = g.chat(ASK)
            assert response.status_code == 503
            assert json.loads(response.body)["error"]["code"] == "catalog_not_configured"
            assert SqliteRegistry(g.home / "garden.sqlite3").version() == 0  # nothing seeded
    finally:
        log.removeHandler(lines)
    refusals = [json.loads(m) for m in lines.messages if '"catalog_refused"' in m]
    assert refusals and "GARDEN_CATALOG" in refusals[0]["message"]


def test_prod_never_seeds_from_the_file_and_serves_once_imported(tmp_path: Path) -> None:
    with running_garden(tmp_path, env={"GARDEN_STAGE": "prod"}) as g:
        response = g.chat(ASK)
        assert response.status_code == 503
        assert json.loads(response.body)["error"]["code"] == "registry_not_seeded"
        registry = SqliteRegistry(g.home / "garden.sqlite3")
        assert registry.version() == 0
        registry.import_catalog(TEST_CATALOG["apps"], {}, ADMIN)  # what `garden-admin catalog import` does
        assert g.chat(ASK).status_code == 200  # the empty registry was never cached
        assert [c.action for c in registry.changes()] == ["catalog.import"]
        registry.close()


def test_on_dynamodb_a_container_reads_one_small_item_per_refresh(moto_url: str) -> None:
    """The catalog source over the DynamoDB registry (moto): the seed, then per REFRESH_S one
    GetItem of the VERSION item while nothing changes, and a Query once something did. Counted with
    botocore's own event hooks."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent / "store"))
    from dynamodb_tables import create_table, make_client

    from chalicelib.registry.dynamodb import DynamoDbRegistry

    client = make_client(moto_url)
    table = create_table(client)
    calls: list[str] = []
    client.meta.events.register("before-call.dynamodb.*", lambda model, **_: calls.append(model.name))
    clock = Clock()
    container = source(DynamoDbRegistry(lambda: client, table), clock)
    assert set(container.current().apps) == {"test-app", "small-quota-app", "strict-app"}
    calls.clear()
    for _ in range(3):
        clock.now += REFRESH_S
        container.current()
    assert calls == ["GetItem"] * 3
    admin = DynamoDbRegistry(lambda: make_client(moto_url), table)  # another container's admin API
    admin.disable_app("strict-app", ADMIN)
    calls.clear()
    clock.now += REFRESH_S
    catalog = container.current()
    assert "strict-app" not in catalog.apps
    assert catalog.app_for_principal(f"arn:aws:iam::{ACCOUNT}:role/strict-role").disabled
    assert calls[0] == "GetItem" and "Query" in calls
    client.delete_table(TableName=table)
