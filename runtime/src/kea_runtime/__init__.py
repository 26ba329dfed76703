"""KEA's model serving runtime: framework classes on Seldon MLServer, plus the storage fetcher.

Import the framework classes from `kea_runtime.frameworks.<name>`; importing this package pulls in
no framework, so an image carries only the framework it serves. `kea_runtime.tensors` declares a
custom serving class's tensors for KEA to read from its source (a no-op at run time).
"""

from kea_runtime.declare import tensors
from kea_runtime.model import KeaModel, LoadError
from kea_runtime.signature import Signature, SignatureError, TensorSpec

__all__ = ["KeaModel", "LoadError", "Signature", "SignatureError", "TensorSpec", "tensors"]
__version__ = "0.1.0"
