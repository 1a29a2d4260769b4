"""Which providers a catalog routes to, built from the settings: only those it names (a local-only
catalog never imports botocore), each built on its first call, the AWS ones sharing one
operations-role session per app. Part of the composition root (gateway.py)."""
from __future__ import annotations

from typing import Any, Callable

from chalicelib.aws.clients import aws_client, quiet_botocore
from chalicelib.catalog import Catalog
from chalicelib.lazy import OnFirstUse
from chalicelib.settings import Settings


def build_providers(settings: Settings, catalog: Catalog) -> dict[str, Any]:
    # Only the providers the catalog routes to: a local-only catalog never imports boto3.
    used = {d.provider for m in catalog.models.values() for d in m.deployments}
    providers: dict[str, Any] = {}
    if "local-echo" in used:
        from chalicelib.providers.local_echo import LocalEchoProvider

        providers["local-echo"] = LocalEchoProvider()
    if "local-embed" in used:
        from chalicelib.providers.local_embed import LocalEmbedProvider

        providers["local-embed"] = LocalEmbedProvider()
    # One operations-role session per app, shared by every AWS provider: one STS call per app an hour.
    ops_role = OnFirstUse(lambda: _ops_role(settings))
    if "bedrock" in used:
        providers["bedrock"] = _bedrock(settings, ops_role)
    if "sagemaker" in used:
        providers["sagemaker"] = _sagemaker(settings, ops_role)
    if "openai" in used:
        providers["openai"] = _openai(settings)
    return providers


def _ops_role(settings: Settings) -> Any:
    """Per-app credentials in the operations account; None: the default chain (the Lambda role)."""
    if not settings.ops_role_arn:
        return None
    from chalicelib.aws.sts_credentials import AssumedRoleCredentials

    sts = aws_client("sts", settings.bedrock_region, read_timeout=2)
    return AssumedRoleCredentials(sts, settings.ops_role_arn)


def _bedrock(settings: Settings, ops_role: Callable[[], Any]) -> Any:
    def build() -> Any:
        from chalicelib.providers.bedrock.provider import BedrockProvider, bedrock_client_factory

        quiet_botocore()
        factory = bedrock_client_factory(settings.bedrock_region, ops_role(), settings.bedrock_max_attempts)
        return BedrockProvider(client_for=factory)

    return _BuiltOnFirstCall(build)


def _sagemaker(settings: Settings, ops_role: Callable[[], Any]) -> Any:
    # Endpoints run where the deployment's `region` says, else where Bedrock is called (the router
    # places them there too); boto3 honours AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME itself.
    def build() -> Any:
        from chalicelib.aws.runtime_clients import runtime_client_factory
        from chalicelib.providers.sagemaker.provider import SageMakerProvider

        quiet_botocore()
        factory = runtime_client_factory("sagemaker-runtime", settings.bedrock_region, ops_role(),
                                         settings.bedrock_max_attempts)
        return SageMakerProvider(client_for=factory)

    return _BuiltOnFirstCall(build)


def _openai(settings: Settings) -> Any:
    # One connection pool per container; keys from SSM in the gateway's own account and region
    # (GetParameter, WithDecryption), or from the environment variable a deployment names.
    def build() -> Any:
        import os

        from chalicelib.providers.openai.keys import ApiKeys
        from chalicelib.providers.openai.provider import OpenAIProvider
        from chalicelib.providers.upstream_http import HttpPool

        ssm = aws_client("ssm", settings.aws_region, read_timeout=2)
        return OpenAIProvider(HttpPool(), ApiKeys(ssm, os.environ))

    return _BuiltOnFirstCall(build)


class _BuiltOnFirstCall:
    """A provider built on its first call: a request routed to local-echo never pays for Bedrock's
    modules, and the first Bedrock request pays for boto3 anyway."""

    def __init__(self, build: Callable[[], Any]) -> None:
        self._provider = OnFirstUse(build)

    def complete(self, call: Any) -> Any:
        return self._provider().complete(call)

    def embed(self, call: Any) -> Any:
        return self._provider().embed(call)
