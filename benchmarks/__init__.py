"""Benchmarks of llmtaskgraph against its floor (raw asyncio) and its peers (Dask, LangGraph).

Run them all with ``bash scripts/bench.sh`` (or ``python -m benchmarks``); each prints a table with
our figure, the peers' figures measured side by side in the same process, and the ratios. They are
measurements, not tests: targets are printed next to the ratios, and a missed one is marked.
"""
