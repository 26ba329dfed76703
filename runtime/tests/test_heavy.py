"""PyTorch (TorchScript) and TensorFlow (Keras) models, only with KEA_HEAVY=1 (GBs of wheels)."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

from conftest import body, model_folder

HEAVY = os.environ.get("KEA_HEAVY") == "1"
pytestmark = pytest.mark.heavy


def need(module: str) -> None:
    if not HEAVY:
        pytest.skip(
            f"{module} test skipped: heavy frameworks run only with KEA_HEAVY=1 "
            "(scripts/runtime-test.sh installs locks/dev-heavy.txt into a separate venv)"
        )
    if importlib.util.find_spec(module) is None:
        pytest.fail(f"KEA_HEAVY=1 but {module} is not installed in this venv")


def test_pytorch_torchscript(tmp_path, serve, iris):
    need("torch")
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    net.eval()
    (tmp_path / "artifacts").mkdir()
    torch.jit.save(torch.jit.script(net), str(tmp_path / "artifacts" / "model.pt"))
    folder = model_folder(
        tmp_path / "model",
        name="torch-iris",
        framework="pytorch",
        uri=str(tmp_path / "artifacts"),
        inputs=[{"name": "input-0", "datatype": "FP32", "shape": [-1, 4]}],
        outputs=[{"name": "logits", "datatype": "FP32", "shape": [-1, 3]}],
    )
    server = serve(folder, "torch-iris")
    x = iris[0][:5]
    reply = server.infer(body(x))
    assert reply.status_code == 200, reply.text
    got = np.array(reply.json()["outputs"][0]["data"], dtype=np.float32).reshape(5, 3)
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert server.infer(body(x[:, :3])).status_code == 400


def test_keras_model(tmp_path, serve, iris):
    need("tensorflow")
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    model = tf.keras.Sequential(
        [
            tf.keras.Input(shape=(4,)),
            tf.keras.layers.Dense(8, activation="relu"),
            tf.keras.layers.Dense(3),
        ]
    )
    (tmp_path / "artifacts").mkdir()
    model.save(tmp_path / "artifacts" / "model.keras")
    folder = model_folder(
        tmp_path / "model",
        name="keras-iris",
        framework="tensorflow",
        uri=str(tmp_path / "artifacts"),
        inputs=[{"name": "input-0", "datatype": "FP32", "shape": [-1, 4]}],
        outputs=[{"name": "scores", "datatype": "FP32", "shape": [-1, 3]}],
    )
    server = serve(folder, "keras-iris")
    x = iris[0][:5]
    reply = server.infer(body(x))
    assert reply.status_code == 200, reply.text
    got = np.array(reply.json()["outputs"][0]["data"], dtype=np.float32).reshape(5, 3)
    np.testing.assert_allclose(got, model(x, training=False).numpy(), rtol=1e-5, atol=1e-6)
