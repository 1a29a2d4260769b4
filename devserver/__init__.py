"""The local dev server behind `make run` (not packaged into the Lambda: chalicelib/ is).

`chalice local` with what a gateway needs of it: a listen backlog that takes a burst of new
connections, an access line without query strings or path parameters, OpenAI-shaped answers to
unknown paths and malformed HTTP, the served host handed to local SigV4, and configuration checked
at start with one clear line per problem. `python -m devserver --help`.
"""
