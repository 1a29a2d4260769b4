"""A REAL LiteLLM proxy (`litellm[proxy]`, pinned in tests/requirements-litellm.txt and installed by
`make litellm` into .venv-litellm, a virtualenv of its own: it pins many packages), started on a
free loopback port as the `openai` provider's upstream, the way the LiteLLM tier runs in AWS.

Its config.yaml routes its model names to a loopback fake OpenAI upstream (tests/fakes/openai_server.py)
and sets a master key, which callers send as `Authorization: Bearer <key>`. Started with
LITELLM_LOCAL_MODEL_COST_MAP=True (else it fetches its price map from the internet), no database,
proxies off for loopback.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# The Makefile's virtualenv; GARDEN_LITELLM points at another `litellm` executable if it must.
EXECUTABLE = Path(os.environ.get("GARDEN_LITELLM", ROOT / ".venv-litellm" / "bin" / "litellm"))
START_TIMEOUT_S = 120.0
MASTER_KEY = "sk-garden-litellm-master-0123456789"
UPSTREAM_KEY = "sk-fake-upstream-key"  # what LiteLLM sends to the fake upstream
CHAT_MODEL = "garden-chat"  # LiteLLM's model names, as a catalog's `model_id` names them
EMBED_MODEL = "garden-embed"
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class LiteLlmUnavailable(RuntimeError):
    """LiteLLM is not installed or did not start; the message says what to do."""


@dataclass
class LiteLlm:
    url: str  # http://127.0.0.1:<port>
    process: subprocess.Popen[bytes]
    log: Any
    started_in_s: float = 0.0

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.log.close()

    def output_tail(self, size: int = 2000) -> str:
        if self.log.closed:
            return ""
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-size:]


def config(upstream_base_url: str) -> str:
    """LiteLLM's config.yaml (JSON is YAML): both model names call the fake upstream."""
    def model(name: str, upstream_model: str) -> dict[str, Any]:
        return {"model_name": name, "litellm_params": {
            "model": f"openai/{upstream_model}", "api_base": upstream_base_url, "api_key": UPSTREAM_KEY}}

    return json.dumps({
        "model_list": [model(CHAT_MODEL, "upstream-chat"), model(EMBED_MODEL, "upstream-embed")],
        "litellm_settings": {"num_retries": 0, "request_timeout": 20, "drop_params": True},
        "general_settings": {"master_key": MASTER_KEY},
    }, indent=2)


def start(upstream_base_url: str, workdir: Path, timeout_s: float = START_TIMEOUT_S) -> LiteLlm:
    if not EXECUTABLE.exists():
        raise LiteLlmUnavailable(f"LiteLLM is not installed at {EXECUTABLE}: run `make litellm`")
    config_path = workdir / "litellm-config.yaml"
    config_path.write_text(config(upstream_base_url))
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "NO_PROXY": "127.0.0.1,localhost",
           "no_proxy": "127.0.0.1,localhost", "PYTHONUNBUFFERED": "1", "LITELLM_LOG": "ERROR"}
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "DATABASE_URL"):
        env.pop(name, None)
    began = time.monotonic()
    for attempt in range(3):  # the free port may be taken by someone else before LiteLLM binds it
        log = tempfile.TemporaryFile()
        port = _free_port()
        process = subprocess.Popen(
            [str(EXECUTABLE), "--config", str(config_path), "--host", "127.0.0.1", "--port", str(port),
             "--num_workers", "1"],
            cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        proxy = LiteLlm(f"http://127.0.0.1:{port}", process, log)
        try:
            _wait_until_serving(proxy, began + timeout_s)
        except LiteLlmUnavailable:
            exited = process.poll() is not None
            proxy.stop()
            if not exited or attempt == 2:
                raise
            continue
        except BaseException:
            proxy.stop()
            raise
        proxy.started_in_s = time.monotonic() - began
        return proxy
    raise AssertionError("unreachable")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_until_serving(proxy: LiteLlm, deadline: float) -> None:
    while time.monotonic() < deadline:
        if proxy.process.poll() is not None:
            raise LiteLlmUnavailable(f"LiteLLM exited with {proxy.process.returncode} at start: {proxy.output_tail()}")
        try:
            with _NO_PROXY.open(f"{proxy.url}/health/liveliness", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise LiteLlmUnavailable(f"LiteLLM did not answer on {proxy.url} within {START_TIMEOUT_S:.0f} s: "
                             f"{proxy.output_tail()}")


@dataclass
class LiteLlmTier:
    """LiteLLM and the fake upstream behind it; tests script `upstream` and read its requests."""

    proxy: LiteLlm
    upstream: Any  # fakes.openai_server.FakeOpenAI

    def stop(self) -> None:
        self.proxy.stop()
        self.upstream.__exit__(None, None, None)


def start_tier(workdir: Path) -> LiteLlmTier:
    from fakes.openai_server import FakeOpenAI

    upstream = FakeOpenAI(keys={UPSTREAM_KEY}).__enter__()
    try:
        return LiteLlmTier(start(upstream.base_url, workdir), upstream)
    except BaseException:
        upstream.__exit__(None, None, None)
        raise
