"""Trains the small real models the cluster suite serves, and what their frameworks predict.

    python train.py OUT_DIR

Writes OUT_DIR/iris-v1/model.joblib and OUT_DIR/iris-v2/model.joblib (scikit-learn
LogisticRegression on iris, two regularisations, so the versions can disagree) and
OUT_DIR/expected.json: the request rows and each version's own `predict` on them — the numbers
the gateway's answers must equal.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import joblib
import numpy as np
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression


def main(out: Path) -> None:
    features, labels = load_iris(return_X_y=True)
    features = features.astype(np.float32)
    rows = features[[0, 50, 100, 70, 83]]
    expected: dict[str, object] = {"rows": rows.tolist()}
    for version, strength in (("v1", 1.0), ("v2", 0.01)):
        model = LogisticRegression(C=strength, max_iter=1000).fit(features, labels)
        folder = out / f"iris-{version}"
        folder.mkdir(parents=True, exist_ok=True)
        joblib.dump(model, folder / "model.joblib")
        expected[version] = model.predict(rows).tolist()
    (out / "expected.json").write_text(json.dumps(expected))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
