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

__all__ = [
    "to_jsonable",
    "dumps",
    "write_json",
    "atomic_write_text",
    "atomic_write_bytes",
    "OutputSet",
    "printable_text",
    "csv_safe_cell",
]


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def printable_text(text: str) -> str:
    r"""``text`` as valid Unicode: bytes of a file name that are not UTF-8 shown as ``\xNN`` escapes.

    File names that are not valid UTF-8 reach Python as lone surrogates (PEP 383), which no CSV, JSON or
    HTML writer accepts; every table, record and output name uses this escaped form instead.

    Examples
    --------
    >>> printable_text("a/b.tif")
    'a/b.tif'
    >>> printable_text(b"x\xff.tif".decode("utf-8", "surrogateescape"))
    'x\\xff.tif'
    """
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


#: first characters that make a spreadsheet read a cell as a formula (OWASP "CSV injection")
_FORMULA_LEAD = ("=", "+", "-", "@", "\t", "\r")


def csv_safe_cell(value):
    """A table cell made safe to open in a spreadsheet: text that would start a formula is quoted as text.

    Numbers and text that reads as a number (``-0.5``) are left alone; other text starting with ``=``,
    ``+``, ``-``, ``@``, tab or CR gets a leading apostrophe, the spreadsheet convention for literal text.

    Examples
    --------
    >>> csv_safe_cell("=HYPERLINK(1)"), csv_safe_cell("-0.5"), csv_safe_cell(3), csv_safe_cell("a")
    ("'=HYPERLINK(1)", '-0.5', 3, 'a')
    """
    if not isinstance(value, str):
        return value
    value = printable_text(value)
    if value.startswith(_FORMULA_LEAD):
        try:
            float(value)
            return value
        except ValueError:
            return "'" + value
    return value


def to_jsonable(obj):
    """Recursively convert ``obj`` into JSON-ready Python types (NaN/inf -> None)."""
    if obj is None or isinstance(obj, bool):
        return obj
    if isinstance(obj, str):
        return printable_text(obj)
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


def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    A reader never sees a half-written file, and a killed process leaves the old file (or none).
    The file gets the usual permissions (0666 less the umask), not mkstemp's 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_write_text(path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically; see :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _write_staged(tmp: Path, data: bytes) -> None:
    with open(tmp, "wb") as fh:
        fh.write(data)


class OutputSet:
    """Files that appear together or not at all (a report's figure, JSON and CSVs).

    Each file is written under a temporary name beside its target (``.NAME.XXXX.part.EXT``: the extension
    stays last, so matplotlib still picks the format from it); leaving the ``with`` block renames them all
    into place, an exception removes them. A full disk or a failing writer thus leaves no partial set and
    the files of an earlier run untouched (renames within a folder need no space).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with OutputSet() as out:
    ...     _ = out.write_text(d / "a.json", "{}")
    ...     _ = out.write_text(d / "a.csv", "x\\n1\\n")
    >>> sorted(p.name for p in d.iterdir())
    ['a.csv', 'a.json']
    """

    def __init__(self):
        self._staged: list[tuple[Path, Path]] = []

    def stage(self, path) -> Path:
        """A temporary path beside ``path`` to write to; it becomes ``path`` at the commit."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".part{path.suffix}", dir=path.parent)
        os.close(fd)
        self._staged.append((Path(tmp), path))
        return Path(tmp)

    def write_bytes(self, path, data: bytes) -> Path:
        """Stage ``data`` for ``path``; returns ``path`` (an OSError without a file name gets ``path``)."""
        try:
            _write_staged(self.stage(path), data)
        except OSError as e:
            if e.filename is None:  # ENOSPC from write() names no file
                e.filename = str(path)
            raise
        return Path(path)

    def write_text(self, path, text: str) -> Path:
        """Stage UTF-8 ``text`` for ``path``; returns ``path``."""
        return self.write_bytes(path, text.encode("utf-8"))

    def commit(self) -> None:
        """Rename every staged file into place (usual permissions, not mkstemp's 0600)."""
        for tmp, _final in self._staged:
            os.chmod(tmp, 0o666 & ~_UMASK)
        for tmp, final in self._staged:
            os.replace(tmp, final)
        self._staged = []

    def abort(self) -> None:
        """Remove every staged file."""
        for tmp, _final in self._staged:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        self._staged = []

    def __enter__(self) -> OutputSet:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            try:
                self.commit()
            except BaseException:
                self.abort()
                raise
        else:
            self.abort()


def write_json(obj, dest) -> None:
    """Write ``obj`` as JSON to a path, or to stdout when ``dest`` is ``'-'``."""
    text = dumps(obj)
    if str(dest) == "-":
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    else:
        atomic_write_text(dest, text + "\n")
