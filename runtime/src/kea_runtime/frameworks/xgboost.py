"""XGBoost models: a Booster saved as `model.json`/`model.ubj`/`model.bst`, or the sklearn API.

A file written by `XGBClassifier.save_model` carries a `scikit_learn` attribute; such models are
loaded back into their sklearn wrapper so `predict` returns labels and `predict_proba` exists.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb

from kea_runtime.frameworks import find_artifact
from kea_runtime.model import KeaModel, LoadError
from kea_runtime.signature import SignatureError

logger = logging.getLogger(__name__)

NAMES = ("model.json", "model.ubj", "model.bst")
SUFFIXES = (".json", ".ubj", ".bst")


class XGBoostModel(KeaModel):
    """Serves a Booster (`predict` = raw booster output) or an XGBClassifier/XGBRegressor."""

    framework = "xgboost"

    def load_model(self, path: Path) -> None:
        file = find_artifact(path, NAMES, SUFFIXES, self.extra.get("file"))
        logger.info("loading XGBoost model %s", file)
        booster = xgb.Booster(model_file=str(file))
        kind = self._sklearn_kind(booster)
        self._methods: dict[str, Any] = {}
        if kind == "classifier":
            model: Any = xgb.XGBClassifier()
            model.load_model(str(file))
            self._methods = {"predict": model.predict, "predict_proba": model.predict_proba}
        elif kind == "regressor":
            model = xgb.XGBRegressor()
            model.load_model(str(file))
            self._methods = {"predict": model.predict}
        else:
            self._methods = {"predict": booster.inplace_predict}
        for spec in self.signature.outputs:
            if spec.name not in self._methods:
                raise LoadError(
                    f"output {spec.name!r}: this XGBoost model provides "
                    f"{', '.join(map(repr, self._methods))}"
                )

    @staticmethod
    def _sklearn_kind(booster: xgb.Booster) -> str | None:
        raw = booster.attr("scikit_learn")
        if not raw:
            return None
        try:
            meta = json.loads(raw)
        except ValueError:
            return None
        kind = meta.get("_estimator_type")
        return kind if isinstance(kind, str) else None

    def infer(self, inputs: dict[str, np.ndarray], outputs: Sequence[str]) -> dict[str, Any]:
        if len(inputs) != 1:
            raise SignatureError(f"XGBoost models take one input tensor, got {sorted(inputs)}")
        (x,) = inputs.values()
        result = {}
        for name in outputs or ("predict",):
            method = self._methods.get(name)
            if method is None:
                raise SignatureError(
                    f"unknown output {name!r}; this model returns "
                    f"{', '.join(map(repr, self._methods))}"
                )
            result[name] = method(x)
        return result
