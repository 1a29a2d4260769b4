"""Prod-mode cold start against the local-adapter cold start, in the same run.

Each round spawns two fresh processes (bench/first_request.py) that import app.py from the files the
Lambda package holds (cold_start.lambda_layout: checked-hash .pyc, read-only) and serve their first
chat answer, as a new Lambda container does:

- local: the embedded adapters (IAM identity from the event, SQLite ledger, local PII and
  guardrail, JSON-lines audit, local-echo);
- prod: the prod stage's settings (.chalice/config.json): DynamoDB ledger, registry and usage,
  S3 + KMS audit (moto's server), Comprehend, a Bedrock guardrail and Bedrock runtime (the loopback
  fakes of tests/fakes/), per-app STS AssumeRole into the operations account (moto), the catalog
  imported into the registry; every client reached through the standard AWS_ENDPOINT_URL_* variables,
  so boto3/botocore and every first client are part of the measure.

The two run interleaved (the order alternating each round) so that load on the shared machine
falls on both alike; medians of wall time (spawn to exit) and of peak RSS, and the largest peak.

    .venv/bin/python bench/prod_cold_start.py [rounds]
    .venv/bin/python bench/prod_cold_start.py --before REV [rounds]  # + REV's prod cold start, same rounds
    .venv/bin/python bench/prod_cold_start.py --profile [file]    # one prod child under cProfile
    .venv/bin/python bench/prod_cold_start.py --importtime        # -X importtime of one prod child
"""
from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

import common  # noqa: F401  (sys.path: tests/ for the fakes)
from cold_start import lambda_layout, run_once
from common import ROOT, median

HERE = ROOT / "bench"
TARGET_EXTRA_MS = 300.0
TARGET_RSS_MB = 60.0
REGION = "eu-west-1"  # the prod stage's
OPS_ROLE = "arn:aws:iam::444455556666:role/garden-operations-bedrock"
GUARDRAIL_ID = "grbench1"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
}


def bench_catalog() -> dict[str, Any]:
    """The demo catalog with the demo app on the Bedrock guardrail: the prod stage refuses the
    embedded file itself, so this is also 'the platform's catalog' both processes load."""
    raw = json.loads((ROOT / "chalicelib" / "defaults" / "catalog.json").read_text(encoding="utf-8"))
    raw = copy.deepcopy(raw)
    raw["apps"][0]["guardrail"].update(bedrock_guardrail_id=GUARDRAIL_ID, bedrock_guardrail_version="1")
    # Every fresh container leases a share of the day's tokens from the ledger: room for many rounds.
    raw["apps"][0]["quotas"] = {"tokens_per_day": 10**11}
    return raw


def bedrock_runtime() -> Any:
    """One loopback endpoint for bedrock-runtime, as AWS has: Converse (FakeBedrock) and
    ApplyGuardrail (FakeGuardrail) dispatched by path to the fakes' own handlers."""
    from fakes.bedrock_server import FakeBedrock
    from fakes.guardrail_server import FakeGuardrail, Rules
    from fakes.loopback import AwsHandler, LoopbackServer

    model, guardrail = FakeBedrock(), FakeGuardrail({GUARDRAIL_ID: Rules(denied_words=("forbidden-plan",))})
    converse, apply = model._server.RequestHandlerClass, guardrail._server.RequestHandlerClass

    class Both(AwsHandler):
        def do_POST(self) -> None:
            (apply if self.path.startswith("/guardrail/") else converse).do_POST(self)

    return LoopbackServer(Both)


@contextlib.contextmanager
def aws_world(catalog_file: Path) -> Iterator[dict[str, str]]:
    """moto (DynamoDB, S3, KMS, STS) and the loopback fakes, with the table, bucket, keys and the
    imported registry a prod deployment has; yields the prod child's environment."""
    os.environ.update(FAKE_CREDENTIALS)
    import boto3
    from fakes.comprehend_server import FakeComprehend
    from moto.server import ThreadedMotoServer

    from chalicelib.registry.dynamodb import DynamoDbRegistry

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's access log
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    try:
        host, port = moto.get_host_and_port()
        moto_url = f"http://{host}:{port}"
        table, bucket = "garden-ledger", "garden-audit-bench"
        dynamodb = boto3.client("dynamodb", endpoint_url=moto_url, region_name=REGION)
        dynamodb.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                              AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                                    {"AttributeName": "sk", "AttributeType": "S"}],
                              KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                         {"AttributeName": "sk", "KeyType": "RANGE"}])
        s3 = boto3.client("s3", endpoint_url=moto_url, region_name=REGION)
        s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True,
                         CreateBucketConfiguration={"LocationConstraint": REGION})
        kms = boto3.client("kms", endpoint_url=moto_url, region_name=REGION)
        keys = {bu: kms.create_key()["KeyMetadata"]["Arn"] for bu in ("retail-banking", "_unidentified")}
        raw = json.loads(catalog_file.read_text(encoding="utf-8"))
        # moto builds a service's backend on its first call: STS's now, so no round pays for it.
        boto3.client("sts", endpoint_url=moto_url, region_name=REGION).get_caller_identity()
        # What `garden-admin catalog import` leaves behind: prod never seeds from the file itself.
        DynamoDbRegistry(lambda: dynamodb, table).seed(raw["apps"], raw.get("business_units", {}), "import")
        with FakeComprehend() as comprehend, bedrock_runtime() as runtime:
            yield {
                **FAKE_CREDENTIALS,
                "GARDEN_STAGE": "prod", "GARDEN_IDENTITY": "iam", "GARDEN_STORE": "dynamodb",
                "GARDEN_LEDGER_TABLE": table, "GARDEN_AUDIT": "s3", "GARDEN_AUDIT_BUCKET": bucket,
                "GARDEN_BU_KEYS": json.dumps(keys), "GARDEN_PII": "comprehend", "GARDEN_GUARDRAIL": "bedrock",
                "GARDEN_OPS_ROLE_ARN": OPS_ROLE, "GARDEN_BEDROCK_REGION": REGION,
                "GARDEN_CATALOG": str(catalog_file),
                "AWS_ENDPOINT_URL_DYNAMODB": moto_url, "AWS_ENDPOINT_URL_S3": moto_url,
                "AWS_ENDPOINT_URL_STS": moto_url, "AWS_ENDPOINT_URL_COMPREHEND": comprehend.endpoint_url,
                "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": runtime.endpoint_url,
                "BENCH_MODEL": "bedrock-demo",
            }
    finally:
        moto.stop()


def child_envs(world: dict[str, str], catalog_file: Path, app_dir: Path) -> dict[str, dict[str, str]]:
    base = {"PYTHONDONTWRITEBYTECODE": "1", "BENCH_APP_DIR": str(app_dir)}  # /var/task is read-only
    local = {**base, **FAKE_CREDENTIALS, "GARDEN_IDENTITY": "iam", "GARDEN_CATALOG": str(catalog_file),
             "BENCH_MODEL": "local-echo"}
    return {"local": local, "prod": {**base, **world}}


def fresh_home() -> dict[str, str]:
    return {"GARDEN_HOME": tempfile.mkdtemp(prefix="garden-bench-")}


def clean_env() -> dict[str, str]:
    """The parent's environment without any GARDEN_ / AWS_ENDPOINT_URL variable of its own."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("GARDEN_", "AWS_ENDPOINT_URL", "BENCH_"))}


METRICS = ("answer", "cpu", "exit", "import", "first", "gc", "rss")


def rounds(n: int, before: str | None = None) -> dict[str, dict[str, list[float]]]:
    """`before`: a git revision whose prod cold start runs in the same rounds too ("prod@<rev>")."""
    first = [sys.executable, str(HERE / "first_request.py")]
    catalog_file = Path(tempfile.mkdtemp(prefix="garden-bench-catalog-")) / "catalog.json"
    catalog_file.write_text(json.dumps(bench_catalog()), encoding="utf-8")
    app_dir = lambda_layout()
    kinds = ["local", "prod"] + ([f"prod@{before}"] if before else [])
    results: dict[str, dict[str, list[float]]] = {k: {m: [] for m in METRICS} for k in kinds}
    loaded: dict[str, set[str]] = {k: set() for k in kinds}
    with aws_world(catalog_file) as world:
        envs = child_envs(world, catalog_file, app_dir)
        if before:
            envs[f"prod@{before}"] = {**envs["prod"], "BENCH_APP_DIR": str(lambda_layout(revision=before))}
        base = clean_env()
        for i in range(n):
            order = kinds[i % len(kinds):] + kinds[:i % len(kinds)]  # who goes first rotates
            for kind in order:
                wall, rss, detail = run_once(first, {**envs[kind], **fresh_home()}, base_env=base)
                row = results[kind]
                row["answer"].append(detail["answered_ms"])
                row["cpu"].append(detail["cpu_ms"])
                row["exit"].append(wall)
                row["import"].append(detail["import_ms"])
                row["first"].append(detail["first_request_ms"])
                row["gc"].append(detail["gc_ms"])
                row["rss"].append(detail.get("peak_rss_mb", rss))
                loaded[kind].update(detail.get("loaded", ()))
    for kind, modules in loaded.items():
        print(f"{kind}: {', '.join(sorted(modules)) or 'no boto3, s3transfer, multiprocessing or opentelemetry'} "
              f"imported by the first answer")
    return results


def report(results: dict[str, dict[str, list[float]]], n: int) -> dict[str, float]:
    print(f"prod-mode cold start against local: {n} interleaved rounds of fresh processes, medians "
          f"(2-core shared machine; moto and the fakes on loopback)")
    print("  cold ms: spawn to the first answer (what a cold invocation waits); CPU ms: the child's CPU until "
          "then;\n  import, 1st req: inside the child; exit ms: spawn to the process's exit")
    print(f"{'process':40} {'cold ms':>8} {'CPU ms':>7} {'import':>7} {'1st req':>8} {'GC ms':>6} {'exit ms':>8} "
          f"{'RSS MB':>7} {'max RSS':>8}")
    labels = {"local": "local adapters + 1 chat (local-echo)",
              "prod": "prod adapters + 1 chat (Bedrock, STS)"}
    labels.update({k: f"  same, {k[5:]}" for k in results if k.startswith("prod@")})
    for kind, label in labels.items():
        r = results[kind]
        print(f"{label:40} {median(r['answer']):8.1f} {median(r['cpu']):7.1f} {median(r['import']):7.1f} "
              f"{median(r['first']):8.1f} "
              f"{median(r['gc']):6.1f} {median(r['exit']):8.1f} {median(r['rss']):7.1f} {max(r['rss']):8.1f}")
    prod, local = results["prod"], results["local"]
    extra = median(prod["answer"]) - median(local["answer"])
    peak = max(prod["rss"])
    print(f"prod - local: cold +{extra:.1f} ms (x{median(prod['answer']) / median(local['answer']):.2f}), "
          f"CPU +{median(prod['cpu']) - median(local['cpu']):.1f} ms, "
          f"peak RSS +{median(prod['rss']) - median(local['rss']):.1f} MB")
    print(f"targets: prod adds <= {TARGET_EXTRA_MS:.0f} ms -> {'met' if extra <= TARGET_EXTRA_MS else 'MISSED'}; "
          f"prod peak RSS < {TARGET_RSS_MB:.0f} MB (largest of {n}: {peak:.1f}) -> "
          f"{'met' if peak < TARGET_RSS_MB else 'MISSED'}")
    return {"extra_ms": extra, "rss_mb": peak}


def one_prod_child(extra_env: dict[str, str], argv_prefix: list[str]) -> str:
    catalog_file = Path(tempfile.mkdtemp(prefix="garden-bench-catalog-")) / "catalog.json"
    catalog_file.write_text(json.dumps(bench_catalog()), encoding="utf-8")
    with aws_world(catalog_file) as world:
        env = {**clean_env(), **child_envs(world, catalog_file, lambda_layout())["prod"], **fresh_home(), **extra_env}
        done = subprocess.run([sys.executable, *argv_prefix, str(HERE / "first_request.py")], env=env, cwd=ROOT,
                              capture_output=True, text=True, check=True)
    return done.stderr


def main() -> None:
    args = sys.argv[1:]
    if args and args[0] == "--profile":
        out = args[1] if len(args) > 1 else str(Path(tempfile.mkdtemp(prefix="garden-prof-")) / "prod.prof")
        one_prod_child({"BENCH_PROFILE": out}, [])
        import pstats

        pstats.Stats(out).sort_stats("cumulative").print_stats(45)
        print(f"profile: {out}")
        return
    if args and args[0] == "--importtime":
        sys.stdout.write(one_prod_child({}, ["-X", "importtime"]))
        return
    before = None
    if args and args[0] == "--before":  # --before REV: that revision's prod cold start in the same rounds
        before, args = args[1], args[2:]
    n = int(args[0]) if args else 9
    report(rounds(n, before), n)


if __name__ == "__main__":
    main()
