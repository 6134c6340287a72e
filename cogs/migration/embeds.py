"""The /migrate replies as embeds: checks, plan, live status, verification and old-vs-new hits.

Plain functions from the engine's records (and the guild, for channel names) to ``discord.Embed``;
they read nothing and change nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import discord

from qwen3_memory.migration import jobs as J
from qwen3_memory.migration.checks import Check, worst_status
from qwen3_memory.migration.plan import Plan
from qwen3_memory.migration.report import INTERRUPTED, VERDICT_WORDS, JobStatus, describe_resume_point, verdict
from qwen3_memory.migration.verify import VerifyReport
from qwen3_memory.models.profiles import Profile
from qwen3_memory.recall.pipeline import Hit
from qwen3_memory.units import human_bytes, human_duration

BAR_WIDTH = 10
FIELD_LIMIT = 1024
DESCRIPTION_LIMIT = 4000
MESSAGE_LIMIT = 2000
CHANNEL_FIELDS = 20

COLOUR = discord.Colour.blurple()
COLOURS = {"pass": discord.Colour.green(), "warn": discord.Colour.orange(), "fail": discord.Colour.red()}
JOB_ICONS = {
    J.PENDING: "🕓",
    J.RUNNING: "⚙️",
    J.PAUSED: "⏸️",
    J.CANCELLED: "⏹️",
    J.FAILED: "❌",
    J.COMPLETED: "✅",
}
CHANNEL_ICONS = {
    J.PENDING: "🕓",
    J.BACKFILL: "⚙️",
    J.CATCHUP: "🔄",
    J.VERIFIED: "☑️",
    J.SWAPPED: "🔀",
    J.ROLLED_BACK: "↩️",
    J.FINALIZED: "🧹",
    J.FAILED: "❌",
}
CHECK_ICONS = {"pass": "✅", "warn": "⚠️", "fail": "❌"}


def progress_bar(done: int, total: int, width: int = BAR_WIDTH) -> str:
    """``[██████░░░░] 60%``; an empty job counts as done."""
    fraction = 1.0 if total <= 0 else min(1.0, max(0.0, done / total))
    filled = min(width, int(fraction * width))
    return f"[{'█' * filled}{'░' * (width - filled)}] {fraction:.0%}"


def clip_lines(lines: Sequence[str], limit: int = FIELD_LIMIT) -> str:
    """As many whole lines as fit in ``limit`` characters, then how many were left out."""
    out: list[str] = []
    used = 0
    for i, line in enumerate(lines):
        line = line if len(line) <= limit - 40 else line[: limit - 41] + "…"
        more = f"… and {len(lines) - i} more"
        if used + len(line) + 1 > limit - len(more) - 1 and i < len(lines) - 1:
            out.append(more)
            break
        out.append(line)
        used += len(line) + 1
    return "\n".join(out)[:limit] or "—"


def channel_label(guild: discord.Guild | None, channel_id: int) -> str:
    channel = guild.get_channel_or_thread(channel_id) if guild is not None else None
    return f"#{channel.name}" if channel is not None else f"channel {channel_id}"


def snippet(text: str, limit: int = 90) -> str:
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return discord.utils.escape_markdown(text)


def checks_embed(checks: Sequence[Check], target: Profile) -> discord.Embed:
    overall = worst_status(checks)
    lines = [f"{CHECK_ICONS.get(c.status, '•')} **{c.name}**: {c.detail}" for c in checks]
    embed = discord.Embed(
        title=f"Migration check → {target.name}: {overall.upper()}",
        description=clip_lines(lines, DESCRIPTION_LIMIT),
        colour=COLOURS.get(overall, COLOUR),
    )
    embed.set_footer(text=f"target {target.embedding.model}, {target.embedding.dimension}-d")
    return embed


def plan_embed(plan: Plan, guild: discord.Guild | None, title: str | None = None) -> discord.Embed:
    target = plan.target
    colour = COLOURS["fail"] if plan.blockers else COLOURS["warn"] if plan.risks else COLOURS["pass"]
    embed = discord.Embed(
        title=title or f"Migration plan: {plan.strategy} → {target.model} ({target.dimension}-d)",
        description=(
            f"{len(plan.channels)} channel(s), {plan.total_messages} messages, {plan.to_migrate} to migrate, "
            "smallest channel first. Nothing has changed yet."
        ),
        colour=colour,
    )
    rows = [
        f"{channel_label(guild, c.channel_id)}: {c.messages} messages, {c.to_migrate} to migrate"
        + (f", {c.empty} without text" if c.empty else "")
        for c in plan.channels
    ]
    rows = rows or ["no channel with a memory in this server"]
    embed.add_field(name="Channels", value=clip_lines(rows), inline=False)
    eta = f"~{human_duration(plan.eta_seconds)}" if plan.eta_seconds is not None else "unknown"
    embed.add_field(
        name="Estimate",
        value=clip_lines(
            [
                f"time {eta} ({plan.eta_basis})",
                f"peak memory ~{human_bytes(plan.peak_memory_bytes)}",
                f"disk ~{human_bytes(plan.disk_needed_bytes)} (backup + new vectors)",
            ]
        ),
        inline=False,
    )
    backup = next((s.detail for s in plan.steps if s.name == "backup"), "")
    if backup:
        embed.add_field(name="Backup", value=clip_lines([backup]), inline=False)
    if plan.risks:
        embed.add_field(name="⚠️ Risks", value=clip_lines([f"• {r}" for r in plan.risks]), inline=False)
    if plan.notes:
        embed.add_field(name="Notes", value=clip_lines([f"• {n}" for n in plan.notes]), inline=False)
    if plan.blockers:
        embed.add_field(name="⛔ Refused", value=clip_lines([f"• {b}" for b in plan.blockers]), inline=False)
    return embed


def resume_point(status: JobStatus, guild: discord.Guild | None) -> str | None:
    """Where the job continues: the first channel not done, its phase and cursor."""
    point = status.resume_point
    return None if point is None else describe_resume_point(point, channel_label(guild, point.channel_id))


def status_embed(status: JobStatus, guild: discord.Guild | None, *, resumed: str | None = None) -> discord.Embed:
    """The job's state, live progress, resume point and channels: the command line's ``status``, as an embed."""
    job = status.job
    lines = [
        f"`{status.source.spec.key}` → `{status.target.spec.key}` ({job.strategy})",
        f"`{progress_bar(status.done, status.total)}` {status.done}/{status.total} messages",
    ]
    live = status.live
    if live:
        eta = human_duration(live["eta_seconds"]) if live["eta_seconds"] is not None else "unknown"
        lines.append(
            f"{live['phase']} in {channel_label(guild, live['channel_id']) if live['channel_id'] else '—'} · "
            f"{live['rate']:.1f} msg/s · ETA {eta} · batch {live['batch_size']} · RSS {live['rss_mb']:.0f} MiB · "
            f"{live['errors']} error(s)"
        )
    if resumed:
        lines.append(f"🔁 resumed after a restart at {resumed}")
    if job.error:
        lines.append(f"❗ {job.error}")
    point = resume_point(status, guild)
    state = status.state
    if state == INTERRUPTED:
        lines.append(f"⏸️ not running in this process (interrupted): `/migrate resume` continues at {point}")
    elif job.status in (J.PAUSED, J.FAILED) and point:
        lines.append(f"`/migrate resume` continues at {point}")
    embed = discord.Embed(
        title=f"Migration #{job.id}: {JOB_ICONS.get(state, '⏸️')} {state}",
        description=clip_lines(lines, DESCRIPTION_LIMIT),
        colour=COLOURS["fail"] if job.status == J.FAILED else COLOURS["pass"] if job.status == J.COMPLETED else COLOUR,
    )
    for c in status.channels[:CHANNEL_FIELDS]:
        words = VERDICT_WORDS[verdict(c)]
        value = f"{CHANNEL_ICONS.get(c.status, '•')} {c.status} · {c.done}/{c.total}{' · ' + words if words else ''}"
        if c.error:
            value += f"\n{c.error}"
        embed.add_field(name=channel_label(guild, c.channel_id), value=value[:FIELD_LIMIT], inline=True)
    files = [f"backup: {job.backup_path}" if job.backup_path else "no backup", f"log: {job.log_path}"]
    extra = len(status.channels) - CHANNEL_FIELDS
    embed.set_footer(text=("\n".join(files) + (f"\n… and {extra} more channels" if extra > 0 else ""))[:2048])
    return embed


def verify_embed(job_id: int, reports: Sequence[VerifyReport], guild: discord.Guild | None) -> discord.Embed:
    passed = all(r.passed for r in reports)
    embed = discord.Embed(
        title=f"Verification of migration #{job_id}: {'PASS' if passed else 'FAIL'}",
        description=f"{len(reports)} channel(s); the JSON holds every number, the plot the old vs new scores.",
        colour=COLOURS["pass"] if passed else COLOURS["fail"],
    )
    for r in reports[:CHANNEL_FIELDS]:
        gate = f". Quality gate: {r.verdict.upper()}: " + "; ".join(r.verdict_reasons) if r.verdict else ""
        value = r.summary() + gate
        embed.add_field(name=channel_label(guild, r.channel_id), value=snippet(value, FIELD_LIMIT), inline=False)
    if any(r.verdict == "fail" for r in reports):
        embed.set_footer(text="Channels the gate failed stay on the old space; /migrate swap force:True moves them.")
    return embed


def hits_field(hits: Sequence[Hit]) -> str:
    lines = [
        f"{rank}. `{hit.similarity:.2f}` {snippet(hit.message.author_name, 20)}: {snippet(hit.message.content, 70)}"
        for rank, hit in enumerate(hits, 1)
    ]
    return clip_lines(lines or ["nothing found"])


def compare_embed(
    status: JobStatus, query: str, old: Sequence[Hit], new: Sequence[Hit], guild: discord.Guild | None, channel_id: int
) -> discord.Embed:
    """The top hits of the old and the new space side by side."""
    embed = discord.Embed(
        title=f"Old vs new for “{snippet(query, 100)}”",
        description=f"{channel_label(guild, channel_id)}, migration #{status.job.id}; cosine similarity",
        colour=COLOUR,
    )
    embed.add_field(name=f"Old: {status.source.spec.short_name}"[:256], value=hits_field(old), inline=True)
    embed.add_field(name=f"New: {status.target.spec.short_name}"[:256], value=hits_field(new), inline=True)
    return embed
