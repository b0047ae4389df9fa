#!/usr/bin/env bash
# The whole test suite: lint, types, unit tests, notebooks (nbval) and browser tests.
# Installs what it needs itself (.venv, the dev extras, graphviz and chromium when permitted).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh dev graphviz,chromium
echo "[test] ruff"; ruff check llmtaskgraph tests
echo "[test] mypy"; mypy
echo "[test] pytest"
# --nbval collects only the .ipynb files under notebooks/ (outputs compared after the sanitizers);
# .py tests are collected as usual.
python -m pytest -q -p no:cacheprovider tests notebooks \
  --nbval --nbval-current-env --nbval-cell-timeout=120 --nbval-sanitize-with notebooks/nbval_sanitize.cfg "$@"
