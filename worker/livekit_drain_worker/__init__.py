"""The packaged LiveKit Agents worker for Amazon ECS (EC2 launch type).

Everything here except `app` and `example_agent` runs without livekit-agents installed, so the
drain settings, the task identity, the session tag and the scale-in protection can be checked on
their own.
"""

from __future__ import annotations

from livekit_drain_worker.tagging import SESSION_TAG_ATTRIBUTE

__all__ = ["SESSION_TAG_ATTRIBUTE"]
