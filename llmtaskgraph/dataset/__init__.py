"""One graph, many inputs: run a dataset, plan a re-run, compare two runs, make tables.

- :mod:`.inputs`: the inputs (a list, a JSONL/JSON/CSV file) and the id of each case;
- :mod:`.run`: :func:`run_dataset` and :class:`DatasetRun` (running, resuming, copying);
- :mod:`.shared`: what the cases of one run share (one LLM call limit, one progress line);
- :mod:`.store`: the folder of traces and its index;
- :mod:`.plan`: what running again would do; :mod:`.compare`: what changed between two runs;
- :mod:`.table`: plain rows, DataFrames and notebook HTML; :mod:`.cli`: ``llmtaskgraph dataset ...``.
"""

from __future__ import annotations

from .compare import CaseChange, Comparison, compare_runs
from .inputs import read_inputs
from .plan import DatasetPlan
from .run import DatasetReport, DatasetRun, arun_dataset, open_dataset, run_dataset
from .store import CaseResult

__all__ = [
    "CaseChange",
    "CaseResult",
    "Comparison",
    "DatasetPlan",
    "DatasetReport",
    "DatasetRun",
    "arun_dataset",
    "compare_runs",
    "open_dataset",
    "read_inputs",
    "run_dataset",
]
