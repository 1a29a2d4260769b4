"""SageMaker real-time endpoints (LMI, TGI, vLLM containers) behind the provider port: OpenAI's chat
and embeddings formats over InvokeEndpoint; a pure translator and a thin caller."""
