"""``python -m benchmarks [--only NAME ...] [--quick]``: run the benchmarks and print their tables."""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable

import llmtaskgraph

from . import batch, children, dataset, growth, json_memory, llm_io, overhead, replay

BENCHMARKS: dict[str, Callable[[bool], str]] = {
    "overhead": lambda quick: overhead.run(repeats=1 if quick else overhead.REPEATS, n=1_000 if quick else overhead.N),
    "llm": lambda quick: llm_io.run(n=200 if quick else llm_io.CALLS),
    "replay": lambda quick: replay.run(repeats=1 if quick else 3, n=1_000 if quick else replay.N),
    "json": lambda quick: json_memory.run(repeats=1 if quick else json_memory.REPEATS, n=1_000 if quick else json_memory.N),
    "growth": lambda quick: growth.run(),
    "children": lambda quick: children.run(large=10_000 if quick else children.LARGE),
    "dataset": lambda quick: dataset.run(repeats=1 if quick else 3, n=200 if quick else dataset.N,
                                         latency_n=50 if quick else 200),
    "batch": lambda quick: batch.run(n=100 if quick else batch.CALLS),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), help="run only these benchmarks")
    parser.add_argument("--quick", action="store_true", help="small sizes: checks the benchmarks run, measures little")
    args = parser.parse_args(argv)
    print(f"# llmtaskgraph benchmarks: Python {platform.python_version()}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.2f} at start{' (--quick sizes)' if args.quick else ''}; "
          f"llmtaskgraph from {os.path.dirname(llmtaskgraph.__file__)}")
    start = time.perf_counter()
    for name in args.only or BENCHMARKS:
        print(BENCHMARKS[name](args.quick), flush=True)
    print(f"\n(all benchmarks took {time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
