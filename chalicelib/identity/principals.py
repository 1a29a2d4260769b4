"""IAM principal ARNs, normalised so that a caller's ARN finds the app registered for it."""
from __future__ import annotations

import re

# arn:aws:sts::123456789012:assumed-role/RoleName/session-name -> the role that was assumed.
_ASSUMED_ROLE = re.compile(r"^arn:(aws[a-z-]*):sts::(\d{12}):assumed-role/([^/]+)/[^/]+$")
# arn:aws:iam::123456789012:role/some/path/RoleName -> role/RoleName (assumed-role ARNs drop paths).
_ROLE = re.compile(r"^arn:(aws[a-z-]*):iam::(\d{12}):role/(?:.*/)?([^/]+)$")


def canonical_principal(arn: str) -> str:
    """The key an app registers under and a caller is looked up by."""
    for pattern in (_ASSUMED_ROLE, _ROLE):
        match = pattern.match(arn)
        if match:
            partition, account, name = match.groups()
            return f"arn:{partition}:iam::{account}:role/{name}"
    return arn
