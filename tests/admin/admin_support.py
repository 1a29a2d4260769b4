"""The admin API as `make run` serves it (tests/local_server.py `serve`, its own GARDEN_HOME), called
with `requests` + SigV4 (client/garden_auth.py, explicit credentials) as the platform team would.

The admin key pair is written the way `make run` writes it (chalicelib/devsetup.py:
`ensure_demo_credentials` for the local platform role, an admin by default where identity is local);
a read-only auditor's pair is added for GARDEN_ADMIN_READERS.
"""
from __future__ import annotations

import copy
import json
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import requests
from botocore.credentials import Credentials

from chalicelib.identity.local_credentials import ensure_demo_credentials
from chalicelib.settings import LOCAL_ADMIN_PRINCIPAL
from client.garden_auth import SigV4RequestsAuth
from local_server import Server, serve
from support import ACCOUNT, KEY_ID, QUOTA_KEY_ID, SECRET, TEST_CATALOG

READER_ARN = f"arn:aws:iam::{ACCOUNT}:role/garden-auditor"
# An app's principal (test-app): registered with the gateway, not an admin.
APP = Credentials(KEY_ID, SECRET)
SMALL_QUOTA_APP = Credentials(QUOTA_KEY_ID, SECRET)


@dataclass
class AdminGarden:
    server: Server
    admin: Credentials
    reader: Credentials

    @property
    def url(self) -> str:
        return self.server.base_url

    def call(self, method: str, path: str, who: Credentials | None = None, **kwargs: Any) -> requests.Response:
        """`who`: the admin unless named; pass `sign=False` for an unsigned request."""
        sign = kwargs.pop("sign", True)
        auth = SigV4RequestsAuth(region="us-east-1", credentials=who or self.admin) if sign else None
        return requests.request(method, f"{self.url}{path}", auth=auth, timeout=30, **kwargs)

    def chat(self, who: Credentials, text: str, **extra: Any) -> requests.Response:
        body = {"model": "local-echo", "messages": [{"role": "user", "content": text}], **extra}
        return self.call("POST", "/v1/chat/completions", who, json=body)

    def embed(self, who: Credentials, text: str) -> requests.Response:
        return self.call("POST", "/v1/embeddings", who, json={"model": "local-embed", "input": text})


def admin_credentials(home: Path) -> tuple[Credentials, Credentials]:
    path = home / "local-credentials.json"
    key_id, secret, _ = ensure_demo_credentials(path, LOCAL_ADMIN_PRINCIPAL)  # as make run does
    reader_id, reader_secret, _ = ensure_demo_credentials(path, READER_ARN)
    return Credentials(key_id, secret), Credentials(reader_id, reader_secret)


def admin_catalog() -> dict[str, Any]:
    """The tests' catalog, plus a priced embedding model, a route of two named deployments and a
    business unit's budget."""
    catalog = copy.deepcopy(TEST_CATALOG)
    catalog["models"]["local-embed"] = {
        "kind": "embedding", "bytes_per_token": 4, "dimensions": {"default": 16, "max": 16},
        "price": {"input_per_1k": 0.0002},
        "deployments": [{"provider": "local-embed", "model_id": "hashed-trigrams-16", "name": "embed-primary"}],
    }
    catalog["models"]["echo-routed"] = {
        "max_output_tokens": 256, "bytes_per_token": 4, "input_overhead_tokens": 0,
        "price": {"input_per_1k": 0.001, "output_per_1k": 0.002},
        "deployments": [{"provider": "local-echo", "model_id": "echo-a", "name": "echo-primary"},
                        {"provider": "local-echo", "model_id": "echo-b", "name": "echo-secondary"}],
    }
    for app in catalog["apps"]:
        app["allowed_models"] = [*app["allowed_models"], "local-embed", "echo-routed"]
    catalog["business_units"] = {"retail-banking": {"usd_per_month": 500, "tokens_per_month": 50_000_000}}
    return catalog


@contextmanager
def admin_garden(root: Path, env: dict[str, str] | None = None) -> Iterator[AdminGarden]:
    catalog_path = root / "admin-catalog.json"
    catalog_path.write_text(json.dumps(admin_catalog()))
    with serve(root, env={"GARDEN_CATALOG": str(catalog_path), "GARDEN_ADMIN_READERS": READER_ARN,
                          **(env or {})}) as server:
        admin, reader = admin_credentials(server.home)
        yield AdminGarden(server, admin, reader)
