"""``python -m qwen3_memory demo|eval|rehearse``: the offline demo, the retrieval evaluation harness and the
offline migration rehearsal (all-MiniLM-L6-v2 -> all-mpnet-base-v2)."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qwen3_memory", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    from qwen3_memory import demo  # noqa: I001 - imported here so `--help` stays fast
    from qwen3_memory import evaluation, rehearsal

    demo.add_arguments(sub.add_parser("demo", help="build a memory from the shipped sample chat and recall from it"))
    evaluation.add_arguments(sub.add_parser("eval", help="recall@k / MRR / nDCG@10 of a labelled set, per stage"))
    rehearsal.add_arguments(
        sub.add_parser("rehearse", help="migrate a labelled memory MiniLM -> mpnet offline and score old vs new")
    )
    args = parser.parse_args(argv)
    module = {"demo": demo, "eval": evaluation, "rehearse": rehearsal}[args.command]
    return module.run(args)


if __name__ == "__main__":
    sys.exit(main())
