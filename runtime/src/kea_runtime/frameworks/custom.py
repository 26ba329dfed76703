"""User code in the MLRun style: a class with `load()` and `predict(body)` from a repository.

`parameters.extra.class` names it, e.g. `"serving.Classifier"` for class `Classifier` in
`serving.py` (or `serving/__init__.py`) of the model directory, which goes on `sys.path` so the
user's module can import its siblings. As in MLRun's V2ModelServer, `predict` gets
`{"inputs": array}` for a one-input model and `{"inputs": {name: array}}` otherwise, and returns
a list/array (one output) or a dict of outputs. Anything missing fails `load()` with a message
naming it: MLServer then never reports the model ready (and exits when it happens at startup).
"""

from __future__ import annotations

import importlib
import inspect
import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from mlserver.errors import MLServerError

from kea_runtime.model import KeaModel, LoadError
from kea_runtime.signature import SignatureError

logger = logging.getLogger(__name__)


def _import_class(model_dir: Path, dotted: str) -> type:
    module_name, _, class_name = dotted.rpartition(".")
    if not module_name or not class_name:
        raise LoadError(
            f"parameters.extra.class is {dotted!r}: expected 'module.Class' "
            "(module path relative to the model directory)"
        )
    directory = str(model_dir)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    top = module_name.split(".")[0]
    cached = sys.modules.get(top)
    cached_file = getattr(cached, "__file__", None) or ""
    if cached is not None and not cached_file.startswith(directory + "/"):
        # A module of the same name from elsewhere (e.g. MLServer's generated `model.py`) is
        # cached; the user's module must win.
        for name in [m for m in sys.modules if m == top or m.startswith(top + ".")]:
            del sys.modules[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        raise LoadError(
            f"parameters.extra.class {dotted!r}: module {module_name!r} not found in {model_dir} "
            f"({err})"
        ) from err
    except Exception as err:
        raise LoadError(
            f"parameters.extra.class {dotted!r}: importing {module_name!r} failed: "
            f"{type(err).__name__}: {err}"
        ) from err
    cls = getattr(module, class_name, None)
    if not inspect.isclass(cls):
        raise LoadError(
            f"parameters.extra.class {dotted!r}: module {module_name!r} "
            f"({getattr(module, '__file__', '?')}) has no class {class_name!r}"
        )
    missing = [m for m in ("load", "predict") if not callable(getattr(cls, m, None))]
    if missing:
        raise LoadError(
            f"custom model class {dotted!r} ({getattr(module, '__file__', '?')}) has no "
            + " and no ".join(f"{m}()" if m == "load" else f"{m}(body)" for m in missing)
            + " method; a KEA custom model needs load() and predict(body)"
        )
    return cls


def _construct(cls: type, kwargs: dict[str, Any]) -> Any:
    """Calls the constructor with the MLRun arguments it accepts (MLRun classes take context,
    name, model_path and their own keyword arguments; plain classes may take none)."""
    params = inspect.signature(cls).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return cls(**kwargs)
    return cls(**{k: v for k, v in kwargs.items() if k in params})


class CustomModel(KeaModel):
    """Runs the user's class; inputs are checked against the signature before `predict(body)`."""

    framework = "custom"

    def load_model(self, path: Path) -> None:
        dotted = self.extra.get("class")
        if not dotted or not isinstance(dotted, str):
            raise LoadError(
                "a custom model needs parameters.extra.class naming the class, "
                "e.g. 'serving.Classifier'"
            )
        cls = _import_class(path, dotted)
        kwargs: dict[str, Any] = {"context": None, "name": self.name, "model_path": str(path)}
        kwargs.update(self.extra.get("kwargs") or {})
        try:
            self._user = _construct(cls, kwargs)
        except Exception as err:
            raise LoadError(f"custom model class {dotted!r}: constructor failed: {err}") from err
        if getattr(self._user, "model_path", None) is None:
            try:
                self._user.model_path = str(path)
            except AttributeError:
                logger.debug("custom model %s: cannot set model_path", dotted)
        logger.info("custom model %s: calling %s.load()", self.name, dotted)
        try:
            self._user.load()
        except Exception as err:
            raise LoadError(
                f"custom model class {dotted!r}: load() failed: {type(err).__name__}: {err}"
            ) from err
        self._dotted = dotted

    def infer(self, inputs: dict[str, np.ndarray], outputs: Sequence[str]) -> dict[str, Any]:
        # One declared input (or, with no signature in the settings, one given) is passed bare.
        declared = len(self.signature.inputs) or len(inputs)
        body: dict[str, Any] = {
            "inputs": next(iter(inputs.values())) if declared == 1 and inputs else inputs
        }
        try:
            result = self._user.predict(body)
        except MLServerError:
            raise
        except Exception as err:
            logger.exception("custom model %s: predict failed", self.name)
            raise MLServerError(
                f"custom model {self._dotted!r}: predict failed: {type(err).__name__}: {err}",
                status_code=500,
            ) from err
        declared = [s.name for s in self.signature.outputs]
        if isinstance(result, Mapping):
            named = dict(result)
        elif len(declared) > 1:
            raise MLServerError(
                f"custom model {self._dotted!r} returned one result, the settings declare outputs "
                f"{declared}: return a dict keyed by output name",
                status_code=500,
            )
        else:
            named = {declared[0] if declared else "output-0": result}
        if outputs:
            for name in outputs:
                if name not in named:
                    raise SignatureError(f"output {name!r} was not returned by {self._dotted!r}")
            return {n: named[n] for n in outputs}
        return named
