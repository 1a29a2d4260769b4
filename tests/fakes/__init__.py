"""Fakes that speak real AWS wire protocols on 127.0.0.1."""
