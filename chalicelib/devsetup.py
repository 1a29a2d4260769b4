"""`make run` set-up: prepare local state, check the catalog, and say how to call the gateway.

Creates `$GARDEN_HOME` and a demo key pair mapped to the demo app's principal when missing;
never overwrites existing credentials.
"""
from __future__ import annotations

import os
import sys

from chalicelib.catalog import load_catalog
from chalicelib.errors import ConfigError
from chalicelib.identity.local_credentials import ensure_demo_credentials
from chalicelib.settings import Settings

DEMO_APP = "demo-app"


def main() -> int:
    # A bad setting, catalog or credentials file is one line naming it, never a traceback.
    try:
        settings = Settings.from_env()
        catalog = load_catalog(settings.catalog_path)
        settings.home.mkdir(parents=True, exist_ok=True)
        app = catalog.apps.get(DEMO_APP) or next(iter(catalog.apps.values()))
        key_id, secret, created = ensure_demo_credentials(settings.local_credentials_path, app.principal_arns[0])
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
""")
    return 0


if __name__ == "__main__":
    sys.exit(main())
