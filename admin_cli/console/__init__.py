"""`garden-admin console`: the platform team's console, a small web server on 127.0.0.1.

The browser talks only to this server (its pages and its own /api/... JSON); the server makes the
signed calls to the gateway's admin API with the admin's AWS credentials, so no browser holds a key
and IAM stays the only way into the gateway. door.py guards the server's own door (token, cookie,
Host, Origin, read-only), gateway.py maps /api/... onto the admin API, server.py serves both.
"""
