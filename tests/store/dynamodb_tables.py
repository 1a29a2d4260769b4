"""DynamoDB clients and ledger tables for the store tests, on moto's server or DynamoDB Local.

Imported as a top-level module (pytest puts this folder on sys.path, as for the tests beside it).
"""
from __future__ import annotations

import uuid
from typing import Any

import boto3
from botocore.config import Config


def make_client(endpoint: str) -> Any:
    # Letters and digits only in the key id: DynamoDB Local 2+ refuses anything else.
    return boto3.client(
        "dynamodb", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
        config=Config(max_pool_connections=32, retries={"mode": "standard", "max_attempts": 2}),
    )


def create_table(client: Any) -> str:
    """A fresh table per test, laid out as infra/data-plane.yaml's: servers are shared by the run."""
    name = f"garden-ledger-{uuid.uuid4().hex[:12]}"
    client.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                   {"AttributeName": "sk", "KeyType": "RANGE"}],
    )
    client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 50})
    return name
