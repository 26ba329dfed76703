"""TensorFlow models: a Keras `.keras` file or a SavedModel directory (`saved_model.pb`).

A SavedModel is called through its `serving_default` signature, whose input and output names
are the tensor names; a Keras model gets its inputs in declared order.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from kea_runtime.frameworks import find_artifact
from kea_runtime.frameworks._outputs import name_outputs
from kea_runtime.model import KeaModel, LoadError
from kea_runtime.signature import SignatureError

logger = logging.getLogger(__name__)


def _to_numpy(value: Any) -> np.ndarray:
    return value.numpy() if hasattr(value, "numpy") else np.asarray(value)


class TensorFlowModel(KeaModel):
    """Serves Keras models (called directly, not via `predict`, to skip its batching loop)."""

    framework = "tensorflow"

    def load_model(self, path: Path) -> None:
        saved_model = path if (path / "saved_model.pb").exists() else None
        if saved_model is None:
            for sub in sorted(p for p in path.iterdir() if p.is_dir()):
                if (sub / "saved_model.pb").exists():
                    saved_model = sub
                    break
        self._keras: Any = None
        self._serving: Any = None
        if saved_model is not None and not self.extra.get("file"):
            logger.info("loading TensorFlow SavedModel %s", saved_model)
            loaded = tf.saved_model.load(str(saved_model))
            signatures = getattr(loaded, "signatures", {})
            name = self.extra.get("signature", "serving_default")
            if name not in signatures:
                raise LoadError(
                    f"SavedModel {saved_model} has no signature {name!r} ({list(signatures)})"
                )
            self._loaded = loaded
            self._serving = signatures[name]
            return
        file = find_artifact(path, ("model.keras",), (".keras", ".h5"), self.extra.get("file"))
        logger.info("loading Keras model %s", file)
        self._keras = tf.keras.models.load_model(str(file), compile=False)

    def infer(self, inputs: dict[str, np.ndarray], outputs: Sequence[str]) -> dict[str, Any]:
        if self._serving is not None:
            result = self._serving(**{k: tf.constant(v) for k, v in inputs.items()})
        else:
            order = [s.name for s in self.signature.inputs] or list(inputs)
            args = [inputs[n] for n in order]
            result = self._keras(args[0] if len(args) == 1 else args, training=False)
        try:
            named = name_outputs(result, self.signature, _to_numpy)
        except ValueError as err:
            raise SignatureError(str(err)) from None
        return {n: named[n] for n in outputs if n in named} if outputs else named
