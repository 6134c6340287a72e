"""Job and channel statuses: StrEnums stored as plain strings, changed only along the transition tables."""

from __future__ import annotations

import pytest

from qwen3_memory.migration.jobs import JobNotFound, JobStore
from qwen3_memory.migration.status import (
    CHANNEL_TRANSITIONS,
    JOB_TRANSITIONS,
    ChannelPhase,
    JobState,
    JobStateError,
    check_job_transition,
)
from qwen3_memory.space import EmbeddingSpace

pytestmark = pytest.mark.usefixtures("backend")

SOURCE = EmbeddingSpace(model="test/source", dimension=4)
TARGET = EmbeddingSpace(model="test/target", dimension=8)


@pytest.fixture
async def jobs(any_store) -> JobStore:
    return JobStore(any_store)


@pytest.fixture
async def job(any_store, jobs):
    source, target = await any_store.ensure_space(SOURCE), await any_store.ensure_space(TARGET)
    return await jobs.create(source.id, target.id, "regenerate", 1, {}, [(1, 10, 5), (1, 11, 3)])


def test_statuses_are_the_strings_the_tables_hold():
    assert JobState.RUNNING == "running" and ChannelPhase.ROLLED_BACK == "rolled_back"
    assert f"{JobState.PAUSED}" == "paused" and f"{ChannelPhase.CATCHUP:<9}|" == "catchup  |"
    assert set(JOB_TRANSITIONS) == set(JobState) and set(CHANNEL_TRANSITIONS) == set(ChannelPhase)


def test_finished_jobs_go_nowhere():
    for final in (JobState.CANCELLED, JobState.COMPLETED):
        for new in JobState:
            with pytest.raises(JobStateError, match=f"is {final}; it cannot become {new}"):
                check_job_transition(7, final, new)


async def test_a_job_reads_back_as_enums(jobs, job):
    assert job.status is JobState.PENDING
    channels = await jobs.channels(job.id)
    assert [c.status for c in channels] == [ChannelPhase.PENDING, ChannelPhase.PENDING]
    assert all(isinstance(c.status, ChannelPhase) for c in channels)


async def test_allowed_job_changes_go_through_and_are_logged(jobs, job):
    assert await jobs.set_status(job.id, JobState.RUNNING)
    assert await jobs.set_status(job.id, JobState.PAUSED)
    assert await jobs.set_status(job.id, JobState.RUNNING)
    assert await jobs.set_status(job.id, JobState.COMPLETED)
    assert (await jobs.get(job.id)).status is JobState.COMPLETED
    assert [e[2] for e in await jobs.events(job.id)] == ["created", "running", "paused", "running", "completed"]


async def test_a_cancelled_job_cannot_be_resumed_and_nothing_is_written(jobs, job):
    await jobs.set_status(job.id, JobState.CANCELLED)

    with pytest.raises(JobStateError, match=f"migration #{job.id} is cancelled; it cannot become running"):
        await jobs.set_status(job.id, JobState.RUNNING)
    assert (await jobs.get(job.id)).status is JobState.CANCELLED
    assert [e[2] for e in await jobs.events(job.id)] == ["created", "cancelled"]


async def test_unless_leaves_a_job_that_lost_a_race_as_it_is(jobs, job):
    await jobs.set_status(job.id, JobState.PAUSED)  # an admin paused it while its runner was starting

    assert not await jobs.set_status(job.id, JobState.RUNNING, unless=(JobState.PAUSED,))
    assert (await jobs.get(job.id)).status is JobState.PAUSED


async def test_a_missing_job_is_not_found(jobs):
    with pytest.raises(JobNotFound):
        await jobs.set_status(999, JobState.RUNNING)


async def test_channels_move_only_forward_along_their_phases(jobs, job):
    await jobs.update_channel(job.id, 1, 10, "backfill", status=ChannelPhase.BACKFILL)
    await jobs.update_channel(job.id, 1, 10, cursor=42, done=3)  # progress without a status change
    await jobs.update_channel(job.id, 1, 10, "catch-up", status=ChannelPhase.CATCHUP)

    with pytest.raises(JobStateError, match="channel 10 of migration .* is catchup; it cannot become swapped"):
        await jobs.update_channel(job.id, 1, 10, "swapped", status=ChannelPhase.SWAPPED)  # never verified
    with pytest.raises(JobStateError, match="channel 11 .* is pending; it cannot become finalized"):
        await jobs.update_channel(job.id, 1, 11, "finalized", status=ChannelPhase.FINALIZED)
    channel = await jobs.channel(job.id, 1, 10)
    assert (channel.status, channel.cursor, channel.done) == (ChannelPhase.CATCHUP, 42, 3)
    assert "swapped" not in [e[2] for e in await jobs.events(job.id)]


async def test_a_failed_channel_is_retried_from_its_catch_up(jobs, job):
    for phase in (ChannelPhase.BACKFILL, ChannelPhase.CATCHUP, ChannelPhase.FAILED, ChannelPhase.CATCHUP):
        await jobs.update_channel(job.id, 1, 10, status=phase)
    assert (await jobs.channel(job.id, 1, 10)).status is ChannelPhase.CATCHUP
