"""garden-admin: argument parsing, one function per command, exit codes.

Exit codes: 0 ok; 1 the gateway refused (4xx/5xx: its status, code and message on stderr);
2 usage error (bad flags, unreadable file, bad date); 3 the gateway cannot be reached or there are
no AWS credentials. Expected failures print one line on stderr, never a traceback.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import sys
from typing import Any, Callable

from admin_cli.api import AdminClient, CliError, UsageError, resolve_credentials, seg

GROUP_BY = ("app", "business_unit", "model", "day", "month")
# The usage rows' keys in the contract's order: grouped keys first, then the figures.
GROUP_KEYS = {"app": "app_id", "business_unit": "business_unit", "model": "model", "day": "day", "month": "month"}
KEY_ORDER = ("app_id", "business_unit", "model", "day", "month")
FIGURES = ("requests", "prompt_tokens", "completion_tokens", "cached_tokens", "cost_usd", "errors", "rejected")
KINDS = ("rejected", "error", "pii", "guardrail")  # GET /admin/v1/activity's kinds
_DATE = re.compile(r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])")
_MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")

Handler = Callable[[argparse.Namespace, "Context"], int]


class Context:
    """What every command needs, built only when a command runs (so `--help` needs no credentials)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self._client: AdminClient | None = None

    @property
    def url(self) -> str:
        url = getattr(self.args, "url", None) or os.environ.get("GARDEN_URL")
        if not url:
            raise UsageError("no gateway URL: pass --url or set GARDEN_URL (the base URL with its stage, "
                             "e.g. http://127.0.0.1:8000 or https://<api-id>.execute-api.<region>.amazonaws.com/api)")
        if not re.match(r"https?://[^/\s]+", url):
            raise UsageError("--url / GARDEN_URL must start with http:// or https://")
        return url

    @property
    def client(self) -> AdminClient:
        if self._client is None:
            url = self.url
            credentials, profile_region = resolve_credentials(getattr(self.args, "profile", None))
            self._client = AdminClient(url, self.region(profile_region), credentials,
                                       verbose=getattr(self.args, "verbose", False))
        return self._client

    def region(self, profile_region: str | None = None) -> str:
        region = (getattr(self.args, "region", None) or os.environ.get("AWS_REGION")
                  or os.environ.get("AWS_DEFAULT_REGION") or profile_region)
        if not region:
            raise UsageError("no region: pass --region or set AWS_REGION (the API's region; us-east-1 locally)")
        return region


def _print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


def _done(line: str) -> int:
    print(line)
    return 0


def _progress(line: str) -> None:
    print(f"garden-admin: {line}", file=sys.stderr)


def read_json_file(name: str) -> Any:
    label = "stdin" if name == "-" else name
    try:
        raw = sys.stdin.buffer.read() if name == "-" else open(name, "rb").read()
    except OSError as exc:
        raise UsageError(f"cannot read {label}: {exc.strerror or exc}") from None
    try:
        return json.loads(raw)
    except UnicodeDecodeError:
        raise UsageError(f"{label}: not UTF-8") from None
    except json.JSONDecodeError as exc:  # its message names a position, never the content
        raise UsageError(f"{label}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None


# apps --------------------------------------------------------------------------------------------

def apps_list(args: argparse.Namespace, ctx: Context) -> int:
    _print_json(ctx.client.json("GET", "apps"))
    return 0


def apps_get(args: argparse.Namespace, ctx: Context) -> int:
    _print_json(ctx.client.json("GET", f"apps/{seg(args.id)}"))
    return 0


def apps_set(args: argparse.Namespace, ctx: Context) -> int:
    app = read_json_file(args.file)
    if not isinstance(app, dict):
        raise UsageError(f"{args.file}: expected one app object (as in the catalog's apps list)")
    app_id = app.get("id")
    if not isinstance(app_id, str) or not app_id:
        raise UsageError(f"{args.file}: the app object needs its id")
    stored = ctx.client.json("PUT", f"apps/{seg(app_id)}", body=app)
    return _done(f"app {stored.get('id', app_id) if isinstance(stored, dict) else app_id} stored")


def apps_quotas(args: argparse.Namespace, ctx: Context) -> int:
    _print_json(ctx.client.json("GET", f"apps/{seg(args.id)}/quotas"))
    return 0


def apps_delete(args: argparse.Namespace, ctx: Context) -> int:
    ctx.client.json("DELETE", f"apps/{seg(args.id)}")
    return _done(f"app {args.id} deleted: disabled, its callers get 403 app_disabled; history kept")


# usage -------------------------------------------------------------------------------------------

def _group_by(value: str) -> list[str]:
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in GROUP_BY]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of {', '.join(GROUP_BY)}")
    return names


def _date(value: str) -> str:
    if not _DATE.fullmatch(value):
        raise argparse.ArgumentTypeError("expected YYYY-MM-DD (a UTC date)")
    return value


def _month(value: str) -> str:
    if not _MONTH.fullmatch(value):
        raise argparse.ArgumentTypeError("expected YYYY-MM")
    return value


def usage(args: argparse.Namespace, ctx: Context) -> int:
    if args.to < args.from_:
        raise UsageError("--to is before --from (both are inclusive UTC dates)")
    params = {"from": args.from_, "to": args.to, "group_by": ",".join(args.group_by)}
    if not args.csv:
        _print_json(ctx.client.json("GET", "usage", params=params))
        return 0
    response = ctx.client.request("GET", "usage", params={**params, "format": "csv"})
    if response.headers.get("content-type", "").split(";")[0].strip() == "text/csv":
        sys.stdout.write(response.content.decode("utf-8"))
    else:  # the JSON answer, written as the same CSV
        sys.stdout.write(rows_to_csv(response.json().get("data", []), args.group_by))
    return 0


def _kinds(value: str) -> list[str]:
    names = [name.strip() for name in value.split(",") if name.strip()]
    if not names or any(name not in KINDS for name in names):
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of {', '.join(KINDS)}")
    return names


def activity(args: argparse.Namespace, ctx: Context) -> int:
    """Policy activity as counts (GET /admin/v1/activity): the gateway writes the CSV itself."""
    if args.to < args.from_:
        raise UsageError("--to is before --from (both are inclusive UTC dates)")
    params = {"from": args.from_, "to": args.to, "group_by": ",".join(args.group_by)}
    if args.kind:
        params["kind"] = ",".join(args.kind)
    if not args.csv:
        _print_json(ctx.client.json("GET", "activity", params=params))
        return 0
    sys.stdout.write(ctx.client.request("GET", "activity", params={**params, "format": "csv"}).content.decode("utf-8"))
    return 0


def rows_to_csv(rows: list[dict[str, Any]], group_by: list[str]) -> str:
    grouped = {GROUP_KEYS[name] for name in group_by}
    columns = [key for key in KEY_ORDER if key in grouped] + list(FIGURES)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


# business units ----------------------------------------------------------------------------------

def _count(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a whole number") from None
    if number < 0:
        raise argparse.ArgumentTypeError("expected 0 or more")
    return number


def _usd(value: str) -> float | int:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError("expected an amount in USD, e.g. 2500 or 2500.50") from None
    if not number >= 0 or number == float("inf"):
        raise argparse.ArgumentTypeError("expected 0 or more")
    return int(number) if number.is_integer() else number


def business_units_list(args: argparse.Namespace, ctx: Context) -> int:
    _print_json(ctx.client.json("GET", "business-units"))
    return 0


def business_units_set(args: argparse.Namespace, ctx: Context) -> int:
    body: dict[str, Any] = {}
    if args.usd_per_month is not None:
        body["usd_per_month"] = args.usd_per_month
    if args.tokens_per_month is not None:
        body["tokens_per_month"] = args.tokens_per_month
    if not body:
        raise UsageError("business-units set: give --usd-per-month and/or --tokens-per-month "
                         "(a limit left out is no limit)")
    ctx.client.json("PUT", f"business-units/{seg(args.bu)}", body=body)
    limits = ", ".join(f"{key} {value}" for key, value in body.items())
    return _done(f"business unit {args.bu} stored: {limits}")


# deployments, changes ----------------------------------------------------------------------------

def deployments_list(args: argparse.Namespace, ctx: Context) -> int:
    _print_json(ctx.client.json("GET", "deployments"))
    return 0


def _deployment_state(enabled: bool) -> Handler:
    def run(args: argparse.Namespace, ctx: Context) -> int:
        ctx.client.json("PUT", f"deployments/{seg(args.name)}", body={"enabled": enabled})
        state = "enabled: back in its routes" if enabled else "disabled: out of every route"
        return _done(f"deployment {args.name} {state} within 60 s")
    return run


def changes(args: argparse.Namespace, ctx: Context) -> int:
    params = {"limit": str(args.limit)} if args.limit is not None else None
    _print_json(ctx.client.json("GET", "changes", params=params))
    return 0


# catalog, chargeback -----------------------------------------------------------------------------

def catalog_import(args: argparse.Namespace, ctx: Context) -> int:
    catalog = read_json_file(args.file)
    if not isinstance(catalog, dict):
        raise UsageError(f"{args.file}: expected a catalog object")
    apps = catalog.get("apps") if isinstance(catalog.get("apps"), list) else []
    units = catalog.get("business_units") if isinstance(catalog.get("business_units"), dict) else {}
    _progress(f"importing {len(apps)} apps and {len(units)} business units from {args.file}")
    ctx.client.json("POST", "catalog/import", body=catalog)
    return _done(f"catalog {args.file} imported: {len(apps)} apps, {len(units)} business units")


def chargeback_run(args: argparse.Namespace, ctx: Context) -> int:
    _progress(f"running the chargeback of {args.month}")
    result = ctx.client.json("POST", "chargeback", body={"month": args.month})
    result = result if isinstance(result, dict) else {}
    units = result.get("business_units")
    where = result.get("summary_file")
    line = f"chargeback {args.month} written"
    if isinstance(units, list):
        line += f": {len(units)} business units"
    return _done(line + (f", summary {where}" if isinstance(where, str) else ""))


def chargeback_list(args: argparse.Namespace, ctx: Context) -> int:
    _print_json(ctx.client.json("GET", "chargeback"))
    return 0


def chargeback_show(args: argparse.Namespace, ctx: Context) -> int:
    _print_json(ctx.client.json("GET", f"chargeback/{args.month}"))
    return 0


def chargeback_csv(args: argparse.Namespace, ctx: Context) -> int:
    response = ctx.client.request("GET", f"chargeback/{args.month}/{seg(args.business_unit)}")
    sys.stdout.write(response.content.decode("utf-8"))
    return 0


# console -----------------------------------------------------------------------------------------

def console(args: argparse.Namespace, ctx: Context) -> int:
    from admin_cli.console.run import console as run_console

    return run_console(args, ctx)


def _port(value: str) -> int:
    number = _count(value)
    if number > 65535:
        raise argparse.ArgumentTypeError("expected a port from 0 to 65535 (0: any free port)")
    return number


# local -------------------------------------------------------------------------------------------

def local_add_app(args: argparse.Namespace, ctx: Context) -> int:
    from admin_cli.local import add_app

    return add_app(args, ctx)


# parser ------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    # The connection flags are accepted before or after the command (`garden-admin --url U apps list`
    # or `garden-admin apps list --url U`); SUPPRESS keeps a later default from hiding an earlier value.
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    common.add_argument("--url", help="the gateway's base URL with its stage (default: $GARDEN_URL)")
    common.add_argument("--region", help="the API's region, to sign for (default: $AWS_REGION)")
    common.add_argument("--profile", help="an AWS profile (default: the standard credential chain)")
    common.add_argument("-v", "--verbose", action="store_true", help="print each request on stderr")

    parser = argparse.ArgumentParser(
        prog="garden-admin", parents=[common],
        description="Steer Execution Garden through its admin API (/admin/v1), signed with your AWS credentials.",
        epilog="Exit codes: 0 ok, 1 the gateway refused (4xx/5xx), 2 usage error, "
               "3 gateway unreachable or no AWS credentials.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def group(name: str, help_text: str) -> argparse._SubParsersAction:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        return sub.add_subparsers(dest="action", metavar="ACTION", required=True)

    def leaf(subs: argparse._SubParsersAction, name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        sub = subs.add_parser(name, parents=[common], help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    apps = group("apps", "the apps: who may call, with which models, policies and quotas")
    leaf(apps, "list", apps_list, "list every app (JSON)")
    leaf(apps, "get", apps_get, "one app (JSON)").add_argument("id", metavar="ID")
    leaf(apps, "set", apps_set, "create or replace an app from a JSON app object, as in the catalog"
         ).add_argument("file", metavar="FILE", help="the app object's JSON file, or - for stdin")
    leaf(apps, "delete", apps_delete, "disable an app (its history is kept)").add_argument("id", metavar="ID")
    leaf(apps, "quotas", apps_quotas, "the app's quotas beside what is used of each in its current window (JSON)"
         ).add_argument("id", metavar="ID")

    use = commands.add_parser("usage", parents=[common], help="usage and cost between two UTC dates",
                              description="Usage and cost between two UTC dates (inclusive), grouped.")
    use.set_defaults(handler=usage)
    use.add_argument("--from", dest="from_", metavar="YYYY-MM-DD", type=_date, required=True)
    use.add_argument("--to", metavar="YYYY-MM-DD", type=_date, required=True)
    use.add_argument("--group-by", metavar="KEYS", type=_group_by, default=["app", "model", "day"],
                     help=f"comma-separated, any of {', '.join(GROUP_BY)} (default app,model,day)")
    use.add_argument("--csv", action="store_true", help="CSV on stdout instead of JSON")

    act = commands.add_parser("activity", parents=[common], help="rejections and errors by code, PII types, "
                              "guardrail interventions: counts between two UTC dates",
                              description="Policy activity as counts between two UTC dates (inclusive), grouped.")
    act.set_defaults(handler=activity)
    act.add_argument("--from", dest="from_", metavar="YYYY-MM-DD", type=_date, required=True)
    act.add_argument("--to", metavar="YYYY-MM-DD", type=_date, required=True)
    act.add_argument("--group-by", metavar="KEYS", type=_group_by, default=["app", "day"],
                     help=f"comma-separated, any of {', '.join(GROUP_BY)} (default app,day)")
    act.add_argument("--kind", metavar="KINDS", type=_kinds, help=f"comma-separated, any of {', '.join(KINDS)} (default all)")
    act.add_argument("--csv", action="store_true", help="CSV on stdout instead of JSON")

    units = group("business-units", "business units' monthly budgets")
    leaf(units, "list", business_units_list, "list the business units' budgets (JSON)")
    bu_set = leaf(units, "set", business_units_set, "set a business unit's monthly budget")
    bu_set.add_argument("bu", metavar="BU")
    bu_set.add_argument("--usd-per-month", type=_usd, metavar="N")
    bu_set.add_argument("--tokens-per-month", type=_count, metavar="N")

    deps = group("deployments", "the run-time kill switch of deployments")
    leaf(deps, "list", deployments_list, "list deployments with their state (JSON)")
    leaf(deps, "disable", _deployment_state(False), "take a deployment out of every route"
         ).add_argument("name", metavar="NAME")
    leaf(deps, "enable", _deployment_state(True), "put a deployment back in its routes"
         ).add_argument("name", metavar="NAME")

    chg = commands.add_parser("changes", parents=[common], help="the recorded changes, newest first (JSON)")
    chg.set_defaults(handler=changes)
    chg.add_argument("--limit", type=_count, metavar="N", help="at most N changes (the gateway's default: 100)")

    cat = group("catalog", "the catalog file")
    leaf(cat, "import", catalog_import, "re-apply a catalog file's apps and business units (recorded as a change)"
         ).add_argument("file", metavar="FILE", help="the catalog JSON file, or - for stdin")

    charge = group("chargeback", "monthly chargeback per business unit")
    leaf(charge, "run", chargeback_run, "write a month's chargeback now").add_argument(
        "--month", metavar="YYYY-MM", type=_month, required=True)
    leaf(charge, "list", chargeback_list, "the months: this one to date and the closed ones with usage (JSON)")
    leaf(charge, "show", chargeback_show, "a month's summary, computed, nothing written (JSON)").add_argument(
        "--month", metavar="YYYY-MM", type=_month, required=True)
    cb_csv = leaf(charge, "csv", chargeback_csv, "a business unit's chargeback CSV of a month, on stdout")
    cb_csv.add_argument("--month", metavar="YYYY-MM", type=_month, required=True)
    cb_csv.add_argument("--business-unit", metavar="BU", required=True)

    con = commands.add_parser("console", parents=[common], help="the console: spend, quotas and policy "
                              "activity in a browser, on 127.0.0.1 (read-only)",
                              description="Serve the console on 127.0.0.1 and print the URL to open; its "
                              "server signs the admin API calls with your AWS credentials.")
    con.set_defaults(handler=console)
    con.add_argument("--port", type=_port, default=0, metavar="N", help="port on 127.0.0.1 (default: a free one)")
    con.add_argument("--no-browser", action="store_true", help="print the URL only; do not open a browser")

    from admin_cli.audit import add_parser as add_audit  # audit verify: the local trail or S3 (admin_cli/audit.py)

    add_audit(commands, common, _date)

    local = group("local", "the local gateway only (make run): no IAM there, so this writes local credentials")
    add = leaf(local, "add-app", local_add_app,
               "register an app with a new local principal and key pair, and print its exports")
    add.add_argument("--id", required=True, metavar="ID")
    add.add_argument("--business-unit", required=True, metavar="BU")
    add.add_argument("--models", required=True, metavar="MODELS", help="comma-separated model ids it may use")
    add.add_argument("--geography", metavar="GEO", help="us, eu, apac, ca, jp, au or us-gov")
    for flag, kind in (("--tokens-per-day", _count), ("--tokens-per-month", _count),
                       ("--requests-per-minute", _count), ("--tokens-per-minute", _count),
                       ("--usd-per-month", _usd)):
        add.add_argument(flag, type=kind, metavar="N")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # exits 2 with its usage line on a bad flag
    try:
        return args.handler(args, Context(args))
    except CliError as exc:
        print(f"garden-admin: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("garden-admin: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `garden-admin usage --csv | head`
        sys.stderr.close()
        return 0
