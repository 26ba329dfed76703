"""The scorer of serving.py with its tensors documented: KEA reads them from `predict`'s docstring
(statically, in the build Job) when the Model resource gives no signature. The cluster suite serves
it as a `custom` Model without `spec.signature`."""

import json
from pathlib import Path

import numpy as np


class Scorer:
    """Scores rows of three features with fixed weights.

    The weights are in weights.json beside this file.
    """

    def __init__(self, context=None, name=None, model_path=None, **kwargs):
        self.model_path = model_path
        self.weights = None

    def load(self):
        folder = Path(self.model_path or Path(__file__).parent)
        self.weights = np.asarray(json.loads((folder / "weights.json").read_text()))

    def predict(self, body):
        """Scores each row: the weighted sum of its features.

        Inputs:
            x (FP64[-1, 3]): three features per row.
        Outputs:
            score (FP64[-1]): the weighted sum of the row's features.
        """
        rows = np.asarray(body["inputs"], dtype=np.float64)
        return {"score": (rows @ self.weights).tolist()}
