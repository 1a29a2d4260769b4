"""The catalogs the documentation shows are catalogs the gateway accepts, and agree with infra/.

README.md's "Hybrid routing" catalog and the deployments infra/README.md tells a platform team to
add in phases 2 and 3 go through `parse_catalog` as they are written; the names they use are the
ones the LiteLLM config, the example prod values and the policy renderer use.
"""
from __future__ import annotations

import copy
import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from chalicelib.catalog import parse_catalog
from chalicelib.geography import deployment_geographies

ROOT = Path(__file__).resolve().parents[1]


def _section(text: str, heading: str) -> str:
    """From the line starting with `heading` to the next heading of its level or above (a `#` line
    inside a fenced block is a shell comment, not a heading)."""
    level = len(heading.split(" ", 1)[0])
    lines, fenced, taken = text.splitlines(keepends=True), False, []
    for line in lines[next(i for i, line in enumerate(lines) if line.startswith(heading)):]:
        if taken and not fenced and re.match(rf"#{{1,{level}}} ", line):
            break
        fenced ^= line.lstrip().startswith("```")
        taken.append(line)
    return "".join(taken)


def _json_blocks(text: str) -> list[Any]:
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", text, re.S)]


def _hybrid_catalog() -> dict[str, Any]:
    (catalog,) = _json_blocks(_section((ROOT / "README.md").read_text(), "### Hybrid routing"))
    return catalog


def _env() -> dict[str, str]:
    lines = (ROOT / "infra" / "examples" / "prod-example.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))


def test_the_readme_catalog_is_one_the_gateway_accepts() -> None:
    catalog = parse_catalog(_hybrid_catalog(), source="README.md")
    routes = {m.id: [d.provider for d in m.deployments] for m in catalog.models.values()}
    assert sorted(routes.values()) == [["bedrock", "openai"], ["sagemaker"]]
    (hybrid,) = [m for m in catalog.models.values() if len(m.deployments) == 2]
    bedrock, tier = hybrid.deployments
    assert tier.base_url.endswith("/v1") and tier.api_key_parameter and tier.region and tier.price
    assert hybrid.price_for(tier) == tier.price != hybrid.price  # the tier's own price when it serves
    assert hybrid.price_for(bedrock) == hybrid.price


def test_the_geography_rule_it_explains() -> None:
    catalog = parse_catalog(_hybrid_catalog())
    (app,) = catalog.apps.values()
    assert app.geography == "eu"
    for model in catalog.models.values():
        for deployment in model.deployments:
            assert deployment_geographies(deployment, "us-east-1") == {"eu"}, deployment.name
            if deployment.provider == "openai":  # "drop the region above": it may serve no geography
                assert deployment_geographies(replace(deployment, region=None), "eu-west-1") == frozenset()


def test_the_readme_catalog_names_what_infra_deploys() -> None:
    yaml = pytest.importorskip("yaml")
    config = yaml.safe_load((ROOT / "infra" / "litellm" / "config.yaml").read_text())
    env = _env()
    deployments = [d for m in _hybrid_catalog()["models"].values() for d in m["deployments"]]
    (tier,) = [d for d in deployments if d["provider"] == "openai"]
    assert tier["model_id"] in {m["model_name"] for m in config["model_list"]}
    assert tier["base_url"] == env["LITELLM_URL"] + "/v1"
    assert tier["api_key_parameter"] in env["API_KEY_PARAMETERS"].split(",")
    (endpoint,) = [d for d in deployments if d["provider"] == "sagemaker"]
    assert endpoint["model_id"] in env["SAGEMAKER_ENDPOINTS"].split(",")


@pytest.mark.parametrize("phase", ["## Phase 2", "## Phase 3"])
def test_the_deployments_infra_readme_adds_are_accepted(phase: str) -> None:
    blocks = _json_blocks(_section((ROOT / "infra" / "README.md").read_text(), phase))
    assert blocks, f"{phase} shows no catalog deployment"
    catalog = copy.deepcopy(_hybrid_catalog())
    model = catalog["models"]["assistant" if phase.endswith("2") else "fin-llm"]
    model["deployments"] = [d | {"name": f"from-infra-readme-{i}"} for i, d in enumerate(blocks)]
    parsed = parse_catalog(catalog, source=f"infra/README.md {phase}")
    assert parsed.models
