"""A change made through the admin API is enforced by the running gateway, without a restart, within
the registry's refresh bound (GARDEN_REGISTRY_REFRESH_S: 20 s by default, so every container within
60 s of the answer; 1 s here, so the test waits about a second, never a minute)."""
from __future__ import annotations

import time
from typing import Any, Callable, Iterator

import pytest
from admin_support import AdminGarden, admin_garden
from botocore.credentials import Credentials

from chalicelib.identity.local_credentials import ensure_demo_credentials
from support import ACCOUNT

REFRESH_S = 1.0
BOUND_S = REFRESH_S + 4.0  # the refresh, plus a slow machine's request or two


@pytest.fixture(scope="module")
def steered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminGarden]:
    with admin_garden(tmp_path_factory.mktemp("steer"), env={"GARDEN_REGISTRY_REFRESH_S": "1"}) as g:
        yield g


def register(served: AdminGarden, app_id: str, **quotas: Any) -> Credentials:
    """An app created through the admin API, and a local key pair for its principal."""
    role = f"arn:aws:iam::{ACCOUNT}:role/{app_id}"
    app = {"id": app_id, "business_unit": "wealth", "principal_arns": [role],
           "allowed_models": ["local-echo", "echo-routed"], "quotas": quotas or {"tokens_per_day": 100_000}}
    response = served.call("PUT", f"/admin/v1/apps/{app_id}", json=app)
    assert response.status_code == 200, response.text
    key_id, secret, _ = ensure_demo_credentials(served.server.home / "local-credentials.json", role)
    return Credentials(key_id, secret)


def within_bound(check: Callable[[], Any], since: float) -> Any:
    """Poll `check` (a request) until it returns a truthy value; assert it came within the bound."""
    while True:
        result = check()
        if result:
            assert time.monotonic() - since <= BOUND_S
            return result
        assert time.monotonic() - since <= BOUND_S, "the change was not enforced within the bound"
        time.sleep(0.1)


def answered(response: Any, status: int) -> list[Any]:
    """[response] when it has `status` (a Response of 4xx is falsy itself), else []."""
    return [response] if response.status_code == status else []


def error_code(response: Any) -> str | None:
    return response.json()["error"]["code"] if response.status_code >= 400 else None


def test_a_new_app_can_call_once_registered(steered: AdminGarden) -> None:
    creds = register(steered, "fresh-app")
    since = time.monotonic()
    assert within_bound(lambda: steered.chat(creds, "hello").status_code == 200, since)


def test_a_lowered_quota_is_enforced_without_a_restart(steered: AdminGarden) -> None:
    creds = register(steered, "lowered-app", tokens_per_day=100_000)
    within_bound(lambda: steered.chat(creds, "hello").status_code == 200, time.monotonic())
    app = steered.call("GET", "/admin/v1/apps/lowered-app").json()
    app["quotas"] = {"tokens_per_day": 10}
    assert steered.call("PUT", "/admin/v1/apps/lowered-app", json=app).status_code == 200
    since = time.monotonic()
    refused = within_bound(lambda: answered(steered.chat(creds, "a question long enough to need more than ten tokens"),
                                            429), since)
    assert error_code(refused[0]) == "insufficient_quota"


def test_a_deleted_apps_callers_get_403_app_disabled(steered: AdminGarden) -> None:
    creds = register(steered, "doomed-app")
    within_bound(lambda: steered.chat(creds, "hello").status_code == 200, time.monotonic())
    assert steered.call("DELETE", "/admin/v1/apps/doomed-app").json() == {"id": "doomed-app", "deleted": True}
    since = time.monotonic()
    refused = within_bound(lambda: answered(steered.chat(creds, "hello"), 403), since)
    assert error_code(refused[0]) == "app_disabled" and refused[0].headers["x-request-id"]


def test_the_kill_switch_takes_a_deployment_out_of_every_route(steered: AdminGarden) -> None:
    creds = register(steered, "routed-app")

    def served_by() -> str | None:
        response = steered.chat(creds, "hello", model="echo-routed")
        return response.headers.get("x-garden-deployment") if response.status_code == 200 else error_code(response)

    assert within_bound(lambda: served_by() == "echo-primary", time.monotonic())
    assert steered.call("PUT", "/admin/v1/deployments/echo-primary", json={"enabled": False}).status_code == 200
    within_bound(lambda: served_by() == "echo-secondary", time.monotonic())
    assert steered.call("PUT", "/admin/v1/deployments/echo-secondary", json={"enabled": False}).status_code == 200
    within_bound(lambda: served_by() == "all_deployments_disabled", time.monotonic())
    for name in ("echo-primary", "echo-secondary"):
        assert steered.call("PUT", f"/admin/v1/deployments/{name}", json={"enabled": True}).status_code == 200
    within_bound(lambda: served_by() == "echo-primary", time.monotonic())
    states = {d["name"]: d["enabled"] for d in steered.call("GET", "/admin/v1/deployments").json()["data"]}
    assert states["echo-primary"] and states["echo-secondary"]


def test_the_refresh_setting_keeps_the_60_second_promise() -> None:
    from chalicelib.errors import ConfigError
    from chalicelib.settings import Settings

    assert Settings.from_env({}).registry_refresh_s == 20.0
    assert Settings.from_env({"GARDEN_REGISTRY_REFRESH_S": "1"}).registry_refresh_s == 1.0
    with pytest.raises(ConfigError, match="GARDEN_REGISTRY_REFRESH_S"):
        Settings.from_env({"GARDEN_REGISTRY_REFRESH_S": "45"})
