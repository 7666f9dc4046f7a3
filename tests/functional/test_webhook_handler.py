"""The webhook handler on the recorded LiveKit webhooks: verified, deduplicated, then a drain
watching the room is looked at again at once. In-memory fakes; the tokens are minted at replay
time over the files' unchanged bodies (a recorded token is only good for five minutes)."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import jwt
import pytest

from drain_coordinator import wiring
from drain_coordinator.domain.probe import WorkerTask
from drain_coordinator.domain.records import DrainOutcome, DrainRecord
from drain_coordinator.domain.webhooks import (
    Ignore,
    IndexAgent,
    LookAgain,
    RoomWebhook,
    intent_of,
    staleness,
)
from drain_coordinator.handlers import lifecycle, webhook
from drain_coordinator.integrations.livekit import LiveKitCredentials
from drain_coordinator.integrations.secrets import CredentialsError
from drain_coordinator.integrations.store import StoreError
from drain_coordinator.services.drains import DrainStep
from drain_coordinator.services.webhooks import WebhookService
from drainctl.world.livekit_server import DEFAULT_API_KEY, DEFAULT_API_SECRET
from drainctl.world.webhooks import request_body, resign, sign
from tests.factories import T0, a_record
from tests.fakes import FakeLambdaContext
from tests.functional.conftest import CI_ARN, INSTANCE, Harness, load_event

JOINED = "livekit-webhook-participant-joined.json"
LEFT = "livekit-webhook-participant-left.json"
FINISHED = "livekit-webhook-room-finished.json"
TERMINATE = "asg-terminate-lifecycle-action.json"
# The agent and room the recorded webhooks speak of.
TASK = "arn:aws:ecs:us-east-1:123456789012:task/livekit-agents/5f1c2d3e4b5a69788796a5b4c3d2e1f0"
ROOM = "call-00001"
AGENT = "agent-00001"


@dataclass
class FakeRoomIndex:
    rooms: dict[str, tuple[str, str]] = field(default_factory=dict)  # room -> (task, identity)
    left_at: dict[str, float] = field(default_factory=dict)  # rooms whose agent left: when

    def record_agent(self, room: str, task_arn: str, identity: str, at: float) -> None:
        self.rooms[room] = (task_arn, identity)
        self.left_at.pop(room, None)

    def left(self, room: str, identity: str, at: float) -> bool:
        held = self.rooms.get(room)
        if held is None or held[1] != identity:
            return False
        self.left_at[room] = at
        return True

    def forget(self, room: str, identity: str = "") -> bool:
        held = self.rooms.get(room)
        if held is None or (identity and held[1] != identity):
            return False
        del self.rooms[room]
        self.left_at.pop(room, None)
        return True

    def task_of(self, room: str) -> str | None:
        held = self.rooms.get(room)
        return None if held is None else held[0]


@dataclass
class FakeLedger:
    seen: set[str] = field(default_factory=set)
    released: list[str] = field(default_factory=list)

    taken_ids: list[str] = field(default_factory=list)

    def first_sighting(self, event_id: str, created_at: float, hold_seconds: float | None = None) -> bool:
        if event_id in self.seen:
            return False
        self.seen.add(event_id)
        return True

    def taken(self, event_id: str) -> None:
        self.taken_ids.append(event_id)

    def release(self, event_id: str) -> None:
        self.seen.discard(event_id)
        self.released.append(event_id)


@dataclass
class Webhooks:
    harness: Harness
    index: FakeRoomIndex
    ledger: FakeLedger
    service: WebhookService


@pytest.fixture
def webhooks(harness: Harness) -> Webhooks:
    index, ledger = FakeRoomIndex(), FakeLedger()
    service = WebhookService(
        credentials=lambda: LiveKitCredentials(DEFAULT_API_KEY, DEFAULT_API_SECRET),
        drains=harness.coordinator,
        index=index,
        ledger=ledger,
        clock=harness.clock,
    )
    wiring.install(wiring.settings(), harness.coordinator, harness.tracker, service)
    return Webhooks(harness, index, ledger, service)


def signed(name: str, secret: str = DEFAULT_API_SECRET, key: str = DEFAULT_API_KEY) -> dict[str, Any]:
    """The recorded webhook with a token minted now over its body, as livekit-server would."""
    return resign(load_event(name), key, secret)


def created_at(event: dict[str, Any]) -> float:
    return float(json.loads(request_body(event))["createdAt"])


def deliver(event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = webhook.handler(event, FakeLambdaContext())
    return int(response["statusCode"]), json.loads(response["body"])


def refused_count(out: str) -> float:
    total = 0.0
    for line in out.splitlines():
        if line.startswith("{") and "_aws" in line:
            blob = json.loads(line)
            value = blob.get("WebhookRefused", 0)
            total += sum(value) if isinstance(value, list) else value
    return total


def drain_watching_the_call(harness: Harness) -> None:
    """The instance of the recorded agent's task is scaled in while it holds the recorded call."""
    harness.ecs.instances[INSTANCE] = CI_ARN
    harness.ecs.tasks[CI_ARN] = [WorkerTask(arn=TASK, last_status="RUNNING", desired_status="RUNNING")]
    harness.sessions.rooms = {ROOM: TASK}
    lifecycle.handler(load_event(TERMINATE), FakeLambdaContext())
    record = harness.store.get(INSTANCE)
    assert record is not None and record.watched_rooms == {ROOM: TASK}


def call_ends_and_worker_exits(harness: Harness) -> None:
    harness.sessions.rooms = {}
    harness.ecs.tasks[CI_ARN] = []


# --- accepted webhooks -----------------------------------------------------------------------


def test_agent_leaving_a_watched_room_releases_the_drain_at_once(webhooks: Webhooks) -> None:
    # GIVEN a drain watching the recorded call, whose call then ends and whose worker exits
    harness = webhooks.harness
    drain_watching_the_call(harness)
    call_ends_and_worker_exits(harness)
    event = signed(LEFT)
    harness.clock.t = created_at(event) + 1

    # WHEN LiveKit reports the agent left the room
    status, body = deliver(event)

    # THEN the drain is looked at at once and completed, without waiting for a reconcile tick
    assert status == 200
    assert body["action"] == "looked_again"
    assert [(s["action"], s["outcome"]) for s in body["steps"]] == [("complete", "drained")]
    # five minutes into the hook its heartbeat was due: sent first, before the look
    assert harness.lifecycle.calls == [("heartbeat", INSTANCE), ("complete:CONTINUE", INSTANCE)]
    record = harness.store.get(INSTANCE)
    assert record is not None and record.outcome is DrainOutcome.DRAINED


def test_agent_leaving_while_the_worker_still_runs_only_looks(webhooks: Webhooks) -> None:
    # GIVEN a drain whose call ended but whose worker task has not exited yet
    harness = webhooks.harness
    drain_watching_the_call(harness)
    harness.sessions.rooms = {}
    event = signed(LEFT)
    harness.clock.t = created_at(event) + 1

    # WHEN the agent's participant_left arrives
    status, body = deliver(event)

    # THEN the same decide() holds the instance while a task remains (rule 1); five minutes into
    # the hook, this look is also the one that heartbeats
    assert status == 200
    assert [(s["action"], s["sessions"], s["tasks"]) for s in body["steps"]] == [("heartbeat", 0, 1)]
    assert harness.lifecycle.calls == [("heartbeat", INSTANCE)]


def test_room_finished_of_a_watched_room_releases_the_drain(webhooks: Webhooks) -> None:
    # GIVEN a drain watching the recorded call, now over
    harness = webhooks.harness
    drain_watching_the_call(harness)
    webhooks.index.record_agent(ROOM, TASK, AGENT, T0)  # its agent's join was indexed
    call_ends_and_worker_exits(harness)
    event = signed(FINISHED)
    harness.clock.t = created_at(event) + 1

    # WHEN LiveKit reports the room finished
    status, body = deliver(event)

    # THEN the drain completes
    assert status == 200
    assert body["reason"] == "room_finished"
    assert [s["outcome"] for s in body["steps"]] == ["drained"]


def test_agent_leaving_finds_its_drain_by_key_without_reading_the_open_drains(
    webhooks: Webhooks, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a drain watching the recorded call, now over, among open drains nobody may list
    harness = webhooks.harness
    drain_watching_the_call(harness)
    call_ends_and_worker_exits(harness)

    def no_listing() -> Iterator[DrainRecord]:
        raise AssertionError("every open drain read for one webhook")

    monkeypatch.setattr(harness.store, "open_drains", no_listing)
    event = signed(LEFT)
    harness.clock.t = created_at(event) + 1

    # WHEN the call's agent leaves
    status, body = deliver(event)

    # THEN its drain, found by the agent's task, completes
    assert status == 200
    assert [s["outcome"] for s in body["steps"]] == ["drained"]


def test_webhook_for_a_room_no_drain_watches_is_taken_and_changes_nothing(webhooks: Webhooks) -> None:
    # GIVEN a drain that watches another room only
    harness = webhooks.harness
    drain_watching_the_call(harness)
    record = harness.store.get(INSTANCE)
    assert record is not None
    harness.store.items[INSTANCE] = _watching(record, {"call-99999": TASK})
    before = harness.store.get(INSTANCE)
    harness.sessions.still_held_calls = 0
    event = signed(LEFT)
    harness.clock.t = created_at(event) + 1

    # WHEN the recorded room's agent leaves
    status, body = deliver(event)

    # THEN it is acknowledged, and no drain was advanced
    assert status == 200
    assert body["action"] == "ignored"
    assert body["reason"] == "no_drain_watches_the_room"
    assert body["steps"] == []
    assert harness.store.get(INSTANCE) == before
    assert harness.sessions.still_held_calls == 0


def test_participant_joined_of_a_tagged_agent_indexes_its_room(webhooks: Webhooks) -> None:
    # GIVEN no drain at all
    event = signed(JOINED)
    webhooks.harness.clock.t = created_at(event) + 1

    # WHEN the recorded agent joins its room
    status, body = deliver(event)

    # THEN the room is indexed to the agent's task, and no drain is looked at
    assert status == 200
    assert body["action"] == "indexed"
    assert webhooks.index.rooms == {ROOM: (TASK, AGENT)}
    assert webhooks.harness.store.items == {}


def test_agent_leaving_marks_its_room_left_in_the_index(webhooks: Webhooks) -> None:
    # GIVEN the recorded agent's room in the index
    webhooks.index.rooms[ROOM] = (TASK, AGENT)
    event = signed(LEFT)
    webhooks.harness.clock.t = created_at(event) + 1

    # WHEN it leaves
    status, _ = deliver(event)

    # THEN the index marks the room left as of the event (kept a while for the task's stop to
    # count a caller the agent left behind), not held any more
    assert status == 200
    assert webhooks.index.left_at == {ROOM: created_at(event)}


def test_base64_encoded_body_is_verified_and_taken(webhooks: Webhooks) -> None:
    # GIVEN the recorded join, delivered base64-encoded as Lambda does for non-text bodies
    event = signed(JOINED)
    event["body"] = base64.b64encode(event["body"].encode()).decode()
    event["isBase64Encoded"] = True
    webhooks.harness.clock.t = created_at(event) + 1

    # WHEN it arrives
    status, body = deliver(event)

    # THEN the signature holds over the decoded bytes
    assert status == 200
    assert body["action"] == "indexed"


def test_bearer_prefixed_token_is_accepted(webhooks: Webhooks) -> None:
    # GIVEN a token sent with a "Bearer " prefix (livekit-server sends it bare)
    event = signed(JOINED)
    event["headers"]["authorization"] = "Bearer " + event["headers"]["authorization"]
    webhooks.harness.clock.t = created_at(event) + 1

    # WHEN / THEN it is verified all the same
    assert deliver(event)[0] == 200


# --- refused webhooks ------------------------------------------------------------------------


def test_unsigned_webhook_is_refused_counted_and_touches_no_drain(
    webhooks: Webhooks, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a drain watching the call, and the agent's participant_left with no Authorization
    harness = webhooks.harness
    drain_watching_the_call(harness)
    call_ends_and_worker_exits(harness)
    before = harness.store.get(INSTANCE)
    event = signed(LEFT)
    del event["headers"]["authorization"]
    harness.clock.t = created_at(event) + 1
    capsys.readouterr()

    # WHEN it arrives
    status, body = deliver(event)

    # THEN 401, counted, and the drain is exactly as it was
    assert (status, body) == (401, {"action": "refuse", "reason": "unsigned"})
    assert refused_count(capsys.readouterr().out) == 1
    assert harness.store.get(INSTANCE) == before
    assert ("complete:CONTINUE", INSTANCE) not in harness.lifecycle.calls
    assert webhooks.ledger.seen == set()


def test_webhook_signed_with_another_secret_is_refused(webhooks: Webhooks) -> None:
    # GIVEN the recorded webhook signed with our API key but someone else's secret
    harness = webhooks.harness
    drain_watching_the_call(harness)
    call_ends_and_worker_exits(harness)
    event = signed(LEFT, secret="not-the-livekit-secret-but-as-long-as-one")
    harness.clock.t = created_at(event) + 1

    # WHEN it arrives
    status, body = deliver(event)

    # THEN it is refused as badly signed and the drain stays open
    assert (status, body["reason"]) == (401, "bad_signature")
    record = harness.store.get(INSTANCE)
    assert record is not None and record.is_open


def test_webhook_issued_for_another_api_key_is_refused(webhooks: Webhooks) -> None:
    # GIVEN a token signed with our secret but naming another API key as its issuer
    event = signed(JOINED, key="APIotherkey")
    webhooks.harness.clock.t = created_at(event) + 1

    # WHEN it arrives
    status, body = deliver(event)

    # THEN it is refused as the wrong key, and nothing is indexed
    assert (status, body["reason"]) == (401, "wrong_key")
    assert webhooks.index.rooms == {}


def test_webhook_from_another_livekit_with_its_own_key_and_secret_is_refused(webhooks: Webhooks) -> None:
    # GIVEN a webhook another LiveKit signed with its own key and secret
    event = signed(JOINED, key="APIother", secret="the-other-livekits-own-secret-0123456789")
    webhooks.harness.clock.t = created_at(event) + 1

    # WHEN / THEN it is refused
    assert deliver(event)[0] == 401
    assert webhooks.index.rooms == {}


def test_webhook_whose_body_was_changed_after_signing_is_refused(webhooks: Webhooks) -> None:
    # GIVEN a validly signed join whose body now names another task
    event = signed(JOINED)
    event["body"] = event["body"].replace(TASK, TASK[:-4] + "beef")
    webhooks.harness.clock.t = created_at(event) + 1

    # WHEN it arrives
    status, body = deliver(event)

    # THEN the body hash does not match the token's: refused
    assert (status, body["reason"]) == (401, "bad_signature")
    assert webhooks.index.rooms == {}


def test_token_without_a_body_hash_is_refused(webhooks: Webhooks) -> None:
    # GIVEN an access token of ours that carries no sha256 claim (any API token would)
    event = load_event(JOINED)
    event["headers"]["authorization"] = jwt.encode(
        {"iss": DEFAULT_API_KEY, "exp": 4_102_444_800}, DEFAULT_API_SECRET, algorithm="HS256"
    )
    webhooks.harness.clock.t = created_at(event) + 1

    # WHEN / THEN it is refused
    assert deliver(event) == (401, {"action": "refuse", "reason": "bad_signature"})


def test_recorded_token_past_its_five_minutes_is_refused(webhooks: Webhooks) -> None:
    # GIVEN the recorded webhook exactly as captured: its token expired long ago
    event = load_event(JOINED)
    webhooks.harness.clock.t = created_at(event) + 1

    # WHEN it is replayed as is
    status, body = deliver(event)

    # THEN it is refused as a replay
    assert (status, body["reason"]) == (401, "replayed")


def test_duplicate_webhook_is_refused_and_advances_nothing_twice(
    webhooks: Webhooks, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a drain watching the call, the call over but the worker still running
    harness = webhooks.harness
    drain_watching_the_call(harness)
    harness.sessions.rooms = {}
    event = signed(LEFT)
    harness.clock.t = created_at(event) + 1
    first_status, _ = deliver(event)
    after_first = harness.store.get(INSTANCE)
    looks = harness.sessions.still_held_calls + harness.sessions.discover_calls
    capsys.readouterr()

    # WHEN LiveKit's retry delivers the same event again
    status, body = deliver(event)

    # THEN it is refused as a replay, counted, and the drain was not looked at again
    assert first_status == 200
    assert (status, body["reason"]) == (401, "replayed")
    assert refused_count(capsys.readouterr().out) == 1
    assert harness.store.get(INSTANCE) == after_first
    assert harness.sessions.still_held_calls + harness.sessions.discover_calls == looks


def test_webhook_created_more_than_five_minutes_ago_is_refused_even_freshly_signed(
    webhooks: Webhooks,
) -> None:
    # GIVEN a correctly signed join whose created_at is six minutes old
    event = signed(JOINED)
    webhooks.harness.clock.t = created_at(event) + 360

    # WHEN it arrives
    status, body = deliver(event)

    # THEN it cannot be a first delivery: refused, nothing recorded
    assert (status, body["reason"]) == (401, "replayed")
    assert webhooks.ledger.seen == set()
    assert webhooks.index.rooms == {}


def test_method_other_than_post_is_refused(webhooks: Webhooks, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a GET on the function URL
    event = signed(JOINED)
    event["requestContext"]["http"]["method"] = "GET"
    capsys.readouterr()

    # WHEN / THEN it is refused with 405 and counted
    assert deliver(event) == (405, {"action": "refuse", "reason": "method_not_allowed"})
    assert refused_count(capsys.readouterr().out) == 1


def test_invocation_that_is_no_function_url_request_is_bad_request(webhooks: Webhooks) -> None:
    # GIVEN an EventBridge event sent to the webhook function by mistake
    # WHEN / THEN it is answered 400
    assert deliver(load_event(TERMINATE))[0] == 400


def test_caller_leaving_is_acknowledged_without_recording_it(webhooks: Webhooks) -> None:
    # GIVEN the recorded participant_left, but of the caller (no agent, no task tag)
    event = load_event(LEFT)
    body = json.loads(event["body"])
    body["participant"].update({"identity": "caller-00001", "kind": "SIP", "attributes": {}})
    event["body"] = json.dumps(body, separators=(",", ":"))
    event = resign(event, DEFAULT_API_KEY, DEFAULT_API_SECRET)
    webhooks.harness.clock.t = created_at(event) + 1

    # WHEN it arrives
    status, answer = deliver(event)

    # THEN it is taken and ignored: no ledger write, no look
    assert (status, answer["reason"]) == (200, "not_a_tagged_agent")
    assert webhooks.ledger.seen == set()


# --- failures while acting -------------------------------------------------------------------


@dataclass
class FailingDrains:
    record: DrainRecord
    error: Exception

    def drain_of_task(self, task_arn: str) -> DrainRecord | None:
        return self.record

    def advance(self, record: DrainRecord, within: float | None = None) -> DrainStep:
        raise self.error


def _service(drains: FailingDrains, ledger: FakeLedger) -> WebhookService:
    return WebhookService(
        credentials=lambda: LiveKitCredentials(DEFAULT_API_KEY, DEFAULT_API_SECRET),
        drains=drains,
        index=FakeRoomIndex(),
        ledger=ledger,
        clock=lambda: T0 + 301,
    )


def test_store_failure_while_advancing_is_reported_and_left_to_reconcile() -> None:
    # GIVEN a drain watching the room, whose save fails in DynamoDB
    ledger = FakeLedger()
    drains = FailingDrains(_watching(a_record(), {ROOM: TASK}), StoreError("could not save a drain"))
    event = signed(LEFT)

    # WHEN the agent's participant_left is received
    outcome = _service(drains, ledger).receive(request_body(event), event["headers"]["authorization"])

    # THEN the step says so, the webhook is still taken (reconcile looks again next tick)
    assert [s["action"] for s in outcome.steps] == ["error"]
    assert ledger.seen == {"EV_Lm9sD4wQe2Ry"}


def test_unexpected_failure_releases_the_event_for_livekits_retry() -> None:
    # GIVEN a drain watching the room, whose look fails unexpectedly
    ledger = FakeLedger()
    drains = FailingDrains(_watching(a_record(), {ROOM: TASK}), RuntimeError("boom"))
    event = signed(LEFT)

    # WHEN the webhook is received
    with pytest.raises(RuntimeError, match="boom"):
        _service(drains, ledger).receive(request_body(event), event["headers"]["authorization"])

    # THEN its id is released: the retry LiveKit sends after the 5xx is taken, not refused
    assert ledger.released == ["EV_Lm9sD4wQe2Ry"]
    assert ledger.seen == set()


# --- the recorded events ---------------------------------------------------------------------


@pytest.mark.parametrize("name", [JOINED, LEFT, FINISHED])
def test_recorded_webhook_is_signed_by_the_local_worlds_livekit(name: str) -> None:
    # GIVEN a recorded webhook, exactly as captured
    event = load_event(name)
    token = event["headers"]["authorization"]

    # WHEN its token is read with the local world's dev secret, ignoring its age
    claims = jwt.decode(token, DEFAULT_API_SECRET, algorithms=["HS256"], options={"verify_exp": False})

    # THEN it was minted like livekit-server's: our key, five minutes, the body's hash
    digest = base64.b64encode(hashlib.sha256(request_body(event).encode()).digest()).decode()
    assert claims == {
        "iss": DEFAULT_API_KEY,
        "nbf": int(created_at(event)),
        "exp": int(created_at(event)) + 300,
        "sha256": digest,
    }
    assert event["headers"]["content-type"] == "application/webhook+json"
    assert sign(request_body(event), DEFAULT_API_KEY, DEFAULT_API_SECRET, now=created_at(event)) == token


# --- the pure parts --------------------------------------------------------------------------


def _hook(event: str, **fields: Any) -> RoomWebhook:
    return RoomWebhook(event_id="EV_x", event=event, created_at=T0, room=ROOM, **fields)


@pytest.mark.parametrize(
    ("hook", "intent"),
    [
        (
            _hook("participant_joined", participant_identity=AGENT, agent_task_arn=TASK),
            IndexAgent(ROOM, TASK, AGENT),
        ),
        (
            _hook("participant_left", participant_identity=AGENT, agent_task_arn=TASK),
            LookAgain(ROOM, "agent_left", AGENT, TASK),
        ),
        (_hook("room_finished"), LookAgain(ROOM, "room_finished")),
        (_hook("participant_left", participant_identity="caller-00001"), Ignore("not_a_tagged_agent")),
        (_hook("participant_joined", participant_identity="caller-00001"), Ignore("not_a_tagged_agent")),
        (_hook("room_started"), Ignore("event_room_started")),
        (_hook("track_published"), Ignore("event_track_published")),
    ],
)
def test_intent_of_each_webhook(hook: RoomWebhook, intent: object) -> None:
    # GIVEN a verified webhook
    # WHEN / THEN it asks for exactly this
    assert intent_of(hook) == intent


@pytest.mark.parametrize(
    ("age", "verdict"),
    [(0, None), (300, None), (301, "too_old"), (-300, None), (-301, "from_the_future")],
)
def test_staleness_allows_five_minutes_either_way(age: float, verdict: str | None) -> None:
    # GIVEN an event created `age` seconds before now
    # WHEN / THEN only five minutes of age (or skew) are plausible
    assert staleness(T0 - age, T0) == verdict
    assert staleness(0, T0) == "no_created_at"


def _watching(record: DrainRecord, rooms: dict[str, str]) -> DrainRecord:
    return replace(record, watched_rooms=rooms, rooms_final=True)


def test_unreadable_credentials_answer_503_for_livekit_to_retry_and_refuse_nothing(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a webhook service whose LiveKit secret cannot be read right now
    def unreadable() -> LiveKitCredentials:
        raise CredentialsError("cannot read LiveKit credentials from arn:...: GetParameterError")

    service = WebhookService(
        credentials=unreadable,
        drains=harness.coordinator,
        index=FakeRoomIndex(),
        ledger=FakeLedger(),
        clock=harness.clock,
    )
    wiring.install(wiring.settings(), harness.coordinator, harness.tracker, service)
    # WHEN a properly signed webhook arrives
    status, body = deliver(signed("livekit-webhook-participant-left.json"))
    # THEN it is not refused (that would count against the caller): LiveKit is asked to retry
    assert status == 503
    assert body == {"action": "unavailable", "reason": "CredentialsError"}
    assert refused_count(capsys.readouterr().out) == 0
