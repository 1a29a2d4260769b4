"""Running the installed `garden-admin` as a platform engineer would: a subprocess with AWS
credentials in its environment (fake ones, mapped to a principal in the served gateway's
local-credentials.json), never an import of admin_cli."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from support import ROOT

# The installed console script, next to this interpreter (.venv/bin/garden-admin after `make venv`).
GARDEN_ADMIN = Path(sys.executable).parent / "garden-admin"

ADMIN_ARN = "arn:aws:iam::000000000000:role/garden-platform-admin"  # the admin `make run` creates
ADMIN_KEY_ID = "AKIAGARDENCLIADMIN001"
ADMIN_SECRET = "garden/cli/admin/secret/0123456789abcdefghij"
READER_ARN = "arn:aws:iam::111122223333:role/garden-auditor"
READER_KEY_ID = "AKIAGARDENCLIREADER01"
READER_SECRET = "garden/cli/reader/secret/0123456789abcdefghi"


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> object:
        return json.loads(self.stdout)


def base_env(**overrides: str) -> dict[str, str]:
    """No AWS configuration from the machine: only what a test puts in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "GARDEN_"))}
    env.update({"AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                "AWS_EC2_METADATA_DISABLED": "true"})
    env.update(overrides)
    return env


def credentials_env(key_id: str, secret: str, url: str | None = None, **extra: str) -> dict[str, str]:
    env = base_env(AWS_ACCESS_KEY_ID=key_id, AWS_SECRET_ACCESS_KEY=secret, AWS_REGION="us-east-1", **extra)
    if url is not None:
        env["GARDEN_URL"] = url
    return env


def garden_admin(*args: str, env: dict[str, str], stdin: str | None = None, timeout: float = 60) -> Result:
    assert GARDEN_ADMIN.exists(), f"{GARDEN_ADMIN} is missing: `make venv` installs it (pip install -e .)"
    done = subprocess.run([str(GARDEN_ADMIN), *args], env=env, input=stdin, capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)
    return Result(done.returncode, done.stdout, done.stderr)


def add_local_credentials(home: Path, entries: dict[str, tuple[str, str]]) -> None:
    """Add key pairs (key id -> (secret, principal)) to a served gateway's local-credentials.json."""
    path = home / "local-credentials.json"
    creds = json.loads(path.read_text())
    creds.update({k: {"secret_access_key": s, "principal_arn": p} for k, (s, p) in entries.items()})
    tmp = path.with_name(".local-credentials.json.tmp")
    tmp.write_text(json.dumps(creds))
    os.replace(tmp, path)
