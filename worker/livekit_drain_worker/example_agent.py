"""A minimal agent to replace with your own: it greets, echoes chat, and echoes your voice.

No speech or LLM provider, so no API key: the caller hears their own voice back and gets each
chat message returned. The job ends when the last caller leaves, which is what lets a draining
worker finish.

Bring your own agent by pointing ``LIVEKIT_AGENT_ENTRYPOINT`` at a module-level
``async def entrypoint(ctx: JobContext) -> None`` (see the worker's README).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from livekit import rtc
from livekit.agents import AutoSubscribe, JobContext

CHAT_TOPIC = "lk.chat"
GREETING = "Hello! This is the example agent: I echo what you say and what you type."
SAMPLE_RATE = 48000
NUM_CHANNELS = 1

logger = logging.getLogger(__name__)


async def entrypoint(ctx: JobContext) -> None:
    await ctx.connect(auto_subscribe=AutoSubscribe.AUDIO_ONLY)
    room = ctx.room
    background: set[asyncio.Task[None]] = set()

    def run(coro: Coroutine[Any, Any, None]) -> None:
        # Keep a reference: the loop holds tasks only weakly.
        task = asyncio.create_task(coro)
        background.add(task)
        task.add_done_callback(background.discard)

    source = rtc.AudioSource(SAMPLE_RATE, NUM_CHANNELS)
    track = rtc.LocalAudioTrack.create_audio_track("echo", source)
    await room.local_participant.publish_track(
        track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
    )

    def on_track_subscribed(
        remote_track: rtc.Track,
        _publication: rtc.RemoteTrackPublication,
        _participant: rtc.RemoteParticipant,
    ) -> None:
        if remote_track.kind == rtc.TrackKind.KIND_AUDIO:
            run(_echo_audio(remote_track, source))

    def on_chat(reader: rtc.TextStreamReader, participant_identity: str) -> None:
        run(_echo_chat(room, reader, participant_identity))

    def on_participant_disconnected(_participant: rtc.RemoteParticipant) -> None:
        if not room.remote_participants:
            ctx.shutdown(reason="caller left")

    room.on("track_subscribed", on_track_subscribed)
    room.on("participant_disconnected", on_participant_disconnected)
    room.register_text_stream_handler(CHAT_TOPIC, on_chat)

    # Audio tracks subscribed before the handler was registered.
    for participant in room.remote_participants.values():
        for publication in participant.track_publications.values():
            if publication.track is not None and publication.kind == rtc.TrackKind.KIND_AUDIO:
                run(_echo_audio(publication.track, source))

    await room.local_participant.send_text(GREETING, topic=CHAT_TOPIC)


async def _echo_audio(track: rtc.Track, source: rtc.AudioSource) -> None:
    stream = rtc.AudioStream(track, sample_rate=SAMPLE_RATE, num_channels=NUM_CHANNELS)
    try:
        async for event in stream:
            await source.capture_frame(event.frame)
    finally:
        await stream.aclose()


async def _echo_chat(room: rtc.Room, reader: rtc.TextStreamReader, identity: str) -> None:
    text = await reader.read_all()
    logger.info("chat received", extra={"participant": identity, "characters": len(text)})
    await room.local_participant.send_text(
        f"You said: {text}", topic=CHAT_TOPIC, destination_identities=[identity]
    )
