"""An MLRun-style serving class, as a user keeps it in git: `load()` reads its weights,
`predict(body)` scores each row. The cluster suite serves it as a KEA `custom` Model from a real
git server."""

import json
from pathlib import Path

import numpy as np


class Scorer:
    def __init__(self, context=None, name=None, model_path=None, **kwargs):
        self.model_path = model_path
        self.weights = None

    def load(self):
        folder = Path(self.model_path or Path(__file__).parent)
        self.weights = np.asarray(json.loads((folder / "weights.json").read_text()))

    def predict(self, body):
        rows = np.asarray(body["inputs"], dtype=np.float64)
        return (rows @ self.weights).tolist()
