"""Execution Garden: one governed, OpenAI-compatible door to LLMs for a bank's applications.

Routes and wiring only; the pipeline lives in chalicelib/ (see chalicelib/pipeline.py).
"""
from chalice import Chalice, IAMAuthorizer, Rate

from chalicelib import gateway, web
from chalicelib.pipeline import Pipeline

app = Chalice(app_name="execution-garden", configure_logs=False)
app.debug = False  # 500s carry a request id, never a stack trace
web.quiet_chalice_log(app.log)  # and Chalice's own log names an exception's class, not its traceback
iam = IAMAuthorizer()  # in AWS, API Gateway verifies SigV4; `chalice local` does not (see identity/)


@app.middleware("http")
def openai_errors(event, get_response):
    return web.guard(event, get_response)


@app.route("/health", methods=["GET"])
def health():
    return web.health()


@app.route("/v1/chat/completions", methods=["POST"], authorizer=iam)
def chat_completions():
    return web.handle(app.current_request, Pipeline.chat_completions)


@app.route("/v1/embeddings", methods=["POST"], authorizer=iam)
def embeddings():
    return web.handle(app.current_request, Pipeline.embeddings)


@app.route("/v1/models", methods=["GET"], authorizer=iam)
def list_models():
    return web.handle(app.current_request, Pipeline.list_models)


@app.route("/v1/models/{model_id}", methods=["GET"], authorizer=iam)
def get_model(model_id):
    return web.handle(app.current_request, Pipeline.get_model, model_id)


@app.schedule(Rate(5, unit=Rate.MINUTES))
def sweep_reservations(event):
    """Free quota held by requests that died without settling (a container killed mid-call)."""
    web.sweep_reservations()


@app.schedule(Rate(1, unit=Rate.DAYS))
def check_model_lifecycle(event):
    """Log (and count) catalog models Bedrock marks legacy while the catalog does not. Daily is
    plenty: Bedrock marks a model legacy months before its end of life."""
    gateway.lifecycle_check().run()
