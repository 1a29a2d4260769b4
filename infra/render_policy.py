"""Render the prod IAM policies' ${PLACEHOLDERS} from the environment (or an env file).

    python infra/render_policy.py --write                          # every policy into .chalice/
    python infra/render_policy.py --write infra/examples/prod-example.env
    python infra/render_policy.py > .chalice/policy-prod.json      # one policy to stdout
    python infra/render_policy.py --policy policy-sweep.json > .chalice/policy-sweep-prod.json

The same as `envsubst`, but it fails on a placeholder left unset instead of writing an empty ARN.
Each function of the prod stage has its own policy (`.chalice/config.json`): the API function's,
and the scheduled sweep's, which may touch the ledger table and nothing else.
"""
from __future__ import annotations

import argparse
import os
import string
import sys
from pathlib import Path

INFRA = Path(__file__).resolve().parent
CHALICE = INFRA.parent / ".chalice"
TEMPLATE = INFRA / "policy-prod.json"
# template in infra/ -> the file the prod stage's iam_policy_file names in .chalice/
RENDERED = {"policy-prod.json": "policy-prod.json", "policy-sweep.json": "policy-sweep-prod.json"}


def read_env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#"))
    return {k.strip(): v.strip() for k, v in pairs}


def render(values: dict[str, str], template: Path = TEMPLATE) -> str:
    return string.Template(template.read_text()).substitute(values)  # KeyError names a missing one


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
    except KeyError as missing:
        sys.exit(f"unset placeholder {missing}: export it or pass an env file")
    for target, text in rendered.items():  # nothing is written unless every policy rendered
        (CHALICE / target).write_text(text)
        print(f"wrote .chalice/{target}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
