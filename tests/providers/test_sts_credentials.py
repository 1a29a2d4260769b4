"""AssumeRole per app: exact parameters (botocore Stubber on a real STS client), caching, refresh."""
from __future__ import annotations

import datetime
import threading
from typing import Any, Iterator

import boto3
import pytest
from botocore.stub import Stubber

from chalicelib.aws.sts_credentials import AssumedRoleCredentials
from chalicelib.errors import PermissionDenied, ServiceUnavailable
from fakes.provider_calls import make_app

ROLE = "arn:aws:iam::444455556666:role/garden-bedrock-invoke"
T0 = 1_700_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sts() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("sts", region_name="us-east-1")
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def _response(key: str, expires_at: float) -> dict[str, Any]:
    return {"Credentials": {
        "AccessKeyId": key, "SecretAccessKey": "secret-" + key, "SessionToken": "token-" + key,
        "Expiration": datetime.datetime.fromtimestamp(expires_at, datetime.timezone.utc)}}


def _params(app_id: str = "payments-bot", bu: str = "payments", external_id: str | None = "ext-7f3a9c01",
            session: str | None = None, source: str | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {
        "RoleArn": ROLE,
        "RoleSessionName": session or f"garden-{app_id}",
        "SourceIdentity": source or app_id,
        "Tags": [{"Key": "app", "Value": app_id}, {"Key": "business_unit", "Value": bu}],
        "DurationSeconds": 3600,
    }
    if external_id is not None:
        params["ExternalId"] = external_id
    return params


def test_exact_assume_role_parameters_and_caching(sts: tuple[Any, Stubber]) -> None:
    client, stub = sts
    stub.add_response("assume_role", _response("ASIAKEY1000000000000", T0 + 3600), _params())
    credentials = AssumedRoleCredentials(client, ROLE, clock=Clock())
    app = make_app("payments-bot", "payments", "ext-7f3a9c01")
    first = credentials.for_app(app)
    assert (first.access_key, first.secret_key, first.token) == ("ASIAKEY1000000000000", "secret-ASIAKEY1000000000000", "token-ASIAKEY1000000000000")
    assert credentials.for_app(app) is first  # second call: no STS (the Stubber has nothing queued)


def test_no_external_id_omits_it(sts: tuple[Any, Stubber]) -> None:
    client, stub = sts
    stub.add_response("assume_role", _response("ASIAKEY1000000000000", T0 + 3600), _params(external_id=None))
    AssumedRoleCredentials(client, ROLE, clock=Clock()).for_app(make_app("payments-bot", "payments", None))


def test_session_name_and_source_identity_are_sanitised_and_truncated(sts: tuple[Any, Stubber]) -> None:
    client, stub = sts
    app_id = "team:" + "a" * 70  # ':' is outside STS's charset
    stub.add_response("assume_role", _response("ASIAKEY1000000000000", T0 + 3600), _params(
        app_id=app_id, session=("garden-team-" + "a" * 70)[:64], source=("team-" + "a" * 70)[:64]))
    AssumedRoleCredentials(client, ROLE, clock=Clock()).for_app(make_app(app_id, "payments", "ext-7f3a9c01"))


def test_refreshes_when_less_than_five_minutes_remain(sts: tuple[Any, Stubber]) -> None:
    client, stub = sts
    clock = Clock()
    stub.add_response("assume_role", _response("ASIAKEY1000000000000", T0 + 3600), _params())
    stub.add_response("assume_role", _response("ASIAKEY2000000000000", T0 + 2 * 3600), _params())
    credentials = AssumedRoleCredentials(client, ROLE, clock=clock)
    app = make_app("payments-bot", "payments", "ext-7f3a9c01")
    assert credentials.for_app(app).access_key == "ASIAKEY1000000000000"
    clock.now = T0 + 3600 - 301  # 5 min 1 s left: still cached
    assert credentials.for_app(app).access_key == "ASIAKEY1000000000000"
    clock.now = T0 + 3600 - 299  # under 5 min: refresh
    assert credentials.for_app(app).access_key == "ASIAKEY2000000000000"


def test_apps_are_kept_apart(sts: tuple[Any, Stubber]) -> None:
    client, stub = sts
    stub.add_response("assume_role", _response("ASIAKEYA000000000000", T0 + 3600), _params())
    stub.add_response("assume_role", _response("ASIAKEYB000000000000", T0 + 3600),
                      _params(app_id="cards-bot", bu="cards", external_id="ext-cards-01"))
    credentials = AssumedRoleCredentials(client, ROLE, clock=Clock())
    a = make_app("payments-bot", "payments", "ext-7f3a9c01")
    b = make_app("cards-bot", "cards", "ext-cards-01")
    assert credentials.for_app(a).access_key == "ASIAKEYA000000000000"
    assert credentials.for_app(b).access_key == "ASIAKEYB000000000000"
    assert credentials.for_app(a).access_key == "ASIAKEYA000000000000"


def test_client_factory_is_called_lazily_once(sts: tuple[Any, Stubber]) -> None:
    client, stub = sts
    made: list[int] = []

    def factory() -> Any:
        made.append(1)
        return client

    credentials = AssumedRoleCredentials(factory, ROLE, clock=Clock())
    assert made == []
    stub.add_response("assume_role", _response("ASIAKEY1000000000000", T0 + 3600), _params())
    credentials.for_app(make_app("payments-bot", "payments", "ext-7f3a9c01"))
    assert made == [1]


def test_concurrent_callers_share_one_assume_role(sts: tuple[Any, Stubber]) -> None:
    client, stub = sts
    stub.add_response("assume_role", _response("ASIAKEY1000000000000", T0 + 3600), _params())
    credentials = AssumedRoleCredentials(client, ROLE, clock=Clock())
    app = make_app("payments-bot", "payments", "ext-7f3a9c01")
    keys: list[str] = []
    threads = [threading.Thread(target=lambda: keys.append(credentials.for_app(app).access_key))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert keys == ["ASIAKEY1000000000000"] * 8  # a second STS call would have hit the empty Stubber and failed


def test_access_denied_is_a_safe_permission_error(sts: tuple[Any, Stubber]) -> None:
    client, stub = sts
    stub.add_client_error("assume_role", "AccessDenied", http_status_code=403,
                          service_message=f"User: arn:aws:sts::111122223333:assumed-role/x is not authorized on {ROLE}")
    with pytest.raises(PermissionDenied) as info:
        AssumedRoleCredentials(client, ROLE, clock=Clock()).for_app(make_app())
    assert info.value.status == 403 and ROLE not in info.value.message and "111122223333" not in info.value.message


@pytest.mark.parametrize("code, status", [("RegionDisabledException", 403), ("Throttling", 400),
                                          ("InternalFailure", 500)])
def test_other_sts_errors_are_503(sts: tuple[Any, Stubber], code: str, status: int) -> None:
    client, stub = sts
    stub.add_client_error("assume_role", code, http_status_code=status)
    with pytest.raises(ServiceUnavailable) as info:
        AssumedRoleCredentials(client, ROLE, clock=Clock()).for_app(make_app())
    assert info.value.status == 503
