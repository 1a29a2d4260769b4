"""The LiteLLM tier's config (infra/litellm/config.yaml) and how litellm-ecs.yaml runs it.

The config must keep the gateway memoryless (no logging callback, message logging off, no
response cache, no prompt or error rows in PostgreSQL) and hold no secret: every key is an
os.environ/ reference, and every reference is filled by the task definition. The container's
command is run here as ECS runs it (`/bin/sh -c`), with a stand-in `litellm` on PATH, to show that
the parameter's text reaches `litellm --config` unchanged.
"""
from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cfn_yaml import INFRA, load_template

yaml = pytest.importorskip("yaml")

CONFIG_FILE = INFRA / "litellm" / "config.yaml"
CONFIG_TEXT = CONFIG_FILE.read_text()
CONFIG = yaml.safe_load(CONFIG_TEXT)
TEMPLATE = load_template(INFRA / "litellm-ecs.yaml")
CONTAINER = TEMPLATE["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"][0]
SECRETISH = re.compile(r"key|secret|password|token|database_url|external_id|credential", re.I)
CALLBACKS = {"callbacks", "success_callback", "failure_callback", "service_callbacks", "callback_settings",
             "logging", "alerting"}


def _walk(node: Any, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(node, dict):
        return [pair for k, v in node.items() for pair in _walk(v, f"{path}.{k}" if path else str(k))]
    if isinstance(node, list):
        return [pair for i, v in enumerate(node) for pair in _walk(v, f"{path}[{i}]")]
    return [(path, node)]


def test_the_config_serves_the_seeds_examples() -> None:
    names = [m["model_name"] for m in CONFIG["model_list"]]
    assert len(names) == len(set(names))
    models = {m["model_name"]: m["litellm_params"] for m in CONFIG["model_list"]}
    assert models["azure-gpt-4o"]["model"].startswith("azure/")  # a model not on Bedrock
    bedrock = models["bedrock-claude-3-7-sonnet"]
    assert bedrock["model"].startswith("bedrock/eu.")  # an EU profile, through the operations role
    assert bedrock["aws_role_name"] == "os.environ/GARDEN_OPS_ROLE_ARN"
    assert bedrock["aws_external_id"] == "os.environ/GARDEN_OPS_EXTERNAL_ID"


def test_the_config_keeps_the_gateway_memoryless() -> None:
    settings, general = CONFIG["litellm_settings"], CONFIG["general_settings"]
    assert settings["turn_off_message_logging"] is True
    assert settings["cache"] is False  # a response cache would keep completions in Redis
    assert general["store_prompts_in_spend_logs"] is False
    assert general["disable_spend_logs"] is True and general["disable_error_logs"] is True
    assert general["store_model_in_db"] is False and general["background_health_checks"] is False
    sent_somewhere = [path for path, _ in _walk(CONFIG) if CALLBACKS & set(re.split(r"[.\[]", path))]
    assert sent_somewhere == []


def test_no_secret_is_inline() -> None:
    for path, value in _walk(CONFIG):
        if SECRETISH.search(path.rsplit(".", 1)[-1]) and not isinstance(value, bool):
            assert isinstance(value, str) and value.startswith("os.environ/"), path
    assert not re.search(r"sk-[A-Za-z0-9]|AKIA[0-9A-Z]{12}|-----BEGIN", CONFIG_TEXT)


def _provided() -> set[str]:
    names = {e["Name"] for e in CONTAINER["Environment"]}
    for secret in CONTAINER["Secrets"]:
        if "Fn::If" in secret:
            secret = secret["Fn::If"][1]
        names.add(secret["Name"])
    return names


def test_every_reference_is_filled_by_the_task_definition() -> None:
    referenced = {v.split("/", 1)[1] for _, v in _walk(CONFIG) if isinstance(v, str) and v.startswith("os.environ/")}
    assert referenced and referenced <= _provided(), referenced - _provided()


def test_the_config_comes_from_its_parameter_and_fits_a_standard_one() -> None:
    (config_secret,) = [s for s in CONTAINER["Secrets"] if s.get("Name") == "LITELLM_CONFIG_YAML"]
    assert config_secret["ValueFrom"] == {
        "Fn::Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${LiteLLMConfigParameterName}"}
    policy = TEMPLATE["Resources"]["ExecutionRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    (reads,) = [s for s in policy["Statement"] if s["Sid"] == "ReadThisTiersParameters"]
    assert config_secret["ValueFrom"] in reads["Resource"]
    assert len(CONFIG_TEXT.encode()) <= 4096  # a Standard-tier SSM parameter (free); Advanced holds 8 KB
    assert not [n for n in TEMPLATE["Resources"] if "ConfigBucket" in n]  # one source of config only


def test_the_container_command_hands_the_parameter_to_litellm(tmp_path: Path) -> None:
    assert CONTAINER["EntryPoint"] == ["/bin/sh", "-c"]
    (command,) = CONTAINER["Command"]
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    fake = fake_bin / "litellm"
    # Stands in for the image's litellm: records its arguments, its config file and environment.
    fake.write_text("#!/bin/sh\n"
                    f'printf "%s\\n" "$@" > "{tmp_path}/args"\n'
                    f'cp "$2" "{tmp_path}/config.yaml"\n'
                    f'ls -l "$2" | cut -c1-10 > "{tmp_path}/mode"\n'
                    f'env > "{tmp_path}/env"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    env = {"PATH": f"{fake_bin}:{os.environ['PATH']}", "LITELLM_CONFIG_YAML": CONFIG_TEXT.rstrip("\n")}
    assert command.count("/tmp/litellm-config.yaml") == 2
    written = tmp_path / "litellm-config.yaml"  # the task's /tmp, here the test's own folder
    subprocess.run(["/bin/sh", "-c", command.replace("/tmp/litellm-config.yaml", str(written))],
                   env=env, check=True, timeout=30)
    assert (tmp_path / "args").read_text().split() == ["--config", str(written), "--port", "4000"]
    assert (tmp_path / "config.yaml").read_text() == CONFIG_TEXT
    assert (tmp_path / "mode").read_text().strip() == "-rw-------"
    assert "LITELLM_CONFIG_YAML=" not in (tmp_path / "env").read_text()


def test_a_real_litellm_serves_this_config_through_the_containers_command(tmp_path: Path) -> None:
    """The pinned LiteLLM proxy of tests/requirements-litellm.txt (`make litellm`), started as ECS
    starts the task: both models served, and a failing call's prompt in none of its output."""
    import json
    import signal
    import socket
    import time
    import urllib.error
    import urllib.request

    from litellm_proxy import EXECUTABLE

    if not EXECUTABLE.exists():
        pytest.skip(f"LiteLLM is not installed at {EXECUTABLE}: run `make litellm`")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (command,) = CONTAINER["Command"]
    command = command.replace("/tmp/litellm-config.yaml", str(tmp_path / "config.yaml"))
    command = command.replace("--port 4000", f"--host 127.0.0.1 --port {port}")
    master = "sk-garden-test-master-key"
    env = {"PATH": f"{EXECUTABLE.parent}:/usr/bin:/bin", "HOME": str(tmp_path), "LITELLM_CONFIG_YAML": CONFIG_TEXT,
           "LITELLM_MASTER_KEY": master, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR",
           "NO_PROXY": "*", "PYTHONUNBUFFERED": "1"}  # the task's other variables: unset, as without AWS
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    output = tmp_path / "output.log"
    with output.open("wb") as log:
        process = subprocess.Popen(["/bin/sh", "-c", command], env=env, cwd=tmp_path, stdin=subprocess.DEVNULL,
                                   stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert process.poll() is None, output.read_text(errors="replace")[-2000:]
            try:
                with opener.open(f"http://127.0.0.1:{port}/health/liveliness", timeout=2):
                    break
            except (urllib.error.URLError, OSError):
                time.sleep(0.3)
        else:
            pytest.fail(f"LiteLLM did not start: {output.read_text(errors='replace')[-2000:]}")

        def call(path: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode() if body else None,
                headers={"Authorization": f"Bearer {master}", "Content-Type": "application/json"})
            try:
                with opener.open(request, timeout=30) as answer:
                    return answer.status, json.load(answer)
            except urllib.error.HTTPError as error:
                return error.code, json.load(error)

        status, models = call("/v1/models")
        assert status == 200
        assert {m["id"] for m in models["data"]} == {m["model_name"] for m in CONFIG["model_list"]}
        canary = "CANARY-litellm-tier-9d41"
        status, _ = call("/v1/chat/completions", {  # no provider key here: the call fails
            "model": "azure-gpt-4o", "messages": [{"role": "user", "content": f"my account is {canary}"}]})
        assert status >= 400
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    assert canary not in output.read_text(errors="replace")
