"""The exceptions llmtaskgraph raises, all rooted at one class so callers can catch them together.

::

    LLMTaskGraphError
    ├── GraphValidationError (also ValueError)  a graph that cannot be run as it stands
    │   ├── InvalidTraceError                   JSON that is not a valid trace; names the field
    │   └── UnknownTaskError (also KeyError)    a task id or path that names no task; suggests close ones
    ├── RunOptionsError (also ValueError)       a run option (or backend setting) that cannot work; unknown names
    ├── MissingFunctionError (also KeyError)    registry names the graph needs but cannot find
    ├── OutputNotJSONError (also TypeError)     a task produced a value that cannot be stored
    ├── PromptError (also TypeError)            a formatter's result (or a prompt edit) that is not a prompt
    ├── LLMCallError                            an LLM request failed for good (status, API message)
    ├── OutputSchemaError (also ValueError)     a parsed output that does not match the task's `output_schema`
    ├── TaskGraphError                          a run finished with failed tasks; lists them all
    ├── SubgraphFailed                          (recorded on a TaskGraphTask) tasks inside its sub-graph failed
    ├── DatasetError (also ValueError)          dataset inputs, a dataset folder or a score that cannot be used
    ├── DrawingError (also RuntimeError)        graphviz's `dot` is missing, failed, or ran out of its time budget
    └── CLIError                                (in llmtaskgraph.cli) a bad file or argument on the command line; exit 2

Messages name task ids and fields in backticks and say what to do next.
"""

from __future__ import annotations

from collections.abc import Iterable


class LLMTaskGraphError(Exception):
    """Root of every error raised by llmtaskgraph itself."""


class GraphValidationError(LLMTaskGraphError, ValueError):
    """The graph is malformed: a missing dependency, a cycle, a duplicate id, a bad field."""


class InvalidTraceError(GraphValidationError):
    """A JSON trace could not be loaded. ``path`` locates the offending field, e.g. ``tasks[3].deps``."""

    def __init__(self, message: str, path: str = "") -> None:
        self.path = path
        super().__init__(f"invalid trace at `{path}`: {message}" if path else f"invalid trace: {message}")


class MissingFunctionError(LLMTaskGraphError, KeyError):
    """The registry lacks names the graph needs (all of them are listed at once)."""

    def __init__(self, problems: dict[str, list[str]], not_callable: dict[str, str] | None = None) -> None:
        #: registry name -> ids of the tasks that need it
        self.problems = problems
        not_callable = not_callable or {}

        def line(name: str, tasks: list[str]) -> str:
            what = f"is a {not_callable[name]}, not a function" if name in not_callable else "is missing"
            return f"  `{name}` {what} (needed by {', '.join(f'`{t}`' for t in tasks)})"

        super().__init__(
            f"the function registry cannot serve {len(problems)} name(s):\n"
            + "\n".join(line(name, tasks) for name, tasks in problems.items())
            + "\nAdd them to the registry (`registry[name] = function` for a dict, `registry.add(name, function)` or "
            "`@registry.register` for a FunctionRegistry) before running."
        )

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return str(self.args[0])


class OutputNotJSONError(LLMTaskGraphError, TypeError):
    """A registry function returned something that JSON cannot hold, so the trace could not store it."""


class RunOptionsError(LLMTaskGraphError, ValueError):
    """A run option has a value that cannot work (``max_concurrency=0``, ``break_before="id"``, an
    LLM backend without an API key, ...) or a name no run knows; raised before anything runs."""


class PromptError(LLMTaskGraphError, TypeError):
    """A formatter returned something that is not a prompt (a str, a list of messages, or a dict
    of Messages API arguments with ``messages``)."""


class LLMCallError(LLMTaskGraphError):
    """An LLM request failed after the backend's retries: an API error status, a timeout, a lost connection.

    The message reads like ``429 rate_limit_error: <the API's message> (after 2 retries)`` and never
    contains the API key.
    """

    def __init__(
        self, message: str, *, status: int | None = None, error_type: str | None = None, retries: int = 0,
        request_id: str | None = None,
    ) -> None:
        #: HTTP status of the last attempt (None when no reply arrived)
        self.status = status
        #: the API's ``error.type`` (``rate_limit_error``, ``invalid_request_error``, ...), or a local kind
        self.error_type = error_type
        #: retries made before giving up
        self.retries = retries
        #: the API's ``request-id`` of the last attempt, for support requests
        self.request_id = request_id
        super().__init__(message)


class OutputSchemaError(LLMTaskGraphError, ValueError):
    """A parsed output does not match the LLMTask's ``output_schema`` (recorded on the parse stage; the reply is
    kept, so fixing the parser re-runs without a call)."""


class TaskGraphError(LLMTaskGraphError):
    """A run finished but some tasks failed. Their outputs are absent; every completed output is kept.

    Fix the functions (or edit the trace) and run again: completed tasks are not repeated.
    """

    def __init__(self, failed: Iterable[tuple[str, str]]) -> None:
        #: (task path, one-line error) for each failed task
        self.failed = list(failed)
        lines = [f"  `{path}`: {msg}" for path, msg in self.failed]
        super().__init__(
            f"{len(self.failed)} task(s) failed:\n" + "\n".join(lines) + "\n"
            "Completed outputs are kept in the trace; fix the cause and run again to resume."
        )


class UnknownTaskError(GraphValidationError, KeyError):
    """A task id or path (``outer > inner``) that names no task of the graph; suggests close matches."""

    def __init__(self, name: str, known: Iterable[str], what: str = "task") -> None:
        import difflib

        #: the id or path that was not found
        self.name = name
        close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(f'`{c}`' for c in close)}?" if close else ""
        super().__init__(f"no {what} `{name}` in this graph{hint} (tasks inside sub-graphs are named `outer > inner`)")

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return str(self.args[0])


class SubgraphFailed(LLMTaskGraphError):
    """A TaskGraphTask failed because tasks in its sub-graph failed (they are listed)."""


class DatasetError(LLMTaskGraphError, ValueError):
    """A dataset run cannot go on as asked: an inputs file that cannot be read (names the line), case ids
    that are not unique, a folder that holds no dataset run, a saved case of another graph, or a score
    function that returned no number; raised before anything runs wherever it can be."""


class DrawingError(LLMTaskGraphError, RuntimeError):
    """Graphviz's ``dot`` could not draw: not installed, failed, or killed when its time budget ran out.
    Notebook views never raise it (they fall back to a table or a simpler layout); ``to_svg`` does."""
