"""Framework runtimes (one module each, imported only by the image that serves that framework)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from kea_runtime.model import LoadError

logger = logging.getLogger(__name__)


def find_artifact(
    directory: Path, names: Sequence[str], suffixes: Sequence[str], chosen: str | None = None
) -> Path:
    """The model file in `directory`: `chosen` (parameters.extra.file), a well-known name, or the
    only file with one of `suffixes`; ambiguity is an error rather than a guess."""
    logger.debug("find_artifact: enter dir=%s names=%s", directory, names)
    if directory.is_file():
        return directory
    if chosen:
        path = directory / chosen
        if not path.exists():
            raise LoadError(
                f"model file {chosen!r} (parameters.extra.file) not found in {directory}"
            )
        return path
    for name in names:
        path = directory / name
        if path.exists():
            logger.debug("find_artifact: exit %s", path)
            return path
    found = sorted(p for p in directory.iterdir() if p.name.endswith(tuple(suffixes)))
    if len(found) == 1:
        logger.debug("find_artifact: exit %s", found[0])
        return found[0]
    expected = ", ".join(names) + " or exactly one " + "/".join("*" + s for s in suffixes) + " file"
    if not found:
        raise LoadError(f"no model file in {directory}: expected {expected}")
    raise LoadError(
        f"several model files in {directory} ({', '.join(p.name for p in found)}): "
        "name one with parameters.extra.file"
    )


def single_input(inputs: dict, framework: str):
    """The one input a single-matrix framework (sklearn, xgboost) takes."""
    if len(inputs) != 1:
        raise LoadError(
            f"{framework} models take exactly one input tensor, got {len(inputs)}: {sorted(inputs)}"
        )
    return next(iter(inputs.values()))
