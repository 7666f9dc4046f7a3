"""LiveKit API credentials from Secrets Manager, cached across invocations by Powertools."""

from __future__ import annotations

from typing import Any

from drain_coordinator.integrations.livekit import LiveKitCredentials

_CACHE_SECONDS = 300  # a rotated secret is picked up within five minutes


class CredentialsError(Exception):
    """The secret is missing, unreadable, or not the JSON {"api_key": ..., "api_secret": ...}."""


def livekit_credentials(secret_arn: str) -> LiveKitCredentials:
    # Powertools' parameters come with the first secret read, not with the handler's import.
    from aws_lambda_powertools.utilities import parameters

    try:
        value: Any = parameters.get_secret(secret_arn, transform="json", max_age=_CACHE_SECONDS)
    except (parameters.GetParameterError, parameters.TransformParameterError) as exc:
        # The message names the secret, never its value.
        raise CredentialsError(
            f"cannot read LiveKit credentials from {secret_arn}: {type(exc).__name__}"
        ) from exc
    if not isinstance(value, dict) or not value.get("api_key") or not value.get("api_secret"):
        raise CredentialsError(f'secret {secret_arn} must be JSON {{"api_key": "...", "api_secret": "..."}}')
    return LiveKitCredentials(api_key=str(value["api_key"]), api_secret=str(value["api_secret"]))
