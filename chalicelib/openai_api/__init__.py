"""OpenAI wire format: request parsing and response rendering."""
