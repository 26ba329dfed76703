"""`tensors`: a serving class's inputs and outputs, declared where KEA reads them.

KEA reads a custom model's serving class statically (`kea model signature serving.py`: the source
is parsed, never imported or run) to document its tensors and have the gateway check requests
against them. A class whose `predict` takes the whole request (MLRun's `predict(self, body)`,
KServe's `predict(self, payload, headers)`) declares them with this decorator on `predict` or on
the class, written as literals (KEA reads the syntax, not values)::

    import kea_runtime

    class Classifier:
        @kea_runtime.tensors(
            inputs=[{"name": "measurements", "datatype": "FP32", "shape": [-1, 4],
                     "description": "sepal and petal lengths in cm"}],
            outputs=["species (INT64[-1]): the predicted class"],
        )
        def predict(self, body): ...

Each tensor is a dict with the keys of a Model resource's `spec.signature` tensor (`name`,
`datatype`, `shape`, `optional`) plus `description`, or a string in the docstring form
`name (DATATYPE[shape]): description`. At run time the decorator changes nothing: it returns
what it decorates, with the declaration in its `__kea_tensors__` attribute.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

#: One declared tensor: a dict like a `spec.signature` tensor, or `"name (FP32[-1, 4]): text"`.
TensorDeclaration = Mapping[str, Any] | str

_T = TypeVar("_T")


def tensors(
    *,
    inputs: Sequence[TensorDeclaration] = (),
    outputs: Sequence[TensorDeclaration] = (),
) -> Callable[[_T], _T]:
    """Declares the tensors of a serving class's `predict` (or the class); no-op at run time."""
    declared = {"inputs": list(inputs), "outputs": list(outputs)}

    def mark(target: _T) -> _T:
        # Some objects (built-ins, slotted classes) take no attributes: still a no-op.
        with contextlib.suppress(AttributeError, TypeError):
            target.__kea_tensors__ = declared  # type: ignore[attr-defined]
        return target

    return mark
