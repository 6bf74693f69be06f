"""Where a batch keeps its results: per-file records and the tables rebuilt from them.

A batch run writes, for every input file, one *record*
``OUT/.latticefit/records/<blake2b(relpath)>.json`` (atomically, after the
file's JSON results and figures). The record is the single source of every
table row: ``summary.csv``, ``spots.csv``, ``particles.csv`` and ``errors.csv``
are rebuilt from the records, sorted by file, so that a run that was killed
and resumed writes exactly the tables of an uninterrupted run and never a
duplicated row.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from ..serialize import atomic_write_bytes, atomic_write_text, csv_safe_cell, dumps

__all__ = [
    "RECORD_VERSION",
    "RecordStore",
    "file_content_hash",
    "atomic_write_bytes",
    "build_tables",
    "write_tables",
    "SUMMARY_LEAD_COLUMNS",
    "SUMMARY_TAIL_COLUMNS",
    "TIMING_COLUMNS",
]

#: bump when the record layout changes: older records are then redone on --resume
RECORD_VERSION = 2

#: first columns of summary.csv (then the analysis numbers, then the tail)
SUMMARY_LEAD_COLUMNS = [
    "file",
    "signal",
    "analysis",
    "status",
    "error",
    "acquisition_mode",
    "analysis_reason",
    "shape_px",
    "pixel_size_x_nm",
    "pixel_size_y_nm",
    "frames",
]
#: columns holding wall times (seconds); they differ from run to run
TIMING_COLUMNS = ["time_s", "load_s", "analysis_s", "figure_s"]
SUMMARY_TAIL_COLUMNS = ["warnings", "figure", "json", "content_hash"] + TIMING_COLUMNS
ERROR_COLUMNS = ["file", "signal", "analysis", "status", "error"]

_HASH_CHUNK = 1 << 20


def file_content_hash(paths, *, chunk_size: int = _HASH_CHUNK) -> str:
    """blake2b (128-bit) hex digest of the bytes of one file, or of several in order.

    Streams the files in 1 MiB chunks, so memory stays flat for large files.

    Examples
    --------
    >>> import tempfile, os
    >>> fd, p = tempfile.mkstemp(); os.write(fd, b"abc"); os.close(fd)
    3
    >>> file_content_hash(p) == file_content_hash([p])
    True
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    h = hashlib.blake2b(digest_size=16)
    for p in paths:
        with open(p, "rb") as fh:
            while True:
                block = fh.read(chunk_size)
                if not block:
                    break
                h.update(block)
        h.update(b"\0")  # file boundary
    return h.hexdigest()


def _relpath_key(relpath: str) -> str:
    return hashlib.blake2b(relpath.encode("utf-8"), digest_size=16).hexdigest()


class RecordStore:
    """The per-file records of one output folder (``OUT/.latticefit/records``).

    Parameters
    ----------
    out : path
        The batch output folder.
    """

    def __init__(self, out):
        self.out = Path(out)
        self.root = self.out / ".latticefit" / "records"

    def path_for(self, relpath: str) -> Path:
        """Record file of the input file ``relpath`` (relative to the batch folder, '/'-separated)."""
        return self.root / f"{_relpath_key(relpath)}.json"

    def save(self, record: dict) -> None:
        """Write ``record`` atomically (temp file + rename): it exists whole or not at all."""
        atomic_write_text(self.path_for(record["file"]), dumps(record, indent=None) + "\n")

    def load(self, relpath: str) -> dict | None:
        """The record of ``relpath``, or None when absent, unreadable or of another layout version."""
        p = self.path_for(relpath)
        try:
            rec = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(rec, dict) or rec.get("record_version") != RECORD_VERSION or rec.get("file") != relpath:
            return None
        return rec

    def clear(self) -> None:
        """Remove every record (a fresh run) and leftover temporary files."""
        if not self.root.is_dir():
            return
        for p in self.root.iterdir():
            if p.is_file() and (p.suffix in (".json", ".tmp")):
                p.unlink(missing_ok=True)

    def remove_stale_temporaries(self) -> int:
        """Delete ``.tmp`` files a killed run left in the record folder; returns how many."""
        if not self.root.is_dir():
            return 0
        n = 0
        for p in self.root.glob(".*.tmp"):
            p.unlink(missing_ok=True)
            n += 1
        return n


# ----------------------------------------------------------------------------- tables
def _ordered_union(lists: Iterable[Iterable[str]]) -> list[str]:
    seen: dict[str, None] = {}
    for cols in lists:
        for c in cols:
            seen.setdefault(c, None)
    return list(seen)


def _integer_columns(df: pd.DataFrame) -> pd.DataFrame:
    """Columns holding only integers (and blanks) as nullable Int64, so that CSVs say ``3``, not ``3.0``."""
    for c in df.columns:
        if df[c].dtype != object:
            continue
        vals = [v for v in df[c].tolist() if v is not None and not (isinstance(v, float) and v != v)]
        if vals and all(isinstance(v, int) and not isinstance(v, bool) for v in vals):
            df[c] = df[c].astype("Int64")
    return df


def _rows_table(records, key: str) -> pd.DataFrame:
    """Concatenate the ``key`` rows ('spots' or 'particles') of every record, each prefixed by file and signal."""
    rows = []
    for rec in records:
        for block in rec.get(key) or []:
            for r in block.get("rows") or []:
                rows.append({"file": rec["file"], "signal": block.get("signal", ""), **r})
    if not rows:
        return pd.DataFrame(columns=["file", "signal"])
    cols = _ordered_union(r.keys() for r in rows)
    return _integer_columns(pd.DataFrame(rows, columns=cols, dtype=object)).infer_objects()


def build_tables(records: list[dict], skipped: list[dict] = ()) -> dict[str, pd.DataFrame]:
    """The four batch tables from the records (and the skipped files), sorted by file.

    Parameters
    ----------
    records : list of dict
        One record per processed file (see :func:`latticefit.batch._task.process_file`).
    skipped : list of dict
        Files not processed, each ``{"file": relpath, "note": why}``.

    Returns
    -------
    dict of DataFrame
        ``summary``, ``spots``, ``particles``, ``errors``.
    """
    records = sorted(records, key=lambda r: r["file"])
    summary_rows = []
    for rec in records:
        for row in rec.get("rows") or []:
            summary_rows.append(
                {
                    "file": rec["file"],
                    **row,
                    "content_hash": rec.get("content_hash"),
                    "time_s": rec.get("time_s"),
                    "load_s": rec.get("load_s"),
                }
            )
    for sk in skipped:
        summary_rows.append(
            {"file": sk["file"], "signal": "", "analysis": "", "status": "skipped", "error": sk.get("note", "")}
        )
    summary_rows.sort(key=lambda r: r["file"])  # stable: signal order kept within a file
    middle = _ordered_union(r.keys() for r in summary_rows)
    fixed = set(SUMMARY_LEAD_COLUMNS) | set(SUMMARY_TAIL_COLUMNS)
    middle = [c for c in middle if c not in fixed]
    summary = pd.DataFrame(summary_rows, columns=SUMMARY_LEAD_COLUMNS + middle + SUMMARY_TAIL_COLUMNS, dtype=object)
    summary = _integer_columns(summary).infer_objects()

    # one row per failed file/signal/analysis (a file failing in both analyses has two rows that say which)
    error_rows = [
        {
            "file": r["file"],
            "signal": r.get("signal", ""),
            "analysis": r.get("analysis", ""),
            "status": r.get("status"),
            "error": r.get("error", ""),
        }
        for r in summary_rows
        if r.get("status") in ("error", "skipped")
    ]
    errors = pd.DataFrame(error_rows, columns=ERROR_COLUMNS)
    return {
        "summary": summary,
        "spots": _rows_table(records, "spots"),
        "particles": _rows_table(records, "particles"),
        "errors": errors,
    }


def write_tables(out, tables: dict[str, pd.DataFrame]) -> dict[str, Path]:
    """Write ``OUT/<name>.csv`` for every table, each atomically; returns the paths."""
    out = Path(out)
    paths = {}
    for name, df in tables.items():
        p = out / f"{name}.csv"
        text_columns = [c for c in df.columns if df[c].dtype == object or pd.api.types.is_string_dtype(df[c])]
        df = df.assign(**{c: df[c].map(csv_safe_cell) for c in text_columns})
        atomic_write_text(p, df.to_csv(index=False, lineterminator="\n"))
        paths[name] = p
    return paths
