"""The catalog fails fast at start-up, naming the bad field."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from support import TEST_CATALOG

from chalicelib.catalog import load_catalog, parse_catalog
from chalicelib.errors import ConfigError
from chalicelib.identity.principals import canonical_principal
from chalicelib.settings import DEFAULT_CATALOG, Settings


def broken(change: Any) -> dict[str, Any]:
    catalog = copy.deepcopy(TEST_CATALOG)
    change(catalog)
    return catalog


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda c: c.pop("apps"), "(root)"),
        (lambda c: c["apps"][1].pop("quotas"), "apps[1]"),
        (lambda c: c["apps"][0]["quotas"].update(tokens_per_day=0), "apps[0].quotas.tokens_per_day"),
        (lambda c: c["apps"][0].update(principal_arns=["not-an-arn"]), "apps[0].principal_arns[0]"),
        (lambda c: c["apps"][0]["pii"]["input"].update(EMAIL="SHRED"), "apps[0].pii.input.EMAIL"),
        (lambda c: c["models"]["local-echo"]["deployments"][0].update(provider="nope"),
         "models.local-echo.deployments[0].provider"),
        (lambda c: c["apps"][0].update(allowed_models=["ghost"]), "apps[0].allowed_models"),
        (lambda c: c["apps"][1].update(id="test-app"), "apps[1].id"),
        (lambda c: c["apps"][1].update(principal_arns=c["apps"][0]["principal_arns"]), "apps[1].principal_arns"),
        # App ids reach STS unchanged: no ":" (it would fake another app's ExternalId), 2+ characters.
        (lambda c: c["apps"][0].update(id="team:bot"), "apps[0].id"),
        (lambda c: c["apps"][0].update(id="a"), "apps[0].id"),
        (lambda c: c["apps"][0].update(external_id="execution-garden:other-app"), "apps[0].external_id"),
        (lambda c: c["models"]["local-echo"].update(bytes_per_token=0), "models.local-echo.bytes_per_token"),
        (lambda c: c["apps"][0].update(system_prompt={"text": "x", "caller_system": "ignore"}),
         "apps[0].system_prompt.caller_system"),
        # Limits (issue 10's contract names): any may be absent; per-model caps name allowed models.
        (lambda c: c["apps"][0]["quotas"].update(requests_per_minute=0), "apps[0].quotas.requests_per_minute"),
        (lambda c: c["apps"][0]["quotas"].update(usd_per_month=0), "apps[0].quotas.usd_per_month"),
        (lambda c: c["apps"][0]["quotas"].update(models={"echo-hidden": {"tokens_per_day": 5}}),
         "apps[0].quotas.models"),
        (lambda c: c.update(business_units={"retail-banking": {"usd_per_month": -1}}),
         "business_units.retail-banking.usd_per_month"),
        (lambda c: c["apps"][0].update(on_store_unavailable="shrug"), "apps[0].on_store_unavailable"),
        # Hybrid routing: each provider's own fields, and what serves which kind of model.
        (lambda c: c["models"]["local-echo"]["deployments"].append({"provider": "openai", "model_id": "gpt"}),
         "models.local-echo.deployments[1].base_url"),
        (lambda c: c["models"]["local-echo"]["deployments"].append(
            {"provider": "openai", "model_id": "gpt", "base_url": "http://litellm.internal/v2"}),
         "models.local-echo.deployments[1].base_url"),
        (lambda c: c["models"]["local-echo"]["deployments"].append(
            {"provider": "openai", "model_id": "gpt", "base_url": "https://x/v1", "api_key_env": "K",
             "api_key_parameter": "/p"}), "models.local-echo.deployments[1]"),
        (lambda c: c["models"]["local-echo"]["deployments"].append({"provider": "sagemaker", "model_id": "my_endpoint"}),
         "models.local-echo.deployments[1].model_id"),
        (lambda c: c["models"]["local-echo"]["deployments"][0].update(inference_component="ic"),
         "models.local-echo.deployments[0].inference_component"),
        (lambda c: c["models"]["local-echo"].update(kind="embedding"), "models.local-echo.deployments[0].provider"),
        (lambda c: c["models"]["local-echo"].update(lifecycle={"status": "legacy"}), "models.local-echo.lifecycle"),
        (lambda c: c["models"]["local-echo"].update(lifecycle={"status": "retired", "deprecated": "2026-01-01",
                                                               "sunset": "2026-06-01", "successor": "ghost"}),
         "models.local-echo.lifecycle.successor"),
        (lambda c: c["models"]["local-echo"].update(lifecycle={"status": "legacy", "deprecated": "2026-13-01",
                                                               "sunset": "2026-06-01"}),
         "models.local-echo.lifecycle.deprecated"),
    ],
)
def test_broken_catalog_names_the_field(change: Any, named: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_catalog(broken(change))
    assert named in str(raised.value)


def test_limits_parse_and_any_may_be_absent() -> None:
    def limits(c: dict[str, Any]) -> None:
        c["apps"][0]["quotas"] = {"tokens_per_month": 900_000, "requests_per_minute": 60, "tokens_per_minute": 9000,
                                  "usd_per_month": 12.5, "models": {"echo-small": {"tokens_per_day": 100}}}
        c["apps"][1]["quotas"] = {}
        c["business_units"] = {"retail-banking": {"usd_per_month": 1000, "tokens_per_month": 5_000_000}}

    catalog = parse_catalog(broken(limits))
    quotas = catalog.apps["test-app"].quotas
    assert (quotas.tokens_per_day, quotas.tokens_per_month, quotas.requests_per_minute, quotas.tokens_per_minute,
            quotas.usd_per_month, dict(quotas.model_tokens_per_day)) == (
        None, 900_000, 60, 9000, 12.5, {"echo-small": 100})
    assert catalog.apps["small-quota-app"].quotas.tokens_per_day is None
    bu = catalog.business_units["retail-banking"]
    assert (bu.usd_per_month, bu.tokens_per_month) == (1000.0, 5_000_000)


def test_integral_floats_in_the_catalog_become_ints() -> None:
    catalog = broken(lambda c: c["models"]["local-echo"].update(max_output_tokens=4096.0))
    assert type(parse_catalog(catalog).models["local-echo"].max_output_tokens) is int


def test_unreadable_catalog(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{ nope")
    with pytest.raises(ConfigError, match="invalid JSON at line 1"):
        load_catalog(tmp_path / "bad.json")
    with pytest.raises(ConfigError, match="file not found"):
        load_catalog(tmp_path / "missing.json")


def test_embedded_default_catalog_is_valid() -> None:
    catalog = load_catalog(DEFAULT_CATALOG)
    assert "demo-app" in catalog.apps and "local-echo" in catalog.models


@pytest.mark.parametrize(
    ("arn", "canonical"),
    [
        ("arn:aws:sts::111122223333:assumed-role/test-app-role/session-1",
         "arn:aws:iam::111122223333:role/test-app-role"),
        ("arn:aws:iam::111122223333:role/team/test-app-role", "arn:aws:iam::111122223333:role/test-app-role"),
        ("arn:aws:iam::111122223333:user/alice", "arn:aws:iam::111122223333:user/alice"),
    ],
)
def test_principals_map_to_their_role(arn: str, canonical: str) -> None:
    assert canonical_principal(arn) == canonical
    catalog = parse_catalog(TEST_CATALOG)
    if "test-app-role" in arn:
        assert catalog.app_for_principal(arn).id == "test-app"


@pytest.mark.parametrize("env", [{"GARDEN_IDENTITY": "ldap"}, {"GARDEN_MAX_BODY_BYTES": "-1"},
                                 {"GARDEN_MAX_BODY_BYTES": "lots"}, {"GARDEN_REQUEST_TIMEOUT_S": "28"}])
def test_bad_settings_fail_fast(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match=next(iter(env))):
        Settings.from_env(env)
