"""Test support: a test catalog, SigV4 credentials, and a gateway on its own state folder."""
from __future__ import annotations

import json
import secrets
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from chalicelib import gateway
from chalicelib.pipeline import Pipeline
from chalicelib.quota import QuotaKeeper
from chalicelib.settings import Settings
from chalicelib.store.sqlite import SqliteLedger
from signing import signed_headers

ROOT = Path(__file__).resolve().parent.parent

ACCOUNT = "111122223333"
KEY_ID = "AKIAGARDENTESTKEY001"
SECRET = "garden/test/secret/key/0123456789abcdefgh"
OTHER_KEY_ID = "AKIAGARDENTESTKEY002"  # a registered key whose principal has no app
QUOTA_KEY_ID = "AKIAGARDENTESTKEY003"  # the small-quota app
BLOCK_KEY_ID = "AKIAGARDENTESTKEY004"  # the app that blocks cards and masks IBANs


def _app(app_id: str, role: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": app_id,
        "business_unit": "retail-banking",
        "principal_arns": [f"arn:aws:iam::{ACCOUNT}:role/{role}"],
        "allowed_models": ["local-echo", "echo-small"],
        "pii": {"input": {"default": "REDACT"}, "output": {"default": "REDACT"}, "allow_terms": ["S3"]},
        "guardrail": {"denied_words": ["guaranteed returns"]},
        "quotas": {"tokens_per_day": 1_000_000},
        **extra,
    }


TEST_CATALOG: dict[str, Any] = {
    "version": 1,
    "models": {
        # local-echo bills ceil(bytes / 4) per text: 4 is its exact floor, and it adds no tool prompt.
        "local-echo": {
            "max_output_tokens": 4096, "bytes_per_token": 4, "input_overhead_tokens": 0,
            "price": {"input_per_1k": 0.003, "output_per_1k": 0.015},
            "deployments": [{"provider": "local-echo", "model_id": "echo-1"}],
        },
        "echo-small": {
            "max_output_tokens": 8, "bytes_per_token": 4, "input_overhead_tokens": 0,
            "price": {"input_per_1k": 0.0, "output_per_1k": 0.0},
            "deployments": [{"provider": "local-echo", "model_id": "echo-small"}],
        },
        "echo-hidden": {
            "max_output_tokens": 64,
            "price": {"input_per_1k": 0.0, "output_per_1k": 0.0},
            "deployments": [{"provider": "local-echo", "model_id": "echo-hidden"}],
        },
    },
    "apps": [
        _app("test-app", "test-app-role"),
        _app("small-quota-app", "small-quota-role", quotas={"tokens_per_day": 200}),
        _app(
            "strict-app",
            "strict-role",
            pii={
                "input": {"default": "REDACT", "CREDIT_DEBIT_NUMBER": "BLOCK",
                          "INTERNATIONAL_BANK_ACCOUNT_NUMBER": "MASK", "EMAIL": "ALLOW"},
                "output": {"default": "REDACT"},
            },
        ),
    ],
}


@dataclass
class Garden:
    """A gateway under test: its settings, pipeline and an in-process Chalice client."""

    home: Path
    settings: Settings
    pipeline: Pipeline
    client: Any
    ledger: SqliteLedger

    def request(
        self, method: str, path: str, body: Any = None, *, key_id: str = KEY_ID, secret: str = SECRET,
        sign: bool = True, headers: dict[str, str] | None = None,
    ) -> Any:
        raw = body if isinstance(body, bytes) else (b"" if body is None else json.dumps(body).encode())
        # A fresh nonce per request: local identity refuses a replayed signature, and two identical
        # requests signed in the same second would otherwise share one (client/garden_auth.py does the same).
        all_headers = {"host": "testserver", "content-type": "application/json",
                       "x-garden-nonce": secrets.token_hex(8), **(headers or {})}
        if sign:
            all_headers = signed_headers(method, f"http://testserver{path}", raw, key_id, secret,
                                         headers=all_headers)
        return self.client.http.request(method, path, headers=all_headers, body=raw)

    def chat(self, body: Any, **kwargs: Any) -> Any:
        return self.request("POST", "/v1/chat/completions", body, **kwargs)


def write_credentials(home: Path) -> None:
    creds = {
        key: {"secret_access_key": SECRET, "principal_arn": f"arn:aws:iam::{ACCOUNT}:role/{role}"}
        for key, role in [(KEY_ID, "test-app-role"), (OTHER_KEY_ID, "nobody"),
                          (QUOTA_KEY_ID, "small-quota-role"), (BLOCK_KEY_ID, "strict-role")]
    }
    (home / "local-credentials.json").write_text(json.dumps(creds))


def make_home(root: Path, catalog: dict[str, Any] | None = None) -> tuple[Path, dict[str, str]]:
    home = root / "garden-home"
    home.mkdir()
    write_credentials(home)
    catalog_path = root / "catalog.json"
    catalog_path.write_text(json.dumps(catalog or TEST_CATALOG))
    env = {"GARDEN_HOME": str(home), "GARDEN_CATALOG": str(catalog_path), "GARDEN_IDENTITY": "local"}
    return home, env


@contextmanager
def running_garden(root: Path, env: dict[str, str] | None = None, **overrides: Any) -> Iterator[Garden]:
    """A gateway on its own state folder; `overrides` replace adapters through the composition root."""
    from chalice.test import Client

    from app import app

    home, base_env = make_home(root)
    settings = Settings.from_env({**base_env, "GARDEN_SERVED_HOST": "testserver", **(env or {})})
    ledger = SqliteLedger(home / "garden.sqlite3")
    overrides.setdefault("quota", QuotaKeeper(ledger, settings.request_timeout_s))
    pipeline = gateway.build_pipeline(settings, **overrides)
    gateway.use(pipeline)
    try:
        with Client(app, stage_name="local", project_dir=str(ROOT)) as client:
            yield Garden(home, settings, pipeline, client, ledger)
    finally:
        gateway.use(None)
        ledger.close()


