"""The prod stage ships consistent: its policy is the infra template rendered with the example
outputs, and its settings build a valid gateway configuration."""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "infra"))

from render_policy import read_env_file, render  # noqa: E402

from chalicelib.settings import Settings  # noqa: E402


def test_prod_policy_is_the_rendered_template() -> None:
    expected = render(read_env_file(ROOT / "infra" / "examples" / "prod-example.env"))
    assert (ROOT / ".chalice" / "policy-prod.json").read_text() == expected
    assert "${" not in expected


def test_prod_stage_settings_are_valid_and_all_aws() -> None:
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    prod = config["stages"]["prod"]
    settings = Settings.from_env(prod["environment_variables"])
    assert (settings.identity, settings.store, settings.audit, settings.pii, settings.guardrail) == \
        ("iam", "dynamodb", "s3", "comprehend", "bedrock")
    assert prod["autogen_policy"] is False and prod["iam_policy_file"] == "policy-prod.json"
    assert prod["api_gateway_endpoint_type"] == "PRIVATE" and prod["lambda_architecture"] == "arm64"
    assert prod["lambda_timeout"] < 29 and prod["subnet_ids"] and prod["security_group_ids"]
