"""LocalCredentials: re-read on change only, clear errors, and `make run`'s demo key pair."""
from __future__ import annotations

import json
import logging
import os
import re
import stat
from pathlib import Path
from unittest import mock

import pytest

from chalicelib.errors import ConfigError, PermissionDenied
from chalicelib.identity.local_credentials import LocalCredential, LocalCredentials, ensure_demo_credentials
from chalicelib.telemetry import LOGGER_NAME

ARN = "arn:aws:iam::111122223333:role/demo-app-role"
OTHER_ARN = "arn:aws:iam::111122223333:role/other-role"
SECRET = "local/creds/test/secret/0123456789abcdefghij"


def write(path: Path, data: object) -> None:
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)


def entry(secret: str = SECRET, arn: str = ARN) -> dict[str, str]:
    return {"secret_access_key": secret, "principal_arn": arn}


def test_lookup_and_reload_on_change(tmp_path: Path) -> None:
    path = tmp_path / "local-credentials.json"
    write(path, {"AKIAFIRSTKEY00000001": entry()})
    creds = LocalCredentials(path)
    assert creds.lookup("AKIAFIRSTKEY00000001") == LocalCredential(SECRET, ARN)
    assert creds.lookup("AKIAOTHERKEY00000002") is None

    write(path, {"AKIAOTHERKEY00000002": entry(arn=OTHER_ARN)})
    os.utime(path, ns=(1, 2_000_000_000_000_000_000))  # a distinct mtime even on coarse clocks
    assert creds.lookup("AKIAFIRSTKEY00000001") is None
    assert creds.lookup("AKIAOTHERKEY00000002") == LocalCredential(SECRET, OTHER_ARN)


def test_unchanged_file_is_read_once(tmp_path: Path) -> None:
    path = tmp_path / "local-credentials.json"
    write(path, {"AKIAFIRSTKEY00000001": entry()})
    creds = LocalCredentials(path)
    with mock.patch.object(Path, "read_bytes", autospec=True, side_effect=Path.read_bytes) as reads:
        for _ in range(50):
            assert creds.lookup("AKIAFIRSTKEY00000001") is not None
    assert reads.call_count == 1


def test_missing_file_denies_every_request(tmp_path: Path) -> None:
    path = tmp_path / "absent" / "local-credentials.json"
    creds = LocalCredentials(path)
    with pytest.raises(PermissionDenied, match="no local credentials configured: run make run") as info:
        creds.lookup("AKIAFIRSTKEY00000001")
    assert info.value.status == 403
    path.parent.mkdir()
    write(path, {"AKIAFIRSTKEY00000001": entry()})  # appears later: picked up without a restart
    assert creds.lookup("AKIAFIRSTKEY00000001") is not None
    path.unlink()
    with pytest.raises(PermissionDenied):
        creds.lookup("AKIAFIRSTKEY00000001")


@pytest.mark.parametrize(
    ("content", "named"),
    [
        ({"AKIABADENTRY00000001": {"principal_arn": ARN}}, "AKIABADENTRY00000001: secret_access_key"),
        ({"AKIABADENTRY00000002": entry(arn="not-an-arn")}, "AKIABADENTRY00000002: principal_arn"),
        ({"AKIABADENTRY00000003": "just-a-string"}, "AKIABADENTRY00000003"),
        ({"AKIA/BAD": entry()}, "'AKIA/BAD'"),
        ([entry()], "expected an object"),
        ("{not json", "not valid JSON"),
        ({"AKIABADENTRY00000004": {**entry(), "session_token": 7}}, "AKIABADENTRY00000004: session_token"),
        ({"AKIABADENTRY00000005": {**entry(), "sesion_token": "t"}}, "AKIABADENTRY00000005: unknown field"),
    ],
)
def test_malformed_file_names_the_entry_not_the_secret(tmp_path: Path, content: object, named: str) -> None:
    path = tmp_path / "local-credentials.json"
    write(path, content)
    creds = LocalCredentials(path)
    for _ in range(2):  # cached error: raised again while the file is unchanged
        with pytest.raises(ConfigError) as info:
            creds.lookup("AKIABADENTRY00000001")
        assert named in str(info.value)
        assert SECRET not in str(info.value)


def test_secret_never_in_repr() -> None:
    assert SECRET not in repr(LocalCredential(SECRET, ARN))


def test_ensure_demo_credentials_creates_once_with_0600(tmp_path: Path) -> None:
    path = tmp_path / "home" / "nested" / "local-credentials.json"
    key_id, secret, created = ensure_demo_credentials(path, ARN)
    assert created
    assert re.fullmatch(r"AKIA[A-Z0-9]{16}", key_id)
    assert len(secret) == 40 and secret.isalnum()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {key_id: entry(secret, ARN)}
    assert LocalCredentials(path).lookup(key_id) == LocalCredential(secret, ARN)

    before = path.read_bytes()
    assert ensure_demo_credentials(path, ARN) == (key_id, secret, False)
    assert path.read_bytes() == before  # never rewritten


def test_ensure_demo_credentials_keeps_existing_keys(tmp_path: Path) -> None:
    path = tmp_path / "local-credentials.json"
    write(path, {"AKIAEXISTINGKEY00001": entry(arn=OTHER_ARN)})
    key_id, secret, created = ensure_demo_credentials(path, ARN)
    assert created and key_id != "AKIAEXISTINGKEY00001"
    data = json.loads(path.read_text())
    assert data["AKIAEXISTINGKEY00001"] == entry(arn=OTHER_ARN)
    assert data[key_id] == entry(secret, ARN)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure_demo_credentials(path, ARN) == (key_id, secret, False)


def test_ensure_demo_credentials_refuses_a_malformed_file(tmp_path: Path) -> None:
    path = tmp_path / "local-credentials.json"
    write(path, "{oops")
    with pytest.raises(ConfigError):
        ensure_demo_credentials(path, ARN)
    assert path.read_text() == "{oops"


def test_demo_keys_are_random(tmp_path: Path) -> None:
    pairs = {ensure_demo_credentials(tmp_path / str(i) / "c.json", ARN)[:2] for i in range(5)}
    assert len({key for key, _ in pairs}) == 5 and len({secret for _, secret in pairs}) == 5


def test_optional_session_token(tmp_path: Path) -> None:
    path = tmp_path / "local-credentials.json"
    write(path, {"AKIATOKENKEY00000001": {**entry(), "session_token": "tok"}, "AKIAPLAINKEY00000002": entry()})
    creds = LocalCredentials(path)
    assert creds.lookup("AKIATOKENKEY00000001") == LocalCredential(SECRET, ARN, "tok")
    assert creds.lookup("AKIAPLAINKEY00000002") == LocalCredential(SECRET, ARN, None)
    assert "tok" not in repr(creds.lookup("AKIATOKENKEY00000001"))


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_a_file_that_becomes_malformed_is_reported_once_in_the_log(tmp_path: Path) -> None:
    log, seen = logging.getLogger(LOGGER_NAME), _Lines()
    log.addHandler(seen)
    try:
        _malformed_after_start(tmp_path)
    finally:
        log.removeHandler(seen)
    lines = [line for line in seen.lines if "config_error" in line]
    assert len(lines) == 1
    assert str(tmp_path) in lines[0] and "AKIAFIRSTKEY00000001: principal_arn" in lines[0]
    assert SECRET not in lines[0]


def _malformed_after_start(tmp_path: Path) -> None:
    path = tmp_path / "local-credentials.json"
    write(path, {"AKIAFIRSTKEY00000001": entry()})
    creds = LocalCredentials(path)
    assert creds.lookup("AKIAFIRSTKEY00000001") is not None
    write(path, {"AKIAFIRSTKEY00000001": {"secret_access_key": SECRET, "principal_arn": "nope"}})
    os.utime(path, ns=(1, 2_000_000_000_000_000_000))
    for _ in range(3):
        with pytest.raises(ConfigError):
            creds.lookup("AKIAFIRSTKEY00000001")
