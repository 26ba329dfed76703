"""MLRun-style custom classes fetched from a real git repository and served by MLServer."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import joblib
import pytest

from conftest import IRIS_INPUTS, IRIS_OUTPUTS, body, git, model_folder

SERVING = textwrap.dedent(
    '''
    """An MLRun V2ModelServer-style class: load() reads the model, predict(body) answers."""
    import os

    import joblib
    import numpy as np


    class Classifier:
        def __init__(self, context=None, name=None, model_path=None, **kwargs):
            self.name = name
            self.model_path = model_path
            self.model = None

        def load(self):
            self.model = joblib.load(os.path.join(self.model_path, "model.joblib"))

        def predict(self, body):
            features = np.asarray(body["inputs"])
            return self.model.predict(features).tolist()
    '''
)

BROKEN = textwrap.dedent(
    """
    class Broken:
        def load(self):
            self.ready = True
    """
)


@pytest.fixture(scope="module")
def repo(tmp_path_factory, iris) -> tuple[Path, object]:
    from sklearn.tree import DecisionTreeClassifier

    x, y = iris
    clf = DecisionTreeClassifier(max_depth=3, random_state=0).fit(x, y)
    root = tmp_path_factory.mktemp("repo")
    code = root / "models" / "iris"
    code.mkdir(parents=True)
    (code / "serving.py").write_text(SERVING)
    (code / "broken.py").write_text(BROKEN)
    joblib.dump(clf, code / "model.joblib")
    git(root, "init", "--quiet", "--initial-branch=main")
    git(root, "add", ".")
    git(root, "commit", "--quiet", "-m", "iris classifier")
    return root, clf


def fetch_repo(repo_path: Path, dest: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "kea_runtime.fetch",
            "--dest",
            str(dest),
            "--git-url",
            f"file://{repo_path}",
            "--revision",
            "main",
            "--path",
            "models/iris",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


def test_custom_class_from_git(tmp_path, serve, repo, iris):
    repo_path, clf = repo
    fetch_repo(repo_path, tmp_path / "mnt")
    assert (tmp_path / "mnt" / "serving.py").exists()
    assert not (tmp_path / "mnt" / ".git").exists()
    folder = model_folder(
        tmp_path / "model",
        name="custom-iris",
        framework="custom",
        uri=str(tmp_path / "mnt"),
        version="v1",
        inputs=IRIS_INPUTS,
        outputs=IRIS_OUTPUTS,
        extra={"class": "serving.Classifier"},
    )
    assert "class CustomIrisModel(CustomModel):" in (folder / "model.py").read_text()
    server = serve(folder, "custom-iris")
    x = iris[0][::9]
    reply = server.infer(body(x), version="v1")
    assert reply.status_code == 200, reply.text
    assert reply.json()["outputs"][0] == {
        "name": "predict",
        "datatype": "INT64",
        "shape": [len(x)],
        "data": clf.predict(x).tolist(),
    }
    bad = server.infer(body(x[:, :2]))
    assert bad.status_code == 400
    assert "input 'input-0'" in bad.json()["error"]


def test_custom_class_without_signature_in_settings(tmp_path, serve, repo, iris):
    """A custom model whose signature is read from its source by KEA: the settings declare no
    tensors, so the gateway checks requests and the runtime decodes what it is given."""
    repo_path, clf = repo
    fetch_repo(repo_path, tmp_path / "mnt")
    folder = model_folder(
        tmp_path / "model",
        name="unsigned",
        framework="custom",
        uri=str(tmp_path / "mnt"),
        version="v1",
        extra={"class": "serving.Classifier"},
    )
    settings = json.loads((folder / "model-settings.json").read_text())
    assert "inputs" not in settings and "outputs" not in settings
    server = serve(folder, "unsigned")
    x = iris[0][::9]
    reply = server.infer(body(x), version="v1")
    assert reply.status_code == 200, reply.text
    assert reply.json()["outputs"] == [
        {
            "name": "output-0",
            "datatype": "INT64",
            "shape": [len(x)],
            "data": clf.predict(x).tolist(),
        }
    ]
    metadata = server.get("/v2/models/unsigned").json()
    assert metadata.get("inputs", []) == []
    assert "unchecked" in server.log


def test_custom_class_without_predict_never_ready(tmp_path, serve, repo):
    repo_path, _ = repo
    fetch_repo(repo_path, tmp_path / "mnt")
    folder = model_folder(
        tmp_path / "model",
        name="broken",
        framework="custom",
        uri=str(tmp_path / "mnt"),
        inputs=IRIS_INPUTS,
        outputs=IRIS_OUTPUTS,
        extra={"class": "broken.Broken"},
    )
    server = serve(folder, "broken", wait_ready=False)
    deadline = time.monotonic() + 60
    while server.process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.25)
    assert server.process.poll() is not None, "MLServer kept running with a model that cannot load"
    assert server.process.returncode != 0, server.log
    assert "custom model class 'broken.Broken'" in server.log
    assert "has no predict(body) method" in server.log
