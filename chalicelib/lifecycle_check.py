"""The daily lifecycle check: the catalog against Bedrock's own view of its models.

Bedrock marks a foundation model LEGACY (`ListFoundationModels`, `modelLifecycle.status`) months
before it stops serving it. A catalog that still calls such a model active sends no Deprecation
header and no one plans the move, until the day Bedrock refuses it. This check asks Bedrock once
per region the catalog calls and reports every bedrock deployment whose foundation model Bedrock
marks LEGACY while its catalog model is active: one log line each (ids only), and per region one
line counting them in CloudWatch (EMF metric `CatalogModelsBehindBedrock`, to alarm on).

Deployment ids are mapped to the foundation model they run: a cross-region inference profile
(`eu.anthropic.claude...`) and an ARN of a foundation model or a system inference profile name it;
application inference profiles and provisioned throughput do not (they are counted as unchecked).
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from chalicelib import deadline
from chalicelib.catalog import Catalog
from chalicelib.telemetry import NAMESPACE

EVENT = "catalog_model_behind_bedrock"
METRIC = "CatalogModelsBehindBedrock"
FAILURES = "LifecycleCheckFailures"
BUDGET_S = 20.0  # every region's call, within the scheduled Lambda's 28 s
# Cross-region inference profiles: "<geography>.<foundation model id>" (see geography.py).
_PROFILE_PREFIXES = frozenset({"us-gov", "us", "eu", "apac", "ca", "jp", "au", "global"})
_NAMED_RESOURCES = ("foundation-model", "inference-profile")  # ARNs whose resource names the model


@dataclass(frozen=True, slots=True)
class Target:
    """One bedrock deployment of the catalog and the foundation model it runs."""

    model: str  # catalog model id
    deployment: str  # the deployment's catalog name
    foundation_model: str | None  # None: the id does not say (application profile, provisioned)
    region: str
    active: bool  # the catalog model's lifecycle says active (or says nothing)


def foundation_model(model_id: str) -> tuple[str | None, str | None]:
    """(the foundation model id a deployment's `model_id` runs, the region its ARN names)."""
    region = None
    if model_id.startswith("arn:"):
        parts = model_id.split(":", 5)
        if len(parts) < 6 or "/" not in parts[5]:
            return None, None
        region = parts[3] or None
        resource, model_id = parts[5].split("/", 1)
        if resource not in _NAMED_RESOURCES:
            return None, region
    prefix, dot, rest = model_id.partition(".")
    if dot and prefix in _PROFILE_PREFIXES and "." in rest:
        model_id = rest  # eu.anthropic.claude... -> anthropic.claude...
    return model_id, region


def bedrock_targets(catalog: Catalog, default_region: str) -> list[Target]:
    targets = []
    for model in catalog.models.values():
        for d in model.deployments:
            if d.provider != "bedrock":
                continue
            fm, arn_region = foundation_model(d.model_id)
            targets.append(Target(model.id, d.name, fm, arn_region or d.region or default_region,
                                  model.status == "active"))
    return targets


class LifecycleCheck:
    def __init__(self, catalog: Catalog, client_for: Callable[[str], Any], default_region: str,
                 logger: logging.Logger, clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._catalog = catalog
        self._client_for = client_for  # region -> a `bedrock` (control plane) boto3 client
        self._default_region = default_region
        self._log = logger
        self._clock = clock
        self._monotonic = monotonic

    def run(self) -> list[Target]:
        """Report (and return) every active catalog deployment Bedrock marks LEGACY."""
        targets = bedrock_targets(self._catalog, self._default_region)
        behind: list[Target] = []
        # One deadline for the whole check, seen by every client's hooks (deadline.py).
        with deadline.bound(deadline.Deadline(self._monotonic() + BUDGET_S, 0.0, self._monotonic)):
            for region in sorted({t.region for t in targets}):
                in_region = [t for t in targets if t.region == region]
                legacy, failed = self._legacy_models(region)
                found = [t for t in in_region if t.active and t.foundation_model in legacy]
                for t in found:
                    self._line(logging.WARNING, {"event": EVENT, "model": t.model, "deployment": t.deployment,
                                                 "bedrock_model_id": t.foundation_model, "region": region})
                self._summary(region, in_region, found, failed)
                behind += found
        return behind

    def _legacy_models(self, region: str) -> tuple[frozenset[str], bool]:
        try:
            summaries = self._client_for(region).list_foundation_models()["modelSummaries"]
        except Exception as exc:  # reported by class and counted; the other regions still run
            self._line(logging.ERROR, {"event": "lifecycle_check_failed", "region": region,
                                       "error_class": type(exc).__name__})
            return frozenset(), True
        return frozenset(s["modelId"] for s in summaries
                         if (s.get("modelLifecycle") or {}).get("status") == "LEGACY"), False

    def _summary(self, region: str, targets: Iterable[Target], found: list[Target], failed: bool) -> None:
        targets = list(targets)
        self._line(logging.INFO, {
            "event": "lifecycle_check", "region": region,
            "deployments": len(targets),
            "unchecked": sum(1 for t in targets if t.foundation_model is None),
            "_aws": {"Timestamp": int(self._clock() * 1000), "CloudWatchMetrics": [
                {"Namespace": NAMESPACE, "Dimensions": [["Region"]],
                 "Metrics": [{"Name": METRIC, "Unit": "Count"}, {"Name": FAILURES, "Unit": "Count"}]}]},
            "Region": region,
            METRIC: len({t.model for t in found}),  # catalog models, however many deployments each
            FAILURES: 1 if failed else 0,
        })

    def _line(self, level: int, line: dict[str, Any]) -> None:
        self._log.log(level, json.dumps(line, separators=(",", ":")))
