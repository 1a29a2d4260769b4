"""Where a deployment may process a prompt, so a geography-bound app is never sent elsewhere.

An `openai` deployment (LiteLLM tier, vLLM, ...) is placed only by its declared `region`: without
one it serves no app that sets a geography. A SageMaker endpoint runs in its region.

Cross-region inference profiles name their geography in their id (`eu.anthropic...`) and stay in
it; `global.` profiles may route anywhere, so they belong to no geography. Anything else (a
foundation model, a provisioned-throughput or application-profile ARN) runs in its region.
"""
from __future__ import annotations

from chalicelib.catalog import Deployment

_PROFILE_PREFIXES = ("us-gov", "us", "eu", "apac", "ca", "jp", "au")
_JAPAN = ("ap-northeast-1", "ap-northeast-3")
_AUSTRALIA = ("ap-southeast-2", "ap-southeast-4")


def deployment_geographies(deployment: Deployment, default_region: str) -> frozenset[str]:
    if deployment.provider == "openai":
        # What sits behind an OpenAI-compatible URL is unknown: only a declared region places it.
        return region_geographies(deployment.region) if deployment.region else frozenset()
    if deployment.provider == "sagemaker":
        return region_geographies(deployment.region or default_region)
    model_id = deployment.model_id
    region = deployment.region or default_region
    if model_id.startswith("arn:"):
        parts = model_id.split(":", 5)
        region = parts[3] or region
        model_id = parts[5].split("/", 1)[-1]  # inference-profile/eu.anthropic... -> eu.anthropic...
    prefix = model_id.split(".", 1)[0]
    if prefix == "global":
        return frozenset()
    if prefix in _PROFILE_PREFIXES and "." in model_id:
        return frozenset({prefix})
    return region_geographies(region)


def region_geographies(region: str) -> frozenset[str]:
    if region.startswith("us-gov-"):
        return frozenset({"us-gov"})
    if region.startswith("us-"):
        return frozenset({"us"})
    if region.startswith("eu-"):
        return frozenset({"eu"})
    if region.startswith("ca-"):
        return frozenset({"ca"})
    if region.startswith("ap-"):
        extra = {"jp"} if region in _JAPAN else {"au"} if region in _AUSTRALIA else set()
        return frozenset({"apac", *extra})
    return frozenset()
