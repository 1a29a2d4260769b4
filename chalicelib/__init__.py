"""Execution Garden: the governed LLM gateway's modules (see README, "Code map")."""
