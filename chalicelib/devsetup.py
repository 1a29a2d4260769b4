"""`make run` set-up: prepare local state, check the catalog, and say how to call the gateway.

Creates `$GARDEN_HOME`, a demo key pair mapped to the demo app's principal and an admin key pair
for the local platform team's role (an admin on the local stage: .chalice/config.json's
GARDEN_ADMIN_PRINCIPALS, and settings.py's default where identity is local) when missing; never overwrites existing credentials.
"""
from __future__ import annotations

import os
import sys

from chalicelib.catalog import load_catalog
from chalicelib.errors import ConfigError
from chalicelib.identity.local_credentials import ensure_demo_credentials
from chalicelib.settings import LOCAL_ADMIN_PRINCIPAL, Settings

DEMO_APP = "demo-app"


def main() -> int:
    # A bad setting, catalog or credentials file is one line naming it, never a traceback.
    try:
        settings = Settings.from_env()
        catalog = load_catalog(settings.catalog_path)
        settings.home.mkdir(parents=True, exist_ok=True)
        app = catalog.apps.get(DEMO_APP) or next(iter(catalog.apps.values()))
        key_id, secret, created = ensure_demo_credentials(settings.local_credentials_path, app.principal_arns[0])
        admin_key_id, admin_secret, admin_created = ensure_demo_credentials(settings.local_credentials_path,
                                                                            LOCAL_ADMIN_PRINCIPAL)
    except ConfigError as exc:
        print(f"execution-garden: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"execution-garden: cannot prepare local state: {exc}", file=sys.stderr)
        return 2
    port = os.environ.get("PORT", "8000")
    state = "created" if created else "found"
    print(f"""
Execution Garden (local stage): state in {settings.home}
Demo credentials {state} in {settings.local_credentials_path} for app '{app.id}':
  export AWS_ACCESS_KEY_ID={key_id}
  export AWS_SECRET_ACCESS_KEY={secret}
  export AWS_REGION={settings.signing_region}
Then, from another shell (see README "Calling the gateway"):
  .venv/bin/python -c "from client.garden_auth import openai_client; \\
print(openai_client('http://127.0.0.1:{port}/v1').chat.completions.create(model='local-echo', \\
messages=[{{'role': 'user', 'content': 'hello'}}]).choices[0].message.content)"

Admin credentials {"created" if admin_created else "found"} for {LOCAL_ADMIN_PRINCIPAL}
(the admin API, /admin/v1, and garden-admin; see README "Admin API"), apart from the app's:
  AWS_ACCESS_KEY_ID={admin_key_id} AWS_SECRET_ACCESS_KEY={admin_secret} AWS_REGION={settings.signing_region} \\
    .venv/bin/garden-admin --url http://127.0.0.1:{port} apps list
""")
    return 0


if __name__ == "__main__":
    sys.exit(main())
