"""`kea_runtime.tensors`: a no-op at run time that decorated serving classes import cleanly."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path

import kea_runtime
from kea_runtime.declare import tensors

INPUTS = [{"name": "measurements", "datatype": "FP32", "shape": [-1, 4]}]
OUTPUTS = ["species (INT64[-1]): the predicted class"]


def test_returns_what_it_decorates_with_the_declaration():
    def predict(self, body):
        return body["inputs"]

    decorated = tensors(inputs=INPUTS, outputs=OUTPUTS)(predict)
    assert decorated is predict
    assert decorated(None, {"inputs": [1]}) == [1]
    assert decorated.__kea_tensors__ == {"inputs": INPUTS, "outputs": OUTPUTS}
    assert kea_runtime.tensors is tensors


def test_objects_without_attributes_pass_through():
    assert tensors(inputs=INPUTS)(len) is len
    assert tensors()(None) is None


def test_a_decorated_class_imports_and_predicts(tmp_path: Path):
    source = textwrap.dedent(
        """
        import kea_runtime


        @kea_runtime.tensors(outputs=["doubled (FP64[-1]): twice the input"])
        class Doubler:
            def load(self):
                self.factor = 2

            @kea_runtime.tensors(
                inputs=[{"name": "x", "datatype": "FP64", "shape": [-1], "description": "values"}]
            )
            def predict(self, body):
                return [v * self.factor for v in body["inputs"]]
        """
    )
    path = tmp_path / "doubler.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("doubler", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["doubler"] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules["doubler"]
    model = module.Doubler()
    model.load()
    assert model.predict({"inputs": [1.5, 2]}) == [3.0, 4]
    assert module.Doubler.__kea_tensors__["outputs"] == ["doubled (FP64[-1]): twice the input"]
    assert module.Doubler.predict.__kea_tensors__["inputs"][0]["name"] == "x"
