"""ONNX models run with onnxruntime on CPU (`model.onnx` or the only `*.onnx`).

The settings may omit the signature: it is then read from the graph's tensor inputs and outputs
and put into the model's metadata, so `GET /v2/models/{name}` still shows what is enforced.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from kea_runtime.frameworks import find_artifact
from kea_runtime.model import KeaModel, LoadError
from kea_runtime.signature import Signature, SignatureError, TensorSpec

logger = logging.getLogger(__name__)

#: onnxruntime's type strings for the tensor element types OIP can carry.
ONNX_TYPES = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}


def _spec(arg: Any) -> TensorSpec | None:
    datatype = ONNX_TYPES.get(arg.type)
    if datatype is None:
        return None
    shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in arg.shape)
    return TensorSpec(arg.name, datatype, shape)


class OnnxModel(KeaModel):
    """Serves an ONNX graph; outputs are the graph's tensor outputs (maps/sequences are skipped)."""

    framework = "onnx"

    def load_model(self, path: Path) -> None:
        file = find_artifact(path, ("model.onnx",), (".onnx",), self.extra.get("file"))
        options = ort.SessionOptions()
        threads = self.extra.get("intra_op_threads")
        if threads:
            options.intra_op_num_threads = int(threads)
        logger.info("loading ONNX model %s", file)
        self._session = ort.InferenceSession(
            str(file), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._graph_inputs = [i.name for i in self._session.get_inputs()]
        self._tensor_outputs: list[str] = []
        for out in self._session.get_outputs():
            if _spec(out) is not None:
                self._tensor_outputs.append(out.name)
            else:
                logger.warning(
                    "ONNX output %r has type %s, which the Open Inference Protocol cannot carry; "
                    "it is not served",
                    out.name,
                    out.type,
                )
        for spec in self.signature.inputs:
            if spec.name not in self._graph_inputs:
                raise LoadError(
                    f"input {spec.name!r} is not an input of the ONNX graph {self._graph_inputs}"
                )
        for spec in self.signature.outputs:
            if spec.name not in self._tensor_outputs:
                raise LoadError(
                    f"output {spec.name!r} is not a tensor output of the ONNX graph "
                    f"{self._tensor_outputs}"
                )

    def derive_signature(self) -> Signature:
        inputs = []
        for arg in self._session.get_inputs():
            spec = _spec(arg)
            if spec is None:
                raise LoadError(
                    f"ONNX input {arg.name!r} has type {arg.type}, which OIP cannot carry"
                )
            inputs.append(spec)
        outputs = [s for s in map(_spec, self._session.get_outputs()) if s is not None]
        return Signature(tuple(inputs), tuple(outputs))

    def infer(self, inputs: dict[str, np.ndarray], outputs: Sequence[str]) -> dict[str, Any]:
        names = list(outputs) or self._tensor_outputs
        for name in names:
            if name not in self._tensor_outputs:
                raise SignatureError(
                    f"unknown output {name!r}; this model returns {self._tensor_outputs}"
                )
        values = self._session.run(names, inputs)
        return dict(zip(names, values, strict=True))
