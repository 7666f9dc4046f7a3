"""What a handler's cold start imports: in a fresh interpreter with Lambda's environment (so
Powertools' Tracer loads the X-Ray SDK as in Lambda), each handler module loads neither
pydantic (the settings and the event models come with the first invocation), nor livekit-api,
aiohttp or PyJWT (the first LiveKit request or webhook), nor what the X-Ray SDK patches when
it is let patch everything (requests, sqlite3); X-Ray does patch botocore. Nor does it load the
services or the integrations that wiring builds at the first event (boto3 is the one client
library imported at cold start), nor, but for the work queue's, any domain module: the event
types and their parsers come with the first event."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from drainctl.bench import handler_modules, lambda_like_env
from drainctl.world.world import default_template_path

NOT_AT_COLD_START = ("pydantic", "pydantic_core", "livekit", "aiohttp", "jwt", "requests", "sqlite3")
# Built, and imported, by wiring at the first event that needs them.
NOT_AT_COLD_START_OURS = (
    "drain_coordinator.services",
    "drain_coordinator.settings",
    "drain_coordinator.integrations.",
    "boto3.dynamodb",
)
AT_COLD_START_OURS = ("drain_coordinator.integrations.aws_clients",)
# The domain modules a handler's module may load. The event types and parsers come with the
# first event; the work queue's handler reads shards, whose types it imports with its module.
DOMAIN_AT_COLD_START = {"advance": {"schedule", "decide", "probe", "records"}}

_PROBE = """
import json, sys
import {module}
from aws_xray_sdk.core import patcher
print(json.dumps({{"modules": sorted({{m.split(".")[0] for m in sys.modules}}),
                  "ours": sorted(m for m in sys.modules if m.startswith(("drain_coordinator", "boto3"))),
                  "patched": sorted(patcher._PATCHED_MODULES)}}))
"""


@pytest.mark.parametrize("module", sorted(set(handler_modules(default_template_path()).values())))
def test_a_handler_import_loads_only_what_its_cold_start_needs(module: str, tmp_path: object) -> None:
    # GIVEN a fresh interpreter that looks like Lambda
    # WHEN it imports the handler module
    answer = subprocess.run(  # noqa: S603 - this interpreter, a fixed snippet
        [sys.executable, "-c", _PROBE.format(module=module)],
        cwd=str(tmp_path),
        env=lambda_like_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    seen = json.loads(answer.stdout.strip().splitlines()[-1])

    # THEN none of what the first invocation (or no invocation) needs is loaded
    assert [name for name in NOT_AT_COLD_START if name in seen["modules"]] == []
    # ... and tracing is on, patching botocore alone
    assert "aws_xray_sdk" in seen["modules"]
    assert seen["patched"] == ["botocore"]
    # ... and of ours, neither services nor integrations (but boto3's clients), nor the settings
    ours = [name for name in seen["ours"] if name not in AT_COLD_START_OURS]
    assert [name for name in ours if name.startswith(NOT_AT_COLD_START_OURS)] == []
    # ... and only the domain modules its own events need
    domain = {name.split(".")[2] for name in ours if name.startswith("drain_coordinator.domain.")}
    assert domain <= DOMAIN_AT_COLD_START.get(module.rsplit(".", 1)[1], set())
