"""infra/observability.yaml against what the gateway really emits: every metric and dimension set the
dashboard and alarms read is one the request line declares, every field a saved Logs Insights query
names is on real log lines, and the alarms, log groups and widgets the issue asks for are there.
(cfn-lint and checkov run on it with the other templates: test_templates_lint.py, test_checkov.py.)"""
from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest

from cfn_yaml import INFRA, load_template

TEMPLATE = INFRA / "observability.yaml"
ROOT = INFRA.parent
CANARY = "CANARY-obs-93e1aa"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(TEMPLATE)


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def _flatten(value: Any, prefix: str = "") -> set[str]:
    """Field names as Logs Insights discovers them in a JSON event: nested keys joined by dots."""
    if isinstance(value, dict):
        out = set()
        for key, inner in value.items():
            name = f"{prefix}.{key}" if prefix else key
            out |= {name} | _flatten(inner, name)
        return out
    if isinstance(value, list):
        return set().union(*(_flatten(v, f"{prefix}.{i}") for i, v in enumerate(value))) if value else set()
    return set()


@pytest.fixture(scope="module")
def real_lines(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """Request lines the gateway wrote for real requests (pass, PII, guardrail block, quota refusal,
    unknown principal), and an audit_fallback line for one of their records."""
    from support import OTHER_KEY_ID, QUOTA_KEY_ID, running_garden

    from chalicelib.record import RequestRecord
    from chalicelib.telemetry import LogTelemetry

    stream = io.StringIO()
    logger = logging.getLogger("test-observability")
    logger.handlers[:] = [logging.StreamHandler(stream)]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    with running_garden(tmp_path_factory.mktemp("obs"), telemetry=LogTelemetry(logger)) as g:
        for content, key in [(f"{CANARY} hello", None), (f"{CANARY} mail jane.doe@example.com", None),
                             (f"{CANARY} guaranteed returns", None), (f"{CANARY} hi", OTHER_KEY_ID)]:
            g.chat({"model": "local-echo", "messages": [{"role": "user", "content": content}]},
                   **({"key_id": key} if key else {}))
        g.chat({"model": "local-echo", "messages": [{"role": "user", "content": CANARY}], "max_tokens": 4000},
               key_id=QUOTA_KEY_ID)
    lines = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert len(lines) == 5 and CANARY not in stream.getvalue()
    fields = RequestRecord.__dataclass_fields__
    record = RequestRecord(**{k: v for k, v in lines[0].items() if k in fields})
    LogTelemetry(logger).audit_fallback(record, TimeoutError())
    return [json.loads(text) for text in stream.getvalue().splitlines()]


_KEYWORDS = {"filter", "stats", "by", "sort", "desc", "asc", "limit", "fields", "and", "or", "not", "as", "in",
             "like", "display", "source"}
_FUNCTIONS = {"sum", "count", "pct", "max", "min", "avg", "ispresent"}


def query_fields(query: str) -> set[str]:
    """The log fields a Logs Insights query names (not its keywords, functions, aliases or literals)."""
    text = re.sub(r'"[^"]*"', " ", query)
    quoted = set(re.findall(r"`([^`]+)`", text))
    text = re.sub(r"`[^`]+`", " ", text)
    aliases = set(re.findall(r"\bas\s+([A-Za-z_][\w.]*)", text))
    names = {t for t in re.findall(r"[A-Za-z_][\w.]*", text)
             if t.lower() not in _KEYWORDS | _FUNCTIONS and t not in aliases}
    return names | quoted


def test_saved_queries_name_only_fields_the_log_lines_have(template: dict[str, Any],
                                                           real_lines: list[dict[str, Any]]) -> None:
    queries = resources(template, "AWS::Logs::QueryDefinition")
    names = {q["Properties"]["Name"]["Fn::Sub"].split("/", 1)[1] for q in queries.values()}
    assert {"spend by app", "top errors", "p95 latency by model", "guardrail interventions by app"} <= names
    for name, query in queries.items():
        text = query["Properties"]["QueryString"]
        event = re.search(r'event = "(\w+)"', text).group(1)  # every query picks its line kind
        available = set().union(*(_flatten(line) for line in real_lines if line.get("event") == event))
        missing = query_fields(text) - available
        assert not missing, f"{name} names fields no {event} line has: {sorted(missing)}"
        assert query["Properties"]["LogGroupNames"] == [{"Fn::Sub": "/aws/lambda/${AppName}-${Stage}"}]


def test_the_query_field_check_can_fail() -> None:
    assert query_fields('filter event = "request" | stats sum(cost) as spend by `controls.pii-in`, app') == {
        "event", "cost", "controls.pii-in", "app"}


def emitted_series() -> set[tuple[str, tuple[str, ...]]]:
    """Every (metric, dimension set) the gateway declares, over records that raise every metric."""
    from chalicelib.record import RequestRecord
    from chalicelib.telemetry import audit_failure_metric, emf_metrics

    busy = RequestRecord("r", "2026-11-29T10:00:00.000+00:00", "chat.completions", status=429,
                         error_code="insufficient_quota", app_id="a", business_unit="bu", model="m",
                         pii={"EMAIL:REDACT": 1}, upstream_throttles=1, fallbacks=1, breaker_opens=1,
                         budget_pace=1.5, controls={"quota": "rejected", "guardrail-in": "block"})
    failed = RequestRecord("s", "2026-11-29T10:00:00.000+00:00", "chat.completions", status=502,
                           error_code="upstream_error")
    series = set()
    for members in (emf_metrics(busy), emf_metrics(failed), audit_failure_metric(busy)):
        for directive in members["_aws"]["CloudWatchMetrics"]:
            series |= {(m["Name"], tuple(d)) for m in directive["Metrics"] for d in directive["Dimensions"]}
    return series


def _dashboard(template: dict[str, Any]) -> dict[str, Any]:
    body, variables = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    values = {"AWS::Region": "eu-west-1", "BudgetPaceThreshold": "1.2", "Function": "execution-garden-prod",
              **{name: f"arn:aws:cloudwatch:eu-west-1:111122223333:alarm:{name}"
                 for name in resources(template, "AWS::CloudWatch::Alarm")}}
    text = re.sub(r"\$\{([\w:]+)(?:\.Arn)?\}", lambda m: values[m.group(1)], body)
    assert set(variables) == {"Function"}
    return json.loads(text)


def test_dashboard_reads_only_what_the_gateway_emits(template: dict[str, Any]) -> None:
    emitted = emitted_series()
    names = {name for name, _ in emitted}
    dashboard = _dashboard(template)
    titles = " | ".join(w["properties"]["title"] for w in dashboard["widgets"]).lower()
    for topic in ("traffic", "p50, p95, p99", "errors", "cost per business unit", "cost per app", "pii",
                  "guardrail", "quota rejections", "budget pace"):
        assert topic in titles, topic
    for widget in dashboard["widgets"]:
        for metric in widget["properties"].get("metrics", []):
            if isinstance(metric[0], str) and metric[0] == "ExecutionGarden":
                dims = tuple(metric[2:-1:2]) if len(metric) > 2 and isinstance(metric[-1], dict) else tuple(metric[2::2])
                assert (metric[1], dims) in emitted, metric
            elif isinstance(metric[0], dict):
                expression = metric[0]["expression"]
                for schema, name in re.findall(r"\{ExecutionGarden,([\w,]+)\} MetricName=\\?\"(\w+)", expression):
                    assert (name, tuple(schema.split(","))) in emitted, expression
                for name, schema in re.findall(r"SELECT \w+\((\w+)\) FROM SCHEMA\(ExecutionGarden, ([\w, ]+)\)",
                                               expression):
                    assert (name, tuple(s.strip() for s in schema.split(","))) in emitted, expression
                if "PiiEntities'" in expression:
                    assert any(n.startswith("PiiEntities_") for n in names)


REQUIRED_ALARMS = {"ServerErrorRateAlarm", "ProviderThrottlingAlarm", "BreakerOpenAlarm", "AuditWriteFailureAlarm",
                   "LambdaThrottleAlarm", "LambdaConcurrencyAlarm", "BudgetPaceAlarm"}


def test_alarms_have_defaults_actions_and_real_metrics(template: dict[str, Any]) -> None:
    emitted = emitted_series()
    alarms = resources(template, "AWS::CloudWatch::Alarm")
    assert REQUIRED_ALARMS <= set(alarms)
    parameters = template["Parameters"]
    for name, alarm in alarms.items():
        props = alarm["Properties"]
        assert props["AlarmActions"] and props["TreatMissingData"] == "notBreaching", name
        threshold = props["Threshold"]["Ref"]
        assert "Default" in parameters[threshold], f"{name}: {threshold} needs a default"
        if props.get("Namespace") == "ExecutionGarden":
            assert (props["MetricName"], ()) in emitted, name
        for query in props.get("Metrics", []):
            stat = query.get("MetricStat")
            if stat:
                assert (stat["Metric"]["MetricName"], ()) in emitted, name
    pace = alarms["BudgetPaceAlarm"]["Properties"]["Metrics"][0]["Expression"]
    assert pace == "SELECT MAX(BudgetPace) FROM SCHEMA(ExecutionGarden, BusinessUnit)"
    assert ("BudgetPace", ("BusinessUnit",)) in emitted
    lambda_alarms = [alarms[n]["Properties"] for n in ("LambdaThrottleAlarm", "LambdaConcurrencyAlarm")]
    assert [a["MetricName"] for a in lambda_alarms] == ["Throttles", "ConcurrentExecutions"]


def test_log_groups_match_the_chalice_functions_and_keep_a_year(template: dict[str, Any]) -> None:
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    assert template["Parameters"]["AppName"]["Default"] == config["app_name"]
    groups = resources(template, "AWS::Logs::LogGroup")
    named = {g["Properties"]["LogGroupName"]["Fn::Sub"] for g in groups.values()}
    functions = {"/aws/lambda/${AppName}-${Stage}"} | {
        f"/aws/lambda/${{AppName}}-${{Stage}}-{fn}" for fn in config["stages"]["prod"]["lambda_functions"]}
    assert named == functions
    retention = template["Parameters"]["LogRetentionDays"]
    assert retention["Default"] >= 365 and min(retention["AllowedValues"]) >= 365
    for group in groups.values():
        assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
        assert "KmsKeyId" in group["Properties"]


def test_readme_documents_every_metric(template: dict[str, Any]) -> None:
    readme = (ROOT / "README.md").read_text()
    for name in sorted({n for n, _ in emitted_series()}):
        documented = name if not name.startswith("PiiEntities_") else "PiiEntities_<TYPE>"
        assert f"`{documented}`" in readme, name


def test_template_is_in_the_linted_set() -> None:
    from cfn_yaml import TEMPLATES

    assert TEMPLATE in TEMPLATES and Path(TEMPLATE).exists()
