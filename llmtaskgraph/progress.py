"""Progress display for runs (placeholder until the Jupyter layer lands: prints nothing)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .execution import _Shared
    from .graph import TaskGraph


def attach_progress(graph: TaskGraph, shared: _Shared, progress: bool | None) -> Callable[[], None]:
    return lambda: None
