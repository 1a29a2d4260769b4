"""Execution Garden: one governed, OpenAI-compatible door to LLMs for a bank's applications.

Routes and wiring only; the pipeline lives in chalicelib/ (see chalicelib/pipeline.py).
"""
from chalice import Chalice, Cron, IAMAuthorizer, Rate

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


# The admin API (chalicelib/admin/): the platform team's principals only (GARDEN_ADMIN_PRINCIPALS;
# GARDEN_ADMIN_READERS may GET). Its own room, named by method: a /v1 container never imports it.
@app.route("/admin/v1/apps", methods=["GET"], authorizer=iam)
def admin_list_apps():
    return web.handle_admin(app.current_request, "list_apps")


@app.route("/admin/v1/apps/{app_id}", methods=["GET"], authorizer=iam)
def admin_get_app(app_id):
    return web.handle_admin(app.current_request, "get_app", app_id)


@app.route("/admin/v1/apps/{app_id}", methods=["PUT"], authorizer=iam)
def admin_put_app(app_id):
    return web.handle_admin(app.current_request, "put_app", app_id)


@app.route("/admin/v1/apps/{app_id}", methods=["DELETE"], authorizer=iam)
def admin_delete_app(app_id):
    return web.handle_admin(app.current_request, "delete_app", app_id)


@app.route("/admin/v1/business-units", methods=["GET"], authorizer=iam)
def admin_list_business_units():
    return web.handle_admin(app.current_request, "list_business_units")


@app.route("/admin/v1/business-units/{business_unit}", methods=["PUT"], authorizer=iam)
def admin_put_business_unit(business_unit):
    return web.handle_admin(app.current_request, "put_business_unit", business_unit)


@app.route("/admin/v1/deployments", methods=["GET"], authorizer=iam)
def admin_list_deployments():
    return web.handle_admin(app.current_request, "list_deployments")


@app.route("/admin/v1/deployments/{name}", methods=["PUT"], authorizer=iam)
def admin_put_deployment(name):
    return web.handle_admin(app.current_request, "put_deployment", name)


@app.route("/admin/v1/changes", methods=["GET"], authorizer=iam)
def admin_list_changes():
    return web.handle_admin(app.current_request, "list_changes")


@app.route("/admin/v1/catalog/import", methods=["POST"], authorizer=iam)
def admin_import_catalog():
    return web.handle_admin(app.current_request, "import_catalog")


@app.route("/admin/v1/usage", methods=["GET"], authorizer=iam)
def admin_usage():
    return web.handle_admin(app.current_request, "usage")


@app.route("/admin/v1/chargeback", methods=["POST"], authorizer=iam)
def admin_chargeback():
    return web.handle_admin(app.current_request, "chargeback")


# What the console's pages read (garden-admin console): GETs only, admins and readers.
@app.route("/admin/v1/apps/{app_id}/quotas", methods=["GET"], authorizer=iam)
def admin_app_quotas(app_id):
    return web.handle_admin(app.current_request, "app_quotas", app_id)


@app.route("/admin/v1/activity", methods=["GET"], authorizer=iam)
def admin_activity():
    return web.handle_admin(app.current_request, "activity")


@app.route("/admin/v1/chargeback", methods=["GET"], authorizer=iam)
def admin_chargeback_months():
    return web.handle_admin(app.current_request, "chargeback_months")


@app.route("/admin/v1/chargeback/{month}", methods=["GET"], authorizer=iam)
def admin_chargeback_month(month):
    return web.handle_admin(app.current_request, "chargeback_month", month)


@app.route("/admin/v1/chargeback/{month}/{business_unit}", methods=["GET"], authorizer=iam)
def admin_chargeback_csv(month, business_unit):
    return web.handle_admin(app.current_request, "chargeback_csv", month, business_unit)


@app.schedule(Rate(5, unit=Rate.MINUTES))
def sweep_reservations(event):
    """Free quota held by requests that died without settling (a container killed mid-call)."""
    web.sweep_reservations()


@app.schedule(Rate(1, unit=Rate.DAYS))
def check_model_lifecycle(event):
    """Log (and count) catalog models Bedrock marks legacy while the catalog does not. Daily is
    plenty: Bedrock marks a model legacy months before its end of life."""
    gateway.lifecycle_check().run()


@app.schedule(Cron(0, 2, 1, "*", "?", "*"))
def monthly_chargeback(event):
    """The previous month's chargeback per business unit, 02:00 UTC on the 1st (chalicelib/chargeback.py):
    a CSV per BU under its own KMS key and a summary. On demand: POST /admin/v1/chargeback."""
    gateway.scheduled_chargeback(event.time)
