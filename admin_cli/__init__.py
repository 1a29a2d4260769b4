"""garden-admin: the platform team's CLI, a client of the gateway's admin API (`/admin/v1`).

It signs like any business-unit app (`client/garden_auth.py`: SigV4, service `execute-api`, the
standard AWS credential chain) and is never packaged into the Lambda. See README, "garden-admin".
"""
