"""Helpers of the infrastructure tests: where the templates are, and a CloudFormation-aware YAML loader.

Imported as a top-level module (pytest puts this folder on sys.path, as for the tests beside it).
"""
from __future__ import annotations

from pathlib import Path

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
