"""Tracing off by default: with no OTEL_* endpoint and no GARDEN_TRACING, a request imports nothing of
OpenTelemetry (cold start does not grow) and exports nothing; the standard switches turn it off
whatever else is set; settings refuse what the gateway cannot do."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from otlp_receiver import otlp_receiver
from support import ROOT

from chalicelib.errors import ConfigError
from chalicelib.settings import Settings
from chalicelib.tracing import resolve_mode

# One chat request served in a fresh process, then the OpenTelemetry modules it loaded.
SCRIPT = """
import json, sys, tempfile
from pathlib import Path
sys.path[:0] = [{tests!r}, {root!r}]
from support import running_garden
with tempfile.TemporaryDirectory() as d, running_garden(Path(d)) as g:
    r = g.chat({{"model": "local-echo", "messages": [{{"role": "user", "content": "hi"}}]}})
    assert r.status_code == 200, r.status_code
print(json.dumps(sorted(m for m in sys.modules if m.startswith("opentelemetry"))))
"""


def loaded_after_one_request(env: dict[str, str]) -> list[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "GARDEN_", "_X_AMZN"))}
    script = SCRIPT.format(tests=str(ROOT / "tests"), root=str(ROOT))
    done = subprocess.run([sys.executable, "-c", script], env={**clean, **env}, cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_unset_imports_nothing_of_opentelemetry_and_exports_nothing() -> None:
    with otlp_receiver() as receiver:
        assert loaded_after_one_request({}) == []
        # The same request with an endpoint set does load the SDK and export: the check can fail.
        assert "opentelemetry.sdk.trace" in loaded_after_one_request({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url})
        assert len(receiver.bodies) == 1


@pytest.mark.parametrize("env, mode", [
    ({}, "off"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, "otlp"),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, "otlp"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"}, "off"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_TRACES_EXPORTER": "none"}, "off"),
    ({"_X_AMZN_TRACE_ID": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"}, "xray"),
    ({"_X_AMZN_TRACE_ID": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0"}, "off"),
    ({"GARDEN_TRACING": "xray"}, "xray"),
    ({"GARDEN_TRACING": "off", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, "off"),
])
def test_which_adapter_the_environment_chooses(env: dict[str, str], mode: str) -> None:
    assert resolve_mode(Settings.from_env(env).tracing, env) == mode


def test_settings_refuse_what_the_gateway_cannot_do(tmp_path: Path) -> None:
    from chalicelib.tracing.otel import OtelTracing

    with pytest.raises(ConfigError, match="GARDEN_TRACING"):
        Settings.from_env({"GARDEN_TRACING": "zipkin"})
    with pytest.raises(ConfigError, match="http/protobuf"):
        OtelTracing.from_env({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    with pytest.raises(ConfigError, match="OTEL_TRACES_SAMPLER"):
        OtelTracing.from_env({"OTEL_TRACES_SAMPLER": "sometimes"})
