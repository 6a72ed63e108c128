"""Tool executors: the only place an agent's calls run.

:class:`RegistryExecutor` offers some tools of a :class:`~slmtune.data.registry.ToolRegistry` (the catalog's, or
your own built with :func:`~slmtune.data.registry.tool_from_function`) and runs a call only after it passed
:func:`~slmtune.data.registry.validate_call` (the one schema check data, eval and export use), and then only the
tool's registered Python function (never ``eval``).

Usage::

    executor = RegistryExecutor(load_catalog(), ["convert_currency", "get_exchange_rate"])
    executor.execute("convert_currency", {"amount": 120, "from_currency": "EUR", "to_currency": "USD"})
"""

from __future__ import annotations

from collections.abc import Iterable

from slmtune.agent.loop import ToolCallError, result_text
from slmtune.data.registry import ToolRegistry, validate_call

__all__ = ["RegistryExecutor"]


class RegistryExecutor:
    """Offers the named tools of ``registry`` and runs their registered implementations after validating each call.

    A call to a tool that is not offered is refused as ``unknown_tool``; one whose arguments fail the tool's JSON
    Schema as ``invalid_call`` (nothing runs); a valid call of a tool without an implementation, and an exception
    raised by the function, are ``execution_error``s."""

    def __init__(self, registry: ToolRegistry, names: Iterable[str]) -> None:
        names = list(dict.fromkeys(names))
        if not names:
            raise ValueError("RegistryExecutor needs at least one tool name to offer")
        missing = [n for n in names if n not in registry]
        if missing:
            raise ValueError(f"RegistryExecutor: tool(s) {missing} are not in the registry")
        self.registry = registry
        self.names = names

    def tools(self) -> list[dict]:
        return [self.registry.get(name).function_dict() for name in self.names]

    def execute(self, name: str, arguments: dict) -> str:
        if name not in self.names:
            raise ToolCallError("unknown_tool", f"unknown tool {name!r}; the tools offered are {self.names}")
        tool = self.registry.get(name)
        problems = validate_call(tool, {"name": name, "arguments": arguments})
        if problems:
            raise ToolCallError("invalid_call", f"invalid call to {name!r}: " + "; ".join(problems))
        if tool.implementation is None:
            raise ToolCallError("execution_error", f"tool {name!r} has no implementation to run")
        try:
            value = tool.implementation(**arguments)
        except Exception as err:  # noqa: BLE001 - whatever the tool raises is fed back to the model
            raise ToolCallError("execution_error", f"{name} failed: {type(err).__name__}: {err}") from err
        return result_text(value)
