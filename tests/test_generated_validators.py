"""The compiled validators in chalicelib/generated/ must match the schemas they came from."""
from __future__ import annotations

import subprocess
import sys

from support import ROOT


def test_generated_validators_are_fresh() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "generate_validators.py"), "--check"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
