"""Render infra/policy-prod.json's ${PLACEHOLDERS} from the environment (or an env file).

    python infra/render_policy.py > .chalice/policy-prod.json                    # from exported outputs
    python infra/render_policy.py infra/examples/prod-example.env > .chalice/policy-prod.json

The same as `envsubst`, but it fails on a placeholder left unset instead of writing an empty ARN.
"""
from __future__ import annotations

import os
import string
import sys
from pathlib import Path

TEMPLATE = Path(__file__).with_name("policy-prod.json")


def read_env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#"))
    return {k.strip(): v.strip() for k, v in pairs}


def render(values: dict[str, str]) -> str:
    return string.Template(TEMPLATE.read_text()).substitute(values)  # KeyError names a missing one


if __name__ == "__main__":
    env = dict(os.environ)
    if len(sys.argv) > 1:
        env.update(read_env_file(Path(sys.argv[1])))
    try:
        sys.stdout.write(render(env))
    except KeyError as missing:
        sys.exit(f"unset placeholder {missing}: export it or pass an env file")
