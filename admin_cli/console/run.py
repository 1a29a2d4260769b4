"""`garden-admin console`: start the server, print the URL to open, open it, serve until Ctrl-C."""
from __future__ import annotations

import argparse
import sys
import webbrowser
from typing import TYPE_CHECKING

from admin_cli.api import AdminClient, UsageError, resolve_credentials

if TYPE_CHECKING:
    from admin_cli.main import Context


def console(args: argparse.Namespace, ctx: Context) -> int:
    from admin_cli.console.server import ConsoleServer, thread_clients

    # The URL, credentials and region checked now: a bad one fails here (exit 2 or 3), not in a page.
    url = ctx.url
    profile = getattr(args, "profile", None)
    frozen, profile_region = resolve_credentials(profile)
    region = ctx.region(profile_region)
    credentials = _refreshable(profile) or frozen  # a console left open outlives an SSO session's first keys
    verbose = getattr(args, "verbose", False)

    def make() -> AdminClient:
        return AdminClient(url, region, credentials, verbose=verbose)

    port = getattr(args, "port", 0) or 0
    try:
        server = ConsoleServer(port, thread_clients(make))
    except OSError as exc:
        raise UsageError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}") from None
    print(f"Console: {server.url}", flush=True)
    print(f"garden-admin console: serving the admin API of {url} on 127.0.0.1 only; "
          "Ctrl-C stops it", file=sys.stderr, flush=True)
    if not getattr(args, "no_browser", False):
        try:
            opened = webbrowser.open(server.url)
        except Exception:  # no usable browser here (a server, a container): the printed URL is enough
            opened = False
        if not opened:
            print("garden-admin console: no browser could be opened: open the URL above", file=sys.stderr,
                  flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("garden-admin console: stopped", file=sys.stderr)
    finally:
        server.server_close()
    return 0


def _refreshable(profile: str | None) -> object | None:
    """The chain's credentials object itself (SSO, assumed roles: refreshed when they expire; the
    signer freezes them per request)."""
    import botocore.session

    try:
        return botocore.session.Session(profile=profile).get_credentials()
    except Exception:  # resolve_credentials has already checked the chain; keep its frozen keys
        return None
