"""KEA's model serving runtime: framework classes on Seldon MLServer, plus the storage fetcher.

Import the framework classes from `kea_runtime.frameworks.<name>`; importing this package pulls in
no framework, so an image carries only the framework it serves.
"""

from kea_runtime.model import KeaModel, LoadError
from kea_runtime.signature import Signature, SignatureError, TensorSpec

__all__ = ["KeaModel", "LoadError", "Signature", "SignatureError", "TensorSpec"]
__version__ = "0.1.0"
