"""Safe to swap, with two real models: all-MiniLM-L6-v2 (384-d) -> all-mpnet-base-v2 (768-d).

On a small slice of the shipped labelled set (ids match the memory): a regenerate passes the quality
gate and recall afterwards answers the labelled queries within the new space's own floor; a
transform fitted the old way (the first messages of the smallest channel only) is refused by the
gate, the channel stays on the old space and only ``swap --force`` moves it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qwen3_memory.evaluation import build_memory, load_eval_set
from qwen3_memory.migration import jobs as J
from qwen3_memory.migration.engine import MigrationEngine
from qwen3_memory.migration.gate import FAIL, PASS, WARN, GateRefused
from qwen3_memory.migration.runner import TRANSFORM_MAP
from qwen3_memory.migration.strategies import fit_linear_map
from qwen3_memory.recall.floors import get_floor

pytestmark = pytest.mark.slow

EVAL_SET = Path(__file__).parent / "data" / "eval_chat.jsonl"
CHANNELS = (883459505520652288, 884184281251860480)  # two English channels of one guild
MESSAGES_PER_CHANNEL = 50
QUERIES_PER_CHANNEL = 12


@pytest.fixture
def labelled_slice(tmp_path) -> Path:
    """The labelled set cut to a few dozen messages and queries per channel, every relevant message kept."""
    rows = [json.loads(line) for line in EVAL_SET.read_text(encoding="utf-8").splitlines() if line.strip()]
    lines = []
    for channel in CHANNELS:
        queries = [r for r in rows if r["type"] == "query" and r["channel_id"] == channel][:QUERIES_PER_CHANNEL]
        relevant = {i for q in queries for i in q["relevant"]}
        messages = [r for r in rows if r["type"] == "message" and r["channel_id"] == channel]
        kept = [m for m in messages if m["id"] in relevant]
        kept += [m for m in messages if m["id"] not in relevant][: MESSAGES_PER_CHANNEL - len(kept)]
        lines += sorted(kept, key=lambda m: m["id"]) + queries
    path = tmp_path / "slice.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
async def minilm_memory(make_settings, labelled_slice, mpnet_dir):
    """The slice in a memory on all-MiniLM-L6-v2, whose settings declare mpnet as the custom target."""
    mpnet = {"model": "sentence-transformers/all-mpnet-base-v2", "path": str(mpnet_dir), "dimension": 768}
    settings = make_settings(migration={"target_profile": "custom", "target_custom_model": mpnet})
    memory = await build_memory(load_eval_set(labelled_slice), settings, progress=False)
    yield memory
    await memory.close()


def mpnet_target(memory):
    return memory.settings.memory.migration.target().embedding


async def test_a_regenerate_passes_the_gate_and_recall_answers_within_the_new_floor(minilm_memory, labelled_slice):
    memory = minilm_memory
    engine = MigrationEngine(memory)
    job = await engine.run((await engine.start(mpnet_target(memory), backup=False, eval_path=labelled_slice)).id)
    assert job.status == J.COMPLETED
    for channel in await engine.jobs.channels(job.id):
        assert channel.report["verdict"] in (PASS, WARN), channel.report["verdict_reasons"]
        assert channel.status == J.SWAPPED
    floor = await get_floor(memory.store, job.target_space_id)
    assert floor is not None and floor.basis == "labelled" and floor.detail["queries"] == 2 * QUERIES_PER_CHANNEL

    answered = []
    for query in load_eval_set(labelled_slice).queries:
        hits = await memory.recall(query.guild_id, query.channel_id, query.text, k=5)
        assert all(h.space_id == job.target_space_id and h.similarity >= floor.floor for h in hits)
        answered.append(any(h.message.id in query.relevant for h in hits))
    assert np.mean(answered) >= 0.75  # not empty: the floor keeps the answers
    guild = load_eval_set(labelled_slice).queries[0].guild_id
    for nonsense in ("qzxv plorb wemfk", "配置文件的校验和不一致"):  # no answer in these English channels
        assert await memory.recall(guild, CHANNELS[0], nonsense, k=5) == []  # not noise: the floor drops it


async def test_a_transform_fitted_on_one_small_channel_is_refused_by_the_gate(minilm_memory, labelled_slice):
    memory = minilm_memory
    engine = MigrationEngine(memory)
    job = await engine.start(
        mpnet_target(memory), "transform", backup=False, force=True, eval_path=labelled_slice, transform_sample=40
    )
    # the fit the old engine made: the first messages of the smallest channel, nothing of the others
    smallest = (await engine.jobs.channels(job.id))[0]
    first = await memory.store.scroll_messages(smallest.guild_id, smallest.channel_id, 0, 40)
    old = await memory.store.get_vectors(job.source_space_id, [m.id for m in first])
    target = await memory.store.get_space(job.target_space_id)
    new = await memory.services.get(target.spec).aencode_documents([m.content for m in first])
    biased = fit_linear_map(np.stack([old[m.id] for m in first]), new)
    await engine.jobs.put_artifact(job.id, TRANSFORM_MAP, biased.to_bytes())

    job = await engine.run(job.id)
    assert job.status == J.COMPLETED
    channels = await engine.jobs.channels(job.id)
    failed = [c for c in channels if c.report["verdict"] == FAIL]
    assert failed, [c.report["verdict_reasons"] for c in channels]
    for channel in failed:
        assert channel.status == J.VERIFIED  # the automatic swap held it back
        assert (
            await memory.store.get_channel(channel.guild_id, channel.channel_id)
        ).read_space_id == job.source_space_id
    with pytest.raises(GateRefused, match=r"dense nDCG@10 .* retained"):
        await engine.swap(job.id, failed[0].channel_id)
    assert await engine.swap(job.id, failed[0].channel_id, force=True) == [failed[0].channel_id]
