"""Audit trail tests: helpers in audit_support.py (a name of its own: every test folder has a conftest)."""
