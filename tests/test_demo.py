"""The offline demo's defaults (what `make demo` runs) point at the shipped sample chat and questions."""

from __future__ import annotations

import argparse
import json

from qwen3_memory import demo


def test_the_demo_defaults_name_the_shipped_corpus_and_questions_and_they_load():
    parser = argparse.ArgumentParser()
    demo.add_arguments(parser)
    args = parser.parse_args([])

    messages, names = demo.load_corpus(args.corpus)
    assert len(messages) > 3000 and len(names) == 8  # eight channels of two guilds
    assert json.loads(args.questions.read_text(encoding="utf-8"))
    assert args.data_dir.parent == args.corpus.parent.parent  # data/demo beside data/samples, in the checkout
