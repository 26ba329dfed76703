"""KeaModel: the MLServer model class every KEA framework runtime derives from.

MLServer does the serving (OIP REST, gRPC, metrics, versions); this class adds what it leaves to
each runtime: a signature enforced before the framework runs, decoding with the declared dtypes,
outputs encoded with the declared datatypes, and the request's `outputs[]` selection honoured.
A framework only implements `load_model(path)` and `infer(inputs, outputs)`.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from mlserver import MLModel
from mlserver.errors import MLServerError
from mlserver.types import InferenceRequest, InferenceResponse

from kea_runtime.signature import Signature, SignatureError

logger = logging.getLogger(__name__)

#: Where the init container puts the model's artifacts when `parameters.uri` is not set.
DEFAULT_MODEL_DIR = "/mnt/models"


class LoadError(MLServerError):
    """The model cannot be loaded; MLServer then never marks it ready (and stops at startup)."""

    def __init__(self, msg: str) -> None:
        super().__init__(msg, status_code=500)


_exit_code_armed = False


def _exit_nonzero() -> None:
    """Ends the process with status 1 once MLServer has shut down cleanly."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)


def _fail_process_on_exit() -> None:
    """MLServer stops when a model fails to load at startup, but exits 0. Kubernetes should see
    a failed container ("Error", not "Completed"), so the server process exits 1 instead.

    Only in the server process: parallel inference workers end through os._exit anyway.
    """
    global _exit_code_armed
    if _exit_code_armed or multiprocessing.parent_process() is not None:
        return
    _exit_code_armed = True
    atexit.register(_exit_nonzero)


def _configure_logging() -> None:
    """Makes KEA's logs appear next to MLServer's (same handlers, same format); MLServer only
    configures its own logger. KEA_LOG_LEVEL=DEBUG adds the entry/exit logs."""
    kea = logging.getLogger("kea_runtime")
    if kea.handlers:
        return
    kea.setLevel(os.environ.get("KEA_LOG_LEVEL", "INFO").upper())
    handlers = logging.getLogger("mlserver").handlers
    if handlers:
        for handler in handlers:
            kea.addHandler(handler)
    else:
        handler = logging.StreamHandler()
        fmt = "%(asctime)s [%(name)s] %(levelname)s - %(message)s"
        handler.setFormatter(logging.Formatter(fmt))
        kea.addHandler(handler)
    kea.propagate = False


class KeaModel(MLModel):
    """Base class: subclasses implement `load_model` and `infer`, nothing about the protocol."""

    #: Framework name for logs and errors.
    framework = "custom"

    signature: Signature
    model_dir: Path

    async def load(self) -> bool:
        _configure_logging()
        logger.debug("load: enter model=%s version=%s", self.name, self.version)
        self.model_dir = Path(DEFAULT_MODEL_DIR)
        try:
            self.signature = Signature.from_settings(self.settings)
            self.model_dir = self._resolve_model_dir()
            self.load_model(self.model_dir)
            derived = self.derive_signature()
            if derived is not None:
                self._adopt_signature(derived)
        except LoadError as err:
            logger.error("model %s: %s", self.name, err)
            _fail_process_on_exit()
            raise
        except Exception as err:
            logger.exception("model %s: cannot load from %s", self.name, self.model_dir)
            _fail_process_on_exit()
            raise LoadError(
                f"{self.framework} model {self.name!r} cannot be loaded from {self.model_dir}: "
                f"{type(err).__name__}: {err}"
            ) from err
        logger.info(
            "model %s (version %s, %s) loaded from %s; inputs %s; outputs %s",
            self.name,
            self.version,
            self.framework,
            self.model_dir,
            [(s.name, s.datatype, list(s.shape)) for s in self.signature.inputs] or "unchecked",
            [s.name for s in self.signature.outputs] or "as returned",
        )
        logger.debug("load: exit model=%s", self.name)
        return True

    def _resolve_model_dir(self) -> Path:
        params = self.settings.parameters
        uri = (params.uri if params is not None else None) or DEFAULT_MODEL_DIR
        if uri.startswith("file://"):
            uri = uri[len("file://") :]
        path = Path(uri)
        if not path.is_absolute():
            source = getattr(self.settings, "_source", None)
            base = Path(os.path.dirname(source)) if source else Path.cwd()
            path = base / path
        if not path.exists():
            raise LoadError(f"model {self.name!r}: model directory {path} does not exist")
        return path

    def _adopt_signature(self, derived: Signature) -> None:
        """Fills in what settings leave out, so metadata shows what is enforced."""
        inputs = self.signature.inputs or derived.inputs
        outputs = self.signature.outputs or derived.outputs
        self.signature = Signature(inputs, outputs)
        if not self.settings.inputs and inputs:
            self.inputs = [s.to_metadata() for s in inputs]
        if not self.settings.outputs and outputs:
            self.outputs = [s.to_metadata() for s in outputs]

    @property
    def extra(self) -> Mapping[str, Any]:
        """`parameters.extra` of the model settings: framework options."""
        params = self.settings.parameters
        extra = params.extra if params is not None else None
        return extra or {}

    # Hooks -------------------------------------------------------------------------------------

    def load_model(self, path: Path) -> None:
        """Loads the artifacts from `path` (the model directory)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement load_model()")

    def derive_signature(self) -> Signature | None:
        """The signature the loaded model itself describes, used where settings give none."""
        return None

    def infer(self, inputs: dict[str, np.ndarray], outputs: Sequence[str]) -> dict[str, Any]:
        """Runs the model. `outputs` are the names wanted (may be empty: return what you have)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement infer()")

    # Serving -----------------------------------------------------------------------------------

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        logger.debug("predict: enter model=%s id=%s", self.name, payload.id)
        signature = self.signature
        arrays = signature.decode(payload)
        wanted = signature.output_names(payload)
        results = self.infer(arrays, wanted)
        if wanted:
            missing = [n for n in wanted if n not in results]
            if missing:
                raise SignatureError(
                    f"output {missing[0]!r} is not produced by this {self.framework} model; "
                    f"it produces {sorted(results)}"
                )
            names: Sequence[str] = wanted
        else:
            names = list(results)
        response = InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            id=payload.id,
            outputs=[signature.encode(n, results[n]) for n in names],
        )
        logger.debug("predict: exit model=%s id=%s outputs=%s", self.name, payload.id, names)
        return response
