"""The admin room (/admin/v1): the platform team steers apps, budgets and deployments at run time
and reads usage, without a redeploy.

It reads and writes the registry port (chalicelib/registry/), reads the usage aggregates port
(chalicelib/usage.py) and the catalog (models and routes), and shares the identity, audit and
telemetry ports with the request path; it never imports the request pipeline, and the request path
never imports this package. `gateway.admin()` composes it.
"""
from chalicelib.admin.api import AdminApi
from chalicelib.admin.frame import AdminFrame, AdminResponse

__all__ = ["AdminApi", "AdminFrame", "AdminResponse"]
