"""A real local server on a free loopback port, with its own state and captured output: the dev
server `make run` uses (devserver/), or plain `chalice local` (`chalice_cli=True`)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from support import ROOT, make_home


@dataclass
class Server:
    base_url: str  # http://127.0.0.1:<port>
    home: Path  # GARDEN_HOME: everything the gateway writes
    output: Path  # the server's stdout and stderr


@contextmanager
def serve(root: Path, env: dict[str, str] | None = None, *, chalice_cli: bool = False) -> Iterator[Server]:
    home, base_env = make_home(root)
    port = _free_port()
    output = root / "server-output.log"
    proc_env = {**os.environ, **base_env, **(env or {}), "PYTHONUNBUFFERED": "1"}
    with output.open("wb") as out:
        proc = subprocess.Popen(
            server_command("127.0.0.1", port, chalice_cli), cwd=ROOT, env=proc_env, stdout=out,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(base_url, proc)
        yield Server(base_url, home, output)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def server_command(host: str, port: int, chalice_cli: bool = False) -> list[str]:
    if chalice_cli:
        chalice = Path(sys.executable).parent / "chalice"
        return [str(chalice), "local", "--stage", "local", "--host", host, "--port", str(port), "--no-autoreload"]
    return [sys.executable, "-m", "devserver", "--stage", "local", "--host", host, "--port", str(port)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(base_url: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the local server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{base_url}/health", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the local server did not become healthy within 30 s")
