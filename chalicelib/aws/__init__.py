"""Shared AWS plumbing for adapters (credentials); boto3 is imported lazily by the callers."""
