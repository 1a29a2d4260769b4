"""The README snippets run as written against `make run`: a real dev server on the embedded demo
catalog, the demo key pair `make run`'s set-up step prints exported, and each python block run in a
fresh interpreter (client/README.md's from client/, where `garden_auth.py` sits; the README's from
the project root). Only the port differs from 8000."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
from local_server import Server, serve
from support import ROOT

from chalicelib.settings import DEFAULT_CATALOG

_BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def blocks(readme: Path) -> list[str]:
    return _BLOCK.findall(readme.read_text())


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str]]]:
    root = tmp_path_factory.mktemp("readme")
    with serve(root, env={"GARDEN_CATALOG": str(DEFAULT_CATALOG)}) as server:
        setup = subprocess.run([sys.executable, "-m", "chalicelib.devsetup"], cwd=ROOT, capture_output=True,
                               text=True, check=True, timeout=60,
                               env={**os.environ, "GARDEN_HOME": str(server.home), "GARDEN_CATALOG": str(DEFAULT_CATALOG)})
        exported = dict(re.findall(r"export (AWS_[A-Z_]+)=(\S+)", setup.stdout))
        assert set(exported) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"}
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(exported, AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null",
                   AWS_EC2_METADATA_DISABLED="true")
        yield server, env


def run(block: str, server: Server, env: dict[str, str], cwd: Path) -> str:
    code = block.replace("http://127.0.0.1:8000", server.base_url)
    proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_there_are_snippets_to_run() -> None:
    assert len(blocks(ROOT / "client" / "README.md")) == 3
    assert len(blocks(ROOT / "README.md")) == 3


@pytest.mark.parametrize("index", range(3))
def test_client_readme_snippets_run_as_written(demo: tuple[Server, dict[str, str]], index: int) -> None:
    server, env = demo
    output = run(blocks(ROOT / "client" / "README.md")[index], server, env, ROOT / "client")
    assert "Hello" in output or "local-echo" in output


@pytest.mark.parametrize("index", range(3))
def test_readme_calling_the_gateway_snippets_run_as_written(demo: tuple[Server, dict[str, str]], index: int) -> None:
    server, env = demo
    output = run(blocks(ROOT / "README.md")[index], server, env, ROOT)
    expected = ["Card [CREDIT_DEBIT_NUMBER], mail [EMAIL]\nstream this\n", "200 hello\n", "2 64 6\n"][index]
    assert output == expected
