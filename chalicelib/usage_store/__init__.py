"""Adapters of the usage aggregates port (chalicelib/usage.py): SQLite locally, DynamoDB in AWS."""
