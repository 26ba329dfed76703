"""PyTorch models saved as TorchScript (`model.pt`, `torch.jit.save`), run on CPU.

TorchScript rather than pickled `nn.Module`s: it loads without the user's Python classes and
without executing arbitrary pickle code paths.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kea_runtime.frameworks import find_artifact
from kea_runtime.frameworks._outputs import name_outputs
from kea_runtime.model import KeaModel
from kea_runtime.signature import SignatureError

logger = logging.getLogger(__name__)


def _to_numpy(value: Any) -> np.ndarray:
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


class PyTorchModel(KeaModel):
    """Calls the TorchScript module with the inputs in declared order, under inference_mode."""

    framework = "pytorch"

    def load_model(self, path: Path) -> None:
        file = find_artifact(
            path, ("model.pt", "model.pth"), (".pt", ".pth"), self.extra.get("file")
        )
        threads = self.extra.get("threads")
        if threads:
            torch.set_num_threads(int(threads))
        logger.info("loading TorchScript model %s", file)
        self._module = torch.jit.load(str(file), map_location="cpu")
        self._module.eval()

    def infer(self, inputs: dict[str, np.ndarray], outputs: Sequence[str]) -> dict[str, Any]:
        order = [s.name for s in self.signature.inputs] or list(inputs)
        tensors = [torch.from_numpy(np.ascontiguousarray(inputs[n])) for n in order]
        with torch.inference_mode():
            result = self._module(*tensors)
        try:
            named = name_outputs(result, self.signature, _to_numpy)
        except ValueError as err:
            raise SignatureError(str(err)) from None
        return {n: named[n] for n in outputs if n in named} if outputs else named
