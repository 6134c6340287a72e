"""What a migration job looks like from outside: one status record, as data and as text.

Both faces read a job through :meth:`MigrationEngine.status`: the command line prints
:func:`render_status` (or ``to_dict()`` as JSON), the admin cog builds its embed from the same
record, so the two can never disagree about a job's state, its resume point or its verdicts.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from qwen3_memory.migration.jobs import ChannelJob, Job
from qwen3_memory.migration.status import CHANNEL_DONE, JobState
from qwen3_memory.migration.verify import VerifyReport
from qwen3_memory.records import SpaceRecord

INTERRUPTED = "interrupted"  # marked running or pending, but no runner in this process


@dataclass
class JobStatus:
    """A job with its channels, spaces and, while this process runs it, its live progress."""

    job: Job
    channels: list[ChannelJob]
    live: dict[str, Any] | None  # Progress.snapshot() of the runner in this process, else None
    source: SpaceRecord
    target: SpaceRecord
    running: bool = False  # a task of this process runs the job now

    @property
    def done(self) -> int:
        return sum(c.done for c in self.channels)

    @property
    def total(self) -> int:
        return sum(c.total for c in self.channels)

    @property
    def state(self) -> str:
        """The job's status, or ``interrupted`` when it is marked running but nothing here runs it."""
        if self.job.status in (JobState.RUNNING, JobState.PENDING) and not self.running:
            return INTERRUPTED
        return str(self.job.status)

    @property
    def resume_point(self) -> ChannelJob | None:
        """The first channel not done: where a resume continues."""
        return next((c for c in self.channels if c.status not in CHANNEL_DONE), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "job": vars(self.job),
            "state": self.state,
            "source": self.source.spec.key,
            "target": self.target.spec.key,
            "done": self.done,
            "total": self.total,
            "live": self.live,
            "channels": [
                {k: v for k, v in vars(c).items() if k != "report"} | {"verify": verdict(c)} for c in self.channels
            ],
        }


def verdict(channel: ChannelJob) -> bool | None:
    """The channel's last verification: passed, failed, or not verified yet (None)."""
    return (channel.report or {}).get("passed")


VERDICT_WORDS = {True: "verify passed", False: "verify FAILED", None: ""}


def describe_resume_point(channel: ChannelJob, label: str | None = None) -> str:
    """``#general (catchup, cursor 123, 40/90 done)``: where a resume continues, for either face."""
    name = label or f"channel {channel.channel_id}"
    return f"{name} ({channel.status}, cursor {channel.cursor}, {channel.done}/{channel.total} done)"


def render_status(status: JobStatus) -> str:
    """The job as plain text (the command line's ``status``). It shows the stored status: the command line
    is usually not the process that runs the job, so it cannot tell a live runner elsewhere from a dead one."""
    job = status.job
    lines = [
        f"migration #{job.id} [{job.status}] {status.source.spec.key} -> {status.target.spec.key} "
        f"({job.strategy}): {status.done}/{status.total} messages"
    ]
    if job.error:
        lines.append(f"error: {job.error}")
    point = status.resume_point
    if point is not None and job.status in (JobState.PAUSED, JobState.FAILED):
        lines.append(f"resume continues at {describe_resume_point(point)}")
    for c in status.channels:
        words = VERDICT_WORDS[verdict(c)]
        lines.append(f"  guild {c.guild_id} channel {c.channel_id}: {c.status:<11} {c.done}/{c.total} {words}")
    if job.backup_path:
        lines.append(f"backup: {job.backup_path}")
    if job.log_path:
        lines.append(f"log: {job.log_path}")
    return "\n".join(lines)


def render_verify(report: VerifyReport) -> str:
    """One line per channel, its gate verdict, plus the old-vs-new evaluation table when a labelled set was given."""
    text = f"channel {report.channel_id}: {report.summary()}"
    if report.verdict:
        text += f"\n  quality gate: {report.verdict}" + "".join(f"\n    {r}" for r in report.verdict_reasons)
    if report.evaluation is not None:
        from qwen3_memory.evaluation import format_channel_evaluation

        text += "\n" + format_channel_evaluation(report.evaluation)
    return text


def overall_evaluation(evaluations: list[dict | None]) -> dict | None:
    """Every channel's labelled queries together (``VerifyReport.evaluation`` of each channel): per space and
    stage the metrics averaged over all queries asked (each channel weighs by its queries), or None when no
    channel asked any."""
    from qwen3_memory.evaluation import METRICS

    asked = [e for e in evaluations if e and e.get("queries")]
    if not asked:
        return None
    total = sum(e["queries"] for e in asked)
    spaces = []
    for n, first in enumerate(asked[0]["spaces"]):
        metrics = {}
        for stage in asked[0]["stages"]:
            m = {
                k: sum(e["spaces"][n]["metrics"][stage]["all"][k] * e["queries"] for e in asked) / total
                for k in METRICS
            }
            m["n"] = total
            m["p50_ms"] = statistics.median(e["spaces"][n]["metrics"][stage]["all"]["p50_ms"] for e in asked)
            metrics[stage] = {"all": m}
        spaces.append({**{k: first[k] for k in ("key", "model", "dimension")}, "metrics": metrics})
    return {"queries": total, "channels": len(asked), "stages": asked[0]["stages"], "spaces": spaces}


def render_overall(overall: dict) -> str:
    """The old-vs-new table over every channel's labelled queries (what the migration does to recall)."""
    from qwen3_memory.evaluation import _table

    rows = [
        (f"{space['model']} ({space['dimension']}-d)", stage, metrics["all"])
        for space in overall["spaces"]
        for stage, metrics in space["metrics"].items()
    ]
    head = f"all channels: {overall['queries']} labelled queries in {overall['channels']} channels"
    return head + "\n" + _table(rows, first="space")
