"""Render the prod IAM policies' ${PLACEHOLDERS} from the environment (or an env file).

    python infra/render_policy.py --write                          # every policy into .chalice/
    python infra/render_policy.py --write infra/examples/prod-example.env
    python infra/render_policy.py > .chalice/policy-prod.json      # one policy to stdout
    python infra/render_policy.py --policy policy-sweep.json > .chalice/policy-sweep-prod.json

Like `envsubst`, but it fails on a placeholder left unset instead of writing an empty ARN. Each
function of the prod stage has its own policy (`.chalice/config.json`): the API function's, the
scheduled sweep's, which may touch the ledger table and nothing else, and the daily lifecycle
check's, which may list Bedrock's foundation models and nothing else, and the monthly chargeback's,
which may read the usage aggregates and budgets and write chargeback/ objects under the BU keys.

Later phases add statements only where they are configured (infra/gateway-policy.md): a statement
named in OPTIONAL is rendered when its switch is set and left out, with everything it names, when it
is not, so a deployment without the LiteLLM tier gets no SSM or KMS statement for it at all (never a
wildcard or an empty ARN). A value set for a statement that is left out is an error, not ignored.
Comma-separated lists (LISTS) fill every place they stand in whole, so one statement covers several
parameters; values are names as the catalog writes them, turned into ARNs here (DERIVED).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any, Callable

INFRA = Path(__file__).resolve().parent
CHALICE = INFRA.parent / ".chalice"
TEMPLATE = INFRA / "policy-prod.json"
# template in infra/ -> the file the prod stage's iam_policy_file names in .chalice/
RENDERED = {"policy-prod.json": "policy-prod.json", "policy-sweep.json": "policy-sweep-prod.json",
            "policy-lifecycle.json": "policy-lifecycle-prod.json",
            "policy-chargeback.json": "policy-chargeback-prod.json"}

# Sid -> the value that switches the statement on (phase 2: the LiteLLM tier's key in SSM).
OPTIONAL = {
    "ApiKeyParametersOnly": "API_KEY_PARAMETERS",
    "ApiKeyParametersDecryptThroughSsmOnly": "API_KEY_PARAMETERS",
    # The audit trail's anchors (data-plane.yaml outputs AuditSigningKeyArn, AuditBodySecretArn).
    "AuditCheckpointSigningKeyOnly": "AUDIT_SIGNING_KEY_ARN",
    "AuditBodySecretOnly": "AUDIT_BODY_SECRET_ARN",
    "AuditBodySecretDecryptThroughSecretsManagerOnly": "AUDIT_BODY_SECRET_ARN",
}
# Values that hold comma-separated items; "${NAME}" standing alone in a list becomes one entry each.
LISTS = frozenset({"API_KEY_PARAMETERS", "API_KEY_KMS_KEY_ARN", "API_KEY_PARAMETER_ARNS"})


def _parameter_arns(values: dict[str, str]) -> str:
    # The catalog's api_key_parameter is a name ("/garden/litellm/gateway-key"); its ARN joins the
    # name to "parameter/" with one slash, whether or not the name starts with one.
    region, account = values["REGION"], values["ACCOUNT_ID"]
    return ",".join(f"arn:aws:ssm:{region}:{account}:parameter/{name.lstrip('/')}"
                    for name in _items(values.get("API_KEY_PARAMETERS", "")))


# Placeholders computed from other values, never set by hand.
DERIVED: dict[str, Callable[[dict[str, str]], str]] = {"API_KEY_PARAMETER_ARNS": _parameter_arns}

_PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")


class RenderError(ValueError):
    """A value is missing, malformed, or set for a statement that is not rendered."""


def read_env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#"))
    return {k.strip(): v.strip() for k, v in pairs}


def render(values: dict[str, str], template: Path = TEMPLATE) -> str:
    """The policy as JSON text; RenderError names the value at fault."""
    values = {k: v for k, v in values.items() if v.strip()}  # an empty value counts as unset
    for name, item in ((n, i) for n in LISTS & values.keys() for i in _items(values[n])):
        if "*" in item or "?" in item or "$" in item:
            raise RenderError(f"{name}: {item!r} is not an exact name or ARN (no wildcard, no placeholder)")
    policy = json.loads(template.read_text())
    kept, left_out = [], []
    for statement in policy["Statement"]:
        switch = OPTIONAL.get(statement.get("Sid", ""))
        (left_out if switch and switch not in values else kept).append(statement)
    used = {name for statement in kept for name in _names(statement)}
    stray = sorted(name for statement in left_out for name in _names(statement)
                   if name in values and name not in used and name not in DERIVED)
    if stray:
        switches = sorted({OPTIONAL[s["Sid"]] for s in left_out})
        raise RenderError(f"{stray[0]} is set but {' / '.join(switches)} is not: set both or neither")
    for name, derive in DERIVED.items():
        if name in used:
            values[name] = derive(values)
    policy["Statement"] = [_fill(statement, values) for statement in kept]
    return json.dumps(policy, indent=2) + "\n"


def _items(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _names(node: Any) -> set[str]:
    if isinstance(node, str):
        return set(_PLACEHOLDER.findall(node))
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else []
    return set().union(*(_names(child) for child in children))


def _fill(node: Any, values: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {key: _fill(value, values) for key, value in node.items()}
    if isinstance(node, list):
        return [item for child in node for item in _expand(child, values)]
    if isinstance(node, str):
        expanded = _expand(node, values)
        return expanded[0] if len(expanded) == 1 else expanded
    return node


def _expand(node: Any, values: dict[str, str]) -> list[Any]:
    """A node as the entries it stands for: one, or one per item of a list value standing alone."""
    if not isinstance(node, str):
        return [_fill(node, values)]
    whole = _PLACEHOLDER.fullmatch(node)
    if whole and whole.group(1) in LISTS:
        items = _items(_value(whole.group(1), values))
        if not items:
            raise RenderError(f"unset placeholder {whole.group(1)!r}: export it or pass an env file")
        return items
    return [_PLACEHOLDER.sub(lambda m: _scalar(m.group(1), values), node)]


def _scalar(name: str, values: dict[str, str]) -> str:
    value = _value(name, values)
    if name in LISTS and len(_items(value)) != 1:
        raise RenderError(f"{name}: one value expected here")
    return value.strip()


def _value(name: str, values: dict[str, str]) -> str:
    if name not in values:
        raise RenderError(f"unset placeholder {name!r}: export it or pass an env file")
    return values[name]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("env_file", nargs="?", type=Path, help="KEY=value lines (default: environment only)")
    parser.add_argument("--policy", choices=sorted(RENDERED), default=TEMPLATE.name,
                        help="the template to print (default: %(default)s)")
    parser.add_argument("--write", action="store_true", help="render every policy into .chalice/")
    args = parser.parse_args(argv)
    env = dict(os.environ)
    if args.env_file:
        env.update(read_env_file(args.env_file))
    try:
        if not args.write:
            sys.stdout.write(render(env, INFRA / args.policy))
            return 0
        rendered = {target: render(env, INFRA / source) for source, target in RENDERED.items()}
    except RenderError as error:
        sys.exit(f"{error} (infra/gateway-policy.md)")
    for target, text in rendered.items():  # nothing is written unless every policy rendered
        (CHALICE / target).write_text(text)
        print(f"wrote .chalice/{target}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
