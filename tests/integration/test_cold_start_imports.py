"""What a handler's cold start imports: in a fresh interpreter with Lambda's environment (so
Powertools' Tracer loads the X-Ray SDK as in Lambda), each handler module loads neither
pydantic (the settings and the event models come with the first invocation), nor livekit-api,
aiohttp or PyJWT (the first LiveKit request or webhook), nor what the X-Ray SDK patches when
it is let patch everything (requests, sqlite3); X-Ray does patch botocore."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from drainctl.bench import handler_modules, lambda_like_env
from drainctl.world.world import default_template_path

NOT_AT_COLD_START = ("pydantic", "pydantic_core", "livekit", "aiohttp", "jwt", "requests", "sqlite3")

_PROBE = """
import json, sys
import {module}
from aws_xray_sdk.core import patcher
print(json.dumps({{"modules": sorted({{m.split(".")[0] for m in sys.modules}}),
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
