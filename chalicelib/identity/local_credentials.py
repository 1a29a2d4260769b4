"""Local SigV4 key store: `$GARDEN_HOME/local-credentials.json`, re-read only when it changes.

Shape: `{"<access key id>": {"secret_access_key": "...", "principal_arn": "arn:aws:iam::<acct>:role/<name>",
"session_token": "..." (optional)}}`. `chalice local` has no IAM, so this file plays IAM's part: it
maps an access key to a principal. A request carrying `x-amz-security-token` passes only for a key
whose entry defines that token; a key with a token needs it sent.
Errors name the file, the offending access key id and field, never a secret; a file that becomes
malformed is reported in the server's output when it is re-read, once per change.
"""
from __future__ import annotations

import json
import logging
import os
import re
import secrets
import string
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chalicelib.errors import ConfigError, PermissionDenied
from chalicelib.telemetry import LOGGER_NAME

_KEY_ID = re.compile(r"[A-Za-z0-9]{1,128}")  # never '/': it separates the credential scope
_PRINCIPAL = re.compile(r"arn:aws[a-z-]*:(iam|sts)::\d{12}:[A-Za-z-]+/\S+")
_ALNUM_UPPER = string.ascii_uppercase + string.digits
_ALNUM = string.ascii_letters + string.digits  # no '/' or '+': the secret is pasted into `export`


@dataclass(frozen=True, slots=True)
class LocalCredential:
    secret_access_key: str
    principal_arn: str
    session_token: str | None = None

    def __repr__(self) -> str:  # keep the secret and token out of logs and tracebacks
        return f"LocalCredential(principal_arn={self.principal_arn!r})"


# (st_mtime_ns, st_size, st_ino): what we last read; None while the file is missing. The inode
# catches an atomic replace that keeps mtime and size.
_Signature = tuple[int, int, int] | None
_UNREAD: _Signature = (-1, -1, -1)


class LocalCredentials:
    """Looks up access keys; costs one `os.stat` per call unless the file changed."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        # One tuple, swapped atomically: (file signature, entries, error to re-raise).
        self._state: tuple[_Signature, dict[str, LocalCredential], ConfigError | None] = (_UNREAD, {}, None)

    @property
    def path(self) -> Path:
        return self._path

    def lookup(self, access_key_id: str) -> LocalCredential | None:
        """The credential for `access_key_id`, or None if unknown.

        Raises PermissionDenied when no credentials file exists (nothing can verify) and
        ConfigError when the file is malformed (the operator must fix it; no request passes).
        """
        signature = self._stat()
        state = self._state
        if state[0] != signature:
            state = self._reload(signature)
        _, entries, error = state
        if error is not None:
            raise error
        if signature is None:
            raise PermissionDenied("no local credentials configured: run make run", code="no_local_credentials")
        return entries.get(access_key_id)

    def _stat(self) -> _Signature:
        try:
            st = os.stat(self._path)
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _reload(self, signature: _Signature) -> tuple[_Signature, dict[str, LocalCredential], ConfigError | None]:
        with self._lock:
            if self._state[0] == signature:  # another thread reloaded meanwhile
                return self._state
            entries: dict[str, LocalCredential] = {}
            error: ConfigError | None = None
            if signature is not None:
                try:
                    entries = _parse(self._path.read_bytes(), self._path)
                except FileNotFoundError:
                    signature = None  # deleted between stat and read
                except ConfigError as exc:
                    error = exc
                    # Said once per change of the file, where the operator looks: the server's output.
                    logging.getLogger(LOGGER_NAME).error(json.dumps({"event": "config_error", "error": str(exc)}))
            # Stat taken before the read: a write racing the read changes it, so the next call reloads.
            self._state = (signature, entries, error)
            return self._state


def check_file(path: Path) -> bool:
    """Whether the file exists; raises ConfigError naming the file, entry and problem if malformed."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return False
    _parse(raw, path)
    return True


def _parse(raw: bytes, path: Path) -> dict[str, LocalCredential]:
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        # JSONDecodeError's message carries a position only, never the document.
        detail = f"line {exc.lineno}, column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
        raise ConfigError(f"{path}: not valid JSON ({detail})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected an object mapping access key ids to credentials")
    entries: dict[str, LocalCredential] = {}
    for key_id, entry in data.items():
        if not _KEY_ID.fullmatch(key_id):
            raise ConfigError(f"{path}: {key_id[:32]!r}: access key ids are 1-128 letters and digits")
        if not isinstance(entry, dict):
            raise ConfigError(f"{path}: {key_id}: expected an object with secret_access_key and principal_arn")
        secret, principal = entry.get("secret_access_key"), entry.get("principal_arn")
        if not isinstance(secret, str) or not secret:
            raise ConfigError(f"{path}: {key_id}: secret_access_key must be a non-empty string")
        if not isinstance(principal, str) or not _PRINCIPAL.fullmatch(principal):
            raise ConfigError(f"{path}: {key_id}: principal_arn must look like arn:aws:iam::<account>:role/<name>")
        token = entry.get("session_token")
        if token is not None and (not isinstance(token, str) or not token):
            raise ConfigError(f"{path}: {key_id}: session_token, when given, must be a non-empty string")
        unknown = sorted(set(entry) - {"secret_access_key", "principal_arn", "session_token"})
        if unknown:
            raise ConfigError(f"{path}: {key_id}: unknown field {unknown[0][:32]!r}")
        entries[key_id] = LocalCredential(secret, principal, token)
    return entries


def new_key_pair() -> tuple[str, str]:
    """A random (access key id, secret) shaped like AWS's: AKIA + 16, and 40 characters."""
    key_id = "AKIA" + "".join(secrets.choice(_ALNUM_UPPER) for _ in range(16))
    return key_id, "".join(secrets.choice(_ALNUM) for _ in range(40))


def ensure_demo_credentials(path: Path, principal_arn: str) -> tuple[str, str, bool]:
    """Return (access_key_id, secret, created): a key pair for `principal_arn` in `path`.

    Creates the file (mode 0600, parent folders 0700) with one random key pair when missing.
    An existing file is never overwritten: its first key for `principal_arn` is returned; if it
    has none, a new entry is added alongside the existing ones (created=True).
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key_id, secret = new_key_pair()
    body = {key_id: {"secret_access_key": secret, "principal_arn": principal_arn}}
    try:
        # O_EXCL: two concurrent `make run`s cannot clobber each other's file.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        _write_fd(fd, body)
        return key_id, secret, True
    raw = path.read_bytes() or b"{}"
    entries = _parse(raw, path)  # validates, so the json.loads below cannot fail
    existing: dict[str, Any] = json.loads(raw)
    for found_id, cred in entries.items():
        if cred.principal_arn == principal_arn:
            return found_id, cred.secret_access_key, False
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    _write_fd(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), {**existing, **body})
    os.replace(tmp, path)  # atomic: a concurrent reader sees the old or the new file, never half
    return key_id, secret, True


def _write_fd(fd: int, data: dict[str, Any]) -> None:
    os.fchmod(fd, 0o600)  # whatever the umask
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")
