"""One botocore session per process, shared by every AWS client the gateway makes.

Why (bench/prod_cold_start.py, figures in the README's performance section): a prod container's
first request makes seven or eight clients. Through boto3 that cost an import of boto3, which pulls
in s3transfer and multiprocessing (unused here), and two boto3 Sessions (the default one and the
model runtimes' own), each loading botocore's endpoint data and scanning its data folders again.
One botocore session, made on first use, loads the endpoint data and each service model once, and
boto3 is never imported on the request path. Clients with the same settings are shared: the ledger,
the registry and the usage store use one DynamoDB client (botocore clients are thread-safe).

A session caches the credentials it resolved, and a client keeps the endpoint it was made for: so
there is one session per set of credential variables (AWS_ACCESS_KEY_ID, AWS_PROFILE, ...: one in a
Lambda container, whose variables never change; a fresh one in a test that removes them), and a
shared client is keyed by those and by the AWS_ENDPOINT_URL variables too.

botocore's `Session.create_client` is not thread-safe: every client is made under one lock.

The cyclic garbage collector: a client's service model, endpoint rules and generated class are tens
of thousands of long-lived objects; made with the collector running, each one triggers collections
that walk everything loaded so far. While a client is made the collector is paused, and after each
of the process's first FREEZE_FIRST clients (the cold start's) `gc.freeze()` moves every object then
alive into the permanent generation, so later collections never walk them again. What is frozen is
never freed: the bound is those first clients (at most FREEZE_FIRST, evicted runtime clients
included) and whatever cyclic garbage existed at those moments, once per container.
"""
from __future__ import annotations

import gc
import os
import threading
from contextlib import contextmanager
from typing import Any, Callable, Hashable, Iterator

FREEZE_FIRST = 12  # a prod container's first request makes 7-8 clients; a few more for the admin API

# What botocore's default credential chain and endpoint resolution read from the environment.
_CREDENTIAL_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                   "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                   "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN",
                   "AWS_EC2_METADATA_DISABLED")

_lock = threading.RLock()  # guards the sessions, creation (not thread-safe in botocore) and the shared clients
_sessions: dict[tuple[str | None, ...], Any] = {}
_made = 0
_shared: dict[Hashable, Any] = {}


def new_client(service: str, region: str, *, connect_timeout: float, read_timeout: float, max_attempts: int,
               tcp_keepalive: bool = False, endpoint_url: str | None = None, credentials: Any = None) -> Any:
    """A new botocore client on the process's session (standard retry mode, `max_attempts` in all).
    `credentials`: an object with access_key, secret_key and token, or None for the default chain
    (the Lambda role). endpoint_url: only when given; botocore itself honours the standard
    AWS_ENDPOINT_URL_<SERVICE> variables."""
    global _made
    extra: dict[str, Any] = {}
    if endpoint_url:
        extra["endpoint_url"] = endpoint_url
    if credentials is not None:
        extra.update(aws_access_key_id=credentials.access_key, aws_secret_access_key=credentials.secret_key,
                     aws_session_token=credentials.token)
    with _lock, _collector_paused():
        from botocore.config import Config

        config = Config(connect_timeout=connect_timeout, read_timeout=read_timeout, tcp_keepalive=tcp_keepalive,
                        retries={"mode": "standard", "total_max_attempts": max_attempts})
        client = _botocore_session().create_client(service, region_name=region, config=config, **extra)
        _made += 1
        if _made <= FREEZE_FIRST:
            gc.freeze()
        return client


def shared_client(service: str, key: Hashable, make: Callable[[], Any]) -> Any:
    """The process's `service` client for `key` (the region and settings), made by `make()` on first
    use: adapters asking for the same one share it, while the environment names the same
    credentials and endpoint."""
    endpoint = (os.environ.get("AWS_ENDPOINT_URL"),
                os.environ.get("AWS_ENDPOINT_URL_" + service.upper().replace("-", "_")))
    full_key = (service, key, endpoint, _credential_env())
    with _lock:
        client = _shared.get(full_key)
        if client is None:
            client = _shared[full_key] = make()
        return client


def _credential_env() -> tuple[str | None, ...]:
    return tuple(os.environ.get(name) for name in _CREDENTIAL_ENV)


def _botocore_session() -> Any:
    key = _credential_env()
    session = _sessions.get(key)
    if session is None:
        import botocore.session

        session = _sessions[key] = botocore.session.Session()
        data_path = session.get_config_variable("data_path")
        session.register_component("data_loader", _loader_class()(
            extra_search_paths=data_path.split(os.pathsep) if data_path else []))
    return session


def _loader_class() -> type:
    from botocore.loaders import Loader

    class OneServiceLoader(Loader):
        """botocore's Loader, except that loading a service model checks that service's folder
        only: the base class lists every service folder of its data (~400, once per model type:
        about 20 ms of a cold start) to tell whether the one asked for exists."""

        def list_available_services(self, type_name: str) -> Any:
            return _KnownServices(self, type_name, super().list_available_services)

    return OneServiceLoader


class _KnownServices:
    """`name in services` for one name, as the full listing would answer it (a folder of that name
    in a search path with `type_name` data in one of its API versions); iterating lists them all."""

    def __init__(self, loader: Any, type_name: str, list_all: Callable[[str], list[str]]) -> None:
        self._loader, self._type_name, self._list_all = loader, type_name, list_all

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str) or not name or os.sep in name:
            return False
        for path in self._loader.search_paths:
            folder = os.path.join(path, name)
            if os.path.isdir(folder) and any(self._loader.file_loader.exists(os.path.join(folder, version, self._type_name))
                                             for version in os.listdir(folder)):
                return True
        return False

    def __iter__(self) -> Iterator[str]:
        return iter(self._list_all(self._type_name))


@contextmanager
def _collector_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
