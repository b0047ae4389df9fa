#!/usr/bin/env bash
# The benchmarks: our scheduler against raw asyncio, Dask and LangGraph, side by side in one run,
# printed as tables of ratios (a few minutes). Arguments go to `python -m benchmarks` (--only, --quick).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh anthropic,bench none
python -m benchmarks "$@"
