"""Helpers of the infrastructure tests: where the templates are, a CloudFormation-aware YAML loader,
and a small evaluator of the intrinsics the IAM templates use.

Imported as a top-level module (pytest puts this folder on sys.path, as for the tests beside it).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

INFRA = Path(__file__).resolve().parents[2] / "infra"
TEMPLATES = sorted(INFRA.glob("*.yaml"))


def load_template(path: Path) -> dict:
    """Parse a template, turning short-form intrinsics (!Ref, !Sub, ...) into their long form."""
    yaml = pytest.importorskip("yaml")

    class Loader(yaml.SafeLoader):
        pass

    def construct(loader, tag_suffix, node):
        name = "Ref" if tag_suffix == "Ref" else f"Fn::{tag_suffix}"
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
            if tag_suffix == "GetAtt":
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {name: value}

    Loader.add_multi_constructor("!", construct)
    return yaml.load(path.read_text(), Loader=Loader)


def resolve(node: Any, params: dict[str, Any], conditions: dict[str, bool] | None = None) -> Any:
    """Evaluate the intrinsics the IAM templates use (Ref, Sub, If, Join, NoValue) with `params`
    (pseudo parameters included, e.g. "AWS::Partition"), as CloudFormation would render them."""
    conditions = conditions or {}
    if isinstance(node, list):
        items = [resolve(item, params, conditions) for item in node]
        return [item for item in items if item is not _NO_VALUE]
    if not isinstance(node, dict):
        return node
    if set(node) == {"Ref"}:
        return _NO_VALUE if node["Ref"] == "AWS::NoValue" else params[node["Ref"]]
    if set(node) == {"Fn::If"}:
        name, then, otherwise = node["Fn::If"]
        return resolve(then if conditions[name] else otherwise, params, conditions)
    if set(node) == {"Fn::Join"}:
        sep, parts = node["Fn::Join"]
        return sep.join(resolve(parts, params, conditions))
    if set(node) == {"Fn::Sub"}:
        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            return "${" + name[1:] + "}" if name.startswith("!") else str(params[name])
        return re.sub(r"\$\{([^}]+)\}", substitute, node["Fn::Sub"])
    resolved = {key: resolve(value, params, conditions) for key, value in node.items()}
    return {key: value for key, value in resolved.items() if value is not _NO_VALUE}


_NO_VALUE = object()
