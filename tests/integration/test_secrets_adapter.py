"""LiveKit credentials read from moto's Secrets Manager through Powertools parameters, over HTTP."""

from __future__ import annotations

import json
import traceback
from collections.abc import Iterator
from typing import Any

import pytest
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters import base as parameters_base

from drain_coordinator.integrations.livekit import LiveKitCredentials
from drain_coordinator.integrations.secrets import CredentialsError, livekit_credentials
from drainctl.world.aws import REGION, LocalAws

API_KEY = "APIk3yOfTheTests"
API_SECRET = "s3cr3t-only-the-tests-know-0123456789"  # the value no message may show


def _forget_powertools_caches() -> None:
    # Powertools keeps secrets and its provider's boto3 client per process, like a warm Lambda.
    parameters.clear_caches()  # type: ignore[no-untyped-call]
    parameters_base.DEFAULT_PROVIDERS.clear()  # type: ignore[attr-defined]


@pytest.fixture
def secrets_manager(local_aws: LocalAws, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The local AWS as the Lambda sees it: endpoint, credentials and region from the environment."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", local_aws.endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    _forget_powertools_caches()
    yield local_aws.client("secretsmanager")
    _forget_powertools_caches()


def a_secret(client: Any, value: str, name: str = "livekit-drain/livekit") -> str:
    return str(client.create_secret(Name=name, SecretString=value)["ARN"])


def whole_story(error: BaseException) -> str:
    """The error as a log line with exc_info would print it: message, causes and traceback."""
    return "".join(traceback.format_exception(error))


def test_credentials_are_read_from_the_secret(secrets_manager: Any) -> None:
    # GIVEN the secret as the template documents it
    arn = a_secret(secrets_manager, json.dumps({"api_key": API_KEY, "api_secret": API_SECRET}))

    # WHEN the coordinator reads it
    credentials = livekit_credentials(arn)

    # THEN both halves are there
    assert credentials == LiveKitCredentials(api_key=API_KEY, api_secret=API_SECRET)


def test_credentials_are_cached_between_looks(secrets_manager: Any) -> None:
    # GIVEN credentials read once
    arn = a_secret(secrets_manager, json.dumps({"api_key": API_KEY, "api_secret": API_SECRET}))
    first = livekit_credentials(arn)

    # WHEN the secret is rotated and read again within the cache age
    rotated = {"api_key": "APIr0tated", "api_secret": "r0tated-secret-0123456789abcdef"}
    secrets_manager.put_secret_value(SecretId=arn, SecretString=json.dumps(rotated))
    again = livekit_credentials(arn)

    # THEN the cached value is used (one Secrets Manager call per warm Lambda and cache age), and
    # a new cold start reads the rotated one
    assert again == first
    _forget_powertools_caches()
    assert livekit_credentials(arn) == LiveKitCredentials(**rotated)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(API_SECRET, id="plain-text"),
        pytest.param(json.dumps({"api_key": API_KEY, "secret": API_SECRET}), id="no-api_secret"),
        pytest.param(json.dumps({"key": API_KEY, "api_secret": API_SECRET}), id="no-api_key"),
        pytest.param(json.dumps({"api_key": API_KEY, "api_secret": ""}), id="empty-api_secret"),
        pytest.param(json.dumps([API_KEY, API_SECRET]), id="json-list"),
        pytest.param(json.dumps(API_SECRET), id="json-string"),
    ],
)
def test_secret_of_the_wrong_shape_is_credentials_error_that_hides_the_value(
    secrets_manager: Any, value: str
) -> None:
    # GIVEN a secret that is not the JSON {"api_key", "api_secret"}
    arn = a_secret(secrets_manager, value)

    # WHEN the coordinator reads it
    with pytest.raises(CredentialsError) as caught:
        livekit_credentials(arn)

    # THEN the error names the secret's ARN, and nothing it or its causes print shows the value
    assert arn in str(caught.value)
    assert API_SECRET not in whole_story(caught.value)


def test_missing_secret_is_credentials_error_naming_it(secrets_manager: Any) -> None:
    # GIVEN an ARN no secret has
    arn = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:livekit-drain/gone-AbCdEf"

    # WHEN / THEN
    with pytest.raises(CredentialsError, match="livekit-drain/gone-AbCdEf"):
        livekit_credentials(arn)


def test_repr_of_credentials_hides_the_secret() -> None:
    # GIVEN credentials
    credentials = LiveKitCredentials(api_key=API_KEY, api_secret=API_SECRET)

    # WHEN they end up in a log line, a format string or an error message
    shown = [repr(credentials), str(credentials), f"{credentials}", f"{credentials!r}", repr([credentials])]

    # THEN the key is there to tell which one, the secret never is
    for text in shown:
        assert API_KEY in text
        assert API_SECRET not in text
        assert "***" in text
