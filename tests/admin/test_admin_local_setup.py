"""`make run`'s set-up (chalicelib/devsetup.py) creates an admin key pair for the local platform
role and prints it apart from the demo app's; that role is an admin of the local stage by default."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from botocore.credentials import Credentials

from chalicelib.errors import ConfigError
from chalicelib.settings import DEFAULT_CATALOG, LOCAL_ADMIN_PRINCIPAL, Settings
from client.garden_auth import SigV4RequestsAuth
from local_server import serve
from support import ROOT


def setup(home: Path) -> str:
    env = {**os.environ, "GARDEN_HOME": str(home), "GARDEN_CATALOG": str(DEFAULT_CATALOG)}
    return subprocess.run([sys.executable, "-m", "chalicelib.devsetup"], cwd=ROOT, env=env, capture_output=True,
                          text=True, check=True, timeout=60).stdout


def test_make_run_prints_an_admin_key_pair_apart_from_the_demo_apps_and_it_can_call_the_admin_api(
        tmp_path: Path) -> None:
    with serve(tmp_path, env={"GARDEN_CATALOG": str(DEFAULT_CATALOG)}) as server:
        out = setup(server.home)
        demo = dict(re.findall(r"export (AWS_[A-Z_]+)=(\S+)", out))  # the app's, as before: exported
        admin_line = next(line for line in out.splitlines() if "AWS_ACCESS_KEY_ID=" in line and "export" not in line)
        admin = dict(re.findall(r"(AWS_[A-Z_]+)=(\S+)", admin_line))
        assert set(demo) == set(admin) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"}
        assert demo["AWS_ACCESS_KEY_ID"] != admin["AWS_ACCESS_KEY_ID"]
        assert LOCAL_ADMIN_PRINCIPAL in out and "Admin credentials created" in out
        stored = json.loads((server.home / "local-credentials.json").read_text())
        assert stored[admin["AWS_ACCESS_KEY_ID"]]["principal_arn"] == LOCAL_ADMIN_PRINCIPAL
        assert stored[demo["AWS_ACCESS_KEY_ID"]]["principal_arn"] == "arn:aws:iam::000000000000:role/garden-demo"

        def apps(keys: dict[str, str]) -> requests.Response:
            creds = Credentials(keys["AWS_ACCESS_KEY_ID"], keys["AWS_SECRET_ACCESS_KEY"])
            return requests.get(f"{server.base_url}/admin/v1/apps", timeout=30,
                                auth=SigV4RequestsAuth(region=keys["AWS_REGION"], credentials=creds))

        listed = apps(admin)
        assert listed.status_code == 200 and [a["id"] for a in listed.json()["data"]] == ["demo-app"]
        refused = apps(demo)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "not_an_admin"
        again = setup(server.home)  # never overwritten: the same pairs, found
        assert "Admin credentials found" in again and admin["AWS_SECRET_ACCESS_KEY"] in again


def test_the_local_platform_role_is_an_admin_only_where_identity_is_local_and_nothing_else_is_set() -> None:
    assert Settings.from_env({}).admin_principals == {LOCAL_ADMIN_PRINCIPAL}
    assert Settings.from_env({"GARDEN_IDENTITY": "iam"}).admin_principals == frozenset()
    named = Settings.from_env({"GARDEN_ADMIN_PRINCIPALS": "arn:aws:iam::111122223333:role/platform"})
    assert named.admin_principals == {"arn:aws:iam::111122223333:role/platform"}
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    assert config["stages"]["local"]["environment_variables"]["GARDEN_ADMIN_PRINCIPALS"] == LOCAL_ADMIN_PRINCIPAL


def test_admin_and_reader_arns_are_canonical_and_checked() -> None:
    settings = Settings.from_env({
        "GARDEN_IDENTITY": "iam",
        "GARDEN_ADMIN_PRINCIPALS": "arn:aws:sts::111122223333:assumed-role/platform/alice, "
                                   "arn:aws:iam::111122223333:role/team/ops",
        "GARDEN_ADMIN_READERS": "arn:aws:iam::444455556666:role/auditor"})
    assert settings.admin_principals == {"arn:aws:iam::111122223333:role/platform",
                                         "arn:aws:iam::111122223333:role/ops"}
    assert settings.admin_readers == {"arn:aws:iam::444455556666:role/auditor"}
    with pytest.raises(ConfigError, match="GARDEN_ADMIN_READERS: entry 2"):
        Settings.from_env({"GARDEN_ADMIN_READERS": "arn:aws:iam::444455556666:role/a,platform-team"})
