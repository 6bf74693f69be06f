"""JSON/CSV helpers: numpy values become plain Python, NaN becomes ``null``."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["to_jsonable", "dumps", "write_json", "atomic_write_text"]


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def to_jsonable(obj):
    """Recursively convert ``obj`` into JSON-ready Python types (NaN/inf -> None)."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, np.integer)) and not isinstance(obj, np.bool_):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, np.ndarray):
        return [to_jsonable(v) for v in obj.tolist()]
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "to_dict") and callable(obj.to_dict):
        return to_jsonable(obj.to_dict())
    if dataclasses.is_dataclass(obj):
        return to_jsonable(dataclasses.asdict(obj))
    return str(obj)


def dumps(obj, *, indent: int | None = 2) -> str:
    """``json.dumps`` of :func:`to_jsonable` (strict JSON, no NaN)."""
    return json.dumps(to_jsonable(obj), indent=indent, allow_nan=False)


def atomic_write_text(path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; results are for sharing
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_json(obj, dest) -> None:
    """Write ``obj`` as JSON to a path, or to stdout when ``dest`` is ``'-'``."""
    text = dumps(obj)
    if str(dest) == "-":
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    else:
        atomic_write_text(dest, text + "\n")
