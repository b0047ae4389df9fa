#!/usr/bin/env bash
# The main job: run the demo graph (offline unless ANTHROPIC_API_KEY is set), print its output
# and write the trace to demo_trace.json. Extra arguments go to `python -m llmtaskgraph.demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh anthropic none
python -m llmtaskgraph.demo "$@"
