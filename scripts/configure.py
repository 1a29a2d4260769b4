"""Fill the prod stage from the data-plane stacks' outputs (or an env file): `make configure ENV=...`.

    python scripts/configure.py infra/examples/prod-example.env   # an env file (KEY=value lines)
    python scripts/configure.py garden                            # a stack prefix: read CloudFormation

Writes where Chalice reads them: `.chalice/config.json` (the prod stage's environment variables,
VPC endpoint, subnets, security groups, reserved concurrency), the rendered function policies
(`.chalice/policy-*-prod.json`, infra/render_policy.py) and the API stage's throttling in
`.chalice/merge-prod.json` (Chalice cannot set it: `make package` merges the file). Nothing is
written unless every value is present and every policy renders.

A stack prefix P reads, with boto3, in the current account and region (AWS_REGION / profile):
  P-data-plane   LedgerTableName/Arn, AuditBucketName/Arn, ChargebackBucketName/Arn, PlatformKeyArn,
                 GatewayLambdaSecurityGroupId (security_group_ids)
  P-bu-key-*     BusinessUnit + BusinessUnitKeyArn, one per business unit (GARDEN_BU_KEYS)
  P-guardrail    GuardrailId, GuardrailVersion (infra/bedrock-guardrail.yaml)
and the account id from the stacks' own ARNs. What no stack of the gateway account holds comes from
the environment (or an env file given with --env-file): OPS_ROLE_ARN (the operations account's
stack), VPC_ENDPOINT_ID and SUBNET_IDS (the bank's network), and the optional values below.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any, Callable, Mapping

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "infra"), str(ROOT)]  # render_policy, and chalicelib for the catalog checks

from render_policy import RENDERED, RenderError, read_env_file, render  # noqa: E402

STAGE = "prod"
REQUIRED = ("REGION", "ACCOUNT_ID", "LEDGER_TABLE_ARN", "AUDIT_BUCKET_ARN", "CHARGEBACK_BUCKET_ARN",
            "PLATFORM_KEY_ARN", "BU_KEYS", "GUARDRAIL_ID", "GUARDRAIL_VERSION", "OPS_ROLE_ARN",
            "VPC_ENDPOINT_ID", "SUBNET_IDS", "SECURITY_GROUP_IDS")
# Optional, with what they default to: the API stage's throttling and the API function's reserved
# concurrency (README.md, "Deploying"), who may use the admin API, the catalog file shipped in
# vendor/ (unset: the prod stage refuses every /v1 request until one is packaged, catalog_source.py).
DEFAULTS = {"THROTTLE_RATE_LIMIT": "500", "THROTTLE_BURST_LIMIT": "1000", "RESERVED_CONCURRENCY": "600"}
OPTIONAL = ("ADMIN_PRINCIPALS", "ADMIN_READERS", "CATALOG_FILE", "BEDROCK_REGION",
            "API_KEY_PARAMETERS", "API_KEY_KMS_KEY_ARN", "LITELLM_URL", "SAGEMAKER_ENDPOINTS",
            "AUDIT_SIGNING_KEY_ARN", "AUDIT_BODY_SECRET_ARN")
# Values that are both a stage variable and a policy placeholder, when the data plane has them: the
# audit trail's checkpoint signing key and request-body HMAC secret (chalicelib/audit_trail.py).
STAGE_VARIABLES = {"AUDIT_SIGNING_KEY_ARN": "GARDEN_AUDIT_SIGNING_KEY", "AUDIT_BODY_SECRET_ARN": "GARDEN_AUDIT_BODY_SECRET"}
_ACCOUNT = re.compile(r"arn:aws[a-z-]*:cloudformation:[^:]+:(\d{12}):stack/")


class ConfigureError(ValueError):
    """A value is missing or malformed; the message names it."""


# ---------------------------------------------------------------------------------------- sources

def from_stacks(prefix: str, client: Any) -> dict[str, str]:
    """The values the gateway account's stacks hold, read from their outputs."""
    stacks = _describe_all(client)
    by_name = {s["StackName"]: s for s in stacks if not s["StackStatus"].startswith("DELETE")}

    def outputs(name: str) -> dict[str, str]:
        if name not in by_name:
            raise ConfigureError(f"stack {name!r} not found (deploy it first: infra/README.md)")
        return {o["OutputKey"]: o["OutputValue"] for o in by_name[name].get("Outputs", [])}

    data = outputs(f"{prefix}-data-plane")
    guard = outputs(f"{prefix}-guardrail")
    bu_keys = {}
    for name in sorted(n for n in by_name if n.startswith(f"{prefix}-bu-key-")):
        out = outputs(name)
        bu_keys[out["BusinessUnit"]] = out["BusinessUnitKeyArn"]
    account = _ACCOUNT.match(by_name[f"{prefix}-data-plane"]["StackId"])
    values = {
        "REGION": client.meta.region_name,
        "ACCOUNT_ID": account.group(1) if account else "",
        "LEDGER_TABLE_ARN": data.get("LedgerTableArn", ""),
        "AUDIT_BUCKET_ARN": data.get("AuditBucketArn", ""),
        "CHARGEBACK_BUCKET_ARN": data.get("ChargebackBucketArn", ""),
        "PLATFORM_KEY_ARN": data.get("PlatformKeyArn", ""),
        "SECURITY_GROUP_IDS": data.get("GatewayLambdaSecurityGroupId", ""),
        "BU_KEYS": json.dumps(bu_keys) if bu_keys else "",
        "GUARDRAIL_ID": guard.get("GuardrailId", ""),
        "GUARDRAIL_VERSION": guard.get("GuardrailVersion", ""),
        "AUDIT_SIGNING_KEY_ARN": data.get("AuditSigningKeyArn", ""),
        "AUDIT_BODY_SECRET_ARN": data.get("AuditBodySecretArn", ""),
    }
    return {k: v for k, v in values.items() if v}


def _describe_all(client: Any) -> list[dict[str, Any]]:
    stacks: list[dict[str, Any]] = []
    for page in client.get_paginator("describe_stacks").paginate():
        stacks += page["Stacks"]
    return stacks


def gather(source: str, environ: Mapping[str, str], env_file: Path | None = None,
           cloudformation: Callable[[], Any] | None = None) -> dict[str, str]:
    """Every value: from the source (an env file, or the stacks of a prefix), then the environment
    and --env-file for what the source does not hold (the source wins where both have a value)."""
    known = set(REQUIRED) | set(OPTIONAL) | set(DEFAULTS) | _placeholders()
    values = {k: v for k, v in environ.items() if k in known and v.strip()}
    if env_file is not None:
        values.update({k: v for k, v in read_env_file(env_file).items() if v.strip()})
    path = Path(source)
    if path.is_file():
        values.update({k: v for k, v in read_env_file(path).items() if v.strip()})
    elif re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{0,100}", source):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            values.update(from_stacks(source, (cloudformation or _cloudformation)()))
        except (BotoCoreError, ClientError) as error:  # no region, no credentials, access denied
            raise ConfigureError(f"reading the stacks of {source!r}: {error}") from None
    else:
        raise ConfigureError(f"ENV={source!r}: neither an env file nor a stack prefix")
    return {**DEFAULTS, **values}


def _placeholders() -> set[str]:
    """Every ${NAME} of the policy templates: a value a later template needs passes through too."""
    return {name for source in RENDERED for name in re.findall(r"\$\{([A-Z][A-Z0-9_]*)\}",
                                                               (ROOT / "infra" / source).read_text())}


def _cloudformation() -> Any:
    import boto3  # a deploy-time tool: boto3 from the dev virtualenv

    return boto3.client("cloudformation")


# ----------------------------------------------------------------------------------------- output

def _name_from_arn(value: str, key: str, pattern: str) -> str:
    match = re.fullmatch(pattern, value)
    if not match:
        raise ConfigureError(f"{key}={value!r}: not the ARN expected here")
    return match.group(1)


def _items(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _positive(values: Mapping[str, str], key: str) -> int:
    if not values[key].isdigit() or int(values[key]) <= 0:
        raise ConfigureError(f"{key}={values[key]!r}: a positive integer")
    return int(values[key])


def prod_stage(values: Mapping[str, str], current: Mapping[str, Any], project: Path = ROOT) -> dict[str, Any]:
    """The prod stage with its environment-specific values replaced; everything else kept."""
    missing = [k for k in REQUIRED if not values.get(k)]
    if missing:
        raise ConfigureError(f"missing {', '.join(missing)} (scripts/configure.py --help)")
    try:
        bu_keys = json.loads(values["BU_KEYS"])
    except ValueError:
        raise ConfigureError('BU_KEYS: a JSON object {"<bu>": "<key ARN>", "_unidentified": ...}') from None
    if not isinstance(bu_keys, dict) or "_unidentified" not in bu_keys:
        raise ConfigureError('BU_KEYS needs a key for "_unidentified" (deploy bu-key.yaml for it too)')
    if not re.fullmatch(r"[a-z0-9]{1,12}", values["GUARDRAIL_ID"]):
        raise ConfigureError(f"GUARDRAIL_ID={values['GUARDRAIL_ID']!r}: a guardrail id (infra/bedrock-guardrail.yaml)")
    if not re.fullmatch(r"[1-9][0-9]{0,7}", values["GUARDRAIL_VERSION"]):
        raise ConfigureError(f"GUARDRAIL_VERSION={values['GUARDRAIL_VERSION']!r}: a published version, never DRAFT")
    stage = json.loads(json.dumps(current))  # a deep copy
    env = stage.setdefault("environment_variables", {})
    env.update({
        "GARDEN_LEDGER_TABLE": _name_from_arn(values["LEDGER_TABLE_ARN"], "LEDGER_TABLE_ARN",
                                              r"arn:aws[a-z-]*:dynamodb:[^:]+:\d{12}:table/([A-Za-z0-9_.-]+)"),
        "GARDEN_AUDIT_BUCKET": _name_from_arn(values["AUDIT_BUCKET_ARN"], "AUDIT_BUCKET_ARN",
                                              r"arn:aws[a-z-]*:s3:::([a-z0-9.-]+)"),
        "GARDEN_CHARGEBACK_BUCKET": _name_from_arn(values["CHARGEBACK_BUCKET_ARN"], "CHARGEBACK_BUCKET_ARN",
                                                   r"arn:aws[a-z-]*:s3:::([a-z0-9.-]+)"),
        "GARDEN_BU_KEYS": json.dumps(bu_keys),
        "GARDEN_OPS_ROLE_ARN": values["OPS_ROLE_ARN"],
        "GARDEN_BEDROCK_REGION": values.get("BEDROCK_REGION") or values["REGION"],
        "GARDEN_BEDROCK_GUARDRAIL_ID": values["GUARDRAIL_ID"],
        "GARDEN_BEDROCK_GUARDRAIL_VERSION": values["GUARDRAIL_VERSION"],
    })
    for key, var in (("ADMIN_PRINCIPALS", "GARDEN_ADMIN_PRINCIPALS"), ("ADMIN_READERS", "GARDEN_ADMIN_READERS"),
                     *STAGE_VARIABLES.items()):
        if values.get(key):
            env[var] = values[key]
        else:
            env.pop(var, None)
    if values.get("CATALOG_FILE"):
        env["GARDEN_CATALOG"] = _packaged_catalog(values["CATALOG_FILE"], project)
    else:
        env.pop("GARDEN_CATALOG", None)
    stage["api_gateway_endpoint_vpce"] = (lambda v: v[0] if len(v) == 1 else v)(_items(values["VPC_ENDPOINT_ID"]))
    stage["subnet_ids"] = _items(values["SUBNET_IDS"])
    stage["security_group_ids"] = _items(values["SECURITY_GROUP_IDS"])
    stage["reserved_concurrency"] = _positive(values, "RESERVED_CONCURRENCY")  # the API function
    return stage


def _packaged_catalog(path: str, project: Path) -> str:
    """The catalog file must be in vendor/ (Chalice ships vendor/'s contents at /var/task), valid,
    and not the embedded demo catalog (the prod stage refuses that)."""
    from chalicelib.catalog import load_catalog
    from chalicelib.catalog_source import prod_refusal
    from chalicelib.settings import DEFAULT_CATALOG

    file = (project / path).resolve()
    vendor = (project / "vendor").resolve()
    if not file.is_file() or vendor not in file.parents:
        raise ConfigureError(f"CATALOG_FILE={path!r}: a file under vendor/ (shipped at /var/task)")
    try:
        load_catalog(file)
    except Exception as error:  # the loader's own message names the field
        raise ConfigureError(f"CATALOG_FILE={path!r}: {error}") from None
    if prod_refusal(STAGE, file, DEFAULT_CATALOG):
        raise ConfigureError(f"CATALOG_FILE={path!r} is the embedded demo catalog: the prod stage refuses it")
    return "/var/task/" + file.relative_to(vendor).as_posix()


def merge_template(values: Mapping[str, str], current: Mapping[str, Any]) -> dict[str, Any]:
    """The merge template with the API stage's throttling (every method of the stage)."""
    merged = json.loads(json.dumps(current))
    api = merged.setdefault("Resources", {}).setdefault("RestAPI", {}).setdefault("Properties", {})
    api["MethodSettings"] = [{"ResourcePath": "/*", "HttpMethod": "*",
                              "ThrottlingRateLimit": _positive(values, "THROTTLE_RATE_LIMIT"),
                              "ThrottlingBurstLimit": _positive(values, "THROTTLE_BURST_LIMIT")}]
    return merged


def configure(values: Mapping[str, str], chalice_dir: Path) -> list[Path]:
    """Write the prod stage, its policies and its merge template; nothing unless all of them render."""
    config_path, merge_path = chalice_dir / "config.json", chalice_dir / "merge-prod.json"
    if not config_path.is_file():
        raise ConfigureError(f"{config_path} not found: --chalice-dir names the project's .chalice/")
    config = json.loads(config_path.read_text())
    config["stages"][STAGE] = prod_stage(values, config["stages"][STAGE], chalice_dir.resolve().parent)
    policy_values = {k: v for k, v in values.items() if k not in DEFAULTS}
    try:
        policies = {target: render(policy_values, ROOT / "infra" / source) for source, target in RENDERED.items()}
    except RenderError as error:
        raise ConfigureError(f"{error} (infra/gateway-policy.md)") from None
    merge = merge_template(values, json.loads(merge_path.read_text()) if merge_path.exists() else {})
    files = {config_path: config, merge_path: merge}
    written = []
    for path, document in files.items():
        path.write_text(json.dumps(document, indent=2) + "\n")
        written.append(path)
    for target, text in policies.items():
        (chalice_dir / target).write_text(text)
        written.append(chalice_dir / target)
    return written


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("source", help="an env file (KEY=value lines) or a stack prefix (e.g. garden)")
    parser.add_argument("--env-file", type=Path, help="values no stack holds (OPS_ROLE_ARN, SUBNET_IDS, ...)")
    parser.add_argument("--chalice-dir", type=Path, default=ROOT / ".chalice", help="default: %(default)s")
    args = parser.parse_args(argv)
    try:
        values = gather(args.source, os.environ, args.env_file)
        written = configure(values, args.chalice_dir)
    except ConfigureError as error:
        print(f"configure: {error}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
