"""The README's Admin API example runs as written against `make run`'s gateway, as its admin."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from chalicelib.identity.local_credentials import ensure_demo_credentials
from chalicelib.settings import DEFAULT_CATALOG, LOCAL_ADMIN_PRINCIPAL
from local_server import serve
from support import ROOT


def test_the_readme_admin_example_runs_as_written(tmp_path: Path) -> None:
    blocks = re.findall(r"```python admin\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert len(blocks) == 1
    with serve(tmp_path, env={"GARDEN_CATALOG": str(DEFAULT_CATALOG)}) as server:
        key_id, secret, _ = ensure_demo_credentials(server.home / "local-credentials.json", LOCAL_ADMIN_PRINCIPAL)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(AWS_ACCESS_KEY_ID=key_id, AWS_SECRET_ACCESS_KEY=secret, AWS_REGION="us-east-1",
                   AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null", AWS_EC2_METADATA_DISABLED="true")
        code = blocks[0].replace("http://127.0.0.1:8000", server.base_url)
        proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 0, proc.stderr
        lines = proc.stdout.splitlines()
        assert lines[0] == "{'tokens_per_day': 50000}"
        assert lines[-1].startswith("{'name': 'nova-lite', 'enabled': False")
