"""Ground-truth trajectories of BFCL multi-turn entries in slmtune's call shape (shared by the multi-turn tests)."""

from __future__ import annotations

import inspect

from slmtune.eval.multi_turn import Call, MultiTurnEntry, simulator_class


def as_keywords(entry: MultiTurnEntry, call: Call) -> dict:
    """A ground-truth call as ``{"name", "arguments"}`` (positional arguments bound to their names)."""
    for name in reversed(entry.involved_classes):
        method = getattr(simulator_class(name), call.name, None)
        if method is not None:
            bound = inspect.signature(method).bind(None, *call.args, **call.kwargs).arguments
            bound.pop(next(iter(bound)))  # self
            return {"name": call.name, "arguments": dict(bound)}
    raise AssertionError(f"{call.name} is no method of {entry.involved_classes}")


def ground_truth_trajectory(entry: MultiTurnEntry) -> list[list[list[dict]]]:
    """Each turn's ground-truth calls as one step."""
    return [[[as_keywords(entry, c) for c in turn]] for turn in entry.ground_truth]
