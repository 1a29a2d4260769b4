"""Amazon Bedrock (Converse API) behind the provider port: pure translation + a thin adapter."""
