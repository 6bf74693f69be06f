"""One file of a batch: load it, analyse each image signal, draw its figures, return a record.

:func:`process_file` runs in a worker process (a process pool or a dask
worker). It never raises: a file that cannot be read, or an analysis that
fails, becomes an ``error`` row of the returned record, and the run goes on.
It writes nothing either: the figures (PNG bytes) and JSON results travel
back to the parent in ``record["_outputs"]`` so that only the parent writes
under ``OUT`` (atomically, then the record last), and a dask worker needs no
write access to the output folder.
"""

from __future__ import annotations

import io as _stdio
import re
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import LatticefitError
from ..serialize import dumps, to_jsonable
from ._auto import ANALYSES, choose_analyses
from ._store import RECORD_VERSION, file_content_hash
from ._types import AnalysisOutcome, Analyzer

__all__ = [
    "FileTask",
    "AnalysisOutcome",
    "process_file",
    "content_files",
    "signal_tags",
    "plan_analyses",
    "output_stem",
    "error_message",
    "Analyzer",
    "iter_signals",
]


@dataclass(frozen=True)
class FileTask:
    """Everything a worker needs to process one file (picklable).

    Parameters
    ----------
    path : str
        Absolute path of the file.
    relpath : str
        Path relative to the batch folder, '/'-separated (the key of its record and rows).
    settings : dict
        The batch settings (mode, phases, load options, analysis options).
    settings_hash : str
        Digest of ``settings``, stored in the record for ``--resume``.
    analyzers : dict, optional
        ``{"lattice": fn, "particles": fn}`` overriding the default analyses
        (top-level functions, so that they pickle).
    """

    path: str
    relpath: str
    settings: dict
    settings_hash: str
    analyzers: Mapping[str, Analyzer] | None = None


# ----------------------------------------------------------------------------- helpers
def content_files(path) -> list[Path]:
    """The files whose bytes make up one input: the file itself, plus the ``.ser`` data files of an ``.emi``."""
    p = Path(path)
    files = [p]
    if p.suffix.lower() == ".emi":
        files += sorted(q for q in p.parent.glob(f"{glob_escape(p.stem)}_*") if q.suffix.lower() == ".ser")
    return files


def glob_escape(text: str) -> str:
    """Escape glob metacharacters in a literal file-name part."""
    return re.sub(r"([\[\]*?])", r"[\1]", text)


_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def signal_tags(titles) -> list[str]:
    """File-name-safe, unique tags for the signals of one file (``''`` for a single signal).

    Examples
    --------
    >>> signal_tags(["HAADF"])
    ['']
    >>> signal_tags(["HAADF", "DF2", "BF", "BF"])
    ['HAADF', 'DF2', 'BF', 'BF-3']
    >>> signal_tags(["", "Ceta 1"])
    ['s0', 'Ceta_1']
    """
    titles = list(titles)
    if len(titles) <= 1:
        return [""] * len(titles)
    tags, seen = [], set()
    for i, t in enumerate(titles):
        tag = _UNSAFE.sub("_", str(t or "")).strip("._") or f"s{i}"
        if tag in seen:
            tag = f"{tag}-{i}"
        seen.add(tag)
        tags.append(tag)
    return tags


def output_stem(relpath: str, tag: str, analysis: str) -> str:
    """Output path stem (relative to OUT) of one file/signal/analysis: ``sub/a.dm4[.HAADF].lattice``."""
    parts = [relpath] + ([tag] if tag else []) + [analysis]
    return ".".join(parts)


def plan_analyses(mg, mode: str) -> list[tuple[str, str]]:
    """``[(analysis, reason), ...]`` to run on one image for a batch ``mode``."""
    if mode == "auto":
        return choose_analyses(mg)
    if mode == "both":
        return [(a, "mode both") for a in ANALYSES]
    return [(mode, f"mode {mode}")]


def error_message(exc: BaseException) -> str:
    """One line for ``errors.csv`` (the file is in its own column, so it is not repeated)."""
    if isinstance(exc, LatticefitError):
        return exc.message
    msg = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def _warning_text(records, relpath: str, path: str) -> str:
    seen: dict[str, None] = {}
    for w in records:
        text = " ".join(str(w.message).split())
        text = text.replace(path, relpath)
        seen.setdefault(text, None)
    return " | ".join(seen)


def _figure_png(fig) -> bytes | None:
    if fig is None:
        return None
    if isinstance(fig, (bytes, bytearray)):
        return bytes(fig)
    import sys

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    if fig.canvas is None or not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    buf = _stdio.BytesIO()
    try:
        fig.savefig(
            buf, format="png", pil_kwargs={"compress_level": 1}
        )  # fast zlib: these figures are not smaller at 6
    finally:
        plt = sys.modules.get("matplotlib.pyplot")
        if plt is not None:
            plt.close(fig)  # a figure made with pyplot stays registered (and in memory) until closed
    return buf.getvalue()


def _table_rows(df) -> list[dict]:
    if df is None:
        return []
    if hasattr(df, "to_dict"):
        return to_jsonable(df.to_dict(orient="records"))
    return to_jsonable(list(df))


def iter_signals(path: str, settings: Mapping[str, Any]):
    """Yield ``(index, titles, Micrograph or exception)`` for every 2-D image of a file, one at a time.

    ``index`` is the signal's position among ``titles``, the titles of every
    signal in the file.

    The first image is read with :func:`latticefit.io.load` (which raises when
    the file is unreadable or holds no image); the other signals of a
    multi-detector file are then read one by one, so that a worker holds one
    image at a time. Signals that are not 2-D images (spectra, plots, 4-D
    data) are passed over, as :func:`latticefit.io.load_all` does. With
    ``settings['signal']`` only that signal is read. Stacks are reduced with
    ``settings['frame']`` (the batch default is ``'mean'``).
    """
    from .. import io
    from ..errors import DataShapeError

    kw = {"frame": settings.get("frame", "mean"), "pixel_size": settings.get("pixel_size_nm")}
    if settings.get("calibration") is not None:
        from ..crystal._calibration import Calibration

        rec = dict(settings["calibration"])
        kw["calibration"] = Calibration.from_dict(rec, file=rec.pop("_file", None))
    if settings.get("signal") is not None:
        mg = io.load(path, signal=settings["signal"], **kw)
        yield 0, [mg.title], mg
        return
    first = io.load(path, **kw)
    titles = list(first.signals or [first.title])
    first_index = titles.index(first.title) if first.title in titles else 0
    if len(titles) == 1:
        yield 0, titles, first
        return
    yield first_index, titles, first
    del first
    for i, title in enumerate(titles):
        if i == first_index:
            continue
        try:
            mg = io.load(path, signal=i, **kw)
        except DataShapeError:
            continue  # not an image
        except Exception as e:  # noqa: BLE001 - this signal's error row; the others go on
            yield i, titles, e
            continue
        yield i, titles, mg


def _resolve_analyzers(analyzers) -> Mapping[str, Analyzer]:
    if analyzers is not None:
        return analyzers
    from ._analyses import default_analyzers

    return default_analyzers()


def _image_columns(mg) -> dict:
    cols: dict[str, Any] = {
        "acquisition_mode": mg.mode or "",
        "shape_px": f"{mg.shape[0]}x{mg.shape[1]}",
        "pixel_size_x_nm": None,
        "pixel_size_y_nm": None,
        "frames": int(getattr(mg, "frames", 1) or 1),
    }
    if mg.pixel_size_nm is not None:  # the API's (y, x) pair, one column per axis
        cols["pixel_size_y_nm"], cols["pixel_size_x_nm"] = (float(v) for v in mg.pixel_size_nm)
    return cols


# ----------------------------------------------------------------------------- the task
def process_file(task: FileTask) -> dict:
    """Process one file: load, analyse every image signal, draw figures; return its record.

    Never raises for a bad file or a failed analysis: those become rows with
    ``status='error'`` and a one-line ``error``.

    Method: hash the file's content; then, one image in memory at a time, read each signal
    (:func:`iter_signals`), plan its analyses (:func:`plan_analyses`), run each analyzer and store
    its outcome (:func:`_run_analysis`): a summary row, the per-file JSON, the figure, table rows.

    Returns
    -------
    dict
        The record (JSON-ready): ``file``, ``content_hash``, ``settings_hash``,
        ``status`` (``'ok'`` or ``'error'``), ``rows`` (summary rows),
        ``spots`` / ``particles`` (table rows per signal), timings, and
        ``_outputs`` ``{path relative to OUT: bytes | str}`` for the parent to write.
    """
    t0 = time.perf_counter()
    rec: dict[str, Any] = {
        "record_version": RECORD_VERSION,
        "file": task.relpath,
        "content_hash": None,
        "settings_hash": task.settings_hash,
        "status": "ok",
        "rows": [],
        "spots": [],
        "particles": [],
        "time_s": None,
        "load_s": None,
    }
    outputs: dict[str, Any] = {}
    try:
        rec["content_hash"] = file_content_hash(content_files(task.path))
    except OSError as e:
        _fail_file(rec, LatticefitError(f"cannot read the file ({e.strerror or e})"))
        return _finish(rec, outputs, t0)
    try:
        analyzers = _resolve_analyzers(task.analyzers)
    except Exception as e:  # noqa: BLE001 - e.g. an analysis module that fails to import
        _fail_file(rec, e)
        return _finish(rec, outputs, t0)
    load_s = 0.0
    signals = iter_signals(task.path, task.settings)
    while True:  # one image in memory at a time: each signal is read, analysed and dropped before the next
        t_load0 = time.perf_counter()
        got, load_note = _next_signal(signals, task)
        load_s += time.perf_counter() - t_load0
        if got is None:
            break
        if isinstance(got, BaseException):  # the file cannot be read at all
            _fail_file(rec, got, load_s)
            break
        i_signal, titles, mg = got
        if isinstance(mg, BaseException):
            _error_row(rec, {"signal": titles[i_signal], "analysis": "", "warnings": load_note}, mg)
            continue
        base = {"signal": mg.title or "", **_image_columns(mg)}
        try:
            plans = plan_analyses(mg, task.settings.get("mode", "auto"))
        except Exception as e:  # noqa: BLE001
            _error_row(rec, {**base, "analysis": ""}, e)
            continue
        tag = signal_tags(titles)[i_signal]
        for analysis, reason in plans:
            row = _run_analysis(task, mg, analysis, reason, analyzers, base, tag, rec, outputs)
            row["warnings"] = " | ".join(n for n in (load_note, row.pop("_warnings")) if n)
            if row["status"] == "error":
                rec["status"] = "error"
            rec["rows"].append(row)
        del mg
    if rec["load_s"] is None:
        rec["load_s"] = load_s
    return _finish(rec, outputs, t0)


def _fail_file(rec: dict, exc, t_load=None) -> None:
    """The whole file failed: one error row."""
    rec["rows"] = [{"signal": "", "analysis": "", "status": "error", "error": error_message(exc)}]
    rec["status"] = "error"
    rec["load_s"] = t_load


def _error_row(rec: dict, row: dict, exc) -> None:
    rec["rows"].append({**row, "status": "error", "error": error_message(exc)})
    rec["status"] = "error"


def _finish(rec: dict, outputs: dict, t0: float) -> dict:
    rec["time_s"] = time.perf_counter() - t0
    rec = to_jsonable(rec | {"_outputs": {}})
    rec["_outputs"] = outputs
    return rec


def _next_signal(signals, task: FileTask):
    """``((i_signal, titles, micrograph_or_error), load_note)``; ``(None, "")`` at the end; an exception
    in place of the tuple when the file cannot be read at all.
    """
    with warnings.catch_warnings(record=True) as load_warnings:
        warnings.simplefilter("always")
        try:
            got = next(signals)
        except StopIteration:
            return None, ""
        except Exception as e:  # noqa: BLE001 - the file cannot be read at all
            return e, ""
    return got, _warning_text(load_warnings, task.relpath, task.path)


def _run_analysis(
    task: FileTask, mg, analysis: str, reason: str, analyzers, base: dict, tag: str, rec: dict, outputs: dict
) -> dict:
    """Run one analyzer on one image; store its JSON, figure and table rows; return its summary row.

    The row's ``_warnings`` holds the warnings raised meanwhile (the caller joins them with the load's).
    """
    row = {**base, "analysis": analysis, "analysis_reason": reason, "status": "ok", "error": ""}
    stem = output_stem(task.relpath, tag, analysis)
    with warnings.catch_warnings(record=True) as wlist:
        warnings.simplefilter("always")
        t1 = time.perf_counter()
        try:
            outcome = analyzers[analysis](mg, task.settings)
        except Exception as e:  # noqa: BLE001 - one failed analysis is one error row
            row.update(status="error", error=error_message(e), analysis_s=time.perf_counter() - t1)
            outcome = None
        if outcome is not None:
            row["analysis_s"] = time.perf_counter() - t1
            row.update(to_jsonable(outcome.summary or {}))
            _store_outcome(task, mg, analysis, reason, outcome, stem, row, rec, outputs)
    row["_warnings"] = _warning_text(wlist, task.relpath, task.path)
    return row


def _store_outcome(
    task: FileTask, mg, analysis: str, reason: str, outcome, stem: str, row: dict, rec: dict, outputs: dict
) -> None:
    """The per-file JSON, the figure (unless ``settings['figures']`` is False) and the table rows."""
    t2 = time.perf_counter()
    png = None
    if task.settings.get("figures", True):
        try:
            png = _figure_png(outcome.figure)
        except Exception as e:  # noqa: BLE001 - a figure that fails is a note, not a lost result
            warnings.warn(f"figure not drawn: {error_message(e)}", stacklevel=1)
    row["figure_s"] = time.perf_counter() - t2
    doc = {
        "file": task.relpath,
        "signal": mg.title or "",
        "analysis": analysis,
        "analysis_reason": reason,
        "image": mg.summary(),
        "settings": task.settings,
        "summary": outcome.summary,
        "notes": list(outcome.notes),
        "result": outcome.result,
    }
    doc["image"]["file"] = task.relpath
    outputs[stem + ".json"] = dumps(doc) + "\n"
    row["json"] = PurePosixPath(stem + ".json").as_posix()
    if png is not None:
        outputs[stem + ".png"] = png
        row["figure"] = stem + ".png"
    sig = mg.title or ""
    if outcome.spots is not None:
        rec["spots"].append({"signal": sig, "rows": _table_rows(outcome.spots)})
    if outcome.particles is not None:
        rec["particles"].append({"signal": sig, "rows": _table_rows(outcome.particles)})
    if outcome.notes:
        warnings.warn("; ".join(str(n) for n in outcome.notes), stacklevel=1)
