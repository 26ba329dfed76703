"""Tensor signatures: what a model accepts and returns, checked before the framework sees a request.

The signature is MLServer's own model metadata (`inputs` / `outputs` in model-settings.json), so
`GET /v2/models/{name}` shows exactly what is enforced here. A request that does not match gets an
HTTP 400 naming the tensor and the problem, instead of a framework stack trace or a silent
broadcast.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from mlserver.errors import MLServerError
from mlserver.settings import ModelSettings
from mlserver.types import (
    Datatype,
    InferenceRequest,
    MetadataTensor,
    Parameters,
    RequestInput,
    ResponseOutput,
    TensorData,
)

logger = logging.getLogger(__name__)

#: numpy dtype of each Open Inference Protocol datatype; BYTES are kept as Python objects.
DTYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}

_KIND_TO_DATATYPE = {"b": "BOOL", "U": "BYTES", "S": "BYTES", "O": "BYTES"}


class SignatureError(MLServerError):
    """A request that does not match the model's signature: HTTP 400 with `{"error": msg}`."""

    def __init__(self, msg: str) -> None:
        super().__init__(msg, status_code=400)


def datatype_of(dtype: np.dtype) -> str:
    """OIP datatype for a numpy dtype (used when a model declares no output signature)."""
    kind = _KIND_TO_DATATYPE.get(dtype.kind)
    if kind is not None:
        return kind
    for name, candidate in DTYPES.items():
        if candidate == dtype:
            return name
    raise SignatureError(f"cannot encode numpy dtype {dtype} as an Open Inference Protocol tensor")


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One declared tensor: name, OIP datatype and shape (-1 = any size); an optional input may
    be left out of a request (`"parameters": {"optional": true}` in the settings)."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    optional: bool = False

    @property
    def dtype(self) -> np.dtype:
        return DTYPES[self.datatype]

    @classmethod
    def from_metadata(cls, tensor: MetadataTensor) -> TensorSpec:
        datatype = str(getattr(tensor.datatype, "value", tensor.datatype))
        if datatype not in DTYPES:
            raise ValueError(f"tensor {tensor.name!r}: unknown datatype {datatype!r}")
        optional = bool(getattr(tensor.parameters, "optional", False))
        return cls(tensor.name, datatype, tuple(int(d) for d in tensor.shape), optional)

    def to_metadata(self) -> MetadataTensor:
        parameters = Parameters(optional=True) if self.optional else None
        return MetadataTensor(
            name=self.name, datatype=self.datatype, shape=list(self.shape), parameters=parameters
        )


def _shape_text(shape: Iterable[int]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


@dataclass(frozen=True, slots=True)
class Signature:
    """The inputs and outputs a model declares; empty tuples mean "not declared, not checked"."""

    inputs: tuple[TensorSpec, ...] = ()
    outputs: tuple[TensorSpec, ...] = ()

    @classmethod
    def from_settings(cls, settings: ModelSettings) -> Signature:
        return cls(
            tuple(TensorSpec.from_metadata(t) for t in settings.inputs or ()),
            tuple(TensorSpec.from_metadata(t) for t in settings.outputs or ()),
        )

    def input(self, name: str) -> TensorSpec | None:
        for spec in self.inputs:
            if spec.name == name:
                return spec
        return None

    def output(self, name: str) -> TensorSpec | None:
        for spec in self.outputs:
            if spec.name == name:
                return spec
        return None

    def decode(self, request: InferenceRequest) -> dict[str, np.ndarray]:
        """Checks the request's inputs against the declared ones and decodes them to numpy.

        Raises SignatureError (400) naming the first offending tensor; optional inputs may be
        missing. Without declared inputs (a custom model whose signature only the gateway knows),
        every input is decoded with the datatype and shape the request gives.
        """
        if not self.inputs:
            return {inp.name: decode_input(inp, None) for inp in request.inputs}
        arrays: dict[str, np.ndarray] = {}
        for inp in request.inputs:
            spec = self.input(inp.name)
            if spec is None:
                raise SignatureError(
                    f"unknown input {inp.name!r}; this model takes "
                    + ", ".join(repr(s.name) for s in self.inputs)
                )
            if inp.name in arrays:
                raise SignatureError(f"input {inp.name!r} is given more than once")
            arrays[inp.name] = decode_input(inp, spec)
        missing = [s.name for s in self.inputs if s.name not in arrays and not s.optional]
        if missing:
            raise SignatureError(
                "missing input " + ", ".join(repr(m) for m in missing) + self._inputs_hint(missing)
            )
        return arrays

    def _inputs_hint(self, names: Sequence[str]) -> str:
        specs = [s for s in self.inputs if s.name in names]
        return " (" + "; ".join(f"{s.datatype} {_shape_text(s.shape)}" for s in specs) + ")"

    def output_names(self, request: InferenceRequest) -> list[str]:
        """Names the response must carry: the request's `outputs[]` selection, else all declared."""
        if not request.outputs:
            return [s.name for s in self.outputs]
        names = [o.name for o in request.outputs]
        if self.outputs:
            for name in names:
                if self.output(name) is None:
                    raise SignatureError(
                        f"unknown output {name!r}; this model returns "
                        + ", ".join(repr(s.name) for s in self.outputs)
                    )
        return names

    def encode(self, name: str, array: Any) -> ResponseOutput:
        """Encodes one output with its declared datatype (or the array's own if undeclared)."""
        spec = self.output(name)
        return encode_output(name, array, spec)


def decode_input(inp: RequestInput, spec: TensorSpec | None) -> np.ndarray:
    """Decodes one request input to numpy, checking it against `spec` when given."""
    datatype = str(getattr(inp.datatype, "value", inp.datatype))
    shape = inp.shape
    name = inp.name
    if spec is not None:
        if datatype != spec.datatype:
            raise SignatureError(f"input {name!r}: datatype {datatype}, expected {spec.datatype}")
        if len(shape) != len(spec.shape):
            raise SignatureError(
                f"input {name!r}: shape {_shape_text(shape)} has rank {len(shape)}, "
                f"expected rank {len(spec.shape)} ({_shape_text(spec.shape)})"
            )
        for axis, (got, want) in enumerate(zip(shape, spec.shape, strict=True)):
            if got <= 0:
                raise SignatureError(
                    f"input {name!r}: shape {_shape_text(shape)} has dimension {axis} = {got}; "
                    "every dimension must be at least 1"
                )
            if want >= 0 and got != want:
                raise SignatureError(
                    f"input {name!r}: shape {_shape_text(shape)} has dimension {axis} = {got}, "
                    f"expected {want} ({_shape_text(spec.shape)})"
                )
    else:
        for axis, got in enumerate(shape):
            if got <= 0:
                raise SignatureError(
                    f"input {name!r}: shape {_shape_text(shape)} has dimension {axis} = {got}; "
                    "every dimension must be at least 1"
                )
    dtype = DTYPES.get(datatype)
    if dtype is None:
        raise SignatureError(f"input {name!r}: unknown datatype {datatype!r}")
    data = inp.data.root if isinstance(inp.data, TensorData) else inp.data
    try:
        array = np.array(data, dtype=dtype)
    except (ValueError, TypeError, OverflowError) as err:
        raise SignatureError(
            f"input {name!r}: data is not a regular array of {datatype} values ({err})"
        ) from None
    want_size = math.prod(shape)
    if array.size != want_size:
        raise SignatureError(
            f"input {name!r}: data has {array.size} elements, "
            f"shape {_shape_text(shape)} needs {want_size}"
        )
    if array.ndim > 1 and tuple(array.shape) != tuple(shape):
        raise SignatureError(
            f"input {name!r}: nested data has shape {_shape_text(array.shape)}, "
            f"declared shape is {_shape_text(shape)}"
        )
    if datatype == "BYTES":
        array = _bytes_to_str(array)
    return array.reshape(shape)


def _bytes_to_str(array: np.ndarray) -> np.ndarray:
    """BYTES arrive as str over REST and bytes over gRPC; frameworks want one kind: str."""
    flat = array.ravel()
    for i, item in enumerate(flat):
        if isinstance(item, bytes):
            flat[i] = item.decode("utf-8", errors="replace")
    return flat.reshape(array.shape)


def encode_output(name: str, array: Any, spec: TensorSpec | None) -> ResponseOutput:
    """Builds a ResponseOutput; NaN/inf become null since JSON has no such numbers."""
    arr = np.asarray(array)
    if spec is not None:
        datatype = spec.datatype
        if datatype != "BYTES" and arr.dtype != spec.dtype:
            try:
                arr = arr.astype(spec.dtype)
            except (ValueError, TypeError) as err:
                raise MLServerError(
                    f"output {name!r}: model returned {arr.dtype} values that are not "
                    f"{datatype} ({err})",
                    status_code=500,
                ) from None
    else:
        datatype = datatype_of(arr.dtype)
    if datatype == "BYTES":
        data = [
            x.decode("utf-8", "replace") if isinstance(x, bytes) else str(x) for x in arr.ravel()
        ]
    else:
        data = arr.ravel().tolist()
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            data = [x if math.isfinite(x) else None for x in data]
    return ResponseOutput(
        name=name, datatype=Datatype(datatype), shape=list(arr.shape), data=TensorData(root=data)
    )
