"""OpenAI-compatible upstreams (`"provider": "openai"`): pure translation + a thin caller over the
shared HTTP plumbing (chalicelib/providers/upstream_http.py)."""
