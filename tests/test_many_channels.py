"""Discord's shape: many small channels cost what their messages cost, not a fixed price per channel."""

from __future__ import annotations

import numpy as np
import pytest

from qwen3_memory.backends.sqlite.index import IndexParams, VectorIndex
from qwen3_memory.backends.sqlite.store import SQLiteStore
from qwen3_memory.memory import Memory
from qwen3_memory.migration import jobs as J
from qwen3_memory.migration import runner as runner_module
from qwen3_memory.migration.channel_probe import probe_channel_seconds
from qwen3_memory.migration.engine import MigrationEngine
from qwen3_memory.migration.jobs import ChannelJob
from qwen3_memory.migration.plan import STORE_OVERHEAD, make_plan
from qwen3_memory.migration.runner import GROUP_MESSAGES, MigrationFailed, work_units
from qwen3_memory.migration.verify import agreement_shares
from qwen3_memory.recall.floors import get_floor
from qwen3_memory.settings import SettingsError, default_settings
from qwen3_memory.space import EmbeddingSpace
from tests.factories import TOPICS, message, qwen3_target


def test_agreement_queries_are_one_budget_for_the_job_spread_by_size():
    many = agreement_shares([25] * 2000, budget=100)
    assert sum(many) == 100 and max(many) == 1
    assert all(sum(many[i : i + 20]) == 1 for i in range(0, 2000, 20))  # spread evenly, not the first 100
    assert agreement_shares([50_000], budget=100) == [100]
    assert agreement_shares([3, 1000], budget=100) == [0, 100]
    assert agreement_shares([2, 2], budget=100) == [2, 2]  # never more queries than a channel has messages
    assert agreement_shares([0, 0]) == [0, 0]


def _messages(channels: int, per_channel: int, guild_id: int = 1) -> list:
    return [
        message(1000 + c * per_channel + i, f"{TOPICS[(c + i) % len(TOPICS)]} #{c}-{i}", guild_id, 500 + c)
        for c in range(channels)
        for i in range(per_channel)
    ]


async def test_channel_states_of_a_batch_come_in_one_read_and_new_channels_in_one_transaction(memory: Memory):
    store = memory.store
    statements: list[str] = []
    await store._reader.set_trace_callback(statements.append)
    created = await store.ensure_channels({(1, 500 + c) for c in range(30)}, memory.default_space.id)
    assert len(created) == 30
    assert all(s.read_space_id == memory.default_space.id for s in created.values())
    assert all(s.write_space_ids == (memory.default_space.id,) for s in created.values())
    reads = [s for s in statements if "FROM channels" in s]
    assert len(reads) == 2, reads  # the 30 unknown, then the 30 created: not one query per channel
    other = await store.ensure_space(EmbeddingSpace(model="test/target", dimension=4))
    await store.add_write_space(1, 503, other.id)
    again = await store.channel_states([(1, 503), (1, 504), (2, 503)])
    assert set(again) == {(1, 503), (1, 504)}  # unknown channels are absent, never another guild's
    assert again[(1, 503)].write_space_ids == (memory.default_space.id, other.id)
    await store._reader.set_trace_callback(None)


async def test_capture_of_many_new_channels_builds_each_index_once_in_memory_and_writes_it_once(make_settings):
    memory = await Memory.open(make_settings(), start_capture=False)
    try:
        await memory.capture.write(_messages(channels=12, per_channel=3))
        indexes = memory.store.indexes
        assert indexes.rebuilds == 0  # nothing was read back from the database to start a new channel's index
        space = memory.default_space
        for c in range(12):
            index = indexes.cached(space.id, 1, 500 + c)
            assert index is not None and len(index) == 3 and index.dead == 0  # no slot added twice
        assert await memory.store.flush() == 12
        files = sorted(p.name for p in (indexes.vectors_dir / space.spec.key / "1").iterdir())
        assert files == [f"{500 + c}.idx" for c in range(12)]
    finally:
        await memory.close()
    reopened = await Memory.open(make_settings(), start_capture=False)
    try:
        hits = await reopened.recall(1, 507, TOPICS[(7 + 1) % len(TOPICS)], k=1)
        assert hits and hits[0].message.channel_id == 507
        assert reopened.store.indexes.rebuilds == 0  # the files written at flush were complete and current
    finally:
        await reopened.close()


async def test_the_index_cache_keeps_to_its_memory_budget_and_reloads_what_it_dropped(tmp_path):
    per_index = VectorIndex(384).nbytes + 4 * (384 * 4 + 9 + 100)  # four vectors of 384-d
    params = IndexParams(cache_bytes=5 * per_index)
    store = await SQLiteStore.open(tmp_path / "memory.sqlite3", tmp_path / "vectors", params)
    try:
        space = await store.ensure_space(EmbeddingSpace(model="test/random-384", dimension=384))
        rng = np.random.default_rng(0)
        messages = _messages(channels=12, per_channel=4)
        await store.add_messages(messages)
        vectors = rng.normal(size=(len(messages), 384)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        await store.put_vectors(space, messages, vectors)
        assert store.indexes.cached_bytes > params.cache_bytes  # unflushed: nothing may be dropped yet
        await store.flush()
        assert store.indexes.cached_bytes <= params.cache_bytes
        assert store.indexes.evictions >= 7
        for row, m in enumerate(messages):  # every channel still finds its own messages, from its file
            hits = await store.search(space, 1, m.channel_id, vectors[row], 1)
            assert hits[0][0] == m.id
        assert store.indexes.rebuilds == 0
        assert store.indexes.cached_bytes <= params.cache_bytes + per_index
    finally:
        await store.close()


def test_the_index_cache_budget_is_a_validated_setting():
    assert default_settings(index={"cache_mb": 64}).memory.index.cache_mb == 64
    with pytest.raises(SettingsError, match="index.cache_mb"):
        default_settings(index={"cache_mb": 1})


def _channel_job(channel_id: int, total: int, status=J.PENDING) -> ChannelJob:
    return ChannelJob(1, 1, channel_id, channel_id, status, 0, total, 0, None)


def test_small_pending_channels_are_grouped_and_the_others_run_alone():
    channels = [_channel_job(c, 25) for c in range(100)] + [_channel_job(100, 5000), _channel_job(101, 30)]
    channels[3] = _channel_job(3, 25, J.BACKFILL)  # resumed: runs alone, from its cursor
    units = work_units(channels)
    assert [len(u) for u in units[:3]] == [3, 1, 81]  # 81 x 25 fills GROUP_MESSAGES (2,048) up to the last whole one
    assert sum(c.total for c in units[2]) <= GROUP_MESSAGES
    assert [c.channel_id for u in units for c in u] == [c.channel_id for c in channels]  # the job's order kept
    assert units[-2] == [channels[100]] and units[-1] == [channels[101]]


async def fill_small_channels(memory: Memory, channels: int, per_channel: int) -> None:
    for m in _messages(channels, per_channel):
        await memory.capture.submit(m)
    await memory.capture.drain()


async def test_a_job_of_small_channels_migrates_them_in_groups_and_resumes_a_group_paused_midway(
    memory: Memory, tiny_qwen3_dir
):
    await fill_small_channels(memory, channels=16, per_channel=3)
    engine = MigrationEngine(memory)
    job = await engine.start(qwen3_target(tiny_qwen3_dir), backup=False, batch_size=2)
    update_channels = engine.jobs.update_channels

    paused = []

    async def pause_after_the_first_cursors(job_id, changes, event=None):
        await update_channels(job_id, changes, event)
        if not paused and all("cursor" in fields for fields in changes.values()):
            paused.append(await engine.pause(job_id))

    engine.jobs.update_channels = pause_after_the_first_cursors
    job = await engine.run(job.id)
    assert job.status == J.PAUSED
    channels = await engine.jobs.channels(job.id)
    assert {c.status for c in channels} == {J.BACKFILL}  # the group started together
    target = await memory.store.get_space(job.target_space_id)
    assert 0 < sum(c.done for c in channels) < 48  # paused midway (the batch being encoded is committed too)
    for c in channels:  # each cursor says what is stored: the resume continues from there
        assert (c.cursor > 0) == (c.done > 0)
        assert await memory.store.count_vectors(target.id, 1, c.channel_id) == c.done
    engine.jobs.update_channels = update_channels
    job = await engine.resume(job.id, background=False)
    assert job.status == J.COMPLETED
    channels = await engine.jobs.channels(job.id)
    assert {c.status for c in channels} == {J.SWAPPED}
    for c in channels:
        assert await memory.store.count_vectors(target.id, 1, c.channel_id) == 3
        assert c.report["passed"] and c.report["self_retrieval"] == 1.0
    assert sum(c.report["agreement_queries"] for c in channels) == 48  # the job's budget, capped by its messages


async def test_the_plan_adds_a_measured_fixed_cost_per_channel(memory: Memory, tiny_qwen3_dir):
    await fill_small_channels(memory, channels=6, per_channel=2)
    channels = [(1, 500 + c) for c in range(6)]
    per_channel = await probe_channel_seconds(memory.store, channels, memory.default_space.id)
    assert per_channel > 0
    plan = await make_plan(memory, qwen3_target(tiny_qwen3_dir), "regenerate", benchmark_texts=8)
    assert "per channel (measured probe" in plan.eta_basis
    encode_only = plan.benchmark.load_seconds + 12 / plan.benchmark.texts_per_second * STORE_OVERHEAD
    assert plan.eta_seconds > encode_only


async def test_a_groups_verify_and_swap_run_while_the_next_group_is_encoded(
    memory: Memory, tiny_qwen3_dir, monkeypatch
):
    await fill_small_channels(memory, channels=12, per_channel=3)
    monkeypatch.setattr(runner_module, "GROUP_MESSAGES", 16)  # groups of 5 channels (15 messages)
    engine = MigrationEngine(memory)
    job = await engine.start(qwen3_target(tiny_qwen3_dir), backup=False, batch_size=2)
    events: list[str] = []
    runner = engine.runner
    backfill, finish, swap = runner.backfill_group, runner.finish_group, engine._swap_channel

    async def logged_backfill(job, group, *args):
        events.append(f"backfill {group[0].channel_id} starts")
        try:
            return await backfill(job, group, *args)
        finally:
            events.append(f"backfill {group[0].channel_id} ends")

    async def logged_finish(job, group, *args):
        events.append(f"finish {group[0].channel_id} starts")
        return await finish(job, group, *args)

    async def logged_swap(job, guild_id, channel_id, *args):
        events.append(f"swap {channel_id}")
        return await swap(job, guild_id, channel_id, *args)

    monkeypatch.setattr(runner, "backfill_group", logged_backfill)
    monkeypatch.setattr(runner, "finish_group", logged_finish)
    monkeypatch.setattr(engine, "_swap_channel", logged_swap)
    job = await engine.run(job.id)

    assert job.status == J.COMPLETED
    firsts = sorted({int(e.split()[1]) for e in events if e.startswith("backfill")})
    assert len(firsts) == 3  # 5 + 5 + 2 channels
    for this, following in zip(firsts, firsts[1:]):  # a group finishes while the next one is encoded
        during = events.index(f"backfill {following} starts"), events.index(f"backfill {following} ends")
        assert during[0] < events.index(f"finish {this} starts") < during[1]
    swapped = [int(e.split()[1]) for e in events if e.startswith("swap")]
    assert swapped == sorted(swapped) and len(swapped) == 12  # in the job's order, each once
    assert {c.status for c in await engine.jobs.channels(job.id)} == {J.SWAPPED}


async def test_a_group_failing_verify_fails_the_job_and_leaves_the_next_group_resumable(
    memory: Memory, tiny_qwen3_dir, monkeypatch
):
    await fill_small_channels(memory, channels=9, per_channel=3)
    monkeypatch.setattr(runner_module, "GROUP_MESSAGES", 16)
    engine = MigrationEngine(memory)
    job = await engine.start(qwen3_target(tiny_qwen3_dir), backup=False, batch_size=2)
    channels = await engine.jobs.channels(job.id)
    doomed = channels[1].channel_id  # in the first group
    verify = engine.runner._verify

    async def failing_verify(job, g, c, *args):
        if c == doomed:
            raise MigrationFailed(f"channel {c} failed verification: injected")
        return await verify(job, g, c, *args)

    monkeypatch.setattr(engine.runner, "_verify", failing_verify)
    job = await engine.run(job.id)

    assert job.status == J.FAILED and "injected" in job.error
    after = {c.channel_id: c for c in await engine.jobs.channels(job.id)}
    assert all(c.status != J.SWAPPED for c in after.values())  # nothing of a failing job swapped after it
    target = await memory.store.get_space(job.target_space_id)
    for c in after.values():  # whatever the next group got to is resumable: its cursor says what is stored
        assert await memory.store.count_vectors(target.id, 1, c.channel_id) == c.done


async def test_a_groups_verify_queries_are_encoded_in_one_call_per_model(memory: Memory, tiny_qwen3_dir, monkeypatch):
    await fill_small_channels(memory, channels=12, per_channel=3)
    monkeypatch.setattr(runner_module, "GROUP_MESSAGES", 16)  # 3 groups: 5 + 5 + 2 channels
    engine = MigrationEngine(memory)
    job = await engine.start(qwen3_target(tiny_qwen3_dir), backup=False, batch_size=2)
    target = await memory.store.get_space(job.target_space_id)
    calls: dict[str, list[int]] = {"old": [], "new": []}
    for name, spec in (("old", memory.default_space.spec), ("new", target.spec)):
        service = memory.services.get(spec)
        encode = service.aencode_queries

        async def counted(texts, _encode=encode, _name=name):
            calls[_name].append(len(texts))
            return await _encode(texts)

        monkeypatch.setattr(service, "aencode_queries", counted)
    job = await engine.run(job.id)

    assert job.status == J.COMPLETED
    assert len(calls["old"]) == 3 and len(calls["new"]) == 3  # per group, not per channel
    reports = [c.report for c in await engine.jobs.channels(job.id)]
    assert sum(r["agreement_queries"] for r in reports) == 36  # the job's budget, capped by its messages
    floor = await get_floor(memory.store, target.id)
    assert floor is not None and floor.basis == "label-free" and floor.detail["samples"] >= 12
