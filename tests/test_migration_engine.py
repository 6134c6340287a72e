"""The migration engine on real stores and real models: packaged all-MiniLM-L6-v2 -> tiny Qwen3."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import numpy as np
import pytest

from qwen3_memory.errors import EncodeOutOfMemory
from qwen3_memory.memory import Memory
from qwen3_memory.migration import jobs as J
from qwen3_memory.migration.engine import MigrationEngine
from qwen3_memory.migration.jobs import JobNotFound, JobStateError
from qwen3_memory.migration.strategies import StrategyRefused, padded_space
from qwen3_memory.migration.verify import verify_channel
from qwen3_memory.space import EmbeddingSpace
from tests.factories import TOPICS, message, qwen3_target

pytestmark = pytest.mark.usefixtures("backend")  # every test runs on SQLite + FAISS and on Postgres


async def fill(memory: Memory, channels: dict[tuple[int, int], int], start_id: int = 10_000) -> list[int]:
    """Post ``n`` messages in each (guild, channel) through the real capture path."""
    ids, next_id = [], start_id
    for (guild, channel), n in channels.items():
        for i in range(n):
            await memory.capture.submit(message(next_id, f"{TOPICS[i % len(TOPICS)]} (note {i})", guild, channel))
            ids.append(next_id)
            next_id += 1
    await memory.capture.drain()
    return ids


@pytest.fixture
async def filled(memory) -> Memory:
    await fill(memory, {(1, 10): 40, (1, 11): 25, (2, 20): 30})
    return memory


async def test_full_migration_swaps_every_channel_smallest_first(filled, tiny_qwen3_dir):
    engine = MigrationEngine(filled)
    job = await engine.start(qwen3_target(tiny_qwen3_dir), backup=False)
    assert [c.total for c in await engine.jobs.channels(job.id)] == [25, 30, 40]
    job = await engine.run(job.id)
    assert job.status == J.COMPLETED
    target = await filled.store.get_space(job.target_space_id)
    for guild, channel, n in [(1, 10, 40), (1, 11, 25), (2, 20, 30)]:
        state = await filled.store.get_channel(guild, channel)
        assert state.read_space_id == target.id
        assert set(state.write_space_ids) == {job.source_space_id, target.id}  # old kept until finalize
        assert await filled.store.count_vectors(target.id, guild, channel) == n
    assert re.search(r"qwen3_migration_\d{8}_\d{6}(_\d+)?\.log$", job.log_path)
    log_text = Path(job.log_path).read_text()
    assert "verified: PASS" in log_text and "completed" in log_text


async def test_recall_keeps_working_and_new_messages_reach_the_new_space(filled, tiny_qwen3_dir):
    engine = MigrationEngine(filled)
    job = await engine.start(qwen3_target(tiny_qwen3_dir), backup=False, batch_size=4)
    spaces = {job.source_space_id, job.target_space_id}
    stop = asyncio.Event()
    recalls, posted = [], []

    async def keep_recalling():
        while not stop.is_set():
            for guild, channel in [(1, 10), (1, 11), (2, 20)]:
                hits = await filled.recaller.recall(guild, channel, "when is the raid", filled.recall_options())
                recalls.append({h.space_id for h in hits})
                assert all(h.message.channel_id == channel and h.message.guild_id == guild for h in hits)
            await asyncio.sleep(0)

    async def keep_posting():
        next_id = 50_000
        while not stop.is_set():
            await filled.capture.submit(message(next_id, f"posted during the migration {next_id}", 1, 10))
            posted.append(next_id)
            next_id += 1
            await asyncio.sleep(0.005)

    tasks = [asyncio.create_task(keep_recalling()), asyncio.create_task(keep_posting())]
    job = await engine.run(job.id)
    stop.set()
    await asyncio.gather(*tasks)  # a failed recall would raise here
    await filled.capture.drain()
    assert job.status == J.COMPLETED
    assert recalls and all(s <= spaces and len(s) <= 1 for s in recalls)  # one space per answer, never mixed
    assert len(posted) > 5
    vectors = await filled.store.get_vectors(job.target_space_id, posted)
    assert set(vectors) == set(posted)  # every message posted mid-migration is in the new space
    target = await filled.store.get_space(job.target_space_id)
    _, found = await filled.store.search_many(target, 1, 10, np.stack([vectors[i] for i in posted]), 1)
    assert found[:, 0].tolist() == posted  # and searchable: each finds itself first in the channel's index


async def test_pause_and_resume_at_batch_boundaries(filled, tiny_qwen3_dir):
    engine = MigrationEngine(filled)
    job = await engine.start(qwen3_target(tiny_qwen3_dir), backup=False, batch_size=2)
    task = engine.launch(job.id)
    while sum(c.done for c in await engine.jobs.channels(job.id)) < 6:
        await asyncio.sleep(0.01)
    await engine.pause(job.id)
    paused = await task
    assert paused.status == J.PAUSED
    done_at_pause = sum(c.done for c in await engine.jobs.channels(job.id))
    assert 0 < done_at_pause < 95
    await asyncio.sleep(0.05)
    assert sum(c.done for c in await engine.jobs.channels(job.id)) == done_at_pause  # nothing moves while paused
    job = await engine.resume(job.id, background=False)
    assert job.status == J.COMPLETED
    channels = await engine.jobs.channels(job.id)
    assert all(c.status == J.SWAPPED and c.done == c.total for c in channels)


async def test_cancel_stops_dual_write_and_keeps_reading_the_old_space(filled, tiny_qwen3_dir):
    engine = MigrationEngine(filled)
    job = await engine.start(qwen3_target(tiny_qwen3_dir), backup=False, batch_size=2, auto_swap=False)
    engine.launch(job.id)
    await asyncio.sleep(0.05)
    job = await engine.cancel(job.id)
    assert job.status == J.CANCELLED
    for state in await filled.store.list_channels():
        assert state.read_space_id == job.source_space_id
        assert job.target_space_id not in state.write_space_ids
    with pytest.raises(JobStateError):
        await engine.resume(job.id)


async def test_only_one_unfinished_job_at_a_time(filled, tiny_qwen3_dir):
    engine = MigrationEngine(filled)
    await engine.start(qwen3_target(tiny_qwen3_dir), backup=False)
    with pytest.raises(JobStateError, match="resume or cancel it first"):
        await engine.start(qwen3_target(tiny_qwen3_dir, 32), backup=False)


async def test_guild_scope_hides_other_guilds_jobs(filled, tiny_qwen3_dir):
    engine = MigrationEngine(filled)
    job = await engine.start(qwen3_target(tiny_qwen3_dir), backup=False, guild_id=2)
    assert [(c.guild_id, c.channel_id) for c in await engine.jobs.channels(job.id)] == [(2, 20)]
    with pytest.raises(JobNotFound):
        await engine.status(job.id, guild_id=1)
    with pytest.raises(JobNotFound):
        await engine.swap(job.id, guild_id=1)


async def test_swap_rollback_finalize_cycle(filled, tiny_qwen3_dir):
    engine = MigrationEngine(filled)
    job = await engine.start(qwen3_target(tiny_qwen3_dir), backup=False, auto_swap=False)
    job = await engine.run(job.id)
    assert {c.status for c in await engine.jobs.channels(job.id)} == {J.VERIFIED}
    with pytest.raises(JobStateError):
        await engine.finalize(job.id, confirm=True)  # nothing swapped yet
    assert sorted(await engine.swap(job.id)) == [10, 11, 20]
    assert (await filled.store.get_channel(1, 10)).read_space_id == job.target_space_id
    assert await engine.rollback(job.id, 10) == [10]  # instant: the old space was kept current
    assert (await filled.store.get_channel(1, 10)).read_space_id == job.source_space_id
    await filled.capture.submit(message(90_000, "posted after the rollback", 1, 10))
    await filled.capture.drain()
    assert 90_000 in await filled.store.get_vectors(job.target_space_id, [90_000])  # dual-write continues
    assert await engine.swap(job.id, 10) == [10]
    with pytest.raises(JobStateError, match="confirm"):
        await engine.finalize(job.id, confirm=False)
    source = await filled.store.get_space(job.source_space_id)
    await filled.store.flush()
    old_index_file = (await filled.store.index_info(source, 1, 10, load=False)).location  # None on Postgres
    old_index_file = old_index_file and Path(old_index_file)
    assert old_index_file is None or old_index_file.exists()
    assert sorted(await engine.finalize(job.id, confirm=True)) == [10, 11, 20]
    assert await filled.store.vector_counts(1, 10) == {job.target_space_id: 41}
    assert old_index_file is None or not old_index_file.exists()
    assert (await filled.store.get_channel(1, 10)).write_space_ids == (job.target_space_id,)
    with pytest.raises(JobStateError, match="restore the backup"):
        await engine.rollback(job.id, 10)


async def test_compare_returns_both_lists(filled, tiny_qwen3_dir):
    engine = MigrationEngine(filled)
    job = await engine.run((await engine.start(qwen3_target(tiny_qwen3_dir), backup=False, auto_swap=False)).id)
    old, new = await engine.compare(job.id, 1, 10, "when does the raid start", k=3)
    assert len(old) == 3 and len(new) == 3
    assert {h.space_id for h in old} == {job.source_space_id} and {h.space_id for h in new} == {job.target_space_id}
    assert "raid" in old[0].message.content  # the real old model understands the question


# ---------------------------------------------------------------- verification


@pytest.mark.sqlite_only  # pgvector refuses NaN at write time (tests/test_pg_backend.py)
async def test_verify_catches_a_corrupted_vector(filled, tiny_qwen3_dir):
    engine = MigrationEngine(filled)
    job = await engine.run((await engine.start(qwen3_target(tiny_qwen3_dir), backup=False, auto_swap=False)).id)
    target = await filled.store.get_space(job.target_space_id)
    bad = np.full(target.dimension, np.nan, dtype=np.float32).tobytes()
    async with filled.store.transaction() as db:
        await db.execute(
            "UPDATE embeddings SET vector = ? WHERE space_id = ? AND message_id = ?", (bad, target.id, 10_000)
        )
    report = (await engine.verify(job.id, 10))[0]
    assert not report.passed and report.non_finite == 1
    assert any("NaN" in p for p in report.problems)


@pytest.mark.sqlite_only  # damages a FAISS index in memory; a pgvector index is the server's
async def test_verify_catches_a_corrupted_index(filled, tiny_qwen3_dir):
    engine = MigrationEngine(filled)
    job = await engine.run((await engine.start(qwen3_target(tiny_qwen3_dir), backup=False, auto_swap=False)).id)
    target = await filled.store.get_space(job.target_space_id)
    index = await filled.store.indexes.get(target, 1, 10)
    rng = np.random.default_rng(1)
    ids = index.ids()[:10]
    junk = rng.standard_normal((len(ids), target.dimension)).astype(np.float32)
    index.upsert(ids, junk / np.linalg.norm(junk, axis=1, keepdims=True))  # the index no longer matches the db
    report = await verify_channel(filled, None, target, 1, 10, sample=100)
    assert not report.passed
    assert any("retrieve their own message" in p for p in report.problems)
    index.remove(ids[:1])
    report = await verify_channel(filled, None, target, 1, 10, sample=100)
    assert any("the index holds 39 vectors, the database 40" in p for p in report.problems)


async def test_a_failed_verify_stops_the_job_before_swapping(filled, tiny_qwen3_dir, monkeypatch):
    from qwen3_memory.migration import runner as runner_module

    async def failing_verify(memory, source, target, guild, channel, **kw):
        report = await verify_channel(memory, source, target, guild, channel, **kw)
        report.problems.append("deliberate failure")
        return report

    monkeypatch.setattr(runner_module, "verify_channel", failing_verify)
    engine = MigrationEngine(filled)
    job = await engine.run((await engine.start(qwen3_target(tiny_qwen3_dir), backup=False)).id)
    assert job.status == J.FAILED and "deliberate failure" in job.error
    assert all(s.read_space_id == job.source_space_id for s in await filled.store.list_channels())


# ---------------------------------------------------------------- strategies


async def test_transform_fits_a_linear_map_and_reports_its_quality(memory, tiny_qwen3_dir):
    await fill(memory, {(1, 10): 120})
    engine = MigrationEngine(memory)
    job = await engine.start(
        qwen3_target(tiny_qwen3_dir), "transform", backup=False, transform_sample=100, force=True
    )  # under the measured minimum (5 per source dimension): allowed only when forced
    job = await engine.run(job.id)
    assert job.status == J.COMPLETED
    log_text = Path(job.log_path).read_text()
    assert "transform fitted on 100 messages" in log_text and "held-out retention vs regenerate" in log_text
    target = await memory.store.get_space(job.target_space_id)
    ids, vectors, _ = await memory.store.load_vectors(target, 1, 10)
    assert len(ids) == 120 and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)


async def test_transform_refuses_a_sample_too_small(memory, tiny_qwen3_dir):
    await fill(memory, {(1, 10): 10})
    engine = MigrationEngine(memory)
    with pytest.raises(StrategyRefused, match="at least 1920 messages .5 per source dimension, 384-d"):
        await engine.start(qwen3_target(tiny_qwen3_dir), "transform", backup=False)
    with pytest.raises(StrategyRefused, match="the channels hold 10 messages"):
        await engine.start(qwen3_target(tiny_qwen3_dir), "transform", backup=False, transform_sample=5000)
    forced = await engine.start(qwen3_target(tiny_qwen3_dir), "transform", backup=False, force=True)
    job = await engine.run(forced.id)
    assert job.status == J.FAILED and "at least 32 messages" in job.error


async def test_truncate_refuses_different_models(filled, tiny_qwen3_dir):
    with pytest.raises(StrategyRefused, match="different models"):
        await MigrationEngine(filled).start(qwen3_target(tiny_qwen3_dir, 32), "truncate", backup=False)


async def test_truncate_within_a_matryoshka_model(make_settings, tiny_qwen3_dir):
    memory = await Memory.open(
        make_settings(
            profile="qwen3_medium_performance",
            model_overrides={"embedding_path": str(tiny_qwen3_dir), "embedding_dimension": 64},
        )
    )
    try:
        await fill(memory, {(1, 10): 20})
        engine = MigrationEngine(memory)
        job = await engine.run((await engine.start(qwen3_target(tiny_qwen3_dir, 32), "truncate", backup=False)).id)
        assert job.status == J.COMPLETED
        source, target = (
            await memory.store.get_space(job.source_space_id),
            await memory.store.get_space(job.target_space_id),
        )
        _, old, _ = await memory.store.load_vectors(source, 1, 10)
        _, new, _ = await memory.store.load_vectors(target, 1, 10)
        expected = old[:, :32] / np.linalg.norm(old[:, :32], axis=1, keepdims=True)
        assert np.allclose(new, expected, atol=1e-5)
        # new messages reach the 32-d space through the model itself: same numbers as truncating
        await memory.capture.submit(message(99_999, "a brand new message", 1, 10))
        await memory.capture.drain()
        fresh = (await memory.store.get_vectors(target.id, [99_999]))[99_999]
        full = (await memory.store.get_vectors(source.id, [99_999]))[99_999]
        assert np.allclose(fresh, full[:32] / np.linalg.norm(full[:32]), atol=1e-5)
    finally:
        await memory.close()


async def test_truncate_of_a_non_matryoshka_model_needs_force(filled):
    source = filled.settings.space
    smaller = EmbeddingSpace(**{**source.__dict__, "dimension": 128})
    with pytest.raises(StrategyRefused, match="not a Matryoshka model"):
        await MigrationEngine(filled).start(smaller, "truncate", backup=False)


async def test_pad_is_refused_without_force_and_warns_loudly_with_it(filled):
    source = filled.settings.space
    engine = MigrationEngine(filled)
    with pytest.raises(StrategyRefused, match="NOT comparable"):
        await engine.start(padded_space(source, 1024), "pad", backup=False)
    job = await engine.start(padded_space(source, 1024), "pad", backup=False, force=True)
    assert any("LOUD WARNING" in w for w in job.options["warnings"])
    job = await engine.run(job.id)
    assert job.status == J.COMPLETED
    hits = await filled.recaller.recall(1, 10, "when is the raid tonight", filled.recall_options())
    assert hits and hits[0].space_id == job.target_space_id and "raid" in hits[0].message.content


async def test_unknown_strategy_and_same_space_are_refused(filled):
    engine = MigrationEngine(filled)
    with pytest.raises(StrategyRefused, match="unknown strategy"):
        await engine.start(filled.settings.space.with_dimension(100), "magic", backup=False)
    with pytest.raises(StrategyRefused, match="same embedding space"):
        await engine.start(filled.settings.space, backup=False)


# ---------------------------------------------------------------- resources


async def test_out_of_memory_halves_the_batch_and_finishes(filled, tiny_qwen3_dir, monkeypatch):
    target = qwen3_target(tiny_qwen3_dir)
    service = filled.services.get(target)
    real_encode = service.encode_documents
    seen_sizes = []

    def encode_with_a_memory_limit(texts, batch_size=None):
        size = min(len(texts), batch_size or len(texts))  # the model's batch: a call may hold several
        seen_sizes.append(size)
        if size > 4:  # fault injection: pretend batches above 4 do not fit in memory
            raise EncodeOutOfMemory("out of memory (injected)")
        return real_encode(texts, batch_size)

    monkeypatch.setattr(service, "encode_documents", encode_with_a_memory_limit)
    engine = MigrationEngine(filled)
    job = await engine.run((await engine.start(target, backup=False, batch_size=16)).id)
    assert job.status == J.COMPLETED
    assert seen_sizes[:3] == [16, 8, 4] and max(seen_sizes[3:]) <= 5
    for guild, channel, n in [(1, 10, 40), (1, 11, 25), (2, 20, 30)]:
        assert await filled.store.count_vectors(job.target_space_id, guild, channel) == n


async def test_out_of_memory_at_batch_size_one_fails_with_a_clear_message(filled, tiny_qwen3_dir, monkeypatch):
    target = qwen3_target(tiny_qwen3_dir)
    service = filled.services.get(target)

    def always_out_of_memory(texts, batch_size=None):
        raise EncodeOutOfMemory("out of memory encoding with the target model on cpu; lower the batch size")

    monkeypatch.setattr(service, "encode_documents", always_out_of_memory)
    engine = MigrationEngine(filled)
    job = await engine.run((await engine.start(target, backup=False, batch_size=2)).id)
    assert job.status == J.FAILED and "already at batch size 1" in job.error
    assert all(s.read_space_id == job.source_space_id for s in await filled.store.list_channels())


async def test_memory_threshold_shrinks_batches(make_settings, tiny_qwen3_dir):
    memory = await Memory.open(make_settings(memory_threshold_mb=256))  # any real process is above 256 MiB
    try:
        await fill(memory, {(1, 10): 30})
        engine = MigrationEngine(memory)
        job = await engine.run((await engine.start(qwen3_target(tiny_qwen3_dir), backup=False, batch_size=16)).id)
        assert job.status == J.COMPLETED
        assert engine.progress(job.id)["batch_size"] < 16
    finally:
        await memory.close()


async def test_a_pause_during_the_last_verify_is_honoured_and_resume_completes(filled, tiny_qwen3_dir, monkeypatch):
    from qwen3_memory.migration import runner as runner_module

    engine = MigrationEngine(filled)
    job = await engine.start(qwen3_target(tiny_qwen3_dir), backup=False)
    last_channel = (await engine.jobs.channels(job.id))[-1].channel_id

    async def verify_then_pause(memory, source, target, guild, channel, **kw):
        if channel == last_channel:
            await engine.pause(job.id)  # the admin pauses while the last channel is being verified
        return await verify_channel(memory, source, target, guild, channel, **kw)

    monkeypatch.setattr(runner_module, "verify_channel", verify_then_pause)
    assert (await engine.run(job.id)).status == J.PAUSED
    assert (await engine.resume(job.id, background=False)).status == J.COMPLETED


async def test_start_backs_up_the_sqlite_memory_and_leaves_postgres_to_its_server(filled, tiny_qwen3_dir, backend):
    from qwen3_memory.migration.engine import POSTGRES_BACKUP_NOTE

    job = await MigrationEngine(filled).start(qwen3_target(tiny_qwen3_dir))  # backup on, the default
    if backend == "postgres":
        assert job.backup_path is None and POSTGRES_BACKUP_NOTE in job.options["warnings"]
    else:
        assert Path(job.backup_path).is_dir() and POSTGRES_BACKUP_NOTE not in job.options["warnings"]


@pytest.mark.sqlite_only  # the lease rows; on Postgres test_shards.py covers processes sharing a job
async def test_a_second_memory_on_the_same_file_cannot_resume_a_job_that_another_runs(filled, tiny_qwen3_dir):
    import os

    engine = MigrationEngine(filled)
    job = await engine.start(qwen3_target(tiny_qwen3_dir), backup=False)
    assert await filled.claims.try_claim("job", job.id)  # this memory is running it
    await engine.jobs.set_status(job.id, J.RUNNING)
    other = await Memory.open(filled.settings, start_capture=False)  # the command line, beside the bot
    try:
        with pytest.raises(JobStateError, match=rf"migration #{job.id} is running in process {os.getpid()} on "):
            await MigrationEngine(other).resume(job.id)
        assert await MigrationEngine(other).interrupted_jobs() == []  # a restart would not adopt it either
    finally:
        await other.close()
        await filled.claims.release("job", job.id)


async def test_a_second_migration_starts_from_what_the_channels_read_not_the_profile_setting(filled, tiny_qwen3_dir):
    """After a swap to Qwen3 the settings still name MiniLM; a Matryoshka cut must start from Qwen3."""
    engine = MigrationEngine(filled)
    first = await engine.run((await engine.start(qwen3_target(tiny_qwen3_dir), backup=False)).id)
    assert first.status == J.COMPLETED
    checked = await engine.preflight(qwen3_target(tiny_qwen3_dir, 32), "truncate")  # refused across models
    assert checked.source.id == first.target_space_id
    assert filled.settings.space.key != checked.source.spec.key
