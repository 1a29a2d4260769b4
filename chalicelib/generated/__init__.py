"""Code generated from the JSON Schemas; see scripts/generate_validators.py."""
