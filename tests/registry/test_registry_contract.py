"""The registry port's contract, on every adapter and backend (the `registry` fixture)."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from chalicelib.registry import PrincipalInUse

ROLE = "arn:aws:iam::111122223333:role/retail-chat"


def app(app_id: str, principal: str = ROLE, **extra: Any) -> dict[str, Any]:
    return {"id": app_id, "business_unit": "retail-banking", "principal_arns": [principal],
            "allowed_models": ["local-echo"], "quotas": {"tokens_per_day": 1000}, **extra}


def test_an_empty_registry_has_version_0_no_snapshot_and_no_changes(registry: Any) -> None:
    assert registry.version() == 0
    assert registry.snapshot() is None
    assert registry.changes() == []


def test_seed_fills_an_empty_registry_once(registry: Any, clock: Any) -> None:
    bus = {"retail-banking": {"usd_per_month": 100.5, "tokens_per_month": 10**9}}
    assert registry.seed([app("a1")], bus, "seed") is True
    snap = registry.snapshot()
    assert snap.version == registry.version() == 1
    assert snap.apps == {"a1": app("a1")}
    assert snap.business_units == bus
    assert snap.deployments == {}
    [change] = registry.changes()
    assert (change.principal, change.action, change.target) == ("seed", "catalog.seed", "catalog")
    assert change.at == "2026-09-21T14:13:20.000Z"  # the injected clock, ISO 8601 UTC
    assert change.before is None and change.after == {"apps": {"a1": app("a1")}, "business_units": bus}
    # Seeded once: a second seed (another container starting) changes nothing.
    assert registry.seed([app("a2", "arn:aws:iam::111122223333:role/other")], {}, "seed") is False
    assert registry.version() == 1 and set(registry.snapshot().apps) == {"a1"}
    assert len(registry.changes()) == 1


def test_an_empty_seed_still_marks_the_registry_seeded(registry: Any) -> None:
    assert registry.seed([], {}, "seed") is True
    assert registry.snapshot() is not None and registry.version() == 1
    assert registry.seed([app("a1")], {}, "seed") is False


def test_put_app_creates_replaces_and_records_before_and_after(registry: Any, clock: Any) -> None:
    registry.seed([], {}, "seed")
    stored = registry.put_app(app("a1"), "arn:aws:iam::000000000000:role/admin")
    assert stored == app("a1")
    assert registry.snapshot().apps["a1"] == app("a1") and registry.version() == 2
    clock.now += 61.5
    changed = app("a1", quotas={"tokens_per_day": 5})
    assert registry.put_app(changed, "arn:aws:iam::000000000000:role/admin") == changed
    assert registry.snapshot().apps["a1"] == changed and registry.version() == 3
    newest, created, _seed = registry.changes()
    assert (newest.action, newest.target, newest.principal) == (
        "app.put", "app:a1", "arn:aws:iam::000000000000:role/admin")
    assert newest.before == app("a1") and newest.after == changed
    assert newest.at == "2026-09-21T14:14:21.500Z"
    assert created.before is None and created.after == app("a1")


def test_putting_the_same_app_again_is_not_a_change(registry: Any) -> None:
    registry.seed([app("a1")], {}, "seed")
    assert registry.put_app(app("a1"), "admin") == app("a1")
    assert registry.version() == 1 and len(registry.changes()) == 1


def test_a_principal_held_by_another_enabled_app_is_refused_and_nothing_is_written(registry: Any) -> None:
    registry.seed([app("a1")], {}, "seed")
    # The same role, spelled as the assumed-role ARN a caller presents: the same principal.
    assumed = "arn:aws:sts::111122223333:assumed-role/retail-chat/session-1"
    with pytest.raises(PrincipalInUse):
        registry.put_app(app("a2", assumed), "admin")
    assert registry.version() == 1 and set(registry.snapshot().apps) == {"a1"}
    assert len(registry.changes()) == 1
    # An app may keep its own principal.
    registry.put_app(app("a1", assumed), "admin")


def test_a_disabled_apps_principal_is_free_and_it_cannot_come_back_holding_it(registry: Any) -> None:
    registry.seed([app("a1")], {}, "seed")
    assert registry.disable_app("a1", "admin") is True
    registry.put_app(app("a2"), "admin")
    with pytest.raises(PrincipalInUse):
        registry.put_app(app("a1"), "admin")
    assert registry.snapshot().apps["a1"]["disabled"] is True


def test_disable_app_keeps_the_app_marked_and_records_it(registry: Any) -> None:
    registry.seed([app("a1")], {}, "seed")
    assert registry.disable_app("nope", "admin") is False
    assert registry.version() == 1
    assert registry.disable_app("a1", "admin") is True
    assert registry.snapshot().apps["a1"] == {**app("a1"), "disabled": True}
    assert registry.version() == 2
    change = registry.changes()[0]
    assert (change.action, change.target, change.before, change.after) == ("app.delete", "app:a1", app("a1"), None)
    assert registry.disable_app("a1", "admin") is True  # already deleted: no second change
    assert registry.version() == 2
    # Putting it again re-enables it.
    assert registry.put_app(app("a1"), "admin") == app("a1")
    assert "disabled" not in registry.snapshot().apps["a1"]


def test_put_business_unit(registry: Any) -> None:
    registry.seed([], {"retail-banking": {"usd_per_month": 10}}, "seed")
    assert registry.put_business_unit("retail-banking", {"usd_per_month": 20.25}, "admin") == {"usd_per_month": 20.25}
    registry.put_business_unit("markets", {"tokens_per_month": 7}, "admin")
    assert registry.snapshot().business_units == {"retail-banking": {"usd_per_month": 20.25},
                                                  "markets": {"tokens_per_month": 7}}
    newest, older = registry.changes(limit=2)
    assert (newest.action, newest.target, newest.before, newest.after) == (
        "business_unit.put", "business_unit:markets", None, {"tokens_per_month": 7})
    assert older.before == {"usd_per_month": 10} and older.after == {"usd_per_month": 20.25}


def test_set_deployment_switches_and_records(registry: Any) -> None:
    registry.seed([], {}, "seed")
    registry.set_deployment("bedrock-us", False, "ops")
    assert registry.snapshot().deployments == {"bedrock-us": False} and registry.version() == 2
    registry.set_deployment("bedrock-us", False, "ops")  # already off: not a change
    assert registry.version() == 2
    registry.set_deployment("bedrock-us", True, "ops")
    assert registry.snapshot().deployments == {"bedrock-us": True} and registry.version() == 3
    on, off, _ = registry.changes()
    assert (off.action, off.target, off.before, off.after) == (
        "deployment.put", "deployment:bedrock-us", None, {"enabled": False})
    assert (on.before, on.after, on.principal) == ({"enabled": False}, {"enabled": True}, "ops")
    registry.set_deployment("never-switched", True, "ops")  # enabled is the default: not a change
    assert registry.version() == 3


def test_import_makes_the_registry_the_files_and_is_one_change(registry: Any) -> None:
    other = "arn:aws:iam::111122223333:role/markets"
    registry.seed([app("a1"), app("a2", other)], {"retail-banking": {"usd_per_month": 1}, "old": {"usd_per_month": 2}},
                  "seed")
    registry.set_deployment("bedrock-us", False, "ops")
    changed = app("a1", quotas={"tokens_per_day": 9})
    registry.import_catalog([changed, app("a3", "arn:aws:iam::111122223333:role/new")],
                            {"retail-banking": {"usd_per_month": 1}, "markets": {"tokens_per_month": 5}},
                            "arn:aws:iam::000000000000:role/admin")
    snap = registry.snapshot()
    assert snap.version == 3
    assert snap.apps == {"a1": changed, "a2": {**app("a2", other), "disabled": True},
                         "a3": app("a3", "arn:aws:iam::111122223333:role/new")}
    assert snap.business_units == {"retail-banking": {"usd_per_month": 1}, "markets": {"tokens_per_month": 5}}
    assert snap.deployments == {"bedrock-us": False}  # incident state is not the file's
    change = registry.changes()[0]
    assert (change.action, change.target, change.principal) == (
        "catalog.import", "catalog", "arn:aws:iam::000000000000:role/admin")
    # Only what differs is recorded.
    assert change.before == {"apps": {"a1": app("a1"), "a2": app("a2", other), "a3": None},
                             "business_units": {"markets": None, "old": {"usd_per_month": 2}}}
    assert change.after["apps"]["a2"] == {**app("a2", other), "disabled": True}
    assert change.after["business_units"] == {"markets": {"tokens_per_month": 5}, "old": None}


def test_import_refuses_a_principal_two_of_its_apps_share_and_writes_nothing(registry: Any) -> None:
    registry.seed([app("a1")], {}, "seed")
    with pytest.raises(PrincipalInUse):
        registry.import_catalog([app("a1"), app("a2")], {}, "admin")
    assert registry.version() == 1


def test_import_may_move_a_principal_from_an_app_it_drops(registry: Any) -> None:
    registry.seed([app("a1")], {}, "seed")
    registry.import_catalog([app("a2")], {}, "admin")
    assert registry.snapshot().apps["a1"]["disabled"] is True
    assert "disabled" not in registry.snapshot().apps["a2"]


def test_changes_are_newest_first_and_limited(registry: Any, clock: Any) -> None:
    registry.seed([], {}, "seed")
    for n in range(12):
        clock.now += 1
        registry.put_business_unit(f"bu{n:02d}", {"tokens_per_month": n + 1}, "admin")
    changes = registry.changes(limit=5)
    assert [c.target for c in changes] == [f"business_unit:bu{n:02d}" for n in range(11, 6, -1)]
    assert [c.at for c in changes] == sorted((c.at for c in changes), reverse=True)
    assert len(registry.changes()) == 13


@pytest.mark.concurrency
def test_two_concurrent_puts_cannot_give_one_principal_to_two_enabled_apps(registry: Any) -> None:
    registry.seed([], {}, "seed")
    start = threading.Barrier(8)

    def put(n: int) -> str:
        start.wait(timeout=30)
        try:
            registry.put_app(app(f"app-{n}"), "admin")
            return "ok"
        except PrincipalInUse:
            return "in_use"

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(put, range(8)))
    assert outcomes.count("ok") == 1 and outcomes.count("in_use") == 7
    snap = registry.snapshot()
    assert len(snap.apps) == 1 and snap.version == 2 and len(registry.changes()) == 2


@pytest.mark.concurrency
def test_concurrent_writes_lose_nothing_and_each_gets_its_own_version(registry: Any) -> None:
    registry.seed([], {}, "seed")
    start = threading.Barrier(6)

    def switch(n: int) -> None:
        start.wait(timeout=30)
        registry.set_deployment(f"dep-{n}", False, f"ops-{n}")

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(switch, range(6)))
    assert registry.snapshot().deployments == {f"dep-{n}": False for n in range(6)}
    assert registry.version() == 7
    assert sorted(c.principal for c in registry.changes()[:6]) == [f"ops-{n}" for n in range(6)]
