"""What the coordinator costs a month on AWS, from AWS's published prices and a workload.

An estimate, not a bill: list prices of US East (N. Virginia), arm64 Lambda, DynamoDB on-demand,
before any free tier (the free tiers are listed beside it, as they would cover most of it on a
small account). The request counts per event come from the code's paths (what each handler asks
AWS for), the durations from what `drainctl bench` measured on the local world (an upper bound:
the local servers are slower than AWS's), the memory and alarms from the template.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Final

PRICES_READ_ON: Final = "2026-12-02"


@dataclass(frozen=True)
class Price:
    usd: float
    per: str
    source: str


# The pages the prices were read from, on PRICES_READ_ON.
PRICES: Final = {
    # https://aws.amazon.com/lambda/pricing/ : Arm, US East (N. Virginia)
    "lambda_request": Price(0.20 / 1e6, "request", "https://aws.amazon.com/lambda/pricing/"),
    "lambda_gb_second": Price(0.0000133334, "GB-second (arm64)", "https://aws.amazon.com/lambda/pricing/"),
    # https://aws.amazon.com/dynamodb/pricing/on-demand/ : a strongly consistent read of up to 4 KB
    # is one read request unit, a write of up to 1 KB one write request unit
    "dynamodb_write": Price(
        0.625 / 1e6, "write request unit", "https://aws.amazon.com/dynamodb/pricing/on-demand/"
    ),
    "dynamodb_read": Price(
        0.125 / 1e6, "read request unit", "https://aws.amazon.com/dynamodb/pricing/on-demand/"
    ),
    # https://aws.amazon.com/eventbridge/pricing/ : Scheduler, after 14 million free invocations
    "scheduler_invocation": Price(
        1.00 / 1e6, "scheduled invocation", "https://aws.amazon.com/eventbridge/pricing/"
    ),
    # https://aws.amazon.com/cloudwatch/pricing/ : first 10,000 custom metrics; standard alarms
    "cloudwatch_metric": Price(0.30, "custom metric-month", "https://aws.amazon.com/cloudwatch/pricing/"),
    "cloudwatch_alarm": Price(
        0.10, "standard-resolution alarm metric-month", "https://aws.amazon.com/cloudwatch/pricing/"
    ),
    "cloudwatch_logs_gb": Price(0.50, "GB of logs ingested", "https://aws.amazon.com/cloudwatch/pricing/"),
    # https://aws.amazon.com/xray/pricing/ : after 100,000 free traces recorded a month
    "xray_trace": Price(5.00 / 1e6, "trace recorded", "https://aws.amazon.com/xray/pricing/"),
}
FREE_TIERS: Final = {
    "lambda": "1,000,000 requests and 400,000 GB-seconds a month",
    "scheduler": "14,000,000 invocations a month",
    "cloudwatch": "10 custom metrics and 10 alarm metrics a month",
    "xray": "100,000 traces recorded a month",
}
DAYS_A_MONTH: Final = 30.4


@dataclass(frozen=True)
class Workload:
    instances: int = 50
    scale_ins_a_day: int = 10
    calls_a_day: int = 10_000
    workers_per_instance: int = 2
    # LiveKit webhooks per call: room_started, participant_joined x2 (caller, agent),
    # participant_left x2, room_finished (track events not sent to the URL).
    webhooks_per_call: int = 6
    # Minutes one scale-in stays open (calls of 3-8 minutes drain within about 10).
    drain_minutes: float = 10.0
    # A hook is renewed when two periods are left of its HeartbeatTimeout (300 s): every third tick.
    ticks_between_heartbeats: int = 3
    log_bytes_per_invocation: int = 1_500


def monthly_cost(
    workload: Workload,
    *,
    memory_mb: int,
    alarms: int,
    metrics: int,
    tick_seconds: float,
    look_seconds: float,
    webhook_seconds: float,
    traced: bool = True,
) -> dict[str, Any]:
    """The month's requests and dollars, service by service."""
    gb = memory_mb / 1024
    month = DAYS_A_MONTH
    ticks = 24 * 60 * month
    scale_ins = workload.scale_ins_a_day * month
    # Per scale-in: one lifecycle invocation, a stopping and a stopped event per worker.
    task_events = 2 * workload.workers_per_instance * scale_ins
    webhooks = workload.webhooks_per_call * workload.calls_a_day * month
    # Webhooks that mean something: the agent's join (indexed) and leave, the room's end. The
    # other three are answered before any DynamoDB request.
    acted_webhooks = 3 * workload.calls_a_day * month
    invocations = {
        "reconcile": ticks,
        "lifecycle": scale_ins,
        "task_state": task_events,
        "webhook": webhooks,
    }
    seconds = {
        "reconcile": ticks * tick_seconds + scale_ins * workload.drain_minutes * look_seconds,
        "lifecycle": scale_ins * look_seconds,
        "task_state": task_events * look_seconds,
        "webhook": webhooks * webhook_seconds,
    }
    # DynamoDB: a tick's open-drain and task-stop queries (a page each), and with a drain open
    # the query of the runs' records of their looks; per drain a tick, the run's one record of
    # its looks (shared by every drain the run looked at: one open at a time here, so one each)
    # and the heartbeat's save every few ticks (a look or a task stop's sample that changed
    # nothing writes nothing); a task stop's open and close; a webhook's ledger claim and
    # release (2 writes) plus the index entry (join: 1 write; leave: pointer read + drain read +
    # index delete).
    drain_ticks = scale_ins * workload.drain_minutes
    writes = (
        drain_ticks * (1 + 1 / workload.ticks_between_heartbeats)
        + task_events * 2
        + acted_webhooks * 2
        + workload.calls_a_day * month * 2
    )
    reads = ticks * 2 + drain_ticks * 3 + acted_webhooks * 2 / 3 * 2
    traces = sum(invocations.values()) if traced else 0
    lines = {
        "lambda_requests": sum(invocations.values()) * PRICES["lambda_request"].usd,
        "lambda_gb_seconds": sum(seconds.values()) * gb * PRICES["lambda_gb_second"].usd,
        "dynamodb_writes": writes * PRICES["dynamodb_write"].usd,
        "dynamodb_reads": reads * PRICES["dynamodb_read"].usd,
        "scheduler": ticks * PRICES["scheduler_invocation"].usd,
        "cloudwatch_metrics": metrics * PRICES["cloudwatch_metric"].usd,
        "cloudwatch_alarms": alarms * PRICES["cloudwatch_alarm"].usd,
        "cloudwatch_logs": sum(invocations.values())
        * workload.log_bytes_per_invocation
        / 1e9
        * PRICES["cloudwatch_logs_gb"].usd,
        "xray": traces * PRICES["xray_trace"].usd,
    }
    return {
        "workload": asdict(workload),
        "invocations": {k: round(v) for k, v in invocations.items()},
        "gb_seconds": round(sum(seconds.values()) * gb),
        "dynamodb_writes": round(writes),
        "dynamodb_reads": round(reads),
        "traces": round(traces),
        "usd": {k: round(v, 2) for k, v in lines.items()},
        "usd_total": round(sum(lines.values()), 2),
        "usd_total_without_xray": round(sum(v for k, v in lines.items() if k != "xray"), 2),
        "webhook_share": round(
            (
                invocations["webhook"] * PRICES["lambda_request"].usd
                + seconds["webhook"] * gb * PRICES["lambda_gb_second"].usd
                + (traces and invocations["webhook"]) * PRICES["xray_trace"].usd
            )
            / max(sum(lines.values()), 1e-9),
            2,
        ),
        "prices": {k: asdict(v) for k, v in PRICES.items()},
        "prices_read_on": PRICES_READ_ON,
        "free_tiers": FREE_TIERS,
        "assumptions": {
            "memory_mb": memory_mb,
            "alarms": alarms,
            "metrics": metrics,
            "tick_seconds": tick_seconds,
            "look_seconds": look_seconds,
            "webhook_seconds": webhook_seconds,
            "traced": traced,
        },
    }
