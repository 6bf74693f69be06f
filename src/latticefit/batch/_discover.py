"""Finding the files of a batch: every supported microscope export under a folder, with its companions."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..errors import LatticefitError
from ..serialize import printable_text

__all__ = ["FoundFile", "discover_files"]


@dataclass(frozen=True)
class FoundFile:
    """One file found in the batch folder.

    Attributes
    ----------
    path : Path
        The file.
    relpath : str
        Its path relative to the folder, '/'-separated (the ``file`` column of every table).
    supported : bool
        Whether latticefit reads this file type; unsupported files are skipped with ``note``.
    note : str
        Why the file is skipped.
    """

    path: Path
    relpath: str
    supported: bool = True
    note: str = ""


def _matches(relpath: str, patterns) -> bool:
    rp = PurePosixPath(relpath.lower())
    return any(rp.match(p.lower()) for p in patterns)


def discover_files(folder, *, recursive: bool = False, pattern=None, exclude=()) -> list[FoundFile]:
    """Every file a batch of ``folder`` considers, sorted by relative path.

    Parameters
    ----------
    folder : path
        The folder to scan.
    recursive : bool
        Also scan sub-folders.
    pattern : str or list of str, optional
        Glob(s) a file must match, case-insensitive: ``'*.dm4'`` matches the
        file name, ``'day2/*.emd'`` the end of the relative path. Files that
        match none are ignored.
    exclude : iterable of path
        Folders not to scan (the output folder when it lies inside ``folder``).

    Returns
    -------
    list of FoundFile
        Supported files, and unsupported ones with ``supported=False`` and a
        note. Hidden files and folders (name starting with '.') are ignored,
        and so are sub-folders holding an earlier batch's output (their
        figures are not microscope data) and the ``.ser`` of a TIA
        acquisition whose ``.emi`` is present (the acquisition is read once,
        through its ``.emi``).

    Raises
    ------
    LatticefitError
        When ``folder`` is not a folder.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ("a.dm4", "scan.emi", "scan_1.ser", "notes.txt", ".DS_Store"):
    ...     _ = (d / name).write_bytes(b"")
    >>> [(f.relpath, f.supported) for f in discover_files(d)]
    [('a.dm4', True), ('notes.txt', False), ('scan.emi', True)]
    """
    from .. import io

    root = Path(folder)
    if not root.exists():
        raise LatticefitError("folder not found", str(folder))
    if not root.is_dir():
        raise LatticefitError("not a folder", str(folder))
    patterns = [pattern] if isinstance(pattern, str) else list(pattern or [])
    excluded = {Path(e).resolve() for e in exclude}
    found: list[FoundFile] = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if recursive:
            # hidden folders, the output folder and any other batch output (it holds .latticefit/) are not inputs
            dirnames[:] = sorted(
                d
                for d in dirnames
                if not d.startswith(".")
                and (here / d).resolve() not in excluded
                and not (here / d / ".latticefit" / "settings.json").is_file()
            )
        else:
            dirnames[:] = []
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            p = here / name
            rel = printable_text(p.relative_to(root).as_posix())
            if patterns and not _matches(rel, patterns):
                continue
            if p.is_symlink() and not p.exists():
                found.append(FoundFile(p, rel, False, "broken or looping symbolic link: skipped"))
                continue
            if not p.is_file():
                continue
            if io.is_companion_file(p):
                continue
            if io.is_supported(p):
                found.append(FoundFile(p, rel))
            else:
                ext = p.suffix.lower() or "(no extension)"
                found.append(FoundFile(p, rel, False, f"unsupported file type {ext!r}: skipped"))
    found.sort(key=lambda f: f.relpath)
    return found


# ----------------------------------------------------------------------------- settings
