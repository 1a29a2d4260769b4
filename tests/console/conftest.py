"""Console fixtures: one served gateway with traffic and one running console per session, and a real
headless Chromium (Debian's `chromium`, driven by Playwright for Python with `executable_path`; never
Playwright's own browser download). Missing Chromium or Playwright skips the browser tests, except
under CI=true, where it fails them."""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Iterator

import pytest
from console_support import Console, ConsoleGarden, console_garden, running_console

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                  # A rebinding name: rebound.test resolves to 127.0.0.1, as an attacker's DNS would make it.
                  "--host-resolver-rules=MAP rebound.test 127.0.0.1"]


def chromium_path() -> str | None:
    for candidate in (os.environ.get("GARDEN_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def _missing(what: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and {what}: `make test` installs it (Makefile target `browser`)", pytrace=False)
    pytest.skip(f"{what}: `make browser` installs it")


@pytest.fixture(scope="session")  # this folder's own `garden` (tests/conftest.py's is an in-process one)
def garden(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleGarden]:
    with console_garden(tmp_path_factory.mktemp("console")) as g:
        yield g


@pytest.fixture(scope="session")
def console(garden: ConsoleGarden) -> Iterator[Console]:
    with running_console(garden) as running:
        yield running


@pytest.fixture(scope="module")  # closed once its module is done: the rest of the suite runs without it
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("Playwright for Python is not installed (requirements-dev.txt)")
    executable = chromium_path()
    if executable is None:
        _missing("Debian's chromium is not installed (/usr/bin/chromium)")
    profile = tmp_path_factory.mktemp("chromium-profile")  # a fresh, empty user data dir
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=executable, headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1366, "height": 900}, accept_downloads=True, timezone_id="America/New_York",
            locale="en-US")
        try:
            yield context
        finally:
            context.close()
