"""Naming the tensors a deep-learning model returns (a tensor, a tuple or a dict)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kea_runtime.signature import Signature


def name_outputs(result: Any, signature: Signature, to_numpy: Any) -> dict[str, Any]:
    """Maps a model's return value to output names: dict keys as they are, positional results to
    the declared outputs in order (or `output-0`, `output-1`... when none are declared)."""
    if isinstance(result, Mapping):
        return {str(k): to_numpy(v) for k, v in result.items()}
    values: Sequence[Any] = result if isinstance(result, (list, tuple)) else (result,)
    declared = [s.name for s in signature.outputs]
    if declared and len(declared) != len(values):
        raise ValueError(
            f"the model returned {len(values)} tensors, the settings declare {declared}"
        )
    names = declared or [f"output-{i}" for i in range(len(values))]
    return {n: to_numpy(v) for n, v in zip(names, values, strict=True)}
