"""`python -m devserver [--host H] [--port P] [--stage S]`: what `make run` serves.

Loads the app as `chalice local` does (the stage's environment variables from .chalice/config.json),
binds, hands the bound `host:port` to local SigV4 (`GARDEN_SERVED_HOST`, unless already set), builds
the pipeline and checks the local credentials before the first request: a problem is one line
naming the file, the entry or the variable, and the exit status is 2.
"""
from __future__ import annotations

import argparse
import errno
import logging
import os
import socket
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class StartError(Exception):
    """Why the server cannot start, in one line for the operator."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devserver", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--stage", default="local")
    args = parser.parse_args(argv)
    # What chalice local configures: app.log and the gateway's lines on stdout.
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")
    try:
        server = start(args.host, args.port, args.stage)
    except StartError as exc:
        print(f"execution-garden: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # nothing has been served yet: a message can only quote local set-up
        print(f"execution-garden: cannot start: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server.server_close()
    return 0


def start(host: str, port: int, stage: str) -> "object":
    from chalice import local
    from chalice.cli.factory import CLIFactory
    from chalice.deploy.validate import validate_routes

    from devserver.handler import GatewayHTTPServer, GatewayRequestHandler

    # Local mode verifies SigV4 itself (chalicelib/identity/local.py); Chalice's reminder that it
    # does not would print on every start.
    warnings.filterwarnings("ignore", message="IAMAuthorizer is not a supported in local mode")
    # environ=os.environ, as `chalice local` passes it: the stage's variables reach Settings.from_env.
    config = CLIFactory(project_dir=str(ROOT), environ=os.environ).create_config_obj(chalice_stage_name=stage)
    app = config.chalice_app  # imports app.py with the stage's environment variables set
    validate_routes(app.routes)
    # As chalice local does: current_request kept per thread, so concurrent clients are fine.
    local.CustomLocalChalice.__bases__ = (local.LocalChalice, app.__class__)
    app.__class__ = local.CustomLocalChalice
    try:
        server = local.LocalDevServer(app, config, host, port, handler_cls=GatewayRequestHandler,
                                      server_cls=GatewayHTTPServer)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise StartError(f"port {port} on {host} is in use: stop the other server or set PORT=") from None
        raise StartError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    server.port = server.server.server_address[1]  # the real one when --port 0
    os.environ.setdefault("GARDEN_SERVED_HOST", ",".join(served_hosts(host, server.port)))
    _preflight()
    return server


def served_hosts(host: str, port: int) -> list[str]:
    """The `host:port` values a client of this socket signs as its Host header."""
    names = {host}
    if host in ("127.0.0.1", "localhost"):
        names |= {"127.0.0.1", "localhost"}
    elif host in ("", "0.0.0.0"):  # every interface: the machine's names and loopback
        names = {"127.0.0.1", "localhost", socket.gethostname(), socket.getfqdn()}
    hosts = sorted(f"{name.lower()}:{port}" for name in names)
    return hosts + (sorted(names) if port == 80 else [])


def _preflight() -> None:
    """Build what the first request would, so a broken setting fails now, named, not as a 500 later."""
    from chalicelib import gateway
    from chalicelib.errors import ConfigError
    from chalicelib.identity.local_credentials import check_file
    from chalicelib.settings import Settings

    try:
        settings = Settings.from_env()
        gateway.pipeline()
        if settings.identity == "local" and not check_file(settings.local_credentials_path):
            print(f"execution-garden: no {settings.local_credentials_path}: every signed request is refused "
                  "until it exists (make run creates it)", file=sys.stderr)
    except ConfigError as exc:
        raise StartError(str(exc)) from None
    except OSError as exc:
        raise StartError(f"cannot prepare local state: {exc}") from None


if __name__ == "__main__":
    sys.exit(main())
