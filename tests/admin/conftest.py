"""The `served` fixture: the admin API as `make run` serves it (helpers in admin_support.py, a name
of its own: every test folder has a conftest module)."""
from __future__ import annotations

from typing import Iterator

import pytest
from admin_support import AdminGarden, admin_garden


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminGarden]:
    """One served gateway per test module; tests that change state use their own app ids."""
    with admin_garden(tmp_path_factory.mktemp("admin")) as g:
        yield g
