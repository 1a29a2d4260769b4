"""`garden-admin local add-app`: a second app for the local gateway (`make run`) with no hand-edited JSON.

Locally there is no IAM: `$GARDEN_HOME/local-credentials.json` maps access keys to principals. This
command registers the app through the admin API like any other change (so it is validated and recorded),
then gives the app's new principal a key pair in that file and prints the exports to call `/v1` as it.
It is the one command that writes local files, and it refuses a gateway that is not on loopback.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from admin_cli.api import UsageError, seg

if TYPE_CHECKING:
    from admin_cli.main import Context

LOCAL_ACCOUNT = "000000000000"  # the account of every local principal (the demo app's, the admin's)
EXTERNAL_ID_PREFIX = "execution-garden"  # as the operations role's trust requires: execution-garden:<app id>
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def principal_for(app_id: str) -> str:
    return f"arn:aws:iam::{LOCAL_ACCOUNT}:role/garden-{app_id}"


def app_object(args: argparse.Namespace) -> dict[str, Any]:
    models = [model.strip() for model in args.models.split(",") if model.strip()]
    if not models:
        raise UsageError("--models: give at least one model id, comma-separated")
    quotas = {key: getattr(args, key) for key in
              ("tokens_per_day", "tokens_per_month", "requests_per_minute", "tokens_per_minute", "usd_per_month")
              if getattr(args, key, None) is not None}
    app: dict[str, Any] = {
        "id": args.id,
        "business_unit": args.business_unit,
        "principal_arns": [principal_for(args.id)],
        "allowed_models": models,
        "external_id": f"{EXTERNAL_ID_PREFIX}:{args.id}",
        "quotas": quotas,
    }
    if args.geography:
        app["geography"] = args.geography
    return app


def add_app(args: argparse.Namespace, ctx: Context) -> int:
    host = urlsplit(ctx.url).hostname or ""
    if host not in _LOOPBACK:
        raise UsageError(f"local add-app is for the local gateway (make run, on 127.0.0.1), not {host}: "
                         "in AWS, follow README 'Onboarding a business-unit app'")
    # Imported here: the rest of the CLI never needs the gateway's own modules.
    from chalicelib.errors import ConfigError
    from chalicelib.identity.local_credentials import ensure_demo_credentials

    path = Path(os.environ.get("GARDEN_HOME") or ".garden").expanduser() / "local-credentials.json"
    if not path.parent.is_dir():
        raise UsageError(f"{path.parent} does not exist: set GARDEN_HOME to the folder make run prepared "
                         "(.garden in the project root)")
    app = app_object(args)
    # The app first: the gateway validates it (400 names the field) before any key exists for it.
    ctx.client.json("PUT", f"apps/{seg(args.id)}", body=app)
    try:
        key_id, secret, created = ensure_demo_credentials(path, app["principal_arns"][0])
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    state = "created" if created else "kept"
    print(f"garden-admin: app {args.id} (business unit {args.business_unit}) registered; "
          f"key pair {state} in {path} for {app['principal_arns'][0]}", file=sys.stderr)
    print(f"unset AWS_SESSION_TOKEN AWS_PROFILE\n"
          f"export AWS_ACCESS_KEY_ID={key_id}\n"
          f"export AWS_SECRET_ACCESS_KEY={secret}\n"
          f"export AWS_REGION={ctx.region()}")
    return 0
