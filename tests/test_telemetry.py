"""Each request's log line is metadata only and valid CloudWatch Embedded Metric Format."""
from __future__ import annotations

import io
import json
import logging
from pathlib import Path

from support import running_garden

from chalicelib.telemetry import LogTelemetry


def test_request_line_is_emf_with_metrics_per_app_and_model(tmp_path: Path) -> None:
    stream = io.StringIO()
    logger = logging.getLogger("test-telemetry")
    logger.handlers[:] = [logging.StreamHandler(stream)]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    with running_garden(tmp_path, telemetry=LogTelemetry(logger)) as g:
        g.chat({"model": "local-echo", "messages": [{"role": "user", "content": "secret words here"}]})
    line = json.loads(stream.getvalue().splitlines()[0])
    directive = line["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "ExecutionGarden"
    for names in directive["Dimensions"]:  # every dimension and metric is a top-level member
        assert all(isinstance(line[n], str) for n in names)
    for metric in directive["Metrics"]:
        assert isinstance(line[metric["Name"]], (int, float))
    assert (line["AppId"], line["Model"], line["Requests"], line["Errors"]) == ("test-app", "local-echo", 1, 0)
    assert line["PromptTokens"] > 0 and isinstance(line["_aws"]["Timestamp"], int)
    assert "secret words" not in stream.getvalue()
