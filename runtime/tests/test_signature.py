"""Signature checks and codecs without a server (the server tests cover the HTTP mapping)."""

from __future__ import annotations

import numpy as np
import pytest
from mlserver.types import InferenceRequest, RequestOutput

from kea_runtime.signature import DTYPES, Signature, SignatureError, TensorSpec, encode_output

SIG = Signature(
    (TensorSpec("x", "FP32", (-1, 2)), TensorSpec("tokens", "BYTES", (-1,))),
    (TensorSpec("y", "INT64", (-1,)),),
)


def request(*inputs: dict, outputs: list[str] | None = None) -> InferenceRequest:
    return InferenceRequest(
        inputs=list(inputs), outputs=[RequestOutput(name=n) for n in outputs] if outputs else None
    )


def x(data, shape=(2, 2), datatype="FP32") -> dict:
    return {"name": "x", "shape": list(shape), "datatype": datatype, "data": data}


def tokens(data, shape=(1,)) -> dict:
    return {"name": "tokens", "shape": list(shape), "datatype": "BYTES", "data": data}


def test_decodes_flat_and_nested_with_declared_dtype():
    arrays = SIG.decode(request(x([1, 2, 3, 4]), tokens(["hi"])))
    assert arrays["x"].dtype == np.float32
    assert arrays["x"].shape == (2, 2)
    assert arrays["tokens"].tolist() == ["hi"]
    nested = SIG.decode(request(x([[1, 2], [3, 4]]), tokens(["a", "b"], shape=(2,))))
    np.testing.assert_array_equal(nested["x"], [[1, 2], [3, 4]])


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ((x([1, 2, 3, 4]),), "missing input 'tokens' (BYTES [-1])"),
        ((x([1, 2, 3, 4]), tokens(["a"]), x([1, 2, 3, 4])), "input 'x' is given more than once"),
        ((x([1, 2, 3]), tokens(["a"])), "input 'x': data has 3 elements, shape [2, 2] needs 4"),
        ((x([[1, 2], [3]]), tokens(["a"])), "input 'x': data is not a regular array of FP32"),
        (
            (x([[1, 2, 3, 4]]), tokens(["a"])),
            "nested data has shape [1, 4], declared shape is [2, 2]",
        ),
        ((x([1, 2, 3, 4], shape=(2, -2)), tokens(["a"])), "has dimension 1 = -2"),
        (
            ({"name": "x", "shape": [1, 2], "datatype": "UINT8", "data": [1, 300]}, tokens(["a"])),
            "datatype UINT8, expected FP32",
        ),
    ],
)
def test_rejections(inputs, message):
    with pytest.raises(SignatureError) as err:
        SIG.decode(request(*inputs))
    assert message in str(err.value)
    assert err.value.status_code == 400


def test_undeclared_signature_decodes_what_is_sent():
    sig = Signature()
    arrays = sig.decode(
        request({"name": "a", "shape": [3], "datatype": "UINT8", "data": [1, 2, 3]})
    )
    assert arrays["a"].dtype == np.uint8
    with pytest.raises(SignatureError, match="data is not a regular array of UINT8"):
        sig.decode(request({"name": "a", "shape": [1], "datatype": "UINT8", "data": [300]}))


def test_every_datatype_round_trips():
    for datatype, dtype in DTYPES.items():
        sig = Signature((TensorSpec("t", datatype, (-1,)),), (TensorSpec("t", datatype, (-1,)),))
        data = ["a", "b"] if datatype == "BYTES" else [1, 0]
        arr = sig.decode(request({"name": "t", "shape": [2], "datatype": datatype, "data": data}))[
            "t"
        ]
        assert arr.dtype == dtype
        out = sig.encode("t", arr)
        assert getattr(out.datatype, "value", out.datatype) == datatype
        assert out.data.root == (data if datatype != "BOOL" else [True, False])


def test_output_selection_and_unknown_output():
    assert SIG.output_names(request(x([1, 2, 3, 4]))) == ["y"]
    assert SIG.output_names(request(x([1, 2, 3, 4]), outputs=["y"])) == ["y"]
    with pytest.raises(SignatureError, match="unknown output 'z'; this model returns 'y'"):
        SIG.output_names(request(x([1, 2, 3, 4]), outputs=["z"]))


def test_encode_casts_to_declared_and_nulls_nan():
    out = encode_output("p", np.array([[0.5, np.nan]]), TensorSpec("p", "FP32", (-1, 2)))
    assert out.shape == [1, 2]
    assert out.data.root == [0.5, None]
    labels = encode_output("l", np.array([1, 2], dtype=np.int32), TensorSpec("l", "INT64", (-1,)))
    assert labels.data.root == [1, 2]
    names = encode_output("n", np.array(["setosa"]), None)
    assert getattr(names.datatype, "value", names.datatype) == "BYTES"
    assert names.data.root == ["setosa"]


def test_optional_inputs_may_be_left_out():
    from mlserver.types import MetadataTensor

    sig = Signature(
        (TensorSpec("x", "FP32", (-1, 2)), TensorSpec("scale", "FP32", (1,), optional=True)),
    )
    assert list(sig.decode(request(x([1, 2, 3, 4])))) == ["x"]
    both = sig.decode(
        request(x([1, 2, 3, 4]), {"name": "scale", "shape": [1], "datatype": "FP32", "data": [2]})
    )
    assert both["scale"].tolist() == [2.0]
    with pytest.raises(SignatureError, match="missing input 'x'"):
        sig.decode(request({"name": "scale", "shape": [1], "datatype": "FP32", "data": [2]}))
    # In model settings (as `kea model package` writes them) and back.
    metadata = MetadataTensor.model_validate(
        {"name": "scale", "datatype": "FP32", "shape": [1], "parameters": {"optional": True}}
    )
    assert TensorSpec.from_metadata(metadata) == TensorSpec("scale", "FP32", (1,), optional=True)
    assert TensorSpec.from_metadata(metadata).to_metadata().parameters.optional is True
    assert TensorSpec("x", "FP32", (2,)).to_metadata().parameters is None
