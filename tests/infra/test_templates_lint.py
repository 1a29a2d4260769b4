"""cfn-lint on every template in infra/: no error and no warning (informational notes allowed)."""
from __future__ import annotations

import pytest

from cfn_yaml import TEMPLATES

cfnlint_api = pytest.importorskip("cfnlint.api", reason="cfn-lint is not installed (requirements-dev.txt)")


def test_there_are_templates():
    names = {p.name for p in TEMPLATES}
    assert {"data-plane.yaml", "bu-key.yaml", "operations-bedrock-role.yaml",
            "litellm-ecs.yaml", "sagemaker-endpoint.yaml", "observability.yaml"} <= names


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.name)
def test_cfn_lint_is_clean(template):
    matches = cfnlint_api.lint_file(template)
    problems = [f"{m.rule.id} {m.message} ({template.name}:{m.linenumber})"
                for m in matches if not m.rule.id.startswith("I")]
    assert problems == []
