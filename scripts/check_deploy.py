"""Refuse to package a prod stage that still holds a placeholder: the first step of `make package`.

    python scripts/check_deploy.py                 # a real deployment's package (the default)
    python scripts/check_deploy.py --example infra/examples/prod-example.env   # CI: `make package EXAMPLE=1`

A real deployment's prod stage (`.chalice/config.json`, the policy files it names, the merge
template) must hold no `${PLACEHOLDER}`, not the demo account 000000000000, and none of the
fictitious values of infra/examples/prod-example.env (its accounts, VPC endpoint, subnets,
security groups, guardrail id, example host names), and it must ship the platform's catalog
(GARDEN_CATALOG=/var/task/<file> with the file in vendor/, valid, and not the embedded demo one):
the prod stage never serves the demo catalog (chalicelib/catalog_source.py).

`--example ENV_FILE` is CI's packaging of the shipped example: it passes only when the prod stage
is exactly what `make configure ENV=ENV_FILE` writes, so a half-edited stage (some real values,
some fictitious ones) is refused in that mode too, and the package it builds is marked as an
example that cannot be deployed (build/package/EXAMPLE-NOT-DEPLOYABLE).
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "infra"), str(ROOT), str(ROOT / "scripts")]

from render_policy import read_env_file  # noqa: E402

DEMO_ACCOUNT = "000000000000"
EXAMPLE_ENV = ROOT / "infra" / "examples" / "prod-example.env"
_PLACEHOLDER = re.compile(r"\$\{[^}]*\}|<[a-z][a-z0-9 _-]*>|REPLACE[_-]?ME|CHANGE[_-]?ME", re.IGNORECASE)
# The tokens of the example file that name something that exists only in the example.
_FICTITIOUS = (re.compile(r"arn:aws[a-z-]*:[a-z0-9-]*:[a-z0-9-]*:(\d{12}):"), re.compile(r"\b(?:vpce|subnet|sg)-[0-9a-f]{8,17}\b"),
               re.compile(r"\b[a-z0-9.-]+\.example\b"))


def fictitious_tokens(env_file: Path = EXAMPLE_ENV) -> set[str]:
    values = read_env_file(env_file)
    tokens = {t for value in values.values() for pattern in _FICTITIOUS for t in pattern.findall(value)}
    tokens |= {values[k] for k in ("ACCOUNT_ID", "GUARDRAIL_ID") if values.get(k)}
    return tokens


def _strings(node: Any, where: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, f"{where}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _strings(value, f"{where}[{i}]")
    elif isinstance(node, str):
        yield where, node
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        yield where, str(node)


def _documents(project: Path) -> dict[str, Any]:
    """The prod stage and every file it deploys with, by the name a message shows."""
    chalice = project / ".chalice"
    stage = json.loads((chalice / "config.json").read_text())["stages"]["prod"]
    docs: dict[str, Any] = {"config.json stages.prod": stage}
    names = {stage.get("iam_policy_file")} | {f.get("iam_policy_file") for f in stage.get("lambda_functions", {}).values()}
    for name in sorted(n for n in names if n):
        path = chalice / name
        docs[name] = json.loads(path.read_text()) if path.exists() else {"missing": f"${{{name} not rendered}}"}
    if (chalice / "merge-prod.json").exists():
        docs["merge-prod.json"] = json.loads((chalice / "merge-prod.json").read_text())
    return docs


def problems(project: Path, example_env: Path = EXAMPLE_ENV) -> list[str]:
    """Everything that stops a real deployment, one line each (empty: deployable)."""
    found: list[str] = []
    fictitious = fictitious_tokens(example_env)
    for name, doc in _documents(project).items():
        for where, text in _strings(doc, name):
            if _PLACEHOLDER.search(text):
                found.append(f"{where}: placeholder {_PLACEHOLDER.search(text).group(0)!r}")  # type: ignore[union-attr]
            if DEMO_ACCOUNT in text:
                found.append(f"{where}: the demo account {DEMO_ACCOUNT}")
            for token in sorted(t for t in fictitious if t in text):
                found.append(f"{where}: {token!r} is a fictitious value of {example_env.name}")
    found += _consistency_problems(project)
    found += _catalog_problems(project)
    return found


def _consistency_problems(project: Path) -> list[str]:
    """A hand edit of one file and not the other: the stage's resources must be the policy's."""
    chalice = project / ".chalice"
    stage = json.loads((chalice / "config.json").read_text())["stages"]["prod"]
    env = stage.get("environment_variables", {})
    policy_file = chalice / stage.get("iam_policy_file", "policy-prod.json")
    if not policy_file.exists():
        return []
    policy = policy_file.read_text()
    expected = {"GARDEN_LEDGER_TABLE": ":table/{}\"", "GARDEN_AUDIT_BUCKET": ":::{}/audit/",
                "GARDEN_CHARGEBACK_BUCKET": ":::{}/chargeback/", "GARDEN_OPS_ROLE_ARN": "\"{}\"",
                "GARDEN_BEDROCK_GUARDRAIL_ID": ":guardrail/{}\""}
    return [f"{var}={env[var]!r} is not the resource {policy_file.name} grants: run make configure, never edit by hand"
            for var, shape in expected.items() if env.get(var) and shape.format(env[var]) not in policy]


def _catalog_problems(project: Path) -> list[str]:
    from chalicelib.catalog import load_catalog
    from chalicelib.catalog_source import prod_refusal
    from chalicelib.settings import DEFAULT_CATALOG

    env = json.loads((project / ".chalice" / "config.json").read_text())["stages"]["prod"].get(
        "environment_variables", {})
    packaged = env.get("GARDEN_CATALOG", "")
    if not packaged.startswith("/var/task/"):
        return ["GARDEN_CATALOG: unset or not in the package: the prod stage would refuse every request "
                "(set CATALOG_FILE=vendor/<file> and run make configure)"]
    file = project / "vendor" / packaged.removeprefix("/var/task/")
    if not file.is_file():
        return [f"GARDEN_CATALOG={packaged}: vendor/{file.name} does not exist"]
    try:
        load_catalog(file)
    except Exception as error:  # the loader names the field
        return [f"GARDEN_CATALOG={packaged}: {error}"]
    refusal = prod_refusal("prod", file, DEFAULT_CATALOG)
    return [f"GARDEN_CATALOG={packaged}: {refusal}"] if refusal else []


def example_problems(project: Path, example_env: Path) -> list[str]:
    """CI's example package: the prod stage must be exactly `make configure ENV=example_env`'s output."""
    from configure import ConfigureError, configure, gather

    with tempfile.TemporaryDirectory() as tmp:
        expected = Path(tmp) / ".chalice"
        shutil.copytree(project / ".chalice", expected,
                        ignore=shutil.ignore_patterns("deployments", "venv"))
        try:
            configure(gather(str(example_env), {}), expected)
        except ConfigureError as error:
            return [f"{example_env}: {error}"]
        found = []
        for name in sorted(p.name for p in expected.glob("*.json")):
            if json.loads((expected / name).read_text()) != json.loads((project / ".chalice" / name).read_text()):
                found.append(f".chalice/{name} differs from `make configure ENV={example_env}`: "
                             "EXAMPLE=1 packages the shipped example only")
        return found


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--example", type=Path, metavar="ENV_FILE",
                        help="CI only: package the fictitious example (never deployable)")
    parser.add_argument("--project-dir", type=Path, default=ROOT)
    args = parser.parse_args(argv)
    if args.example:
        found = example_problems(args.project_dir, args.example)
        if not found:
            print(f"check_deploy: the prod stage is the fictitious example {args.example}: "
                  "this package is for CI and can never be deployed", file=sys.stderr)
            return 0
    else:
        found = problems(args.project_dir)
    for line in found:
        print(f"check_deploy: {line}", file=sys.stderr)
    if found:
        print(f"check_deploy: {len(found)} problem(s): run `make configure ENV=<stack prefix or env file>` "
              "with the real values (README.md, Deploying)", file=sys.stderr)
        return 1
    print("check_deploy: the prod stage holds no placeholder", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
