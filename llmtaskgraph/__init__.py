"""llmtaskgraph: easily debuggable programs that call LLMs again and again.

Build a :class:`TaskGraph` of tasks, run it (independent tasks run at once), save the whole trace
as JSON, edit any prompt, reply or output, and run again: only what the edit affects re-runs.
"""

from __future__ import annotations

from .dataset import DatasetRun, arun_dataset, open_dataset, run_dataset
from .errors import (
    DatasetError,
    GraphValidationError,
    InvalidTraceError,
    LLMCallError,
    LLMTaskGraphError,
    MissingFunctionError,
    OutputNotJSONError,
    OutputSchemaError,
    PromptError,
    RunOptionsError,
    SubgraphFailed,
    TaskGraphError,
    UnknownTaskError,
)
from .llm import AnthropicLLM, LLMResponse, OfflineLLM, ResponseCache, ScriptedLLM
from .llm.batch import AnthropicBatchLLM
from .llm.prices import Price, set_price
from .llm.reply import Reply
from .model.agent import AgentTask, ToolCallTask, TurnTask
from .model.context import TaskContext
from .model.graph import TaskGraph
from .model.registry import FunctionRegistry
from .model.tasks import LLMTask, PythonTask, Task, TaskGraphTask
from .run.plan import Plan
from .run.scheduler import RunEvent, RunReport
from .trace.usage import Usage

__version__ = "0.1.0"

__all__ = [
    "AgentTask",
    "AnthropicBatchLLM",
    "AnthropicLLM",
    "DatasetError",
    "DatasetRun",
    "FunctionRegistry",
    "GraphValidationError",
    "InvalidTraceError",
    "LLMCallError",
    "LLMResponse",
    "LLMTask",
    "LLMTaskGraphError",
    "MissingFunctionError",
    "OfflineLLM",
    "OutputNotJSONError",
    "OutputSchemaError",
    "Plan",
    "Price",
    "PromptError",
    "PythonTask",
    "Reply",
    "ResponseCache",
    "RunEvent",
    "RunOptionsError",
    "RunReport",
    "ScriptedLLM",
    "SubgraphFailed",
    "Task",
    "TaskContext",
    "TaskGraph",
    "TaskGraphError",
    "TaskGraphTask",
    "ToolCallTask",
    "TurnTask",
    "UnknownTaskError",
    "Usage",
    "arun_dataset",
    "open_dataset",
    "run_dataset",
    "set_price",
]
