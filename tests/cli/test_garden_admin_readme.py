"""README's "Onboarding a business-unit app" runs as written: every garden-admin command it shows
parses with the CLI's own parser, the app it registers is one the gateway's catalog accepts (with the
models of the README's hybrid catalog), and its IAM and resource policies are well-formed JSON that
say what the text says."""
from __future__ import annotations

import copy
import json
import re
import shlex

import pytest
from test_readme_catalog import ROOT, _hybrid_catalog, _json_blocks, _section

from admin_cli.main import build_parser
from chalicelib.catalog import parse_catalog

README = (ROOT / "README.md").read_text()
ONBOARDING = _section(README, "## Onboarding a business-unit app")
RUNBOOK = _section(README, "### The runbook (AWS)")


def _commands(text: str) -> list[list[str]]:
    """Each garden-admin command line of the bash blocks, its continuation lines joined."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].split(">", 1)[0].strip()
            if line.startswith(("garden-admin ", ".venv/bin/garden-admin ")):
                commands.append(shlex.split(line)[1:])
    return commands


def test_every_command_shown_parses() -> None:
    commands = _commands(ONBOARDING)
    assert len(commands) >= 6
    parser = build_parser()
    for argv in commands:
        args = parser.parse_args(argv)  # SystemExit(2) on a misspelt flag
        assert callable(args.handler), argv
    shown = {tuple(argv[:2]) for argv in commands}
    assert {("apps", "set"), ("apps", "get"), ("business-units", "set"), ("local", "add-app")} <= shown


def test_every_route_command_is_in_the_table() -> None:
    for command in ("apps list", "apps get ID", "apps set FILE", "apps delete ID", "usage --from YYYY-MM-DD",
                    "business-units list", "business-units set BU --usd-per-month N --tokens-per-month N",
                    "deployments list", "deployments disable NAME", "deployments enable NAME", "changes",
                    "catalog import FILE", "chargeback run --month YYYY-MM"):
        assert f"`{command}" in ONBOARDING, command


def test_the_app_registered_is_one_the_catalog_accepts() -> None:
    (app, invoke_policy, resource_policy) = _json_blocks(RUNBOOK)
    catalog = copy.deepcopy(_hybrid_catalog())
    catalog["apps"].append(app)
    parsed = parse_catalog(catalog, source="README.md")
    registered = parsed.apps["markets-research"]
    assert registered.business_unit == "markets"
    assert app["external_id"] == f"execution-garden:{app['id']}"
    assert app["geography"] == "eu"
    assert set(app["quotas"]) == {"tokens_per_day", "tokens_per_month", "requests_per_minute",
                                  "tokens_per_minute", "usd_per_month"}
    assert re.fullmatch(r"[\w+=,.@-]{2,57}", app["id"])  # what STS carries as the source identity

    (statement,) = invoke_policy["Statement"]
    assert statement["Action"] == "execute-api:Invoke"
    assert all("/api/" in r and "/v1/" in r and "admin" not in r for r in statement["Resource"])

    (allow,) = resource_policy["Statement"]
    assert allow["Principal"]["AWS"] == app["principal_arns"]
    assert "aws:SourceVpce" in allow["Condition"]["StringEquals"]


@pytest.mark.parametrize("stage", ["prod"])
def test_the_shipped_stage_admits_its_endpoint_as_the_text_says(stage: str) -> None:
    """The runbook says the resource policy comes from `api_gateway_endpoint_vpce` of a PRIVATE stage."""
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())["stages"][stage]
    assert config["api_gateway_endpoint_type"] == "PRIVATE"
    assert config["api_gateway_endpoint_vpce"].startswith("vpce-")
    assert "api_gateway_policy_file" not in config
