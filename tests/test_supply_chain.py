"""Supply chain: scripts/audit_deps.py runs the real pip-audit (against a loopback OSV API here, so
the test never leaves 127.0.0.1) and fails on a known vulnerability; for a pin its source skipped it
reads PyPI's per-project JSON (a loopback fake), audits a pin that is the latest release and names
one it could not audit. The hashed requirements files install with --require-hashes."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import audit_deps  # noqa: E402

HASHED = "requests==2.34.2 \\\n    --hash=sha256:" + "0" * 64 + "\n"
VULN = {"id": "GHSA-fake-0001", "summary": "fake advisory", "aliases": [],
        "affected": [{"package": {"name": "requests", "ecosystem": "PyPI"},
                      "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "9.9.9"}]}]}]}


class FakeAdvisories:
    """A loopback OSV /v1/query and PyPI /pypi/<name>/json, answering from `vulns` and `projects`."""

    def __init__(self) -> None:
        self.vulns: dict[str, list[dict[str, Any]]] = {}
        self.projects: dict[str, dict[str, Any]] = {}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: Any) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_POST(self) -> None:
                query = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                self._send(200, {"vulns": fake.vulns.get(query["package"]["name"], [])})

            def do_GET(self) -> None:
                name = self.path.split("/")[2]
                self._send(200, fake.projects[name]) if name in fake.projects else self._send(404, {})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def advisories() -> Iterator[FakeAdvisories]:
    fake = FakeAdvisories()
    yield fake
    fake.server.shutdown()


def _audit(tmp_path: Path, fake: FakeAdvisories, *args: str) -> subprocess.CompletedProcess[str]:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(HASHED)
    env = {**os.environ, "GARDEN_OSV_URL": f"{fake.url}/v1/query", "GARDEN_PYPI_JSON_URL": f"{fake.url}/pypi",
           "HTTPS_PROXY": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9", "NO_PROXY": "127.0.0.1"}
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "audit_deps.py"), *args, str(requirements)],
                          capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)


def test_a_known_vulnerability_fails_the_audit(tmp_path: Path, advisories: FakeAdvisories) -> None:
    clean = _audit(tmp_path, advisories)
    assert clean.returncode == 0, clean.stderr
    assert "1 audited by pip-audit" in clean.stderr and "0 known vulnerabilities" in clean.stderr
    advisories.vulns["requests"] = [VULN]
    found = _audit(tmp_path, advisories)
    assert found.returncode == 1
    assert "VULNERABLE requests==2.34.2: GHSA-fake-0001 (fixed in 9.9.9)" in found.stderr


def test_a_skipped_pin_is_audited_from_its_projects_latest_release(advisories: FakeAdvisories) -> None:
    pypi = f"{advisories.url}/pypi"
    advisories.projects["requests"] = {"info": {"version": "2.34.2"},
                                       "vulnerabilities": [{"id": "PYSEC-fake", "fixed_in": ["2.35"]},
                                                           {"id": "PYSEC-gone", "withdrawn": "2026-01-01"}]}
    status, vulns = audit_deps.fallback({"name": "requests", "version": "2.34.2"}, pypi)
    assert status == "audited" and [v["id"] for v in vulns] == ["PYSEC-fake"]
    assert audit_deps.fallback({"name": "requests", "version": "2.30.0"}, pypi) == ("not-latest:2.34.2", [])
    assert audit_deps.fallback({"name": "nowhere", "version": "1.0"}, pypi) == ("unreachable", [])


def test_make_test_audits_and_make_package_writes_an_sbom() -> None:
    makefile = (ROOT / "Makefile").read_text()
    test = makefile.split("\ntest:", 1)[1].split("\n\n", 1)[0]
    package = makefile.split("\npackage:", 1)[1].split("\n\n", 1)[0]
    assert "scripts/audit_deps.py requirements-dev.txt" in test
    assert "cyclonedx-py requirements requirements.txt" in package and "build/package/sbom.cdx.json" in package
    pins = {line.split("==")[0].lower() for line in (ROOT / "requirements-dev.txt").read_text().splitlines()
            if "==" in line and not line.startswith("#")}
    assert {"pip-audit", "cyclonedx-bom", "uv"} <= pins


def test_the_sbom_lists_each_pinned_package_with_its_hashes(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(HASHED)
    sbom = tmp_path / "sbom.cdx.json"
    env = {**os.environ, "HTTPS_PROXY": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9"}  # offline
    subprocess.run([str(Path(sys.executable).parent / "cyclonedx-py"), "requirements", str(requirements),
                    "--output-reproducible", "--of", "JSON", "-o", str(sbom)], check=True, timeout=120, env=env)
    (component,) = json.loads(sbom.read_text())["components"]
    assert (component["name"], component["version"]) == ("requests", "2.34.2")
    assert component["purl"] == "pkg:pypi/requests@2.34.2"
    (dist,) = component["externalReferences"]  # the hashes pinned for its distribution files
    assert dist["type"] == "distribution" and dist["hashes"] == [{"alg": "SHA-256", "content": "0" * 64}]


def _entries(path: Path) -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) of a requirements file, continuation lines joined."""
    text = path.read_text().replace("\\\n", " ")
    out = {}
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        requirement = line.split(";", 1)[0].split("--hash", 1)[0].strip()
        name, _, version = requirement.partition("==")
        out[re.sub(r"[-_.]+", "-", name.split("[")[0]).lower()] = (version.strip(), re.findall(r"--hash=(sha256:[0-9a-f]{64})", line))
    return out


@pytest.mark.parametrize("name", ["requirements.txt", "requirements-dev.txt"])
def test_every_requirement_is_pinned_with_hashes(name: str) -> None:
    text = (ROOT / name).read_text()
    assert not re.search(r"^\s*-[rc]\s", text, re.M), "a generated file is self-contained (make lock)"
    entries = _entries(ROOT / name)
    assert entries
    for package, (version, hashes) in entries.items():
        assert version and hashes, f"{name}: {package} is not pinned with hashes: run make lock"


def test_the_lock_is_fresh_and_the_package_and_the_tools_agree() -> None:
    runtime, dev = _entries(ROOT / "requirements.txt"), _entries(ROOT / "requirements-dev.txt")
    assert {p: v for p, (v, _) in runtime.items()} == {p: dev[p][0] for p in runtime}  # same versions
    for source, compiled in (("requirements.in", runtime), ("requirements-dev.in", dev)):
        for package, (version, _) in _entries(ROOT / source).items():
            if package and not package.startswith("-"):
                assert compiled.get(package, ("missing",))[0] == version, f"{source}: {package}: run make lock"
    makefile = (ROOT / "Makefile").read_text()
    venv = makefile.split("$(VENV)/.installed:", 1)[1].split("\n\n", 1)[0]
    assert "--require-hashes -r requirements-dev.txt" in venv
    lock = makefile.split("\nlock:", 1)[1].split("\n\n", 1)[0]
    assert lock.count("uv pip compile") == 2 and lock.count("--generate-hashes") == 2
