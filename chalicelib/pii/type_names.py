"""Comprehend PII type names -> Bedrock Guardrails PII entity names.

The detectors speak Comprehend's names; a Guardrails sensitive-information policy and its
ApplyGuardrail assessments use these. Checked against botocore's models: comprehend `PiiEntityType`
and bedrock-runtime `GuardrailPiiEntityType` (the test suite re-checks when botocore is present).
"""
from __future__ import annotations

COMPREHEND_TO_GUARDRAILS: dict[str, str] = {
    "CREDIT_DEBIT_NUMBER": "CREDIT_DEBIT_CARD_NUMBER",
    "CREDIT_DEBIT_CVV": "CREDIT_DEBIT_CARD_CVV",
    "CREDIT_DEBIT_EXPIRY": "CREDIT_DEBIT_CARD_EXPIRY",
    "SSN": "US_SOCIAL_SECURITY_NUMBER",
    "BANK_ROUTING": "US_BANK_ROUTING_NUMBER",
    "BANK_ACCOUNT_NUMBER": "US_BANK_ACCOUNT_NUMBER",
    "INTERNATIONAL_BANK_ACCOUNT_NUMBER": "INTERNATIONAL_BANK_ACCOUNT_NUMBER",
    "SWIFT_CODE": "SWIFT_CODE",
    "EMAIL": "EMAIL",
    "PHONE": "PHONE",
    "IP_ADDRESS": "IP_ADDRESS",
    "AWS_ACCESS_KEY": "AWS_ACCESS_KEY",
    "AWS_SECRET_KEY": "AWS_SECRET_KEY",
    "PIN": "PIN",
    "PASSWORD": "PASSWORD",
    # Same name on both sides; the local detector does not emit these, Comprehend does.
    "NAME": "NAME",
    "ADDRESS": "ADDRESS",
    "AGE": "AGE",
    "URL": "URL",
    "USERNAME": "USERNAME",
    "DRIVER_ID": "DRIVER_ID",
    "LICENSE_PLATE": "LICENSE_PLATE",
    "MAC_ADDRESS": "MAC_ADDRESS",
    "VEHICLE_IDENTIFICATION_NUMBER": "VEHICLE_IDENTIFICATION_NUMBER",
    "PASSPORT_NUMBER": "US_PASSPORT_NUMBER",
    "UK_NATIONAL_INSURANCE_NUMBER": "UK_NATIONAL_INSURANCE_NUMBER",
    "UK_UNIQUE_TAXPAYER_REFERENCE_NUMBER": "UK_UNIQUE_TAXPAYER_REFERENCE_NUMBER",
    "UK_NATIONAL_HEALTH_SERVICE_NUMBER": "UK_NATIONAL_HEALTH_SERVICE_NUMBER",
    "CA_SOCIAL_INSURANCE_NUMBER": "CA_SOCIAL_INSURANCE_NUMBER",
    "CA_HEALTH_NUMBER": "CA_HEALTH_NUMBER",
    "US_INDIVIDUAL_TAX_IDENTIFICATION_NUMBER": "US_INDIVIDUAL_TAX_IDENTIFICATION_NUMBER",
}
