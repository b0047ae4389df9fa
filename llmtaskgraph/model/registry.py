"""The function registry: where task code lives, keyed by the names the graph stores.

Any ``Mapping[str, Callable]`` works (a plain dict, as in the seed example); :class:`FunctionRegistry`
adds a ``register`` decorator, validation and merging. Looking a name up is the only thing a trace
can make llmtaskgraph do: names from JSON are never imported, evaluated or resolved as attributes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar, overload

from ..errors import MissingFunctionError

F = TypeVar("F", bound=Callable[..., Any])
Registry = Mapping[str, Callable[..., Any]]


class FunctionRegistry(Mapping[str, Callable[..., Any]]):
    """A mapping from name to function, with a decorator to fill it.

    >>> registry = FunctionRegistry()
    >>> @registry.register
    ... def greet(ctx, who):
    ...     return f"hello {who}"
    >>> "greet" in registry
    True
    """

    def __init__(self, functions: Mapping[str, Callable[..., Any]] | None = None, /, **more: Callable[..., Any]) -> None:
        self._functions: dict[str, Callable[..., Any]] = {}
        for name, fn in {**(functions or {}), **more}.items():
            self.add(name, fn)

    @overload
    def register(self, fn: F, /) -> F: ...
    @overload
    def register(self, name: str, /) -> Callable[[F], F]: ...
    def register(self, fn_or_name: Any, /) -> Any:
        """Decorator: ``@registry.register`` (uses ``fn.__name__``) or ``@registry.register("name")``."""
        if isinstance(fn_or_name, str):
            name = fn_or_name

            def decorate(fn: F) -> F:
                self.add(name, fn)
                return fn

            return decorate
        self.add(fn_or_name.__name__, fn_or_name)
        return fn_or_name

    def add(self, name: str, fn: Callable[..., Any]) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"registry names must be non-empty strings, got {name!r}")
        if not callable(fn):
            raise TypeError(f"registry entry `{name}` must be callable, got {type(fn).__name__}")
        self._functions[name] = fn

    def merge(self, *others: Mapping[str, Callable[..., Any]]) -> FunctionRegistry:
        """A new registry with this one's functions, then each of ``others`` (later ones win)."""
        merged = FunctionRegistry(self._functions)
        for other in others:
            for name, fn in other.items():
                merged.add(name, fn)
        return merged

    def __or__(self, other: Mapping[str, Callable[..., Any]]) -> FunctionRegistry:
        return self.merge(other)

    def __getitem__(self, name: str) -> Callable[..., Any]:
        return self._functions[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._functions)

    def __len__(self) -> int:
        return len(self._functions)

    def __repr__(self) -> str:
        return f"FunctionRegistry({sorted(self._functions)})"


def lookup(registry: Registry, name: str) -> Callable[..., Any] | None:
    """The callable registered as ``name``, or None. Only ``registry[name]`` is ever used."""
    try:
        fn = registry[name]
    except (KeyError, TypeError):
        return None
    return fn if callable(fn) else None


def check_registry(registry: Registry, needs: Mapping[str, list[str]]) -> None:
    """Raise :class:`MissingFunctionError` listing every needed name that is absent or not callable."""
    if not isinstance(registry, Mapping):
        raise TypeError(f"the registry must be a mapping from name to function (a dict works), got {type(registry).__name__}")
    problems = {name: tasks for name, tasks in needs.items() if lookup(registry, name) is None}
    if problems:
        not_callable = {name: type(registry[name]).__name__ for name in problems if _has(registry, name)}
        raise MissingFunctionError(problems, not_callable)


def _has(registry: Registry, name: str) -> bool:
    try:
        return name in registry
    except TypeError:
        return False
