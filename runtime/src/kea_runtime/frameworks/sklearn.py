"""scikit-learn models saved with joblib or pickle: `model.joblib`, `model.pkl` or the only one.."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from kea_runtime.frameworks import find_artifact
from kea_runtime.model import KeaModel, LoadError
from kea_runtime.signature import SignatureError

logger = logging.getLogger(__name__)

NAMES = ("model.joblib", "model.pkl", "model.pickle")
SUFFIXES = (".joblib", ".pkl", ".pickle")
#: Outputs a request may ask for, each the estimator method of the same name.
METHODS = ("predict", "predict_proba", "decision_function", "transform")


class SklearnModel(KeaModel):
    """Serves an estimator: output `predict` by default, `predict_proba` etc. when declared."""

    framework = "scikit-learn"

    def load_model(self, path: Path) -> None:
        file = find_artifact(path, NAMES, SUFFIXES, self.extra.get("file"))
        logger.info("loading scikit-learn model %s", file)
        self._estimator = joblib.load(file)
        if len(self.signature.inputs) > 1:
            raise LoadError(
                f"scikit-learn models take one input tensor; the settings declare "
                f"{[s.name for s in self.signature.inputs]}"
            )
        self._methods: dict[str, Any] = {}
        for spec in self.signature.outputs or ():
            method = getattr(self._estimator, spec.name, None)
            if spec.name not in METHODS or method is None:
                raise LoadError(
                    f"output {spec.name!r}: {type(self._estimator).__name__} has no such method "
                    f"(outputs are named after one of {', '.join(METHODS)})"
                )
            self._methods[spec.name] = method
        if not self._methods:
            # No declared outputs: any estimator method in METHODS may be asked for by name.
            for name in METHODS:
                method = getattr(self._estimator, name, None)
                if callable(method):
                    self._methods[name] = method
        if "predict" not in self._methods and not self.signature.outputs:
            raise LoadError(f"{type(self._estimator).__name__} has no predict() method")

    def infer(self, inputs: dict[str, np.ndarray], outputs: Sequence[str]) -> dict[str, Any]:
        if len(inputs) != 1:
            raise SignatureError(f"scikit-learn models take one input tensor, got {sorted(inputs)}")
        (x,) = inputs.values()
        methods = self._methods
        if not outputs:
            return {"predict": methods["predict"](x)}
        if len(outputs) == 1 and outputs[0] in methods:
            return {outputs[0]: methods[outputs[0]](x)}
        result = {}
        for name in outputs:
            method = methods.get(name)
            if method is None:
                raise SignatureError(
                    f"unknown output {name!r}; this model returns {', '.join(map(repr, methods))}"
                )
            result[name] = method(x)
        return result
