"""The floor: a bare Chalice app with one route, dispatched the same way as the gateway."""
from chalice import Chalice

app = Chalice(app_name="baseline", configure_logs=False)


@app.route("/v1/chat/completions", methods=["POST"])
def chat():
    return {"ok": True}
