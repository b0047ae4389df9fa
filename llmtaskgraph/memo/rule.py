"""The one rule that decides "reuse or run again", and says why.

Each task type declares its stages as data (:class:`~llmtaskgraph.model.tasks.Stage`). A stage's
stored result is reused if and only if

* its stored fingerprint equals the fingerprint of its current inputs (dependency outputs and
  ``inputs``; the graph input if the stage read it; the request and sample for the LLM call; the
  reply text for the parser), and
* the code version of the registry function it calls equals the version that computed the result
  (see :mod:`llmtaskgraph.memo.code`).

Two marks stand in for a fingerprint: :data:`~llmtaskgraph.model.tasks.EDITED` (a person set the
result of a stage that had none: kept, then bound to its inputs) and
:data:`~llmtaskgraph.model.tasks.INVALIDATED` (``graph.invalidate``: never matches). A result
without a recorded code version (a trace written before versions existed) is kept and adopts the
current version the next time the task is settled.

The scheduler asks :meth:`Memo.first_stale` before it runs a task and :meth:`Memo.fresh` between
stages; ``graph.plan`` asks the same questions with some outputs not known yet and collects
:meth:`Memo.explain`. Nothing else decides.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

from ..fingerprint import digest, stage_fingerprint
from ..model.tasks import EDITED, INVALIDATED, Stage, Task, TaskGraphTask

if TYPE_CHECKING:
    from ..model.graph import TaskGraph

__all__ = ["Memo", "reply_part"]

_SHORT = 12
"""Hex digits of a part's digest kept in ``record.basis``: enough to tell what changed, not to decide."""


def reply_part(task: Task) -> str:
    """What a parser reads of the stored reply: its text, and its blocks and stop reason when it has them
    (a reply stored as text alone, by an older trace or the offline backend, is read as its text)."""
    response = task.record.response or {}
    content, schema = response.get("content"), getattr(task, "output_schema", None)
    if content is None and schema is None:
        return digest(response.get("text"))
    parts = [response.get("text"), content, response.get("stop_reason"), schema]
    if getattr(task, "parse_reads_prompt", False):  # a tool loop's turn carries the conversation on
        parts.append(task.record.prompt)
    return digest(parts)


class Memo:
    """The rule applied to the tasks of one graph, in one run or one plan.

    ``versions`` gives the current code version of a registry name (None: not known, so not
    compared); ``llm_kind`` identifies the LLM backend (None: the one each task was last called with,
    for views that ask "was anything edited?" without a run in mind). In a plan, ``changing`` holds the ids of
    tasks that will run before the ones asked about, whose outputs are therefore not known yet,
    and ``graph_input_known=False`` says the same of the graph input (a sub-graph whose input
    formatter will run).
    """

    def __init__(
        self, graph: TaskGraph, versions: Callable[[str], str | None], llm_kind: str | None,
        changing: Collection[str] = (), graph_input_known: bool = True,
    ) -> None:
        self.graph = graph
        self.versions = versions
        self.llm_kind = llm_kind
        self.changing = changing
        self.gi_fp = digest(graph.graph_input) if graph_input_known else None

    # -- the parts a stage's fingerprint covers -----------------------------------------------------
    def deps_part(self, task: Task) -> Any:
        """Dependency output fingerprints and ``inputs``; None if one of them is not known yet."""
        tasks, changing = self.graph.tasks, self.changing
        if changing and any(d in changing for d in task.all_deps()):
            return None
        return (
            [tasks[d].record.output_fingerprint() for d in task.deps],
            {k: tasks[d].record.output_fingerprint() for k, d in task.kwdeps.items()} if task.kwdeps else {},
            task.inputs or None,
        )

    def fingerprint(self, task: Task, stage: Stage, reads_input: bool | None = None, deps_part: Any = None) -> str | None:
        """The fingerprint of ``stage``'s current inputs; None when one is not known yet (in a plan).

        ``reads_input`` defaults to what the stage did last time; ``deps_part`` may be passed when
        taken before the stage ran (a function cannot then change what it was computed from).
        """
        rec = task.record
        if reads_input is None:
            reads_input = stage.name in rec.reads_graph_input
        gi = None
        if reads_input:
            if self.gi_fp is None:
                return None
            gi = self.gi_fp
        if stage.reads == "deps":
            part = deps_part if deps_part is not None else self.deps_part(task)
            if part is None:
                return None
            return stage_fingerprint(stage.name, task.function_of(stage), part, gi)
        if stage.reads == "prompt":
            kind = self.llm_kind if self.llm_kind is not None else rec.basis.get("backend")
            return stage_fingerprint("call", kind, task.call_request(), getattr(task, "sample", 0))
        if stage.reads == "reply":
            return stage_fingerprint(stage.name, task.function_of(stage), reply_part(task), gi)
        return None  # "subgraph": its own tasks are memoized one by one

    def _version(self, task: Task, stage: Stage) -> str | None:
        return None if stage.role is None else self.versions(task.function_of(stage))

    def _code_changed(self, task: Task, stage: Stage) -> bool:
        """Whether the stored result was computed by other code than now (unknown on either side: no)."""
        kept = task.record.versions.get(stage.name)
        if kept is None:
            return False
        now = self._version(task, stage)
        return now is not None and now != kept

    # -- the decision ---------------------------------------------------------------------------------
    def fresh(self, task: Task, stage: Stage) -> bool:
        """Whether ``stage``'s stored result can be reused as it is."""
        stored = task.record.fingerprints.get(stage.name)
        if stored is None or stored == INVALIDATED or stage.reads == "subgraph":
            return False
        if stored == EDITED or (stage.reads == "prompt" and self.llm_kind is None and "backend" not in task.record.basis):
            return True
        if stage.role is not None and self._code_changed(task, stage):
            return False
        try:
            return self.fingerprint(task, stage) == stored
        except Exception:  # a hand-edited prompt that no longer makes a request: run it to say why
            return False

    def first_stale(self, task: Task) -> Stage | None:
        """The first stage that must run, or None when every stored result is reused.

        A sub-graph task always has a stage to run (entering its graph, whose tasks are memoized).
        """
        for stage in task.stage_table:
            if not self.fresh(task, stage):
                return stage
        return None

    # -- storing what a stage computed -----------------------------------------------------------------
    def store(self, task: Task, stage: Stage, reads_input: bool, deps_part: Any = None) -> None:
        """After ``stage`` ran: its fingerprint, its code version and its basis (for :meth:`explain`)."""
        rec = task.record
        fp = self.fingerprint(task, stage, reads_input, deps_part)
        if fp is None:
            rec.fingerprints.pop(stage.name, None)
            return
        rec.fingerprints[stage.name] = fp
        version = self._version(task, stage)
        if version is not None:
            rec.versions[stage.name] = version
        else:
            rec.versions.pop(stage.name, None)
        basis = rec.basis
        if stage.reads == "deps":
            for key in [k for k in basis if k.startswith(("dep:", "kw:", "gi", "inputs"))]:
                del basis[key]
            tasks = self.graph.tasks
            for d in task.deps:
                basis[f"dep:{d}"] = tasks[d].record.output_fingerprint()[:_SHORT]
            for k, d in task.kwdeps.items():
                basis[f"kw:{k}"] = tasks[d].record.output_fingerprint()[:_SHORT]
            if task.inputs:
                basis["inputs"] = digest(task.inputs)[:_SHORT]
        if stage.reads in ("deps", "reply") and reads_input:
            basis.update(self._input_parts())
        if stage.reads == "reply":
            basis["reply"] = reply_part(task)[:_SHORT]
        if stage.reads == "prompt":
            basis["prompt"] = digest(rec.prompt)[:_SHORT]
            basis["params"] = digest(getattr(task, "params", None))[:_SHORT]
            basis["sample"] = str(getattr(task, "sample", 0))
            basis["backend"] = str(self.llm_kind)

    def settle(self, task: Task) -> int:
        """Bind what a reused task kept without a fingerprint or version (edits, older traces) to now.

        Returns how many stages adopted the current code version (traces written before versions).
        """
        rec = task.record
        adopted = 0
        for stage in task.stage_table:
            fp = rec.fingerprints.get(stage.name)
            if fp is None or stage.reads == "subgraph":
                continue
            if fp == EDITED:
                try:
                    current = self.fingerprint(task, stage)
                except Exception:  # an edited reply on a task with no prompt: keep the mark
                    continue
                if current is not None:
                    rec.fingerprints[stage.name] = current
            version = self._version(task, stage)
            if version is not None and stage.name not in rec.versions:
                rec.versions[stage.name] = version
                adopted += fp != EDITED
        return adopted

    def needs_settling(self, task: Task) -> bool:
        rec = task.record
        return len(rec.versions) < sum(s.role is not None for s in task.stage_table) or EDITED in rec.fingerprints.values()

    # -- why ----------------------------------------------------------------------------------------------
    def explain(self, task: Task, stage: Stage) -> list[str]:
        """Readable reasons why ``stage`` (the first stale one) runs again."""
        rec = task.record
        stored = rec.fingerprints.get(stage.name)
        if isinstance(task, TaskGraphTask) and stage.reads == "subgraph":
            return []
        if stored == INVALIDATED:
            return ["invalidated (`graph.invalidate`)"]
        if stored is None:
            if stage.reads == "reply" and (rec.response or {}).get("edited"):
                return ["reply edited"]
            if rec.error is not None:
                return [f"failed last time ({rec.error.type} in {rec.error.stage or stage.name})"]
            if not rec.fingerprints:
                return ["never ran"]
            return [f"{stage.name} never ran"]
        reasons: list[str] = []
        if stage.role is not None and self._code_changed(task, stage):
            reasons.append(f"code of `{task.function_of(stage)}` changed")
        if stage.reads == "deps":
            reasons += self._deps_reasons(task)
        if stage.reads in ("deps", "reply") and stage.name in rec.reads_graph_input:
            reasons += self._input_reasons(task)
        if stage.reads == "prompt":
            reasons += self._call_reasons(task)
        if stage.reads == "reply" and "reply" in rec.basis and rec.basis["reply"] != reply_part(task)[:_SHORT]:
            reasons.append("reply edited" if (rec.response or {}).get("edited") else "reply changed")
        return reasons or ["inputs changed"]

    def _deps_reasons(self, task: Task) -> list[str]:
        tasks, basis, out = self.graph.tasks, task.record.basis, []
        for label, d in [*((f"dep:{d}", d) for d in task.deps), *((f"kw:{k}", d) for k, d in task.kwdeps.items())]:
            if d in self.changing:
                out.append(f"output of `{d}` may change (it runs first)")
            elif basis and basis.get(label) != tasks[d].record.output_fingerprint()[:_SHORT]:
                out.append(f"output of `{d}` changed")
        if basis and basis.get("inputs", None if not task.inputs else "") != (digest(task.inputs)[:_SHORT] if task.inputs else None):
            out.append("`inputs` changed")
        return list(dict.fromkeys(out))

    def _input_parts(self) -> dict[str, str]:
        gi = self.graph.graph_input
        if isinstance(gi, dict) and all(isinstance(k, str) for k in gi):
            return {f"gi:{k}": digest(v)[:_SHORT] for k, v in gi.items()}
        return {"gi": digest(gi)[:_SHORT]}

    def _input_reasons(self, task: Task) -> list[str]:
        """Which graph input keys differ from what ``task`` read last time."""
        if self.gi_fp is None:
            return ["graph input may change (the sub-graph's input formatter runs first)"]
        basis = task.record.basis
        if not any(k == "gi" or k.startswith("gi:") for k in basis):
            return []
        now = self._input_parts()
        seen = {k: v for k, v in basis.items() if k == "gi" or k.startswith("gi:")}
        if "gi" in now or "gi" in seen:
            return ["graph input changed"] if now != seen else []
        keys = sorted({k for k in {*now, *seen} if now.get(k) != seen.get(k)})
        return [f"graph input key `{k[3:]}` changed" for k in keys]

    def _call_reasons(self, task: Task) -> list[str]:
        rec, basis, out = task.record, task.record.basis, []
        if not basis.get("backend"):
            return []
        if basis.get("sample") != str(getattr(task, "sample", 0)):
            out.append("resample requested")
        if basis.get("backend") != str(self.llm_kind):
            out.append(f"LLM backend changed (`{basis.get('backend')}` -> `{self.llm_kind}`)")
        if basis.get("prompt") != digest(rec.prompt)[:_SHORT]:
            out.append("prompt changed")
        if basis.get("params") != digest(getattr(task, "params", None))[:_SHORT]:
            out.append("params changed")
        return out
